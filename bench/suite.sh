#!/usr/bin/env bash
# The drift suite (issue 7): every stream of autolabel.tools.suite_streams replayed
# through the service's labeler and learner cores at default settings (target 0.95),
# as generated and in shuffled orders, on 2 worker processes (~5-7 minutes on the
# 2-core development machine). Writes bench/suite/variant-N.{md,json} and a plot per
# stream in bench/suite/plots-vN/.
#
#   bash bench/suite.sh        # variant 0: the suite
#   bash bench/suite.sh 1      # variant 1: the same kinds of streams, generated differently
#   QUICK=1 bash bench/suite.sh   # short streams, 2 orders (about a minute)
#
# bench/suite/baseline.{md,json} are variant 0 measured before the trust work of
# issue 7 (see bench/suite/README.md); this script does not overwrite them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
variant=${1:-0}
args=(--variant "$variant" --out bench/suite --plots)
if [[ -n "${QUICK:-}" ]]; then args+=(--quick); fi
"$BIN/autolabel" suite "${args[@]}"
