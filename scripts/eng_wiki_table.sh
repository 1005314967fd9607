#!/usr/bin/env bash
# The README's Eng-Wiki table: three variants x three seeds, then `tgcn report`.
# Shortened from the authors' 15 epochs x 80k pairs to fit a 2-core budget (see README).
# Usage: scripts/eng_wiki_table.sh [SEEDS...]   (default 1 2 3); runs land in runs/eng-wiki/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/tgcn
SHORT=(--set train.epochs=12 --set train.pairs_per_epoch=10000)
for seed in "${@:-1 2 3}"; do
  for seed1 in $seed; do
    $BIN train --dataset eng-wiki "${SHORT[@]}" --set seed=$seed1 --set name=gcn-word2vec
    $BIN train --dataset eng-wiki "${SHORT[@]}" --set seed=$seed1 --set name=mlp-bow --set model.text.kind=mlp
    $BIN train --dataset eng-wiki "${SHORT[@]}" --set seed=$seed1 --set name=gcn-glove --set vectors.source=glove6b50
  done
done
$BIN report runs/eng-wiki/*
