"""Per-operation time of small MPCTensor mul/matmul with CrypTen's omegaconf config vs the
snapshot config (protocols.runtime), side by side in one run (median of repeats).

Run as a file: ``.venv/bin/python benchmarks/bench_config_fix.py [--repeats N]`` (``--quick``:
20 repeats); writes ``bench_config_fix.md`` and .json.
One party in-process (world size 1): this isolates CrypTen's per-operation bookkeeping, which is
what the config fix removes; communication is measured by bench_gru_step.py.
"""

from __future__ import annotations

import argparse
import statistics
import time

import common


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(smoke=False)]
    )
    ap.add_argument("--repeats", type=int, default=200)
    args = common.parse(ap)
    if args.quick:
        args.repeats = 20
    import torch

    torch.set_num_threads(1)
    from protocols.network.parties import init_in_process
    from protocols.runtime import load_crypten, use_fast_config

    crypten = load_crypten()
    init_in_process()
    x = crypten.cryptensor(torch.randn(8, 8))
    y = crypten.cryptensor(torch.randn(8, 8))
    xg = crypten.cryptensor(torch.randn(8, 8), requires_grad=True)
    ops = {
        "mul (8x8)": lambda: x * y,
        "matmul (8x8 @ 8x8)": lambda: x.matmul(y),
        "matmul+sigmoid+backward": lambda: xg.matmul(y).sigmoid().sum().backward(),
    }
    rows = []
    for name, fn in ops.items():
        med = {}
        for fast in (False, True):
            use_fast_config(fast)
            for _ in range(5):
                fn()
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            med[fast] = statistics.median(times)
        rows.append((name, med[False], med[True]))
    use_fast_config(True)
    lines = [
        "| operation | omegaconf config (ms) | snapshot config (ms) | speed-up |",
        "|---|---:|---:|---:|",
    ]
    for name, slow, fast in rows:
        lines.append(f"| {name} | {slow * 1e3:.3f} | {fast * 1e3:.3f} | {slow / fast:.2f}x |")
    lines += ["", f"median of {args.repeats} repeats each, 1 party in-process, torch threads = 1"]
    text = "\n".join(lines)
    print(text)
    data = [{"operation": n, "omegaconf_s": slow, "snapshot_s": fast} for n, slow, fast in rows]
    common.write_results(
        "bench_config_fix", text, data, args, title="CrypTen's config: omegaconf vs snapshot"
    )


if __name__ == "__main__":
    main()
