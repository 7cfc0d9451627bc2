#!/usr/bin/env bash
# GPU preset of the evidence benchmark (`medlt bench --preset gpu`) on one H100/H200-class GPU, meant
# to finish in <= 8 minutes: phantom -> bench (4 methods x 3 generator seeds x 2 classifier seeds,
# real-only and copies controls, phantom oracle) -> table (bench.md printed, bench.json / bench.html).
#
#   bash bench/evidence_gpu.sh --fetch-wheels   # on a machine with pip access: the wheels medlt needs
#                                               # beyond a stock PyTorch image, into .whl/ (CPython 3.12;
#                                               # the same list as bench/gpu_smoke.sh)
#   bash bench/evidence_gpu.sh                  # on the GPU machine (installs .whl/*.whl if present)
#
# Environment: PYTHON (default: .venv/bin/python when present, else python3), BENCH_OUT
# (runs/bench-gpu), BENCH_TIMEOUT_S (450: the bench is stopped past it; it is resumable, so the same
# command continues where it stopped), BENCH_ARGS (extra `medlt bench` arguments, e.g. "--seeds 0,1").
# Without CUDA it stops with one line and exit status 2.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEELS="$REPO/.whl"
case "${1:-}" in
    --fetch-wheels) exec bash "$REPO/bench/gpu_smoke.sh" --fetch-wheels ;;
    "") ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "error: evidence_gpu: unknown argument '$1' (use --fetch-wheels or nothing)" >&2; exit 2 ;;
esac

TOOL=evidence_gpu
# shellcheck source=bench/gpu_env.sh
source "$REPO/bench/gpu_env.sh"
export MEDLT_PROGRESS=lines

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "error: evidence_gpu: no CUDA GPU visible to $PY (torch.cuda.is_available() is False); the GPU preset needs one (on CPUs use make bench-evidence)" >&2
    exit 2
fi
missing=$("$PY" - <<'PYEOF'
import importlib.util
need = ["torch", "monai", "pydantic", "rich", "yaml", "pandas", "nibabel", "pydicom", "typer", "sklearn", "matplotlib"]
print(" ".join(m for m in need if importlib.util.find_spec(m) is None))
PYEOF
)
if [[ -n "$missing" ]]; then
    echo "error: evidence_gpu: missing Python packages: $missing (bring them: bash bench/evidence_gpu.sh --fetch-wheels, then carry .whl/)" >&2
    exit 1
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

OUT="${BENCH_OUT:-$REPO/runs/bench-gpu}"
PHANTOM="$OUT/phantom"
cd "$REPO"
SECONDS=0
if [[ ! -f "$PHANTOM/medlt_phantom.json" ]]; then
    "$PY" -m medlt phantom --layout nih-cxr-lt --out "$PHANTOM" --image-size 32 --num-images 800 --seed 0
fi
# shellcheck disable=SC2086
timeout --signal=INT "${BENCH_TIMEOUT_S:-450}" "$PY" -m medlt bench recipes/phantom/bench_cpu.yaml --preset gpu \
    --out "$OUT/bench" --set "data.root=$PHANTOM" --set "data.labels=$PHANTOM" ${BENCH_ARGS:-}
echo "evidence_gpu: finished in ${SECONDS}s; table: $OUT/bench/bench.md, $OUT/bench/bench.html"
