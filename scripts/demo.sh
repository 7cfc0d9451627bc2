#!/usr/bin/env bash
# `make demo`: the main job end to end on an embedded long-tailed phantom (no patient data, offline).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${DEMO_OUT:-demo_out}
mkdir -p "$OUT"
echo "== 1. phantom in the NIH-CXR-LT layout"
$PY -m medlt phantom --layout nih-cxr-lt --out "$OUT/phantom-nih"
S="--set data.root=$OUT/phantom-nih --set data.labels=$OUT/phantom-nih"
echo "== 2. validate / stats / preview"
$PY -m medlt data validate recipes/phantom/nih_cxr_lt.yaml $S
$PY -m medlt data stats recipes/phantom/nih_cxr_lt.yaml $S
$PY -m medlt data preview recipes/phantom/nih_cxr_lt.yaml $S --out "$OUT/preview" --limit 16
echo "demo finished: see $OUT/"
