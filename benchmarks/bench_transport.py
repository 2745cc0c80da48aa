"""The cost of the secure transport: mutual TLS 1.3 vs plaintext links, step by step.

The W1 training step (GRU H=32, batch 32, T=29, 3 parties + TTP dealer;
:func:`common.steps.mpcrnn_step`) over mutual TLS 1.3 vs ``--insecure-plaintext-transport``,
in interleaved pairs of runs (plaintext, TLS, plaintext, TLS, ...) so that a load change on the
machine hits both alike.  Prints each run's median s/step, the medians of both, their ratio,
and party 0's rounds and bytes (CrypTen's counters: they must be equal); writes
``bench_transport.md`` and .json.

Run as a file: ``.venv/bin/python benchmarks/bench_transport.py [--pairs 3] [--repeats 5]``
(``--quick``: one pair of T=8 runs, 2 steps each).
"""

from __future__ import annotations

import argparse
import statistics

import common

from launch.local_parties import run_parties


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(smoke=False)]
    )
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--T", type=int, default=29)
    args = common.parse(ap)
    if args.quick:
        args.pairs, args.repeats, args.T = 1, 2, 8
    B, H = 32, 32
    rows = {"plaintext": [], "tls": []}
    for pair in range(args.pairs):
        for name, insecure in (("plaintext", True), ("tls", False)):
            out = run_parties(
                common.mpcrnn_step,
                world_size=3,
                provider="TTP",
                args=(B, args.T, H, args.repeats),
                timeout_s=1800,
                insecure=insecure,
            )[0]
            med, cpu = statistics.median(out["times"]), statistics.median(out["cpu"])
            rows[name].append((med, out["rounds"], out["bytes"], cpu))
            print(
                f"pair {pair + 1} {name:9s}: {med:.3f} s/step wall, "
                f"{cpu:.3f} s/step CPU of party 0 "
                f"(medians of {args.repeats}), rounds {out['rounds']}, bytes {out['bytes']}",
                flush=True,
            )
    plain = statistics.median(r[0] for r in rows["plaintext"])
    tls = statistics.median(r[0] for r in rows["tls"])
    plain_cpu = statistics.median(r[3] for r in rows["plaintext"])
    tls_cpu = statistics.median(r[3] for r in rows["tls"])
    same = {r[1:3] for r in rows["plaintext"]} == {r[1:3] for r in rows["tls"]}
    lines = [
        f"W1 step (GRU H={H}, batch {B}, T={args.T}, 3 parties + dealer, loopback, "
        f"torch threads=1), {args.pairs} interleaved pairs x {args.repeats} steps",
        "",
        "| transport | s/step wall | s/step CPU, party 0 | rounds/step | bytes/step (party 0) |",
        "|---|---:|---:|---:|---:|",
        f"| plaintext (--insecure-plaintext-transport) | {plain:.3f} | {plain_cpu:.3f} "
        f"| {rows['plaintext'][0][1]} | {rows['plaintext'][0][2]} |",
        f"| mutual TLS 1.3, pinned (default) | {tls:.3f} | {tls_cpu:.3f} "
        f"| {rows['tls'][0][1]} | {rows['tls'][0][2]} |",
        "",
        f"TLS / plaintext: wall {tls / plain:.3f}, CPU {tls_cpu / plain_cpu:.3f}; wall per pair: "
        + ", ".join(f"{t[0] / p[0]:.3f}" for p, t in zip(rows["plaintext"], rows["tls"]))
        + f"; rounds and bytes identical: {same}",
    ]
    text = "\n".join(lines)
    print("\n" + text)
    data = {
        k: [dict(zip(("s_per_step", "rounds", "bytes", "cpu_s"), r)) for r in v]
        for k, v in rows.items()
    }
    path = common.write_results(
        "bench_transport", text, data, args, title="The cost of the secure transport"
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
