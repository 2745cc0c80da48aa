"""``mpcrnn rehearse``: the exact run configuration, in plaintext, on this party's own rows only.

It runs the plaintext mirror (the same code, schedule, optimizer and polynomials as the MPC run;
MPC follows it to within fixed-point rounding) on the party's own file, so an organization can
check its hyper-parameters before an MPC run.  Nothing is shared and no network is used.

Reports per epoch: the mean cross-entropy and accuracy on the party's own rows (polynomial
forward, as trained), test accuracy with ``--test``, and the largest gate pre-activation seen
so far against the polynomials' interval (|x| / B; above 1 the polynomial is unbounded and
training breaks down).  Warns when training does not learn: final training accuracy within
5 points of the majority-class rate, or a final loss above 90% of the first epoch's, or when the
pre-activations left the interval.

Adversarial training (``[adversarial]``) is rehearsed as it will run, perturbations included.
With ``--mode fedavg`` the rehearsal is the same centralized schedule on the party's rows (what
one party's local training sees); DP noise is not simulated (the DP run adds noise to the same
gradients).
"""

from __future__ import annotations

import numpy as np
import torch

LEARN_MARGIN = 0.05  # final train accuracy must beat the majority-class rate by this much
LOSS_RATIO = 0.9  # final loss must be below this fraction of the first epoch's
# warn above this max |x|/B: the pooled rows of an MPC run (and its fixed-point noise) can push a
# gate further than one party's rows did; the benchmark rows peak at 0.94 (docs/approximations.md)
NEAR_EDGE = 0.9


def rehearse(cfg, local, test=None, echo=print) -> dict:
    """Train the mirror on ``local`` (scaled SequenceData) with ``cfg`` (RunConfig); return the
    per-epoch history and warnings.  ``echo`` gets one line per epoch."""
    from mpcrnn.backend import PlainBackend
    from mpcrnn.model import init_params
    from mpcrnn.train import plain_dataset, train

    cfg.validate()
    B = PlainBackend(cfg.activation)
    probe = PlainBackend(cfg.activation)  # evaluation without touching the training peak
    history = []

    # history: RMSE (target units) or bits per character for accuracy
    metric = {"regress": "rmse", "lm": "bpc"}.get(cfg.model.task, "accuracy")

    def evaluate(data, params):
        return _loss_and_metric(cfg, probe, params, data)

    def on_epoch_end(epoch, params, _state):
        loss, acc = evaluate(local, params)
        row = {
            "epoch": epoch,
            "loss": loss,
            f"train_{metric}": acc,
            "max_preactivation_over_bound": B.max_abs_preactivation,
        }
        show = SHOW.get(metric, SHOW["accuracy"])
        line = f"epoch {epoch:3d}/{cfg.train.epochs}  loss {loss:.4f}  train {show(acc)}"
        if test is not None:
            row["test_loss"], row[f"test_{metric}"] = evaluate(test, params)
            line += f"  test {show(row[f'test_{metric}'])}"
        line += f"  max |pre-activation|/B {B.max_abs_preactivation:.2f}"
        history.append(row)
        echo(line)

    data = plain_dataset(local.x, local.lengths, local.y, cfg.model)
    from mpcrnn.secure import value_range

    train(
        B,
        cfg.model,
        cfg.train,
        data,
        init_params(cfg.model, cfg.train.seed),
        on_epoch_end=on_epoch_end,
        adversarial=cfg.adversarial,
        value_range=value_range(cfg),
    )
    majority, warnings = _verdict(cfg, local, history, B.max_abs_preactivation)
    if warnings:
        warnings += _frame_hint(cfg.spec)
    return {
        "history": history,
        "warnings": warnings,
        "majority_class_rate": majority,
        "max_preactivation_over_bound": B.max_abs_preactivation,
        "rows": int(len(local.y)),
    }


SHOW = {  # the history line's metric
    "rmse": lambda v: f"RMSE {v:.4g}",
    "bpc": lambda v: f"bits/char {v:.3f}",
    "accuracy": lambda v: f"acc {100 * v:5.1f}%",
}


