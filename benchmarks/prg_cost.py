"""The W1 step with statistical PRGs (before) and AES-256-CTR (after), interleaved in one run.

Before: the last commit whose triple streams were numpy's PCG64 and whose CrypTen draws were
torch's Mersenne Twister (``--before``, default 57726f4).  After: this tree (AES-256-CTR for
the triple streams, CrypTen's PRZS and TTP draws; wire protocol 6).  Each run is one
subprocess with that tree first on ``sys.path`` running that tree's own ``mpcrnn_step`` party
function (GRU H=32, batch 32, T=29, 3 parties + TTP dealer, loopback, insecure transport so the
TLS cost does not blur the PRG's); runs alternate before/after (the order flips every pair), so
machine drift hits both alike.  Reported: each run's median step (wall, and party 0's CPU),
the after/before ratio per pair, and rounds and bytes (which must be equal).

Run as a file: ``.venv/bin/python benchmarks/prg_cost.py [--pairs 3] [--repeats 5]``, on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import common

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = r"""
import json, os, sys
tree, T, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.environ.setdefault("MPCRNN_LINK_IFNAME", "lo")
sys.path[:0] = [tree, os.path.join(tree, "benchmarks"), os.path.join(tree, "tests")]
if os.path.exists(os.path.join(tree, "benchmarks", "common", "steps.py")):
    from common.steps import mpcrnn_step
    from launch.local_parties import run_parties
else:  # before the benchmarks/common package
    from bench_gru_step import mpcrnn_step
    from mpc_harness import run_parties
out = run_parties(mpcrnn_step, world_size=3, provider="TTP", args=(32, T, 32, repeats),
                  timeout_s=1800, insecure=True)[0]
print("RESULT " + json.dumps({k: out[k] for k in ("times", "cpu", "rounds", "bytes")}))
"""


def one_run(tree: Path, T: int, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run(
        [sys.executable, "-c", SNIPPET, str(tree), str(T), str(repeats)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"the run in {tree} failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.parent()])
    ap.add_argument("--before", default="57726f4", help="the commit with PCG64/MT19937 streams")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--T", type=int, default=29)
    args = common.parse(ap)
    if args.smoke:
        args.pairs, args.repeats, args.T = 1, 1, 4
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
            check=True,
            capture_output=True,
        )
        try:
            runs = []
            for k in range(args.pairs):
                order = [("before", before), ("after", ROOT)]
                pair = {}
                for name, tree in order if k % 2 == 0 else order[::-1]:
                    print(f"pair {k + 1}: {name} ...", flush=True)
                    pair[name] = one_run(tree, args.T, args.repeats)
                runs.append(pair)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)],
                capture_output=True,
            )
    text = table(runs, args)
    md = common.write_results("prg_cost", text, {"runs": runs, "before": args.before}, args)
    print("\n" + text + f"\n\nwritten: {md}")


def table(runs: list[dict], args) -> str:
    med = statistics.median
    lines = [
        f"W1 step (GRU H=32, batch 32, T={args.T}, 3 parties + TTP dealer, loopback, plaintext "
        f"transport), median of {args.repeats} steady-state steps per run; before = "
        f"{args.before} (PCG64 triple streams, Mersenne Twister CrypTen draws), after = "
        "AES-256-CTR everywhere.",
        "",
        "| pair | before s/step | after s/step | after / before | before CPU s | after CPU s "
        "| rounds before / after | MB before / after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for k, p in enumerate(runs, 1):
        b, a = p["before"], p["after"]
        ratio = med(a["times"]) / med(b["times"])
        ratios.append(ratio)
        lines.append(
            f"| {k} | {med(b['times']):.3f} | {med(a['times']):.3f} | {ratio:.3f} "
            f"| {med(b['cpu']):.3f} | {med(a['cpu']):.3f} | {b['rounds']} / {a['rounds']} "
            f"| {b['bytes'] / 1e6:.1f} / {a['bytes'] / 1e6:.1f} |"
        )
    lines += ["", f"Median after / before over the pairs: **{med(ratios):.3f}**."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
