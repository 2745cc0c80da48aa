"""How far the plaintext mirror's own test RMSE moves under perturbations as small as MPC's.

MPC computes the mirror's arithmetic with fixed-point rounding: every product and truncation is
off by about one unit of 2^-16, and Adam's step by up to 1e-3 relative
(protocols/arithmetic/adam.py).  This benchmark trains the mirror (float64, the run's
polynomials) again under such perturbations, drawn from a seeded generator:

* ``all``: every product, activation and linear combination rounded stochastically to the
  2^-16 grid, and Adam's step times (1 + u 1e-3), u uniform in [-1, 1];
* ``optimizer``: only the linear combinations (the gradient mean, the moments) and Adam's step;
* ``network``: only the forward and backward products and activations.

If the perturbed mirrors' RMSE spread across perturbation seeds is as wide as MPC's distance from
the mirror, that distance is the training's own sensitivity, not an error of the protocols.

Run as a file::

    .venv/bin/python benchmarks/noise_floor.py --seeds 0 1 2 [--perturbations 3] [--kinds all]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import common
import torch

GRID = 2.0**-16
ADAM_RELATIVE = 1e-3
KINDS = ("all", "optimizer", "network")


def perturbed_backend(act_cfg, gen: torch.Generator, kind: str):
    """A PlainBackend whose outputs are rounded stochastically to 2^-16 where ``kind`` says."""
    from mpcrnn.backend import PlainBackend

    net, opt = kind in ("all", "network"), kind in ("all", "optimizer")

    class Perturbed(PlainBackend):
        def _round(self, x: torch.Tensor) -> torch.Tensor:
            u = torch.rand(x.shape, generator=gen, dtype=x.dtype)
            return torch.floor(x / GRID + u) * GRID

        def mul_many(self, pairs):
            out = super().mul_many(pairs)
            return [self._round(y) for y in out] if net else out

        def matmul_fixed(self, x, w, transpose):
            y = super().matmul_fixed(x, w, transpose)
            return self._round(y) if net else y

        def act_many(self, items):
            out = super().act_many(items)
            return [self._round(y) for y in out] if net else out

        def lincomb_many(self, combos):
            out = super().lincomb_many(combos)
            return [self._round(y) for y in out] if opt else out

        def adam_direction(self, m, v, lr, eps, grad_bound, v_shift=0):
            d = super().adam_direction(m, v, lr, eps, grad_bound)
            if not opt:
                return d
            u = 2 * torch.rand(d.shape, generator=gen, dtype=d.dtype) - 1
            return self._round(d * (1 + ADAM_RELATIVE * u))

    return Perturbed(act_cfg)


def rows_for_seed(seed: int, perturbations: int, kinds: list[str]) -> dict:
    from mpcrnn.backend import PlainBackend
    from mpcrnn.secure import evaluate_local, init_params, value_range
    from mpcrnn.train import plain_dataset, train

    cfg, _, _, tr, te = common.tecator_demo(seed, "mpcrnn-noise-")
    ds = plain_dataset(tr.x, tr.lengths, tr.y, cfg.model)
    act = replace(cfg.activation, exact=False)

    def rmse(B) -> float:
        p, _ = train(
            B, cfg.model, cfg.train, ds, init_params(cfg.model, seed), value_range=value_range(cfg)
        )
        return evaluate_local(cfg, p, te)["polynomial"]["rmse"]

    t0 = time.perf_counter()
    out = {"seed": seed, "mirror": rmse(PlainBackend(act))}
    for kind in kinds:
        gens = [torch.Generator().manual_seed(1000 + k) for k in range(perturbations)]
        out[kind] = [rmse(perturbed_backend(act, g, kind)) / out["mirror"] for g in gens]
    out["seconds"] = time.perf_counter() - t0
    return out


def mpc_ratios() -> dict[int, float]:
    """MPC / mirror per seed from benchmarks/results/regression_rows.json, where present."""
    path = Path(__file__).resolve().parent / "results" / "regression_rows.json"
    if not path.exists():
        return {}
    rows = common.read_results(path)
    return {r["seed"]: r["mpc"]["rmse"] / r["mirror"]["rmse"] for r in rows if r.get("mpc")}


def markdown(results: list[dict], kinds: list[str]) -> str:
    mpc = mpc_ratios()
    lines = [
        "Data: Tecator, the demo's declaration, split and schedule (second differences x80, GRU "
        "H 32, frame 10, 80 epochs, Adam lr 0.02, cosine).  Each cell: perturbed mirror RMSE / "
        "unperturbed mirror RMSE, one per perturbation seed; MPC / mirror from "
        "regression_rows.md (another run of the same seed).",
        "",
        "| seed | mirror RMSE | "
        + " | ".join(f"perturbed ({k})" for k in kinds)
        + " | widest |ratio - 1| | MPC / mirror |",
        "|---|---|" + "---|" * len(kinds) + "---|---|",
    ]
    for r in results:
        ratios = [x for k in kinds for x in r[k]]
        widest = max(abs(x - 1) for x in ratios)
        cells = [str(r["seed"]), f"{r['mirror']:.3f}"]
        cells += [" ".join(f"{x:.3f}" for x in r[k]) for k in kinds]
        cells += [f"{100 * widest:.1f}%", f"{mpc[r['seed']]:.3f}" if r["seed"] in mpc else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(smoke=False, seeds=(0, 1, 2))]
    )
    ap.add_argument("--perturbations", type=int, default=3, help="perturbation seeds per kind")
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=["all"])
    args = common.parse(ap)
    results = []
    for seed in args.seeds:
        results.append(rows_for_seed(seed, args.perturbations, args.kinds))
        print(results[-1], flush=True)
    title = "Tecator: the mirror's RMSE under MPC-sized perturbations"
    path = common.write_results("noise_floor", markdown(results, args.kinds), results, args, title)
    print(path.read_text())


if __name__ == "__main__":
    main()