def _loss_and_metric(cfg, probe, params: dict, data) -> tuple[float, float]:
    """(loss, metric) of the model on ``data`` with backend ``probe``: cross-entropy and
    accuracy, for regression the rehearsal loss and RMSE in target units, for a language model
    the mean cross-entropy per token and bits per character."""
    from mpcrnn.train import predict_plain

    if cfg.model.task == "lm":
        from mpcrnn.text_lm import lm_loss_and_bpc

        return lm_loss_and_bpc(probe, cfg, params, data)
    out = predict_plain(probe, cfg.model, params, data.x, data.lengths)
    if cfg.model.task == "regress":
        from mpcrnn.regression import rehearsal_loss

        return rehearsal_loss(out.numpy(), data.y, cfg.spec)
    y = torch.as_tensor(data.y)
    loss = float(torch.nn.functional.cross_entropy(out, y))
    return loss, float((out.argmax(1) == y).double().mean())


def _verdict(cfg, local, history: list[dict], max_ratio: float) -> tuple[float, list[str]]:
    """(the naive baseline: the majority-class rate, or the training mean's RMSE (the targets'
    standard deviation, target units); the warnings)."""
    if cfg.model.task == "lm":  # the naive baseline: the own text's character frequencies
        from mpcrnn.text_lm import unigram_warning

        history[-1]["train_accuracy"] = 1.0  # the class-rate check does not apply
        naive, warnings = unigram_warning(local, history[-1]["train_bpc"])
        return naive, warnings + _warnings(history, 0.0, max_ratio, cfg.activation.bound)
    if cfg.model.task != "regress":
        majority = float(np.bincount(local.y, minlength=cfg.model.num_classes).max() / len(local.y))
        return majority, _warnings(history, majority, max_ratio, cfg.activation.bound)
    from mpcrnn.regression import mean_warning

    mean_rmse = float(np.std(local.y) * (cfg.spec.target_high - cfg.spec.target_low) / 2)
    history[-1]["train_accuracy"] = 1.0  # the class-rate check does not apply
    warnings = mean_warning(history[-1]["train_rmse"], mean_rmse)
    return mean_rmse, warnings + _warnings(history, 0.0, max_ratio, cfg.activation.bound)


def _frame_hint(spec) -> list[str]:
    """For a model that does not learn on a long series of few features: the frame to try."""
    from mpcrnn.declaration import LONG_SERIES, suggested_frame

    if spec is None or spec.input_len <= LONG_SERIES:
        return []
    k = suggested_frame(spec.max_len)
    return [
        f"the model reads {spec.input_len} steps of {spec.input_size} value(s): a "
        "recurrent model learns long series of few features poorly step by step; try "
        f"[data] frame = {k} ({k} time steps per model input, {-(-spec.max_len // k)} "
        "steps), then rehearse again"
    ]


def _warnings(history: list[dict], majority: float, max_ratio: float, bound: float) -> list[str]:
    """What would make the MPC run fail or not learn, from the rehearsal's history."""
    warnings = []
    last, first = history[-1], history[0]
    if last["train_accuracy"] < majority + LEARN_MARGIN:
        warnings.append(
            "training does not learn: final training accuracy "
            f"{100 * last['train_accuracy']:.1f}% is within {100 * LEARN_MARGIN:.0f} points of "
            f"always predicting the most frequent class ({100 * majority:.1f}%); try more "
            "epochs, a different lr, or check the data declaration and labels"
        )
    if len(history) > 1 and last["loss"] > LOSS_RATIO * first["loss"]:
        warnings.append(
            f"loss did not decrease: {first['loss']:.4f} after epoch 1, {last['loss']:.4f} at "
            f"the end (expected below {100 * LOSS_RATIO:.0f}% of the first); try another lr or "
            "more epochs"
        )
    if max_ratio > 1:
        warnings.append(
            "gate pre-activations left the polynomials' interval: max |x|/B = "
            f"{max_ratio:.2f} > 1 (B = {bound:g}); the polynomial is unbounded there and MPC "
            "training would break down: lower the lr, clip harder, or declare tighter feature "
            "bounds"
        )
    elif max_ratio > NEAR_EDGE:
        warnings.append(
            "gate pre-activations came close to the polynomials' interval: max |x|/B = "
            f"{max_ratio:.2f} > {NEAR_EDGE} (B = {bound:g}); the pooled rows of the MPC run can "
            "go further, past which the polynomial is unbounded: consider a lower lr or a "
            "tighter clip_value"
        )
    return warnings
