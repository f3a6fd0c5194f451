"""What the console was doing during each slow key press of a traced `bench.py keys` run (see README.md).

  python benchmarks/keytrace/analyze.py SAMPLES.json TRACE_DIR [--min-ms 80]"""

import bisect
import collections
import glob
import json
import os
import sys

PHASES = tuple(os.environ.get("AAMI_TRACE_PHASES", "backup,apply").split(","))  # the phases whose slow presses are listed


def main() -> None:
    samples_file, trace_dir = sys.argv[1], sys.argv[2]
    min_ms = float(sys.argv[sys.argv.index("--min-ms") + 1]) if "--min-ms" in sys.argv else 80.0
    presses = json.load(open(samples_file))
    files = glob.glob(f"{trace_dir}/trace-*.jsonl")
    lines = {f: [json.loads(x) for x in open(f)] for f in files}
    console = max(files, key=lambda f: len(lines[f]))  # the console (the early child traces little)
    smp = sorted((x[1], x[2]) for x in lines[console] if x[0] == "s")
    evs = sorted(x[1:] for x in lines[console] if x[0] == "ev")
    ts = [t for t, _ in smp]
    for phase in ("backup", "apply", "idle"):
        for key in "?s":
            xs = sorted(round(x * 1000) for p, k, _, x in presses if p == phase and k == key)
            print(f"{phase:7} {key}: {xs}")
    for phase, key, wall, lat in sorted(presses, key=lambda r: r[2]):
        if phase not in PHASES or lat * 1000 < min_ms:
            continue
        print(f"\n== {phase} {key!r} {lat * 1000:.0f} ms")
        for e in evs:
            dur = e[3] if e[1] == "gc" else e[2]
            if e[0] < wall + lat and e[0] + dur > wall - 0.05 and (e[1] != "gc" or dur > 0.002):
                print(f"   {e[1]:5} at {e[0] - wall:+.3f} s for {dur * 1000:.0f} ms {e[2:]}")
        i, j = bisect.bisect_left(ts, wall), bisect.bisect_left(ts, wall + lat)
        main_ = collections.Counter(" < ".join(st[:4]) for _, st in smp[i:j] if st[:1] != ["R"])
        rep = collections.Counter(" < ".join(st[1:4]) for _, st in smp[i:j] if st[:1] == ["R"])
        for label, c in (("main", main_), ("report", rep)):
            for fr, n in c.most_common(5):
                print(f"   {label:6} {n:3} {fr}")


if __name__ == "__main__":
    main()
