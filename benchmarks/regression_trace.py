"""Tecator, one seed: MPC's test RMSE after every epoch beside the plaintext mirror's, to find
where training on shares leaves the mirror's path.

A DIAGNOSTIC: the MPC weights are opened to party 0 after every epoch (one ledger entry per
tensor and epoch, "diagnostic trace"), which a real run never does.  3 parties + dealer through
:func:`launch.local_parties.run_parties`, the demo's declaration, split and schedule; the mirror
is the same schedule in float64 with the same polynomials.  Per epoch: both test RMSEs (fat %,
the 43 pooled test rows) and the relative distance of the weights
``||theta_mpc - theta_mirror|| / ||theta_mirror||``.

Each seed runs with ``--scales`` (default 1 and 32): Adam's gradient scale S
(:func:`mpcrnn.train.grad_scale`; 1 is the arithmetic before it), set in the party processes.

Run as a file::

    .venv/bin/python benchmarks/regression_trace.py --seeds 1 [--every 5] [--scales 1 32]
"""

from __future__ import annotations

import argparse

import common
import torch


def trace_party(session, cfg, files: list[str], scale: int):
    """One party: share its rows, train on shares, open every weight to party 0 after each
    epoch.  Party 0 returns the list of opened weights per epoch.  ``scale``: Adam's gradient
    scale S (:func:`mpcrnn.train.grad_scale`; 1 is the arithmetic before it), set here."""
    import mpcrnn.train
    from mpcrnn import data as D
    from mpcrnn.backend import SharedBackend
    from mpcrnn.secure import agree, init_params, share_all, value_range
    from mpcrnn.train import train
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import public

    mpcrnn.train.GRAD_SCALE = scale
    local = D.scale_features(D.load_party_file(files[session.rank], cfg.spec), cfg.spec)
    counts = [m["n_rows"] for m in agree(session, cfg, local)]
    data = share_all(session, cfg, local, counts)
    B = SharedBackend(session, cfg.activation)
    params = {k: public(session, v) for k, v in init_params(cfg.model, cfg.train.seed).items()}
    snapshots = []

    def opened(epoch: int, p: dict, _state: dict) -> None:
        out = {
            k: reveal(session, v, to=(0,), what=f"epoch {epoch} weight {k}", why="diagnostic trace")
            for k, v in p.items()
        }
        if session.rank == 0:
            snapshots.append(out)

    train(B, cfg.model, cfg.train, data, params, on_epoch_end=opened, value_range=value_range(cfg))
    return snapshots if session.rank == 0 else None


def trace(seed: int, scale: int) -> dict:
    from dataclasses import replace

    from launch.local_parties import run_parties
    from mpcrnn.backend import PlainBackend
    from mpcrnn.secure import evaluate_local, init_params, value_range
    from mpcrnn.train import plain_dataset, train

    cfg, train_files, _, tr, te = common.tecator_demo(seed, "mpcrnn-trace-")
    mirror = []
    train(
        PlainBackend(replace(cfg.activation, exact=False)),
        cfg.model,
        cfg.train,
        plain_dataset(tr.x, tr.lengths, tr.y, cfg.model),
        init_params(cfg.model, seed),
        on_epoch_end=lambda _e, p, _s: mirror.append({k: v.clone() for k, v in p.items()}),
        value_range=value_range(cfg),
    )
    args = (cfg, train_files, scale)
    mpc = run_parties(trace_party, cfg.parties, "TTP", args, 3000, insecure=True)[0]

    def rmse(p) -> float:
        return evaluate_local(cfg, p, te)["polynomial"]["rmse"]

    def flat(p) -> torch.Tensor:
        return torch.cat([p[k].reshape(-1).double() for k in sorted(p)])

    rows = []
    for epoch, (a, b) in enumerate(zip(mpc, mirror), start=1):
        distance = float((flat(a) - flat(b)).norm() / flat(b).norm())
        rows.append({"epoch": epoch, "mpc": rmse(a), "mirror": rmse(b), "distance": distance})
    return {"seed": seed, "scale": scale, "rows": rows}


def markdown(results: list[dict], every: int) -> str:
    lines = [
        "Data: Tecator, the demo's declaration, split and schedule (second differences x80, GRU "
        "H 32, frame 10, 80 epochs, Adam lr 0.02, cosine); MPC's weights opened after every "
        "epoch (a diagnostic).  Test RMSE in fat % on the 43 pooled test rows.",
        "",
        "| seed | S | epoch | mirror RMSE | MPC RMSE | MPC / mirror | weight distance |",
        "|---|---|---|---|---|---|---|",
    ]
    for res in results:
        last = len(res["rows"])
        for r in res["rows"]:
            if r["epoch"] % every and r["epoch"] not in (1, last):
                continue
            lines.append(
                f"| {res['seed']} | {res['scale']} | {r['epoch']} | {r['mirror']:.3f} | "
                f"{r['mpc']:.3f} | "
                f"{r['mpc'] / r['mirror']:.3f} | {r['distance']:.2e} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(smoke=False, seeds=(1,))]
    )
    ap.add_argument("--every", type=int, default=5, help="table rows: every k-th epoch")
    ap.add_argument(
        "--scales", type=int, nargs="+", default=[1, 32], help="GRAD_SCALE values (1: unscaled)"
    )
    args = common.parse(ap)
    results = []
    for seed in args.seeds:
        for scale in args.scales:
            results.append(trace(seed, scale))
        print(markdown(results[-1:], args.every), flush=True)
    title = "Tecator: MPC's test RMSE per epoch beside the mirror's (a diagnostic)"
    path = common.write_results(
        "regression_trace", markdown(results, args.every), results, args, title
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
