"""Per-operation time of small MPCTensor mul/matmul with CrypTen's omegaconf config vs the
snapshot config (protocols.runtime), side by side in one run (median of repeats).

Run as a file: ``.venv/bin/python benchmarks/bench_config_fix.py [--repeats N]``.
One party in-process (world size 1): this isolates CrypTen's per-operation bookkeeping, which is
what the config fix removes; communication is measured by bench_gru_step.py.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
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
    print("| operation | omegaconf config (ms) | snapshot config (ms) | speed-up |")
    print("|---|---:|---:|---:|")
    for name, slow, fast in rows:
        print(f"| {name} | {slow * 1e3:.3f} | {fast * 1e3:.3f} | {slow / fast:.2f}x |")
    print(f"median of {args.repeats} repeats each, 1 party in-process, torch threads = 1")


if __name__ == "__main__":
    main()
