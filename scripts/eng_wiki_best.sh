#!/usr/bin/env bash
# The best Eng-Wiki rows of docs/results/eng-wiki.md: configs/eng-wiki-best.yaml (chosen on validation by
# `tgcn sweep`, docs/experiments/eng-wiki.md) and its bag-of-words ablation, seeds 1 2 3, each
# trained once and tested once; then `tgcn report` prints the table.
# Usage: [RUNS=runs] scripts/eng_wiki_best.sh [SEED...] (default 1 2 3). Runs land in
# $RUNS/eng-wiki/ and the report covers every best-gcn / best-mlp run there.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/tgcn
SEEDS=("${@:-1 2 3}")
RUNS=${RUNS:-runs}
for seed in ${SEEDS[*]}; do
  $BIN train --dataset eng-wiki --config configs/eng-wiki-best.yaml --set seed="$seed" --set name=best-gcn --runs "$RUNS"
  $BIN train --dataset eng-wiki --config configs/eng-wiki-best.yaml --set seed="$seed" --set name=best-mlp \
    --set model.text.kind=mlp --runs "$RUNS"
done
$BIN report "$RUNS"/eng-wiki/*-best-gcn "$RUNS"/eng-wiki/*-best-mlp
