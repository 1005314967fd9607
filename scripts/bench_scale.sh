#!/usr/bin/env bash
# `make bench-scale`: wall time and peak RSS of tgcn on the full synthetic NUS-WIDE layout.
#
# 1. Generates the layout as `make nus-wide-synth` does unless NUS_OUT already holds a finished
#    one of NUS_IMAGES images (269,648 by default: ~21 s, ~0.9 GB).
# 2. For each configuration — top10 (configs/nus-wide.yaml, `top_concepts: 10`) and all81
#    (`top_concepts: 81`, every concept) — runs `tgcn data` (prepare) and a one-epoch
#    `tgcn train` of PAIRS sampled pairs, split into stages at the lines tgcn prints:
#    load + graph, the untrained evaluation, the epoch (training, then validation), and
#    the test evaluation (both protocols, both directions each).
# 3. Times the chunked ranking alone: `tgcn bench --only rank` with RANK_QUERIES queries
#    against RANK_DB items, and extrapolates the queries/s to RANK_DB queries (labelled so).
# Prints one Markdown table (stage, configuration, items, wall s, peak RSS GiB) and the
# 6 GiB bar check; writes it, the logs and the per-command JSON to BENCH_OUT.
#
# Both configurations load with `data.nus_wide.on_missing: skip`: the real ground truth's
# corrupt line (`-1130179`, Labels_lake_Train.txt line 78,373; lake is a top-10 concept) is
# otherwise an error. Export is off (not a stage measured here).
#
# Settings (environment):
#   NUS_OUT=runs/data/nus-wide-synth  NUS_IMAGES=269648   the layout (generated if absent)
#   BENCH_OUT=runs/bench-scale        where the table, logs and JSON go
#   DEVICE=cpu                        cpu | cuda | auto, for tgcn train and tgcn bench
#   CONFIGS="top10 all81"             the configurations to run
#   PAIRS=20000                       sampled pairs of the one training epoch
#   RANK_QUERIES=2000 RANK_DB=100000  the ranking benchmark (RANK_QUERIES is a timed subset)
#   NICE=0                            niceness of every measured command
#   VALIDATION_ONLY=0                 1: `tgcn train --validation-only` (test split withheld:
#                                     no untrained or test evaluation; on 2 cores those take
#                                     hours at full size, and the rank row gives their rate)
# Small-scale check: NUS_IMAGES=20000 NUS_OUT=/tmp/nus20k BENCH_OUT=/tmp/bs RANK_DB=20000 \
#   NICE=19 scripts/bench_scale.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NUS_OUT=${NUS_OUT:-runs/data/nus-wide-synth}
NUS_IMAGES=${NUS_IMAGES:-269648}
BENCH_OUT=${BENCH_OUT:-runs/bench-scale}
DEVICE=${DEVICE:-cpu}
CONFIGS=${CONFIGS:-top10 all81}
PAIRS=${PAIRS:-20000}
RANK_QUERIES=${RANK_QUERIES:-2000}
RANK_DB=${RANK_DB:-100000}
NICE=${NICE:-0}
VALIDATION_ONLY=${VALIDATION_ONLY:-0}
train_flags=()
[[ $VALIDATION_ONLY == 1 ]] && train_flags+=(--validation-only)
BIN=target/release/tgcn
PY=.venv/bin/python
export LIBTORCH_USE_PYTORCH=1
export PATH="$PWD/.venv/bin:$PATH"

die() { echo "bench_scale.sh: $*" >&2; exit 1; }
[[ -x $PY ]] || die "$PY is absent (run \`make venv\`)"
[[ -x $BIN ]] || die "$BIN is absent (run \`make build\`)"
case $DEVICE in cpu | cuda | auto) ;; *) die "DEVICE must be cpu, cuda or auto, got '$DEVICE'" ;; esac
mkdir -p "$BENCH_OUT"

# measure NAME [--stage S=RX ...] -- CMD...: runs CMD under bench_measure.py, niced.
measure() {
  local name=$1; shift
  local opts=()
  while [[ $1 != -- ]]; do opts+=("$1"); shift; done
  shift
  echo "== $name: $*" >&2
  nice -n "$NICE" "$PY" scripts/bench_measure.py --json "$BENCH_OUT/$name.json" --log "$BENCH_OUT/$name.log" \
    "${opts[@]}" -- "$@" >&2 || die "$name failed (exit $?); see $BENCH_OUT/$name.log"
}

# 1. The layout.
marker=$NUS_OUT/SYNTHETIC.txt
if [[ -f $marker ]] && ! grep -q INCOMPLETE "$marker" && grep -qx "images: $NUS_IMAGES" "$marker"; then
  echo "== generate: reusing $NUS_OUT ($NUS_IMAGES images)" >&2
  rm -f "$BENCH_OUT/generate.json"
else
  # What `make nus-wide-synth` runs (the make target would also re-check the venv).
  measure generate -- "$PY" scripts/make_nus_wide.py --out "$NUS_OUT" --images "$NUS_IMAGES"
fi

# 2. Prepare and train, per configuration.
for conf in $CONFIGS; do
  case $conf in
    top10) top=10 ;;
    all81) top=81 ;;
    *) die "unknown configuration '$conf' (top10 or all81)" ;;
  esac
  sets=(--set "data.nus_wide.root=$NUS_OUT" --set "data.nus_wide.top_concepts=$top"
        --set data.nus_wide.on_missing=skip --set "device=$DEVICE")
  measure "prepare-$conf" -- "$BIN" data --dataset nus-wide "${sets[@]}"
  measure "train-$conf" \
    --stage 'load=^run folder ' --stage 'untrained_eval=^untrained: ' --stage 'epoch=^epoch +1 ' \
    --last test_eval -- \
    "$BIN" train --dataset nus-wide "${sets[@]}" --set "name=bench-$conf" --set train.epochs=1 \
    --set train.pairs=sampled --set "train.pairs_per_epoch=$PAIRS" --set export.enabled=false \
    --runs "$BENCH_OUT/runs" "${train_flags[@]}"
