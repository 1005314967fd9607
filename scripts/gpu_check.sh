#!/usr/bin/env bash
# One short check of tgcn on a CUDA machine (sized for under 8 minutes on one H200 with 16
# cores, with target/ carried; a build from scratch adds a few minutes). Run it from a copy
# of the working tree that has .venv (the venv's PyTorch 2.13.0 supplies libtorch):
#
#   scripts/gpu_check.sh                   # log + summary.md under runs/gpu-check
#   OUT=/tmp/gc DEVICE=cpu QUICK=1 scripts/gpu_check.sh   # a dry run of the same steps on CPU
#
# Steps, each timed; a failing step stops the script (the summary lists what ran):
# 1. build: `cargo build --release` with LIBTORCH_USE_PYTORCH=1 and .venv/bin first on PATH.
# 2. info: `tgcn info`; with DEVICE=cuda, fails unless it prints `cuda available: true`.
# 3. tests: the suite has no device switch: every test runs on the CPU by design
#    (`cargo test` is CPU-only and deterministic). The one whose name mentions cuda,
#    `binary_runs_without_ld_library_path_and_links_torch_cuda`, checks that the binary
#    links libtorch_cuda; it is run here (`cargo test --release cuda`). The CUDA code paths
#    are exercised by the steps below instead.
# 4. bench: `tgcn bench --device $DEVICE` (kNN, ChebConv, a training step, ranking).
# 5. eng-wiki: `tgcn train --dataset eng-wiki --config configs/eng-wiki-best.yaml
#    --set device=$DEVICE --set train.epochs=$ENGWIKI_EPOCHS`, then its test MAP from
#    summary.json. Skipped, with a message, when ../shared/data/eng-wiki is absent (the
#    config's `data.listed.root`, relative to the project root).
# 6. rank-full: `tgcn bench --device $DEVICE --only rank` at 100,000 x 100,000 (RANK_FULL),
#    the evaluation at NUS-WIDE's full size.
# 7. bench-scale: scripts/bench_scale.sh (the card's command, best config) with DEVICE=$DEVICE on a synthetic NUS-WIDE layout
#    of GPU_NUS_IMAGES images (40,000 by default: the evaluation's per-query bookkeeping
#    runs on the CPU and grows with queries × database, so the full 269,648 images take far
#    longer than this check's budget; set GPU_NUS_IMAGES=269648 for the full run). Skipped
#    when ../shared/data/nus-wide is absent (real labels, tag vectors).
#
# Settings (environment): OUT=runs/gpu-check, DEVICE=cuda (cpu | cuda), QUICK=0 (1: bench
# --quick, 1 Eng-Wiki epoch, 20,000 images and a 20,000-item ranking for a dry run),
# ENGWIKI_EPOCHS=8, GPU_NUS_IMAGES=40000, NUS_OUT=$OUT/nus-wide-synth-$GPU_NUS_IMAGES,
# RANK_QUERIES=2000, RANK_DB=100000, RANK_FULL=100000 (20,000 with QUICK=1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT=${OUT:-runs/gpu-check}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
  ENGWIKI_EPOCHS=${ENGWIKI_EPOCHS:-1}
  GPU_NUS_IMAGES=${GPU_NUS_IMAGES:-20000}
  RANK_DB=${RANK_DB:-20000}
  RANK_FULL=${RANK_FULL:-20000}
  BENCH_ARGS=(--quick)
else
  ENGWIKI_EPOCHS=${ENGWIKI_EPOCHS:-8}
  GPU_NUS_IMAGES=${GPU_NUS_IMAGES:-40000}
  RANK_DB=${RANK_DB:-100000}
  RANK_FULL=${RANK_FULL:-100000}
  BENCH_ARGS=()
fi
RANK_QUERIES=${RANK_QUERIES:-2000}
NUS_OUT=${NUS_OUT:-$OUT/nus-wide-synth-$GPU_NUS_IMAGES}
BIN=target/release/tgcn
export LIBTORCH_USE_PYTORCH=1
export PATH="$PWD/.venv/bin:$PATH"
case $DEVICE in cpu | cuda) ;; *) echo "gpu_check.sh: DEVICE must be cpu or cuda, got '$DEVICE'" >&2; exit 1 ;; esac

mkdir -p "$OUT"
LOG=$OUT/gpu_check.log
SUMMARY=$OUT/summary.md
: >"$LOG"
{
  echo "# gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), device $DEVICE, quick $QUICK, host $(hostname)"
  echo
  echo "| step | status | wall s | note |"
  echo "|---|---|---|---|"
} >"$SUMMARY"
T_ALL=$SECONDS

row() { echo "| $1 | $2 | $3 | $4 |" >>"$SUMMARY"; }
finish() {
  { echo; echo "total $((SECONDS - T_ALL)) s; log: $LOG"; } >>"$SUMMARY"
  echo "== summary ($SUMMARY)"
  cat "$SUMMARY"
}

