#!/usr/bin/env bash
# GPU smoke check of medlt on one GPU, one table, in <= 8 minutes (bench/gpu_smoke.py does the work):
# train-step time fp32 vs bf16, MONAI flash attention off/on, channels_last, torch.compile off/on,
# DDP on one GPU with NCCL, and synth images/s per sampler (ddpm-1000, ddim-50/25, dpm++-20/10,
# rflow-30/10).
#
#   bash bench/gpu_smoke.sh --fetch-wheels   # on a machine with pip access: the wheels medlt needs
#                                            # beyond a stock PyTorch image, into .whl/ (CPython 3.12)
#   bash bench/gpu_smoke.sh                  # on the GPU machine (installs .whl/*.whl if present)
#   bash bench/gpu_smoke.sh --dry-run        # any machine: every row on the CPU, tiny, numbers meaningless
#
# Environment: PYTHON (default: .venv/bin/python when present, else python3), WHEEL_PYTHON_VERSION
# (3.12), SMOKE_TIMEOUT_S (470: the Python part is stopped past it so the whole run stays <= 8 min).
# Without CUDA (and without --dry-run) it stops with one line and exit status 2.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEELS="$REPO/.whl"
# what a stock PyTorch image lacks (pinned to the versions medlt is tested with; pure Python except pydantic_core)
PACKAGES=(monai==1.6.1 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
          typing_extensions==4.16.0 nibabel==5.4.2 pydicom==3.0.2 diffusers==0.42.1 importlib_metadata==10.2.0
          lazy-importer==0.1.0)

fetch_wheels() {
    local py="${PYTHON:-python3}" ver="${WHEEL_PYTHON_VERSION:-3.12}"
    mkdir -p "$WHEELS"
    for pkg in "${PACKAGES[@]}"; do
        "$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$ver" --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$WHEELS" "$pkg" \
            || { echo "error: gpu_smoke: could not download the wheel of $pkg" >&2; exit 1; }
    done
    echo "wheels in $WHEELS:"; ls "$WHEELS"
}

DRY=()
case "${1:-}" in
    --fetch-wheels) fetch_wheels; exit 0 ;;
    --dry-run) DRY=(--dry-run) ;;
    "") ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "error: gpu_smoke: unknown argument '$1' (use --fetch-wheels, --dry-run or nothing)" >&2; exit 2 ;;
esac

TOOL=gpu_smoke
# shellcheck source=bench/gpu_env.sh
source "$REPO/bench/gpu_env.sh"
export MEDLT_PROGRESS=off

if [[ ${#DRY[@]} -eq 0 ]]; then
    if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        echo "error: gpu_smoke: no CUDA GPU visible to $PY (torch.cuda.is_available() is False); run it on a GPU machine or pass --dry-run" >&2
        exit 2
    fi
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
fi
missing=$("$PY" - <<'EOF'
import importlib.util
need = ["torch", "monai", "pydantic", "diffusers", "rich", "yaml", "pandas", "nibabel", "pydicom", "typer"]
print(" ".join(m for m in need if importlib.util.find_spec(m) is None))
EOF
)
if [[ -n "$missing" ]]; then
    echo "error: gpu_smoke: missing Python packages: $missing (bring them: bash bench/gpu_smoke.sh --fetch-wheels, then carry .whl/)" >&2
    exit 1
fi
exec timeout --signal=INT "${SMOKE_TIMEOUT_S:-470}" "$PY" "$REPO/bench/gpu_smoke.py" "${DRY[@]}"
