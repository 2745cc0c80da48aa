"""``--mode fedavg``: federated averaging with secure aggregation (FedAvg, McMahan et al. 2017).

Per round r = 1..R, starting from the public global model theta (torch's initialization under
the public seed, then each round's opened average)::

    every party i:  theta_i = E local epochs of SGD on its own rows, in plain torch
                    (torch.nn.RNN/GRU/LSTM, exact activations, float32), from theta
                    u_i     = theta_i - theta                              (D,) its update
    on shares:      [mean]  = sum_i w_i clip(u_i) / sum_i w_i      arithmetic.secure_average
                    [theta] = theta + [mean]                               (public theta: local)
    opened to all:  theta   (ledgered: "global model after round r")

w_i = the public row counts (``weighting = "rows"``) or 1 (``"equal"``); ``clip`` bounds each
party's update norm on shares when ``update_clip > 0``.

What this mode reveals, unlike ``--mode mpc``: ALL R intermediate global models, to every
party (each party trains from them), so each party learns, round by round, the weighted sum of
the other parties' updates; with two data parties that is the other party's update itself.
What stays secret: every party's rows, its local models and updates (never opened alone), and
whether an update was clipped.  Public: the schedule (R, E), the weights, shapes, row counts.
A party's local batch order is its own (drawn from (seed, round, rank)) and never leaves it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from mpcrnn.model import flatten, unflatten
from protocols.errors import ConfigError, expected_got

__all__ = ["flatten", "local_train", "run_fedavg", "unflatten"]


def local_train(
    cfg, params: dict[str, torch.Tensor], data, round_index: int, rank: int
) -> dict[str, torch.Tensor]:
    """E epochs of the run's optimizer in torch (torch.optim.Adam / AdamW with TrainConfig's lr,
    betas, eps and weight decay -- the MPC mode's defaults -- or SGD with momentum), clip_value /
    clip_norm as in TrainConfig, batch-mean cross-entropy, on this party's own rows, from
    ``params``.  The optimizer state starts fresh every round (the global model changes between
    rounds).  Returns float64 params.

    data: this party's :class:`mpcrnn.data.SequenceData` (x (N, T, F) scaled, lengths, y).
    """
    from mpcrnn.model import _flat_state, export_state_dicts

    tc, fc = cfg.train, cfg.fedavg
    model = export_state_dicts(cfg.model, params)
    if tc.optimizer == "sgd":
        opt = torch.optim.SGD(
            model.parameters(), lr=tc.step_lr, momentum=tc.momentum, weight_decay=tc.weight_decay
        )
    else:
        cls = torch.optim.AdamW if tc.optimizer == "adamw" else torch.optim.Adam
        opt = cls(
            model.parameters(),
            lr=tc.step_lr,
            betas=(tc.beta1, tc.beta2),
            eps=tc.eps,
            weight_decay=tc.weight_decay,
        )
    x = torch.as_tensor(data.x, dtype=torch.float32)
    lengths = torch.as_tensor(data.lengths)
    y = torch.as_tensor(data.y)
    task = cfg.model.task  # regress: MSE / 2 per row, as on shares
    rng = np.random.default_rng([tc.seed, round_index, rank])  # this party's own, private order
    n = x.shape[0]
    for _ in range(fc.local_epochs):
        perm = torch.as_tensor(rng.permutation(n))
        for i in range(0, n, tc.batch_size):
            idx = perm[i : i + tc.batch_size]
            out = model(x[idx], lengths[idx])
            if task == "regress":
                loss = 0.5 * ((out - y[idx].float()) ** 2).sum(1).mean()
            elif task == "lm":  # summed over predicted tokens, mean over windows, as on shares
                from mpcrnn.text_lm import torch_nll

                loss = torch_nll(out, x[idx], lengths[idx]).sum() / len(idx)
            else:
                loss = torch.nn.functional.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            if tc.clip_value > 0:
                torch.nn.utils.clip_grad_value_(model.parameters(), tc.clip_value)
            if tc.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip_norm)
            opt.step()
    return {k: v.detach().to(torch.float64).clone() for k, v in _flat_state(model).items()}


def run_fedavg(
    session,
    cfg,
    local,
    progress: Callable[[dict], None] | None = None,
    checkpoint_dir: str | None = None,
    resume: bool = False,
    on_round: Callable[[int, dict], None] | None = None,
) -> dict:
    """Agree, then R rounds of local training + secure averaging.  Returns the same result dict
    as :func:`mpcrnn.secure.run_training` (``params`` at every party) plus ``round_seconds`` and
    ``local_seconds`` (time in local training, per round).

    checkpoint_dir: after each round, write the (public) global model there; resume: continue
    from the newest round every party has.  on_round(r, params): called after round r with the
    opened global model (e.g. the party's own local evaluation; nothing is sent).
    """
    from mpcrnn import checkpoint
    from mpcrnn.secure import agree

    cfg.validate()
    if cfg.model.task == "regress_steps":
        raise ConfigError(
            expected_got("task with --mode fedavg", "classify or regress", cfg.model.task)
        )
    meta = agree(session, cfg, local)
    counts = [m["n_rows"] for m in meta]
    fc = cfg.fedavg
    weights = counts if fc.weighting == "rows" else [1] * session.world_size
    theta, start = _starting_point(session, cfg, checkpoint_dir, resume)
    t0 = time.perf_counter()
    round_seconds, local_seconds = [], []
    R, digest = cfg.fedavg_rounds, cfg.checkpoint_digest()
    for r in range(start, R):
        t_round = time.perf_counter()
        mine = local_train(cfg, theta, local, r, session.rank)
        local_seconds.append(time.perf_counter() - t_round)
        theta = _secure_average(session, cfg, theta, mine, weights, r)
        round_seconds.append(time.perf_counter() - t_round)
        if checkpoint_dir:
            checkpoint.save(
                checkpoint_dir, session.rank, r + 1, digest, theta, {}, R, session.run_id
            )
        if on_round:
            on_round(r + 1, theta)
        if progress:  # public facts only; a round counts as one step
            event = {"unit": "round", "epoch": r + 1, "epochs": R, "step": 1, "steps": 1}
            progress({**event, "seconds": round_seconds[-1]})
    out = {
        "params": theta,
        "counts": counts,
        "seconds": time.perf_counter() - t0,
        "resumed_from": start,
        "step_seconds": round_seconds,
        "round_seconds": round_seconds,
        "local_seconds": local_seconds,
    }
    if cfg.reveal_metrics:
        out["train_accuracy"] = _pooled_train_accuracy(session, cfg, theta, local, counts)
    return out


def _secure_average(session, cfg, theta: dict, mine: dict, weights, r: int) -> dict:
    """Round r's global model: theta + the weighted mean of the parties' (clipped) updates,
    on shares, opened to every party (ledgered)."""
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.secure_average import weighted_mean
    from protocols.arithmetic.sharing import add_public

    everyone = tuple(range(session.world_size))
    base = flatten(theta).to(torch.float64)
    update = flatten(mine).to(torch.float64) - base
    mean = weighted_mean(session, update, weights, cfg.fedavg.update_clip)
    opened = reveal(
        session,
        add_public(session, mean, base),
        to=everyone,
        what=f"global model after round {r + 1}",
        why="fedavg: every party trains from each round's average",
        allowed_to=everyone,
    )
    return unflatten(opened.to(torch.float64), theta)


def _starting_point(session, cfg, checkpoint_dir: str | None, resume: bool) -> tuple[dict, int]:
    """(theta, first round): the public initialization, or the newest round every party has
    checkpointed (``resume``)."""
    from mpcrnn import checkpoint
    from mpcrnn.model import init_params

    start = checkpoint.start_epoch(session, checkpoint_dir, resume)
    if not start:
        return init_params(cfg.model, cfg.train.seed), 0
    theta, _ = checkpoint.load(
        checkpoint_dir,
        session.rank,
        start,
        cfg.checkpoint_digest(),
        cfg.fedavg_rounds,
        run_id=session.run_id,
    )
    return theta, start


def _pooled_train_accuracy(session, cfg, theta: dict, local, counts: list[int]) -> float | None:
    """Each party counts its own correctly classified rows in plaintext and shares the count;
    only the sum is opened (ledgered), to the receivers."""
    from mpcrnn.model import export_state_dicts
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import share

    model = export_state_dicts(cfg.model, theta)
    with torch.no_grad():
        pred = (
            model(torch.as_tensor(local.x, dtype=torch.float32), torch.as_tensor(local.lengths))
            .argmax(1)
            .numpy()
        )
    own = torch.tensor([float((pred == local.y).sum())], dtype=torch.float64)
    total = sum(
        share(session, own if src == session.rank else None, src=src, shape=(1,))
        for src in range(session.world_size)
    )
    receivers = cfg.receivers()
    opened = reveal(
        session,
        total,
        to=receivers,
        what="training accuracy (correct rows, all parties pooled)",
        why="--reveal-metrics",
        allowed_to=receivers,
    )
    return None if opened is None else round(float(opened.reshape(()))) / sum(counts)