# step NAME NOTE CMD...: runs CMD with its output on the terminal and in the log; on failure
# records it, prints the summary and exits.
step() {
  local name=$1 note=$2; shift 2
  echo "== $name: $*" | tee -a "$LOG"
  local t0=$SECONDS rc=0
  "$@" 2>&1 | tee -a "$LOG" || rc=${PIPESTATUS[0]}
  local dt=$((SECONDS - t0))
  if [[ $rc != 0 ]]; then
    row "$name" "FAILED (exit $rc)" "$dt" "$note; see $LOG"
    finish
    exit 1
  fi
  row "$name" ok "$dt" "$note"
}

skip() { echo "== $1: SKIPPED ($2)" | tee -a "$LOG"; row "$1" skipped — "$2"; }

[[ -x .venv/bin/python ]] || {
  echo "gpu_check.sh: .venv is absent; copy it with the tree (make venv needs the network)" >&2
  exit 1
}

# 1-2. Build and the devices libtorch sees.
step build "cargo build --release" cargo build --release
step info "tgcn info" "$BIN" info
if [[ $DEVICE == cuda ]]; then
  if ! "$BIN" info | grep -qx 'cuda available: true'; then
    row "cuda seen" FAILED — "tgcn info does not report \`cuda available: true\` (driver, or a CPU-only torch in .venv?)"
    finish
    exit 1
  fi
  row "cuda seen" ok — "$("$BIN" info | grep -E '^cuda devices' | tr -d '|')"
fi

# 3. The test whose name mentions cuda (see the header: there is no device switch).
cuda_tests() {
  local out
  out=$(cargo test --release cuda -- --nocapture 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  # A filter that matches nothing passes too: insist that a test named *cuda* ran.
  grep -qE '^test .*cuda.* \.\.\. ok$' <<<"$out" || { echo "no test whose name mentions cuda ran" >&2; return 1; }
}
step "test cuda" "cargo test --release cuda (links libtorch_cuda)" cuda_tests

# 4. The speed table on the device.
step bench "tgcn bench --device $DEVICE ${BENCH_ARGS[*]}" "$BIN" bench --device "$DEVICE" "${BENCH_ARGS[@]}"
{ echo; echo '```'; sed -n '/^tgcn bench on/,/^peak RSS/p' "$LOG"; echo '```'; echo; } >"$OUT/bench.md"

# 5. A short Eng-Wiki training on the device.
if [[ -d ../shared/data/eng-wiki ]]; then
  runs=$OUT/runs
  step eng-wiki "eng-wiki-best.yaml, $ENGWIKI_EPOCHS epochs" \
    "$BIN" train --dataset eng-wiki --config configs/eng-wiki-best.yaml --set "device=$DEVICE" \
    --set "train.epochs=$ENGWIKI_EPOCHS" --set name=gpu-check --runs "$runs"
  run=$(find "$runs/eng-wiki" -maxdepth 1 -name '*-gpu-check' -type d | sort | tail -n 1)
  map=$(.venv/bin/python - "$run/summary.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print("; ".join(f"{r['protocol']}: MAP@all i2t {r['i2t']['map_all']:.4f} t2i {r['t2i']['map_all']:.4f} "
                f"mean {(r['i2t']['map_all'] + r['t2i']['map_all']) / 2:.4f}" for r in s["test"])
      + f" (best epoch {s['best_epoch']}, {s['train_seconds']:.0f} s training)")
EOF
)
  echo "eng-wiki test: $map" | tee -a "$LOG"
  row "eng-wiki MAP" ok — "$map; $run"
else
  skip eng-wiki "../shared/data/eng-wiki is absent"
fi

# 6. The evaluation at NUS-WIDE's full size on the device: one direction of 100,000 queries
#    against 100,000 items (the score GEMM alone beside it).
step rank-full "tgcn bench --device $DEVICE --only rank, ${RANK_FULL}x$RANK_FULL" \
  "$BIN" bench --device "$DEVICE" --only rank --rank-queries "$RANK_FULL" --rank-db "$RANK_FULL"
{ echo; echo '```'; sed -n '/^score GEMM alone, '"$RANK_FULL"'/,/^peak RSS/p' "$LOG" | tail -n 4; echo '```'; echo; } >>"$OUT/bench.md"

# 7. bench-scale on the device.
if [[ -d ../shared/data/nus-wide ]]; then
  step bench-scale "NUS_IMAGES=$GPU_NUS_IMAGES, RANK ${RANK_QUERIES}x$RANK_DB; table in $OUT/bench-scale/table.md" \
    env DEVICE="$DEVICE" NUS_OUT="$NUS_OUT" NUS_IMAGES="$GPU_NUS_IMAGES" BENCH_OUT="$OUT/bench-scale" CONFIGS=best \
    RANK_QUERIES="$RANK_QUERIES" RANK_DB="$RANK_DB" scripts/bench_scale.sh
  { echo; echo "## bench-scale ($DEVICE, $GPU_NUS_IMAGES images)"; echo; cat "$OUT/bench-scale/table.md"; } >"$OUT/bench-scale.md"
else
  skip bench-scale "../shared/data/nus-wide is absent"
fi

cat "$OUT/bench.md" >>"$SUMMARY"
if [[ -f $OUT/bench-scale.md ]]; then cat "$OUT/bench-scale.md" >>"$SUMMARY"; fi
finish
