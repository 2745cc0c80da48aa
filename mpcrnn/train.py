"""Training on shares (or on plaintext, the mirror): Adam / AdamW / SGD with momentum, weight
decay, clipping, a public learning-rate schedule.

Per step t = 1, 2, ..., on the batch of N rows drawn by the public schedule::

    g    = S ((1/N) sum_rows grad (+ wd theta: adam, sgd))  (one batched truncation)
    g    = clamp(g, -S c, S c)              (one sign-bit circuit over every gradient entry; c > 0)
    g    = g / max(1, ||g|| / (S C))        (optional: protocols.arithmetic.norm_clip on one row)
    lr_t = lr * schedule(t)                 (public: constant | warmup | cosine)
  adam / adamw (the default; protocols.arithmetic.adam, on the bias-corrected moments):
    m^   = m^ + c1_t (g - m^),  v^ = v^ + c2_t (g^2 - v^),  c_t = (1 - b) / (1 - b^t)   (public)
    theta = theta (1 - lr_t wd [adamw]) - lr_t m^ / (sqrt(v^) + S eps)
    (S = grad_scale, 32 by default: the same update on values S times larger; SGD: S = 1)
  sgd:
    v    = mu * v + g                       (one batched truncation)
    theta = theta - lr_t * v                (one batched truncation)

The optimizer is written once here against the backend; :class:`mpcrnn.backend.PlainBackend`
computes torch.optim.Adam's arithmetic exactly (the mirror matches torch to 1e-12),
:class:`mpcrnn.backend.SharedBackend` the same on shares within protocols.arithmetic.adam's stated
error.

Public: the schedule (epochs, batch size, the permutation from ``seed``), hyper-parameters, the
step count and therefore every per-step constant (lr_t, bias corrections), shapes.  Secret:
data, labels, lengths, weights, gradients, moments, losses.  Nothing is opened.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from mpcrnn.config import ModelConfig, TrainConfig
from mpcrnn.model import flatten, forward_backward, unflatten


@dataclass
class Dataset:
    """Values (plaintext or shares) in the layout the cells take.

    x (N, T, I); m (N, T, 1) 0/1 masks at scale 2^f on shares; target (N, C) one-hot, (N, O)
    scaled regression targets, or (N, T, O) per step.
    """

    x: torch.Tensor
    m: torch.Tensor
    target: torch.Tensor

    @property
    def n_rows(self) -> int:
        return self.x.shape[0]


def schedule(n_rows: int, cfg: TrainConfig, epoch: int) -> list[np.ndarray]:
    """Public batch schedule: a permutation from (seed, epoch), cut into batches."""
    perm = np.random.default_rng([cfg.seed, epoch]).permutation(n_rows)
    return [perm[i : i + cfg.batch_size] for i in range(0, n_rows, cfg.batch_size)]


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """The public learning rate of step ``step`` (1-based) of ``total``."""
    lr, w = cfg.step_lr, cfg.warmup_steps
    if cfg.schedule == "constant":
        return lr
    if w and step <= w:
        return lr * step / w
    if cfg.schedule == "warmup":
        return lr
    span = max(1, total - w)
    return (
        lr * 0.5 * (1 + math.cos(math.pi * min(step - w - 1, span) / span))
    )  # cosine: lr at w+1 -> ~0 at total


def init_state(B, params: dict, cfg: TrainConfig) -> dict:
    """Zero optimizer state: SGD's velocity per parameter, or Adam's flat (m^, v^)."""
    if cfg.optimizer == "sgd":
        return {k: B.const(0.0, v) for k, v in params.items()}
    m, v = B.adam_zeros(flatten(params))
    return {"adam.m": m, "adam.v": v}


GRAD_SCALE = 32  # Adam's gradient scale S (docs/adam.md "Gradient scale"); S c <= MAX_SCALED
MAX_SCALED = 64.0  # the largest gradient bound Adam on shares accepts (TrainConfig.validate)


def grad_scale(cfg: TrainConfig) -> float:
    """S: Adam and AdamW take the batch's mean gradient times S, clip it at S c (value) and
    S C (norm) and add S eps to sqrt(v^): the same update, since lr (S m^) / (sqrt(S^2 v^) + S
    eps) = lr m^ / (sqrt(v^) + eps), but every value of the gradient's path on shares is S times
    larger against the same 2^-16 rounding (a mean gradient entry of 1e-4 is 6.6 units of 2^-16;
    each truncation adds up to ~3).  The largest power of two <= GRAD_SCALE with S times the
    gradient bound <= MAX_SCALED.  SGD: 1 (its step is lr g)."""
    if cfg.optimizer == "sgd":
        return 1.0
    s = GRAD_SCALE
    while s > 1 and s * cfg.grad_bound() > MAX_SCALED:
        s //= 2
    return float(s)


def _flat_grad(B, params: dict, grads: dict, cfg: TrainConfig, n_rows: int) -> torch.Tensor:
    """S (mean gradient + wd theta), value-clipped at S c, norm-clipped at S C (S: grad_scale)."""
    names, scale = list(params), grad_scale(cfg)
    combos = []
    for k in names:
        combo = [(scale / n_rows, grads[k])]
        if cfg.weight_decay and cfg.optimizer != "adamw":
            combo.append((scale * cfg.weight_decay, params[k]))
        combos.append(combo)
    flat = flatten(dict(zip(names, B.lincomb_many(combos))))
    if cfg.clip_value > 0:
        flat = B.clip_value(flat, scale * cfg.clip_value)
    if cfg.clip_norm > 0:
        flat = B.clip_norm(flat, scale * cfg.clip_norm)
    return flat


def sgd_step(
    B,
    params: dict,
    grads: dict,
    velocity: dict,
    cfg: TrainConfig,
    n_rows: int,
    step: int = 1,
    total: int = 1,
) -> tuple[dict, dict]:
    """One optimizer step from the batch's summed gradients (any ``cfg.optimizer``; the name is
    historical).  ``step``/``total``: the public step count (schedule, bias corrections)."""
    flat = _flat_grad(B, params, grads, cfg, n_rows)
    return update(B, params, flat, velocity, cfg, step, total, scale=grad_scale(cfg))


def update(
    B,
    params: dict,
    g_flat: torch.Tensor,
    state: dict,
    cfg: TrainConfig,
    step: int,
    total: int,
    grad_bound: float | None = None,
    scale: float = 1.0,
) -> tuple[dict, dict]:
    """Apply the step's gradient (flat, keyed like ``params`` in order) with ``cfg.optimizer``.
    grad_bound: public bound on |g| entries for Adam on shares (default: the clip).
    scale: the gradient arrives times S (:func:`grad_scale`; Adam only): its bound and eps are
    scaled to match."""
    lr = lr_at(cfg, step, total)
    if cfg.optimizer == "sgd":
        return momentum_update(B, params, unflatten(g_flat, params), state, cfg, lr)
    bound = scale * (grad_bound or cfg.grad_bound())
    v_shift = 2 * round(math.log2(scale))  # v^ at 2^(2f - v_shift) on shares (moments' docstring)
    return adam_update(B, params, g_flat, state, cfg, step, lr, bound, scale * cfg.eps, v_shift)


def adam_update(
    B,
    params: dict,
    g: torch.Tensor,
    state: dict,
    cfg: TrainConfig,
    step: int,
    lr: float,
    grad_bound: float,
    eps: float,
    v_shift: int = 0,
) -> tuple[dict, dict]:
    """torch.optim.Adam / AdamW on the bias-corrected moments (protocols.arithmetic.adam); 2 + ~42
    rounds.  ``eps``: cfg.eps times the gradient's scale; ``v_shift``: v^'s fixed-point scale on
    shares is 2^(2f - v_shift)."""
    c1 = (1 - cfg.beta1) / (1 - cfg.beta1**step)
    c2 = (1 - cfg.beta2) / (1 - cfg.beta2**step)
    m, v = B.adam_moments(g, state["adam.m"], state["adam.v"], c1, c2, v_shift)
    upd = unflatten(B.adam_direction(m, v, lr, eps, grad_bound, v_shift), params)
    names = list(params)
    if cfg.optimizer == "adamw" and cfg.weight_decay:
        decayed = B.lincomb_many([[(1.0 - lr * cfg.weight_decay, params[k])] for k in names])
        params = dict(zip(names, decayed))
    return {k: params[k] - upd[k] for k in names}, {"adam.m": m, "adam.v": v}


def momentum_update(
    B, params: dict, g: dict, velocity: dict, cfg: TrainConfig, lr: float | None = None
) -> tuple[dict, dict]:
    """v = mu v + g;  theta = theta - lr v  (two batched truncations).  ``g`` is the step's
    gradient keyed like params (the clipped batch mean, or DP-SGD's noisy mean), weight decay
    included."""
    lr = cfg.step_lr if lr is None else lr
    names = list(params)
    combos = []
    for k in names:
        combo = [(1.0, g[k])]
        if cfg.momentum:
            combo.append((cfg.momentum, velocity[k]))
        combos.append(combo)
    new_v = dict(zip(names, B.lincomb_many(combos)))
    updates = B.lincomb_many([[(lr, new_v[k])] for k in names])
    new_p = {k: params[k] - u for k, u in zip(names, updates)}
    return new_p, new_v


def batch_of(data: Dataset, idx, task: str) -> tuple:
    """Rows ``idx`` of the dataset, time-major: x (T, N, F), m (T, N, 1), target (N, C) or
    (T, N, O)."""
    index = torch.as_tensor(idx)
    x = data.x[index].transpose(0, 1)  # (T, N, F)
    m = data.m[index].transpose(0, 1)  # (T, N, 1)
    target = data.target[index]
    if task == "regress_steps":
        target = target.transpose(0, 1)
    return x, m, target


StepFn = Callable[[np.ndarray, dict, dict, int], tuple[dict, dict]]


def run_schedule(
    B,
    plan: dict[int, list[np.ndarray]],
    step_key: Callable[[np.ndarray], tuple],
    step_fn: StepFn,
    params: dict,
    state: dict,
    *,
    epochs: int,
    first_step: int,
    prefetch: bool,
    progress: Callable[[dict], None] | None = None,
    on_epoch_end: Callable[[int, dict, dict], None] | None = None,
) -> tuple[dict, dict]:
    """The training loop of every mode on shares (and of the mirror): for each epoch of
    ``plan`` ({epoch: its batches' row indices}), for each batch, ``step_fn(idx, params, state,
    step)`` with the public 1-based step count ``first_step + n``, inside
    ``B.begin_step(step_key(idx), next) ... B.end_step()``.  ``prefetch``: name the next step's
    key (the dealer works ahead).  ``progress`` gets public facts only; ``on_epoch_end(epoch,
    params, state)`` after each epoch (1-based)."""
    keys = [step_key(idx) for batches in plan.values() for idx in batches]
    n_step = 0
    for epoch, batches in plan.items():
        for step, idx in enumerate(batches):
            t0 = time.perf_counter()
            n_step += 1
            following = keys[n_step] if prefetch and n_step < len(keys) else None
            B.begin_step(keys[n_step - 1], following)
            params, state = step_fn(idx, params, state, first_step + n_step)
            B.end_step()
            if progress:
                progress(
                    {
                        "epoch": epoch + 1,
                        "epochs": epochs,
                        "step": step + 1,
                        "steps": len(batches),
                        "seconds": time.perf_counter() - t0,
                    }
                )
        if on_epoch_end:
            on_epoch_end(epoch + 1, params, state)
    return params, state


def train(
    B,
    mcfg: ModelConfig,
    tcfg: TrainConfig,
    data: Dataset,
    params: dict,
    progress: Callable[[dict], None] | None = None,
    start_epoch: int = 0,
    velocity: dict | None = None,
    on_epoch_end: Callable[[int, dict, dict], None] | None = None,
    adversarial=None,
    value_range: float = 8.0,
) -> tuple[dict, dict]:
    """Run the schedule; returns (params, optimizer state).  ``progress`` gets public facts only.
    ``adversarial`` (an enabled AdversarialConfig): each step's gradient mixes clean and
    perturbed rows (:mod:`mpcrnn.adversarial`), perturbations clamped to
    [-value_range, value_range]."""
    velocity = velocity if velocity is not None else init_state(B, params, tcfg)
    T = data.x.shape[1]
    plan = {epoch: schedule(data.n_rows, tcfg, epoch) for epoch in range(start_epoch, tcfg.epochs)}
    per_epoch = len(schedule(data.n_rows, tcfg, 0))
    total = per_epoch * tcfg.epochs  # public step count

    def step_fn(idx, params, velocity, step):
        x, m, tgt = batch_of(data, idx, mcfg.task)
        if adversarial is not None and adversarial.enabled:
            from mpcrnn.adversarial import adversarial_gradients

            grads = adversarial_gradients(B, mcfg, adversarial, params, x, m, tgt, value_range)
        else:
            grads, _ = forward_backward(B, mcfg, params, x, m, tgt)
        return sgd_step(B, params, grads, velocity, tcfg, len(idx), step, total)

    return run_schedule(
        B,
        plan,
        lambda idx: (len(idx), T),  # public: lets the dealer work ahead
        step_fn,
        params,
        velocity,
        epochs=tcfg.epochs,
        first_step=per_epoch * start_epoch,
        prefetch=True,
        progress=progress,
        on_epoch_end=on_epoch_end,
    )


def masks(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(N,) lengths -> (N, T, 1) float 0/1 masks."""
    return (torch.arange(T)[None, :] < lengths[:, None]).to(torch.float64).unsqueeze(-1)


def plain_dataset(x: np.ndarray, lengths: np.ndarray, y: np.ndarray, mcfg: ModelConfig) -> Dataset:
    xt = torch.as_tensor(x, dtype=torch.float64)
    ln = torch.as_tensor(lengths)
    tgt = targets(y, mcfg)
    return Dataset(xt, masks(ln, xt.shape[1]), tgt)


def targets(y: np.ndarray, mcfg: ModelConfig) -> torch.Tensor:
    """What the head learns: one-hot labels (N, C), or the scaled regression targets (N, O);
    a language model: nothing (N, 0), its targets are its inputs shifted."""
    if mcfg.task == "lm":
        return torch.zeros((len(y), 0), dtype=torch.float64)
    if mcfg.task == "classify":
        return torch.nn.functional.one_hot(torch.as_tensor(y), mcfg.num_classes).double()
    return torch.as_tensor(y, dtype=torch.float64).reshape(len(y), -1)


def predict_plain(
    B, mcfg: ModelConfig, params: dict, x: np.ndarray, lengths: np.ndarray
) -> torch.Tensor:
    """Logits (N, C) with the plaintext backend (exact or polynomial activations)."""
    from mpcrnn.model import forward

    xt = torch.as_tensor(x, dtype=torch.float64)
    m = masks(torch.as_tensor(lengths), xt.shape[1])
    out, _ = forward(B, mcfg, params, xt.transpose(0, 1), m.transpose(0, 1))
    return out
