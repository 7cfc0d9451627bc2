#!/usr/bin/env bash
# `make demo`: the main job end to end on an embedded long-tailed phantom (no patient data, offline,
# CPU). phantom -> validate/stats/preview -> train a class-conditional diffusion model -> sample a tail
# class -> plan and generate a class-balanced synthetic set -> classifier on real vs real+synthetic ->
# train a phantom oracle -> evaluate both (class fidelity, CAS, CIs) -> compare (paired CI). Results land in demo_out/ (override with DEMO_OUT=...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${DEMO_OUT:-demo_out}
RECIPE=recipes/phantom/nih_cxr_lt.yaml
QUOTA=${DEMO_QUOTA:-to_count:24}
export MEDLT_PROGRESS=${MEDLT_PROGRESS:-auto}  # a bar on a terminal, plain lines in a log
medlt() { "$PY" -m medlt "$@"; }
step() { printf '\n== %s\n' "$*"; }
rm -rf "$OUT"
mkdir -p "$OUT"
SECONDS=0

step "1/9 long-tailed phantom in the NIH-CXR-LT layout (PNGs + the four split CSVs)"
medlt phantom --layout nih-cxr-lt --out "$OUT/phantom"
S=(--set "data.root=$OUT/phantom" --set "data.labels=$OUT/phantom")

step "2/9 validate, stats, preview"
medlt data validate "$RECIPE" "${S[@]}"
medlt data stats "$RECIPE" "${S[@]}"
medlt data preview "$RECIPE" "${S[@]}" --out "$OUT/preview" --limit 16

step "3/9 train the class-conditional diffusion model (tiny CPU recipe)"
medlt train "$RECIPE" "${S[@]}" --out "$OUT/diffusion"

step "4/9 sample a tail class from the EMA weights"
medlt sample "$RECIPE" "${S[@]}" --checkpoint "$OUT/diffusion/checkpoints/last.pt" \
  --class Hernia --num 8 --out "$OUT/samples-hernia"

step "5/9 plan and generate a class-balanced synthetic training set ($QUOTA)"
medlt synth "$RECIPE" "${S[@]}" --checkpoint "$OUT/diffusion/checkpoints/last.pt" --out "$OUT/synth" \
  --quota "$QUOTA" --dry-run
medlt synth "$RECIPE" "${S[@]}" --checkpoint "$OUT/diffusion/checkpoints/last.pt" --out "$OUT/synth" \
  --quota "$QUOTA"

step "6/9 downstream classifier: real only, then real + synthetic (everything else equal)"
medlt classify "$RECIPE" "${S[@]}" --out "$OUT/classifier-real"
medlt classify "$RECIPE" "${S[@]}" --out "$OUT/classifier-real+synth" --train-manifest "$OUT/synth/merged.csv"

step "7/9 phantom oracle: the same classifier trained on a large balanced phantom from another seed"
medlt oracle "$RECIPE" "${S[@]}" --out "$OUT/oracle"

step "8/9 evaluate both (FID/KID features from the real-only classifier; class fidelity judged by the oracle; CAS)"
medlt evaluate "$RECIPE" "${S[@]}" --classifier "$OUT/classifier-real" --synthetic "$OUT/synth" \
  --reference-classifier "$OUT/oracle" --cas --out "$OUT/eval-real"
medlt evaluate "$RECIPE" "${S[@]}" --classifier "$OUT/classifier-real+synth" --synthetic "$OUT/synth" \
  --feature-extractor "$OUT/classifier-real" --reference-classifier "$OUT/oracle" --out "$OUT/eval-real+synth"

step "9/9 compare: paired bootstrap CI of the balanced-accuracy difference on the same test images"
medlt report "$OUT/eval-real" "$OUT/eval-real+synth" --html "$OUT/comparison.html"

printf '\ndemo finished in %ss. Open %s/eval-real+synth/report.html and %s/comparison.html\n' \
  "$SECONDS" "$OUT" "$OUT"
