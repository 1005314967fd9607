#!/usr/bin/env python3
"""Run one command and measure it: wall time, peak RSS, and the same per stage.

    python scripts/bench_measure.py --json OUT.json --log OUT.log \
        [--stage NAME=REGEX ...] [--last NAME] -- COMMAND ARGS...

The command's stdout and stderr are merged, echoed and written to the log, each line
prefixed with the seconds since the start. Stages split the run at output lines: the
first stage runs from the start to the first line matching its REGEX, the next from there
to the first later line matching its own, and so on; `--last NAME` is the stage from the
last match to the exit. A stage whose line never comes is reported as missing, not made up.

Peak RSS: the whole run's is exact (`getrusage(RUSAGE_CHILDREN).ru_maxrss`, the largest
resident set any descendant reached). A stage's is sampled: the largest sum of VmRSS over
the command's process tree, read from /proc every `--every` seconds (0.1 by default),
so a short spike between samples can be missed; it never exceeds the exact peak.

The JSON holds the command, its exit status, wall_s, peak_rss_gib and stages
[{name, wall_s, peak_rss_gib, end_line}] (end_line: the matching line). The exit status
is the command's.
"""

import argparse
import json
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

GIB = 1 << 30


def tree_rss_bytes(pid: int) -> int:
    """Sum of VmRSS over pid and its descendants (0 for processes already gone)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
            for task in Path(f"/proc/{p}/task").iterdir():
                kids = (task / "children").read_text().split()
                todo.extend(int(k) for k in kids)
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", required=True, type=Path)
    ap.add_argument("--log", required=True, type=Path)
    ap.add_argument("--stage", action="append", default=[], metavar="NAME=REGEX")
    ap.add_argument("--last", default="run", help="name of the stage after the last match")
    ap.add_argument("--every", type=float, default=0.1)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command after --")
    stages = []
    for s in args.stage:
        name, sep, rx = s.partition("=")
        if not sep or not name:
            ap.error(f"--stage {s!r}: expected NAME=REGEX")
        stages.append((name, re.compile(rx)))
    names = [n for n, _ in stages] + [args.last]

    args.log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
    # Stage boundaries and the sampled peak of the stage in progress, shared with the reader.
    state = {"stage": 0, "ends": [None] * len(stages), "lines": [None] * len(stages)}
    peaks = [0] * len(names)
    lock = threading.Lock()

    def read() -> None:
        with open(args.log, "w") as log:
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                now = time.monotonic() - t0
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
                log.write(f"[{now:9.2f}] {line}\n")
                log.flush()
                with lock:
                    k = state["stage"]
                    if k < len(stages) and stages[k][1].search(line):
                        state["ends"][k] = now
                        state["lines"][k] = line
                        state["stage"] = k + 1
                        # The next stage starts at the resident size it inherits.
                        peaks[k + 1] = max(peaks[k + 1], tree_rss_bytes(proc.pid))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while proc.poll() is None:
        rss = tree_rss_bytes(proc.pid)
        with lock:
            k = state["stage"]
            peaks[k] = max(peaks[k], rss)
        time.sleep(args.every)
    reader.join()
    wall = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux

    out_stages, start = [], 0.0
    for k, name in enumerate(names):
        end = wall if k == len(stages) else state["ends"][k]
        reached = k == 0 or state["ends"][k - 1] is not None
        if end is None or not reached:
            out_stages.append({"name": name, "missing": True})
            if end is not None:
                start = end
            continue
        out_stages.append({
            "name": name,
            "wall_s": round(end - start, 2),
            "peak_rss_gib": round(min(peaks[k], peak) / GIB, 3),
            "end_line": state["lines"][k] if k < len(stages) else "(exit)",
        })
        start = end
    result = {
        "cmd": cmd,
        "rc": proc.returncode,
        "wall_s": round(wall, 2),
        "peak_rss_gib": round(peak / GIB, 3),
        "rss_sampled_every_s": args.every,
        "stages": out_stages,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
