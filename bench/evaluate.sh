#!/usr/bin/env bash
# Re-measure the README's trust table: `autolabel evaluate` at target 0.95 on
# River's ImageSegments and Phishing and on two synthetic abrupt-drift streams,
# with the default (softmax) model, then with naive Bayes and a Hoeffding tree
# (overconfident models: where a fixed 0.9 threshold fails). Writes JSON and PNG
# next to this script, in bench/evaluate/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
out=bench/evaluate
mkdir -p "$out" .artifacts/data
for name in image_segments phishing hyperplane_drift sea_flip_drift; do
  "$BIN/autolabel" dataset "$name" ".artifacts/data/$name.csv" >/dev/null
done
run() {  # name model [extra args]
  local name=$1 model=$2; shift 2
  echo "== $name ($model)"
  "$BIN/autolabel" evaluate --data ".artifacts/data/$name.csv" --label-column label \
    --model "$model" --json "$out/$name.$model.json" --plot "$out/$name.$model.png" "$@"
}
run image_segments softmax
run phishing softmax
run hyperplane_drift softmax --drift-at 5000
run sea_flip_drift softmax --drift-at 5000
for model in naive_bayes hoeffding_adaptive_tree; do
  run image_segments "$model"
  run phishing "$model"
done
# The hard drift stream again, certifying on a re-scored holdout instead of
# prequential scores (AUTOLABEL_POLICY__HOLDOUT_SHARE; see README, "Trust").
echo "== sea_flip_drift (softmax, holdout evidence)"
AUTOLABEL_POLICY__HOLDOUT_SHARE=0.5 AUTOLABEL_POLICY__MIN_EVIDENCE=60 \
  "$BIN/autolabel" evaluate --data .artifacts/data/sea_flip_drift.csv --label-column label \
  --drift-at 5000 --json "$out/sea_flip_drift.softmax.holdout.json" \
  --plot "$out/sea_flip_drift.softmax.holdout.png"
