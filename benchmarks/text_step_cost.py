"""The cost of a text step on shares against the numeric W1 step, in one run: seconds, rounds
and bytes per training step for the text classifier and the character language model at
vocabulary sizes V (UTF-8 bytes: 256), beside Japanese Vowels' W1 step (GRU H 32, batch 32,
T 29, 12 features).

Run as a file::

    .venv/bin/python benchmarks/text_step_cost.py [--repeats 2] [--vocab 37 96 256]

Each row is its own set of party processes (3 parties + the TTP dealer, loopback, one torch
thread each), run one after another: the numeric W1 step, then for each V the classifier
(batch 32, T 40, Embedding D 16, GRU H 32: the SMS demo's shape) and the language model
(batch 16, T 24: the Shakespeare demo's shape), the latter also with the row max pairwise
as before (up to V 96, see PAIRWISE_MAX_V), each a median over ``--repeats`` steady-state
steps with Adam.  Random one-hot tokens: the cost depends on the shapes only.  The rows share
the machine with nothing else, so their ratios are the comparison; absolute seconds
differ ~4x between machines.
"""

from __future__ import annotations

import argparse
import statistics

import common

from launch.local_parties import run_parties

W1 = (32, 29, 32)  # batch, T, H of the numeric W1 step
TEXT = (32, 40, 32, 16)  # batch, T, H, D of the SMS demo's step
LM = (16, 24, 32, 16)  # batch, T, H, D of the Shakespeare demo's step
# the softmax's row max was pairwise at every V before the tournament (comparison.row_max):
# V(V-1)/2 comparisons per predicted token, which above this V asks the dealer for more than
# its cap of 2^29 elements a message (refused at V 256, batch 16 and batch 4)
PAIRWISE_MAX_V = 96


def rows(vocabs: list[int], repeats: int, parties: int) -> list[dict]:
    out = []

    def run(name, fn, args):
        r = run_parties(fn, world_size=parties, provider="TTP", args=args, timeout_s=1800)[0]
        out.append({"row": name, **r})
        print(name, statistics.median(r["times"]), r["rounds"], r["bytes"], flush=True)

    run("numeric W1 (GRU, B 32, T 29, F 12)", common.mpcrnn_step, (*W1, repeats))
    for V in vocabs:
        B, T, H, D = TEXT
        run(f"text classifier V {V} (B 32, T 40)", common.text_step, (B, T, H, V, D, repeats))
        B, T, H, D = LM
        run(f"language model V {V} (B 16, T 24)", common.text_step, (B, T, H, V, D, repeats, True))
        if V <= PAIRWISE_MAX_V:  # the same step with the pairwise row max (see PAIRWISE_MAX_V)
            args = (B, T, H, V, D, repeats, True, True)
            run(f"language model V {V}, pairwise row max", common.text_step, args)
    return out


def markdown(results: list[dict], repeats: int) -> str:
    base = statistics.median(results[0]["times"])
    lines = [
        f"3 parties + TTP dealer, loopback, one torch thread per process; Adam; median of "
        f"{repeats} steady-state steps.  Party 0's bytes sent.",
        "",
        "| step | s/step (median) | party 0 CPU s/step | rounds/step | MB/step | s / W1 step |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        med = statistics.median(r["times"])
        lines.append(
            f"| {r['row']} | {med:.2f} | {statistics.median(r['cpu']):.2f} | {r['rounds']} "
            f"| {r['bytes'] / 1e6:.1f} | {med / base:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(smoke=False)]
    )
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--vocab", nargs="+", type=int, default=[37, 96, 256])
    ap.add_argument("--parties", type=int, default=3)
    args = common.parse(ap)
    results = rows(args.vocab, args.repeats, args.parties)
    text = markdown(results, args.repeats)
    print("\n" + text)
    common.write_results("text_step_cost", text, results, args, "A text step's cost beside W1")


if __name__ == "__main__":
    main()
