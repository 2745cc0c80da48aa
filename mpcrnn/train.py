"""Training on shares (or on plaintext, the mirror): SGD with momentum, weight decay, clipping.

Per step, on the batch of N rows drawn by the public schedule::

    g    = (1/N) * sum_rows grad            (one batched truncation)
    g    = clamp(g, -c, c)                  (one CrypTen ReLU over every gradient entry; c > 0)
    g    = g / max(1, ||g|| / C)            (optional: ||g||^2, ReLU, CrypTen inverse sqrt, 1 mult)
    v    = mu * v + g + wd * theta          (one batched truncation)
    theta = theta - lr * v                  (one batched truncation)

Public: the schedule (epochs, batch size, the permutation from ``seed``), hyper-parameters,
shapes.  Secret: data, labels, lengths, weights, gradients, momenta, losses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from mpcrnn.config import ModelConfig, TrainConfig
from mpcrnn.model import forward_backward


@dataclass
class Dataset:
    """Values (plaintext or shares) in the layout the cells take.

    x (N, T, I); m (N, T, 1) 0/1 masks at scale 2^f on shares; target (N, C) one-hot or (N, T, O).
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


def sgd_step(B, params: dict, grads: dict, velocity: dict, cfg: TrainConfig, n_rows: int) -> tuple[dict, dict]:
    names = list(params)
    (g_mean,) = [B.lincomb_many([[(1.0 / n_rows, grads[k])] for k in names])]
    if cfg.clip_value > 0 or cfg.clip_norm > 0:
        flat = torch.cat([g.reshape(-1) for g in g_mean])
        if cfg.clip_value > 0:
            flat = B.clip_value(flat, cfg.clip_value)
        if cfg.clip_norm > 0:
            flat = B.clip_norm(flat, cfg.clip_norm)
        out, pos = [], 0
        for g in g_mean:
            out.append(flat[pos : pos + g.numel()].reshape(g.shape))
            pos += g.numel()
        g_mean = out
    return momentum_update(B, params, dict(zip(names, g_mean)), velocity, cfg)


def momentum_update(B, params: dict, g: dict, velocity: dict, cfg: TrainConfig) -> tuple[dict, dict]:
    """v = mu v + g + wd theta;  theta = theta - lr v  (two batched truncations).  ``g`` is the
    step's gradient keyed like params (the clipped batch mean, or DP-SGD's noisy mean)."""
    names = list(params)
    combos = []
    for k in names:
        combo = [(1.0, g[k])]
        if cfg.momentum:
            combo.append((cfg.momentum, velocity[k]))
        if cfg.weight_decay:
            combo.append((cfg.weight_decay, params[k]))
        combos.append(combo)
    new_v = dict(zip(names, B.lincomb_many(combos)))
    updates = B.lincomb_many([[(cfg.lr, new_v[k])] for k in names])
    new_p = {k: params[k] - u for k, u in zip(names, updates)}
    return new_p, new_v


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
    """Run the schedule; returns (params, velocity).  ``progress`` gets public facts only.
    ``adversarial`` (an enabled AdversarialConfig): each step's gradient mixes clean and
    perturbed rows (:mod:`mpcrnn.adversarial`), perturbations clamped to [-value_range, value_range]."""
    velocity = velocity if velocity is not None else {k: B.const(0.0, v) for k, v in params.items()}
    T = data.x.shape[1]
    epochs = {epoch: schedule(data.n_rows, tcfg, epoch) for epoch in range(start_epoch, tcfg.epochs)}
    keys = [(len(idx), T) for batches in epochs.values() for idx in batches]  # public: lets the dealer work ahead
    n_step = 0
    for epoch, batches in epochs.items():
        for step, idx in enumerate(batches):
            t0 = time.perf_counter()
            index = torch.as_tensor(idx)
            x = data.x[index].transpose(0, 1)  # (T, N, I)
            m = data.m[index].transpose(0, 1)  # (T, N, 1)
            tgt = data.target[index] if mcfg.task == "classify" else data.target[index].transpose(0, 1)
            n_step += 1
            B.begin_step((len(idx), x.shape[0]), keys[n_step] if n_step < len(keys) else None)
            if adversarial is not None and adversarial.enabled:
                from mpcrnn.adversarial import adversarial_gradients

                grads = adversarial_gradients(B, mcfg, adversarial, params, x, m, tgt, value_range)
            else:
                grads, _ = forward_backward(B, mcfg, params, x, m, tgt)
            params, velocity = sgd_step(B, params, grads, velocity, tcfg, len(idx))
            B.end_step()
            if progress:
                progress({"epoch": epoch + 1, "epochs": tcfg.epochs, "step": step + 1, "steps": len(batches), "seconds": time.perf_counter() - t0})
        if on_epoch_end:
            on_epoch_end(epoch + 1, params, velocity)
    return params, velocity


def masks(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(N,) lengths -> (N, T, 1) float 0/1 masks."""
    return (torch.arange(T)[None, :] < lengths[:, None]).to(torch.float64).unsqueeze(-1)


def plain_dataset(x: np.ndarray, lengths: np.ndarray, y: np.ndarray, mcfg: ModelConfig) -> Dataset:
    xt = torch.as_tensor(x, dtype=torch.float64)
    ln = torch.as_tensor(lengths)
    tgt = torch.nn.functional.one_hot(torch.as_tensor(y), mcfg.num_classes).to(torch.float64)
    return Dataset(xt, masks(ln, xt.shape[1]), tgt)


def predict_plain(B, mcfg: ModelConfig, params: dict, x: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
    """Logits (N, C) with the plaintext backend (exact or polynomial activations)."""
    from mpcrnn.model import forward

    xt = torch.as_tensor(x, dtype=torch.float64)
    m = masks(torch.as_tensor(lengths), xt.shape[1])
    out, _ = forward(B, mcfg, params, xt.transpose(0, 1), m.transpose(0, 1))
    return out
