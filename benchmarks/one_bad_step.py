"""How much does ONE corrupted training step cost?  (Fault injection on the plaintext mirror.)

A value that goes wrong on shares (the truncation's ignored wrap,
``protocols/arithmetic/truncation.py``:
an error of about 2^32 in value) leaves the step's gradient as garbage, which the value clip
turns into +-clip per element.  This script trains the mirror on MPC's row order (what an MPC
run with seed 0 follows) and replaces the clipped gradient of ONE step by random +-clip, at
several steps, then prints the test accuracy (exact activations) next to the clean run, with
the default norm clip (``clip_norm = 1``, after the value clip) and without it (``clip_norm =
0``, the default before it): the norm clip bounds what a garbage step can do.

    .venv/bin/python benchmarks/one_bad_step.py                 # GunPoint GRU and JV GRU
    .venv/bin/python benchmarks/one_bad_step.py --only japanese_vowels
    .venv/bin/python benchmarks/one_bad_step.py --noise 4 --row japanese_vowels:lstm:2

``--noise U``: instead, add uniform noise of +-U units of 2^-16 (fixed point's resolution) to
every clipped gradient entry, one run per noise seed: how far the mirror's trajectory moves
under errors of the size MPC's rounding makes (not a model of those errors: MPC rounds the
forward and backward passes too).

Writes ``one_bad_step.md`` and .json (``one_bad_step-noise`` in noise mode).  ``--quick``: Japanese
Vowels only, one bad step.

Measured (benchmarks/results/learning.md): without the norm clip, a bad step in the first
tenth of training leaves GunPoint GRU near chance and costs Japanese Vowels GRU 16-27 points
(late ones cost nothing); with it, no bad step costs more than the seed-to-seed spread.
"""

from __future__ import annotations

import argparse

import common

ROWS = {"gunpoint": (5, 50, 200, 600), "japanese_vowels": (5, 30, 100)}


def mirror_with_fault(name: str, cell: str, layers: int, fault=None, seed: int = 0, **overrides):
    """Test accuracy (exact activations) of the mirror on MPC's row order with the defaults (or
    ``overrides`` of TrainConfig), where ``fault(call, clipped, c)``, if given, replaces every
    value-clipped gradient (``call``: 1-based count of clip_value calls, one per step); the
    norm clip, if on, then applies to the result as to every step."""
    from mpcrnn import data as D
    from mpcrnn.backend import PlainBackend

    class Faulty(PlainBackend):
        calls = 0

        def clip_value(self, x, c):
            self.calls += 1
            clipped = super().clip_value(x, c)
            return clipped if fault is None else fault(self.calls, clipped, c)

    spec, raw_tr, raw_te = common.load(name)
    parts, _ = common.party_parts(raw_tr, raw_te)
    cfg = common.run_config(name, cell, layers, seed, common.EPOCHS[name], **overrides)
    te = D.scale_features(raw_te, spec)
    return common.mirror_on_party_order(cfg, spec, parts, te, Faulty(cfg.activation))


def accuracy_with_bad_step(name: str, cell: str, bad_step: int | None, **overrides) -> float:
    """1 layer; the ``bad_step``-th clipped gradient replaced by random +-clip (None: clean)."""
    import torch

    def garbage(call, clipped, c):
        if call != bad_step:
            return clipped
        gen = torch.Generator().manual_seed(1)
        return c * torch.sign(torch.randn(clipped.shape, generator=gen, dtype=clipped.dtype))

    return mirror_with_fault(name, cell, 1, garbage, **overrides)


def accuracy_with_noise(
    name: str, cell: str, layers: int, units: float, noise_seed: int, **overrides
) -> float:
    """Uniform noise of +-``units`` x 2^-16 added to every clipped gradient entry (drawn from
    ``noise_seed``)."""
    import torch

    gen = torch.Generator().manual_seed(noise_seed)

    def noise(call, clipped, c):
        u = torch.rand(clipped.shape, generator=gen, dtype=clipped.dtype) * 2 - 1
        return clipped + units * 2.0**-16 * u

    return mirror_with_fault(name, cell, layers, noise, **overrides)


def noise_table(args, **overrides) -> None:
    import statistics

    row, units, seeds = args.row, args.noise, args.noise_seeds
    name, cell, layers = row.split(":")
    clean = mirror_with_fault(name, cell, int(layers), **overrides)
    accs = []
    lines = ["| row | run | test accuracy |", "|---|---|---:|"]
    for s in range(seeds):
        accs.append(accuracy_with_noise(name, cell, int(layers), units, s, **overrides))
        lines.append(f"| {row} | noise +-{units:g} units, seed {s} | {100 * accs[-1]:.1f}% |")
        print(lines[-1], flush=True)
    med, lo, hi = statistics.median(accs), min(accs), max(accs)
    lines.append(
        f"| {row} | median (range) over {seeds} noise seeds | {100 * med:.1f}% "
        f"({100 * lo:.1f}-{100 * hi:.1f}); clean (no noise): {100 * clean:.1f}% |"
    )
    print(lines[-1])
    data = {"row": row, "units": units, "clean": clean, "noisy": accs, **overrides}
    common.write_results(
        "one_bad_step-noise",
        "\n".join(lines),
        data,
        args,
        title="Fixed-point-sized noise on every step, on the plaintext mirror",
    )


def main() -> None:
    import torch

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(smoke=False)]
    )
    ap.add_argument("--only", nargs="*", default=(), help="data sets (default: both)")
    ap.add_argument("--noise", type=float, default=0.0, help="noise mode: +-U units of 2^-16")
    ap.add_argument("--row", default="gunpoint:gru:1", help="noise mode: data:cell:layers")
    ap.add_argument("--noise-seeds", type=int, default=8)
    ap.add_argument("--clip-norm", type=float, help="noise mode: TrainConfig.clip_norm")
    args = common.parse(ap)
    if args.noise > 0:
        over = {} if args.clip_norm is None else {"clip_norm": args.clip_norm}
        return noise_table(args, **over)
    lines = [
        "| data, GRU x1 | bad step | test accuracy, defaults (clip_norm 1) | clip_norm 0 |",
        "|---|---:|---:|---:|",
    ]
    print("\n".join(lines))
    rows = []
    for name, steps in ROWS.items():
        if args.quick:  # Japanese Vowels only, clean and one early bad step
            if name != "japanese_vowels":
                continue
            steps = steps[:1]
        if args.only and name not in args.only:
            continue
        for step in (None, *steps):
            acc = accuracy_with_bad_step(name, "gru", step)
            off = accuracy_with_bad_step(name, "gru", step, clip_norm=0.0)
            rows.append({"data": name, "bad_step": step, "clip_norm_1": acc, "clip_norm_0": off})
            label = "none (clean)" if step is None else str(step)
            lines.append(f"| {name} | {label} | {100 * acc:.1f}% | {100 * off:.1f}% |")
            print(lines[-1], flush=True)
    common.write_results("one_bad_step", "\n".join(lines), rows, args)


if __name__ == "__main__":
    main()
