# Sourced by bench/gpu_smoke.sh and bench/evidence_gpu.sh: pick the Python (PYTHON, else .venv, else
# python3), install the carried wheels in .whl/ (see gpu_smoke.sh --fetch-wheels) into /tmp/medlt-site,
# and put that and the checkout on PYTHONPATH. Needs REPO, WHEELS and TOOL (the caller's name) set.
if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"
elif [[ -x "$REPO/.venv/bin/python" ]]; then PY="$REPO/.venv/bin/python"
else PY=python3; fi

if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/medlt-site \
        "$WHEELS"/*.whl || { echo "error: $TOOL: installing $WHEELS/*.whl failed" >&2; exit 1; }
    export PYTHONPATH="/tmp/medlt-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
