"""Per training step: how far each stage of a step on shares lands from the plaintext mirror's
arithmetic applied to the same weights, batch and optimizer state (Tecator's demo, one seed).

A DIAGNOSTIC: after every stage the values are opened to party 0 (ledger entries "diagnostic"),
which a real run never does.  3 parties + dealer through :func:`launch.local_parties.run_parties`.
Party 0 also holds the pooled plaintext rows (a simulation on one machine) and recomputes, from
the opened inputs of each stage, what the mirror (float64, the same polynomials) would output:

* ``gradient``: S times the batch mean of the per-row gradients (forward and backward on shares;
  S: :func:`mpcrnn.train.grad_scale`);
* ``clip``: ``clip_value`` then ``clip_norm`` of that mean (from the opened mean);
* ``adam``: the updated weights from the opened weights, clipped gradient and moments.

Errors in units of 2^-16 (the fixed-point resolution): the largest |error| per stage and step,
and the relative error of the whole vector.

Each seed runs with ``--scales`` (default 1 and 32): Adam's gradient scale S
(:func:`mpcrnn.train.grad_scale`; 1 is the arithmetic before it), set in the party processes.

Run as a file::

    .venv/bin/python benchmarks/step_errors.py --seeds 1 [--steps 60] [--scales 1 32]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import common
import torch

UNIT = 2.0**-16


def _open(session, tensors: dict, what: str) -> dict | None:
    from protocols.arithmetic.reveal import reveal

    out = {
        k: reveal(session, v, to=(0,), what=f"{what} {k}", why="diagnostic")
        for k, v in tensors.items()
    }
    return out if session.rank == 0 else None


def v_opened(v: torch.Tensor, scale: float) -> torch.Tensor:
    """Adam's v^ as opened (decoded at 2^16) -> its value: on shares it is kept at
    2^(32 - 2 log2 S) (protocols.arithmetic.adam.moments); rounding may leave it just below 0."""
    import math

    return (v * UNIT * 2.0 ** (2 * round(math.log2(scale)))).clamp(min=0)


def _error(got: torch.Tensor, want: torch.Tensor) -> dict:
    err = (got.double() - want.double()).reshape(-1)
    return {
        "max_units": float(err.abs().max() / UNIT),
        "relative": float(err.norm() / max(float(want.norm()), 1e-30)),
    }


def step_error_party(session, cfg, files: list[str], steps: int, scale: int):
    import mpcrnn.train
    from mpcrnn import data as D
    from mpcrnn.backend import PlainBackend, SharedBackend
    from mpcrnn.model import forward_backward
    from mpcrnn.secure import agree, concat, init_params, share_all
    from mpcrnn.train import (
        batch_of,
        flatten,
        grad_scale,
        init_state,
        plain_dataset,
        schedule,
        update,
    )
    from protocols.arithmetic.sharing import public

    mpcrnn.train.GRAD_SCALE = scale  # this benchmark's knob: S = 1 is the arithmetic before it
    tcfg, mcfg = cfg.train, cfg.model
    S = grad_scale(tcfg)
    cv, cn = S * tcfg.clip_value, S * tcfg.clip_norm
    local = D.scale_features(D.load_party_file(files[session.rank], cfg.spec), cfg.spec)
    counts = [m["n_rows"] for m in agree(session, cfg, local)]
    data = share_all(session, cfg, local, counts)
    B = SharedBackend(session, cfg.activation)
    P = PlainBackend(replace(cfg.activation, exact=False))
    if session.rank == 0:  # the pooled plaintext rows, in the parties' order (a simulation)
        pooled = concat([D.load_party_file(f, cfg.spec) for f in files])
        pooled = D.scale_features(pooled, cfg.spec)
        plain = plain_dataset(pooled.x, pooled.lengths, pooled.y, mcfg)
    params = {k: public(session, v) for k, v in init_params(mcfg, tcfg.seed).items()}
    state = init_state(B, params, tcfg)
    n, T = sum(counts), data.x.shape[1]
    total = len(schedule(n, tcfg, 0)) * tcfg.epochs
    batches = [idx for e in range(tcfg.epochs) for idx in schedule(n, tcfg, e)][:steps]
    rows = []
    for step, idx in enumerate(batches, start=1):
        B.begin_step((len(idx), T))
        x, m, tgt = batch_of(data, idx, mcfg.task)
        grads, _ = forward_backward(B, mcfg, params, x, m, tgt)
        names = list(params)
        mean = flatten(
            dict(zip(names, B.lincomb_many([[(S / len(idx), grads[k])] for k in names])))
        )
        clipped = B.clip_norm(B.clip_value(mean, cv), cn)
        new_params, new_state = update(B, params, clipped, state, tcfg, step, total, scale=S)
        B.end_step()
        seen = _open(
            session, {"w": flatten(params), "mean": mean, "clipped": clipped}, f"step {step}"
        )
        seen_state = _open(session, state, f"step {step} state")
        seen_new = _open(session, {"w": flatten(new_params)}, f"step {step} new")
        if session.rank == 0:
            w = {k: v for k, v in zip(names, _unflat(seen["w"], params))}
            xp, mp, tp = batch_of(plain, idx, mcfg.task)
            g, _ = forward_backward(P, mcfg, w, xp, mp, tp)
            want_mean = flatten({k: S * g[k] / len(idx) for k in names})
            want_clip = P.clip_norm(P.clip_value(seen["mean"], cv), cn)
            st = {
                "adam.m": seen_state["adam.m"],
                "adam.v": v_opened(seen_state["adam.v"], S),
            }  # v: 2^32
            want_new, _ = update(P, w, seen["clipped"], st, tcfg, step, total, scale=S)
            rows.append(
                {
                    "step": step,
                    "gradient": _error(seen["mean"], want_mean),
                    "clip": _error(seen["clipped"], want_clip),
                    "adam": _error(seen_new["w"], flatten(want_new)),
                    "grad_norm": float(want_mean.norm()),
                }
            )
        params, state = new_params, new_state
    return rows if session.rank == 0 else None


def _unflat(flat: torch.Tensor, like: dict) -> list[torch.Tensor]:
    out, i = [], 0
    for v in like.values():
        out.append(flat[i : i + v.numel()].reshape(v.shape))
        i += v.numel()
    return out


def run(seed: int, steps: int, scale: int) -> dict:
    from launch.local_parties import run_parties

    cfg, train_files, *_ = common.tecator_demo(seed, "mpcrnn-steperr-")
    args = (cfg, train_files, steps, scale)
    rows = run_parties(step_error_party, cfg.parties, "TTP", args, 3000, insecure=True)[0]
    return {"seed": seed, "scale": scale, "rows": rows}


def markdown(results: list[dict]) -> str:
    lines = [
        "Data: Tecator, the demo's declaration, split and schedule; each stage's output on shares "
        "against the mirror's arithmetic on the same opened inputs (a diagnostic).  max: the "
        "largest |error| in units of 2^-16; rel: ||error|| / ||mirror's output||.",
        "",
        "| seed | S | step | S gradient norm | gradient max / rel | clip max / rel | "
        "adam max / rel |",
        "|---|---|---|---|---|---|---|",
    ]
    for res in results:
        for r in res["rows"]:
            cells = [
                f"{r[k]['max_units']:.1f} / {r[k]['relative']:.1e}"
                for k in ("gradient", "clip", "adam")
            ]
            lines.append(
                f"| {res['seed']} | {res['scale']} | {r['step']} | {r['grad_norm']:.2e} | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines) + "\n"


def summary(results: list[dict]) -> str:
    """Per seed and S: the median and largest per-step relative error of each stage."""
    import statistics

    lines = [
        "| seed | S | steps | gradient rel, median / max | clip rel, median / max | "
        "adam rel, median / max |",
        "|---|---|---|---|---|---|",
    ]
    for res in results:
        cells = []
        for k in ("gradient", "clip", "adam"):
            rel = [r[k]["relative"] for r in res["rows"]]
            cells.append(f"{statistics.median(rel):.1e} / {max(rel):.1e}")
        n = len(res["rows"])
        lines.append(f"| {res['seed']} | {res['scale']} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(smoke=False, seeds=(1,))]
    )
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument(
        "--scales", type=int, nargs="+", default=[1, 32], help="GRAD_SCALE values (1: unscaled)"
    )
    args = common.parse(ap)
    results = [run(seed, args.steps, s) for seed in args.seeds for s in args.scales]
    print(summary(results))
    title = "Tecator: per-step errors of a step on shares against the mirror's arithmetic"
    text = summary(results) + "\n" + markdown(results)
    path = common.write_results("step_errors", text, results, args, title)
    print(path.read_text())


if __name__ == "__main__":
    main()
