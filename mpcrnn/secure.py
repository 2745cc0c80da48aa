"""One party's whole run: local validation, public agreement, sharing, training, the reveal.

What is public (exchanged in the clear, all parties): the run configuration and its SHA-256,
feature count, class names, the padded length bound T, every party's row count, the batch
schedule.  What stays secret: every party's sequences, labels and lengths, all activations,
gradients, momenta and intermediate weights.  What is revealed: the final weights, to the
``reveal_to`` parties only (and losses/accuracies only with ``reveal_metrics``), each opening in
the ledger.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from mpcrnn.backend import PlainBackend, SharedBackend
from mpcrnn.config import RunConfig
from mpcrnn.data import SequenceData
from mpcrnn.model import export_state_dicts, init_params
from mpcrnn.train import Dataset, masks, predict_plain, train
from protocols.arithmetic.fixed_point import FixedPoint
from protocols.errors import AgreementError, ConfigError, expected_got


def agree(session, cfg: RunConfig, local: SequenceData) -> list[dict]:
    """Exchange public metadata; raise AgreementError naming the first mismatch."""
    from protocols.network.public_exchange import exchange_public

    mine = {
        "digest": cfg.digest(),
        "n_features": int(local.x.shape[2]),
        "max_len": int(local.x.shape[1]),
        "classes": list(local.classes),
        "n_rows": int(local.x.shape[0]),
    }
    everyone = exchange_public(session, mine)
    for rank, theirs in enumerate(everyone):
        for key in ("digest", "n_features", "max_len", "classes"):
            if theirs[key] != mine[key]:
                what = "run configuration (SHA-256)" if key == "digest" else key
                raise AgreementError(
                    expected_got(
                        f"party {rank}'s {what}",
                        _short(mine[key]),
                        _short(theirs[key]),
                        "all parties must use the same run config file and data declaration",
                    )
                )
    return everyone


def _short(v) -> str:
    s = str(v)
    return s[:16] + "..." if len(s) > 19 else s


def share_all(session, cfg: RunConfig, local: SequenceData, counts: list[int]) -> Dataset:
    """Every party shares its own rows; the result concatenates parties in rank order."""
    from mpcrnn.train import targets
    from protocols.arithmetic.sharing import share

    T, F, C = local.x.shape[1], local.x.shape[2], cfg.model.head_size
    xs, ms, ys = [], [], []
    for src, n in enumerate(counts):
        own = src == session.rank
        x = torch.as_tensor(local.x) if own else None
        m = masks(torch.as_tensor(local.lengths), T) if own else None
        y = targets(local.y, cfg.model) if own else None  # one-hot, or scaled targets
        xs.append(share(session, x, src=src, shape=(n, T, F)))
        ms.append(share(session, m, src=src, shape=(n, T, 1)))
        if cfg.model.task == "lm":  # no targets to share: the next tokens are x shifted
            ys.append(torch.zeros((n, 0), dtype=xs[-1].dtype))
            continue
        ys.append(share(session, y, src=src, shape=(n, C)))
    return Dataset(torch.cat(xs), torch.cat(ms), torch.cat(ys))


def run_training(
    session,
    cfg: RunConfig,
    local: SequenceData,
    progress=None,
    checkpoint_dir: str | None = None,
    resume: bool = False,
) -> dict:
    """Agree, share, train on shares, reveal the final weights.  Returns a result dict with
    ``params`` (float64, only on receivers), ``counts``, ``seconds``, ``resumed_from``,
    ``step_seconds``, ``step_rounds`` (and ``dp``, ``train_accuracy`` when they apply).

    checkpoint_dir: write this party's shares there after every epoch.
    resume: continue from the newest epoch every party has in its checkpoint_dir.
    """
    from protocols.arithmetic.sharing import public

    cfg.validate()
    if cfg.dp.enabled and resume:
        raise ConfigError(
            expected_got(
                "--resume with --dp-*",
                "a fresh run (the DP schedule and accountant do not resume)",
                "--resume",
            )
        )
    meta = agree(session, cfg, local)
    counts = [m["n_rows"] for m in meta]
    t0 = time.perf_counter()
    data = share_all(session, cfg, local, counts)
    B = SharedBackend(session, cfg.activation)
    params = {k: public(session, v) for k, v in init_params(cfg.model, cfg.train.seed).items()}
    params, velocity, start, save = _checkpoints(session, cfg, params, checkpoint_dir, resume)
    meter = _StepMeter(session, progress)
    out = {"counts": counts, "resumed_from": start}
    if cfg.dp.enabled:  # DP-SGD on shares (mpcrnn.dp); no checkpoints: the accountant cannot resume
        from mpcrnn.dp import run_dp

        params, out["dp"] = run_dp(session, B, cfg, data, params, sum(counts), progress=meter)
    else:
        params, _ = train(
            B,
            cfg.model,
            cfg.train,
            data,
            params,
            progress=meter,
            start_epoch=start,
            adversarial=cfg.adversarial,
            value_range=value_range(cfg),
            velocity=velocity,
            on_epoch_end=save,
        )
    out.update(seconds=time.perf_counter() - t0, step_seconds=meter.seconds)
    out["step_rounds"] = meter.rounds
    out.update(_reveal_outputs(session, B, cfg, params, data, sum(counts)))
    return out


def _checkpoints(session, cfg: RunConfig, params: dict, checkpoint_dir, resume: bool):
    """(params, optimizer state, start epoch, the per-epoch save callback or None): resumed
    from the newest epoch every party checkpointed, when asked."""
    from mpcrnn import checkpoint

    velocity = None
    start = checkpoint.start_epoch(session, checkpoint_dir, resume)
    if start:
        params, velocity = checkpoint.load(
            checkpoint_dir,
            session.rank,
            start,
            cfg.checkpoint_digest(),
            cfg.train.epochs,
            run_id=session.run_id,
        )
    if not checkpoint_dir:
        return params, velocity, start, None

    def save(epoch, p, v):
        digest, epochs = cfg.checkpoint_digest(), cfg.train.epochs
        checkpoint.save(checkpoint_dir, session.rank, epoch, digest, p, v, epochs, session.run_id)

    return params, velocity, start, save


class _StepMeter:
    """The training loop's progress callback: seconds and CrypTen's round counter (dealer round
    trips included) per step, then the caller's own ``progress``."""

    def __init__(self, session, progress) -> None:
        self.session = session
        self.progress = progress
        self.seconds: list[float] = []
        self.rounds: list[int] = []
        self.last = session.comm_rounds

    def __call__(self, ev: dict) -> None:
        self.seconds.append(ev["seconds"])
        now = self.session.comm_rounds
        self.rounds.append(int(now - self.last))
        self.last = now
        if self.progress:
            self.progress(ev)