done

# 3. Ranking alone.
measure rank -- "$BIN" bench --device "$DEVICE" --only rank --rank-queries "$RANK_QUERIES" --rank-db "$RANK_DB"

# The table.
"$PY" - "$BENCH_OUT" "$CONFIGS" "$PAIRS" "$RANK_QUERIES" "$RANK_DB" "$DEVICE" "$NUS_IMAGES" "$VALIDATION_ONLY" <<'EOF' | tee "$BENCH_OUT/table.md"
import json, re, sys
from pathlib import Path

out, configs, pairs, rq, rdb, device, images, vonly = sys.argv[1:]
out, pairs, rq, rdb = Path(out), int(pairs), int(rq), int(rdb)
rows, bar = [], []

def load(name):
    p = out / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None

def log_text(name):
    return (out / f"{name}.log").read_text()

def split_sizes(text):
    """{train, val, test: items} from the data summary `  train  90574 items, ...`."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^\[[ \d.]+\]\s+(train|val|test)\s+(\d+) items", text, re.M)}

def row(stage, conf, items, wall, rss):
    rows.append((stage, conf, items, "—" if wall is None else f"{wall:.1f}", "—" if rss is None else f"{rss:.2f}"))

g = load("generate")
if g:
    row("generate (scripts/make_nus_wide.py)", "—", f"{int(images):,} images", g["wall_s"], g["peak_rss_gib"])
for conf in configs.split():
    p, t = load(f"prepare-{conf}"), load(f"train-{conf}")
    sizes = split_sizes(log_text(f"prepare-{conf}"))
    n = sum(sizes.values())
    row("prepare (tgcn data)", conf, f"{n:,} items", p["wall_s"], p["peak_rss_gib"])
    bar.append((f"prepare {conf}", p["peak_rss_gib"]))
    st = {s["name"]: s for s in t["stages"]}
    tr, va, te = sizes.get("train", 0), sizes.get("val", 0), sizes.get("test", 0)
    def stage(name, label, items):
        s = st[name]
        if s.get("missing"):
            row(label, conf, items, None, None)
        else:
            row(label, conf, items, s["wall_s"], s["peak_rss_gib"])
    stage("load", "train: load, vocabulary, graph", f"{n:,} items")
    if vonly == "1":
        stage("untrained_eval", "train: untrained val eval", f"{va:,} queries")
    else:
        stage("untrained_eval", "train: untrained eval (test_vs_test) + val", f"{te:,} + {va:,} queries")
    ep = st["epoch"]
    if not ep.get("missing"):
        m = re.search(r"pairs/s\s+([\d.]+)s", ep["end_line"])
        secs = float(m[1]) if m else None
        row("train: epoch (sampled pairs, sampled RSS incl. val eval)", conf, f"{pairs:,} pairs", secs, ep["peak_rss_gib"])
        row("train: val eval after the epoch", conf, f"{va:,} queries",
            None if secs is None else ep["wall_s"] - secs, ep["peak_rss_gib"])
    else:
        row("train: epoch", conf, f"{pairs:,} pairs", None, None)
    if vonly == "1":
        row("eval: test (not run: --validation-only; see the rank rows)", conf, f"{te:,} queries", None, None)
    else:
        stage("test_eval", "eval: test_vs_test + test_vs_train, both directions", f"{te:,} queries × {te:,} / {tr:,}")
    row("tgcn train, whole process (exact peak)", conf, f"{n:,} items", t["wall_s"], t["peak_rss_gib"])
    bar.append((f"train+eval {conf}", t["peak_rss_gib"]))

r = load("rank")
text = log_text("rank")
m = re.search(r"rank (\d+) queries x (\d+) db.*?([\d.]+) s\s+(\d+) queries/s", text)
if m:
    qps = float(m[4])
    row(f"rank (tgcn bench, one direction, MAP@100 + MAP@all), {device}", "—",
        f"{int(m[1]):,} queries × {int(m[2]):,}", float(m[3]), r["peak_rss_gib"])
    row(f"rank {rdb:,} queries × {rdb:,}: EXTRAPOLATED from {qps:.0f} queries/s", "—",
        f"{rdb:,} queries × {rdb:,}", rdb / qps, None)

print("| stage | configuration | items | wall s | peak RSS GiB |")
print("|---|---|---|---|---|")
for r_ in rows:
    print("| " + " | ".join(str(c) for c in r_) + " |")
print()
print("Peak RSS: whole commands exact (getrusage); stages inside `tgcn train` sampled every 0.1 s.")
if vonly == "1":
    print("VALIDATION_ONLY=1: `tgcn train --validation-only`, so no untrained or test evaluation ran (—);")
    print("the rank rows give the evaluation's rate against the full database.")
print("One ranking pass gives MAP@100 and MAP@all together (a full stable sort per query); an")
print("evaluation runs it twice per protocol (i2t, t2i).")
if m:
    print(f"Ranking throughput: {qps:.0f} queries/s against {int(m[2]):,} items on {device}.")
full = [b for b in bar if b[0].endswith("all81")]
if full:
    worst = max(full, key=lambda b: b[1])
    verdict = "PASS" if worst[1] < 6.0 else "FAIL"
    print(f"6 GiB bar (all81 prepare, training and evaluation): max {worst[1]:.2f} GiB ({worst[0]}): {verdict}")
EOF
echo "wrote $BENCH_OUT/table.md" >&2