def _reveal_outputs(session, B, cfg: RunConfig, params: dict, data: Dataset, n_rows: int):
    """The run's only openings, to the receivers: the pooled training accuracy (with
    ``reveal_metrics``), then every final weight.  Returns {params, train_accuracy?}."""
    from protocols.arithmetic.reveal import reveal

    receivers = cfg.receivers()
    out = {}
    if cfg.reveal_metrics:
        correct = correct_count_shared(session, B, cfg, params, data)
        metrics = reveal(
            session,
            correct,
            to=receivers,
            what="training accuracy (correct rows, all parties pooled)",
            why="--reveal-metrics",
            allowed_to=receivers,
        )
        if metrics is not None:  # a receiver; a count, +-2^-16 noise
            out["train_accuracy"] = round(float(metrics.reshape(()))) / n_rows
    opened = {
        k: reveal(
            session,
            v,
            to=receivers,
            what=f"final weight {k}",
            why="trained model output",
            allowed_to=receivers,
        )
        for k, v in params.items()
    }
    out["params"] = opened if session.rank in receivers else None
    return out


def correct_count_shared(session, B, cfg: RunConfig, params: dict, data: Dataset):
    """[number of training rows whose argmax logit is the label], on shares: one forward pass
    over all rows, CrypTen's one-hot argmax (comparisons), a dot product with the labels."""
    from mpcrnn.model import forward
    from protocols.arithmetic.comparison import argmax_onehot

    logits, _ = forward(B, cfg.model, params, data.x.transpose(0, 1), data.m.transpose(0, 1))
    onehot = argmax_onehot(session, logits, dim=1)
    (hits,) = B.mul_many([("mul", onehot, data.target)])
    return hits.sum().reshape(1)


def evaluate_local(
    cfg: RunConfig, params: dict, data: SequenceData, polynomial: bool = True
) -> dict:
    """Plaintext accuracy of the opened model on a party's own data (exact and polynomial);
    a language model: its summed bits and predicted tokens; regression:
    :func:`mpcrnn.regression.evaluate_values` (RMSE, MAE, R^2 in target units)."""
    if cfg.model.task == "regress":
        from mpcrnn.regression import evaluate_values

        return evaluate_values(cfg, params, data, polynomial)
    if cfg.model.task == "lm":  # summed bits and predicted tokens (mpcrnn.text_lm)
        from mpcrnn.text_lm import evaluate_lm

        return evaluate_lm(cfg, params, data, polynomial)
    model = export_state_dicts(cfg.model, params).double()
    with torch.no_grad():
        logits = model(torch.as_tensor(data.x), torch.as_tensor(data.lengths))
    exact = float((logits.argmax(1).numpy() == data.y).mean())
    if not polynomial:
        return {"rows": int(len(data.y)), "accuracy_exact": exact}
    poly = predict_plain(PlainBackend(cfg.activation), cfg.model, params, data.x, data.lengths)
    return {
        "rows": int(len(data.y)),
        "accuracy_exact": exact,
        "accuracy_polynomial": float((poly.argmax(1).numpy() == data.y).mean()),
    }


def train_plain_mirror(cfg: RunConfig, data: SequenceData, exact: bool) -> dict:
    """The plaintext mirror (same seed, schedule and math) on the pooled data: the baseline."""
    from mpcrnn.train import plain_dataset

    B = PlainBackend(replace(cfg.activation, exact=exact))
    params, _ = train(
        B,
        cfg.model,
        cfg.train,
        plain_dataset(data.x, data.lengths, data.y, cfg.model),
        init_params(cfg.model, cfg.train.seed),
        adversarial=cfg.adversarial,
        value_range=value_range(cfg),
    )
    return params


def value_range(cfg: RunConfig) -> float:
    """R: every admitted scaled input has |x| <= R (the declaration's value_bound); perturbed
    inputs are clamped to it."""
    return float(cfg.spec.value_bound) if cfg.spec is not None else 8.0


def fixed_point(cfg: RunConfig) -> FixedPoint:
    return FixedPoint(cfg.frac_bits)


def concat(parts: list[SequenceData]) -> SequenceData:
    return SequenceData(
        np.concatenate([p.x for p in parts]),
        np.concatenate([p.lengths for p in parts]),
        np.concatenate([p.y for p in parts]),
        parts[0].classes,
    )
