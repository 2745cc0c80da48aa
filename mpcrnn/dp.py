"""Differentially private training inside MPC (DP-SGD, Abadi et al. 2016), accounted by Opacus.

Per step t, on the batch S_t drawn by Poisson sampling (every pooled row independently with
probability q), all on shares::

    g_r = grad of row r's loss               (|S_t|, D)  per-example BPTT (cells, per_example=True)
    u_r = g_r * min(1, C' / ||g_r||)         arithmetic.norm_clip: every row in the same ~40 rounds
                                             (a row above 64 C is zeroed: DP_RATIO_BITS = 12)
    G   = sum_r u_r + z                      z: arithmetic.joint_noise, N(0, sigma^2 C^2) even
                                             against a party that subtracts its own draw
    g   = G / (q N)                          Opacus's convention for Poisson sampling: the
                                             EXPECTED batch size, never the secret-free |S_t|
    v, theta <- momentum update              train.momentum_update (lr, momentum, weight decay)

The run's TrainConfig clip_value / clip_norm are NOT applied in DP mode (per-example clipping
replaces them); nothing is opened until the final weights (the same ledger as MPC mode).

Sensitivity and the clip margin.  One row changes G by ||u_r|| <= C.  The norm clip on shares
is approximate: its output norm is <= c (1 + CLIP_RELATIVE_ERROR) plus fixed-point rounding of
the final products (< 2p units of 2^-f per element, p parties: two truncations of p shares).
We therefore clip to ``C' = (C - 2 p sqrt(D) 2^-f) / (1 + CLIP_RELATIVE_ERROR)`` so that the
computed u_r has norm <= C, and calibrate the noise to C.  Exception, not covered: a
truncation failure inside the clip (probability ~|v| 2^(scale - 63) per element, CrypTen's
ignored wrap); :func:`clip_failure_bound` bounds it from public values and the report states
it.  Failures before the clip only corrupt that row's gradient, which is then clipped.

Sampling and what is public (see also docs/dp.md).  Poisson sampling from a schedule seed that
the parties draw jointly at the start of the run (each contributes 64 random bits; it is not
in the run file): every step's membership and size are known to every party (they index the
pooled shared rows), not to an outside observer of the released model.  Rate
``q = 1 / ceil(N / B)`` and ``ceil(N / B)`` steps per epoch (B = the configured batch size):
Opacus's DPDataLoader convention, so the plaintext Opacus baseline samples identically.

Accounting (:mod:`mpcrnn.dp_accounting`): ``opacus.accountants`` (RDP or PRV) over
(sigma, q, steps); sigma from ``opacus.accountants.utils.get_noise_multiplier`` when a target
epsilon is given.  That
epsilon holds against observers of the released weights who do not know the schedule.  Against
a data party (it knows the schedule and its own noise draws) amplification by sampling does not
apply: the report also gives the epsilon of the Gaussian mechanism with q = 1 over the largest
number of steps any row took part in (Opacus's accountant, zero-out adjacency: sensitivity C),
and the same for replace-one adjacency (sensitivity 2C, i.e. sigma / 2).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from mpcrnn.config import DPConfig, ModelConfig, TrainConfig
from mpcrnn.dp_accounting import (  # noqa: F401 - the DP API, re-exported
    clip_failure_bound,
    epsilon_spent,
    noise_for_epsilon,
    report,
)
from mpcrnn.dp_release import (  # noqa: F401 - the DP API, re-exported
    PREDICT_L1_SENSITIVITY,
    check_predict_epsilon,
    laplace_scores,
    predict_dp_note,
)
from protocols.arithmetic.norm_clip import DP_RATIO_BITS
from protocols.errors import ConfigError, expected_got

# ---------------------------------------------------------------- plan: sampling, sigma, clip


@dataclass(frozen=True)
class DPPlan:
    """Everything a DP run uses, computed identically by every party from public values.

    sample_rate: q.  steps_per_epoch: ceil(N / B).  n_rows: N (pooled).  noise_multiplier: sigma.
    clip: C (the sensitivity).  clip_applied: C' < C (see the module docstring).
    """

    sample_rate: float
    steps_per_epoch: int
    epochs: int
    n_rows: int
    noise_multiplier: float
    clip: float
    clip_applied: float
    world_size: int
    n_params: int
    frac_bits: int

    @property
    def expected_batch(self) -> float:
        return self.sample_rate * self.n_rows

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    @property
    def noise_std(self) -> float:
        """sigma C: the std of the noise every single party still faces."""
        return self.noise_multiplier * self.clip


def poisson_rate(n_rows: int, batch_size: int) -> tuple[float, int]:
    """(q, steps per epoch) = (1 / ceil(N / B), ceil(N / B)), Opacus's DPDataLoader convention."""
    if n_rows < 1 or batch_size < 1:
        raise ConfigError(
            expected_got("rows and batch size for Poisson sampling", ">= 1", (n_rows, batch_size))
        )
    steps = -(-n_rows // batch_size)
    return 1.0 / steps, steps


def clip_applied(clip: float, n_params: int, world_size: int, frac_bits: int) -> float:
    """C' = (C - 2 p sqrt(D) 2^-f) / (1 + CLIP_RELATIVE_ERROR): the computed clipped row has
    norm <= C."""
    from protocols.arithmetic.norm_clip import CLIP_RELATIVE_ERROR

    margin = 2 * max(world_size, 1) * math.sqrt(n_params) * 2.0**-frac_bits
    c = (clip - margin) / (1 + CLIP_RELATIVE_ERROR)
    if c <= 0.5 * clip:
        raise ConfigError(
            expected_got(
                "[dp] clip",
                f">= {4 * margin:.3g} for {n_params} parameters at {frac_bits} fractional bits",
                clip,
                "raise [dp] clip",
            )
        )
    return c


def make_plan(
    dp: DPConfig, tcfg: TrainConfig, n_rows: int, n_params: int, world_size: int, frac_bits: int
) -> DPPlan:
    """Resolve sigma (Opacus's get_noise_multiplier for a target epsilon) and the sampling."""
    dp.validate()
    q, steps = poisson_rate(n_rows, tcfg.batch_size)
    if dp.noise is not None:
        sigma = float(dp.noise)
    else:
        sigma = noise_for_epsilon(dp.epsilon, dp.delta, q, steps * tcfg.epochs, dp.accountant)
    return DPPlan(
        q,
        steps,
        tcfg.epochs,
        n_rows,
        sigma,
        float(dp.clip),
        clip_applied(dp.clip, n_params, world_size, frac_bits),
        world_size,
        n_params,
        frac_bits,
    )


def poisson_batches(n_rows: int, q: float, steps: int, seed: int, epoch: int) -> list[np.ndarray]:
    """One epoch of Poisson batches: row r is in step s's batch iff u[s, r] < q, u uniform from
    the generator (seed, epoch).  Sizes vary (possibly 0).  Public to the parties."""
    rng = np.random.default_rng([seed, epoch, 0xD7])
    member = rng.random((steps, n_rows)) < q
    return [np.flatnonzero(row) for row in member]


def agree_schedule_seed(session) -> int:
    """A fresh schedule seed: the sum mod 2^63 of 64 random bits from every party (one
    all-gather of public values, like :func:`mpcrnn.secure.agree`).  Unpredictable to anyone
    outside the run; known to every party."""
    mine = int.from_bytes(os.urandom(8), "little")
    if session.world_size == 1:
        return mine % 2**63
    from protocols.network.public_exchange import exchange_public

    return sum(int(v) for v in exchange_public(session, mine)) % 2**63


# ---------------------------------------------------------------- the step and the loop


Noise = Callable[[tuple[int, ...]], torch.Tensor]


def shared_noise(session, std: float, generator: torch.Generator | None = None) -> Noise:
    """Joint noise on shares (:func:`protocols.arithmetic.joint_noise.joint_gaussian`); generator
    None: OS entropy."""
    from protocols.arithmetic.joint_noise import joint_gaussian

    return lambda shape: joint_gaussian(session, shape, std, generator)


def plain_noise(std: float, generators: list[torch.Generator], frac_bits: int) -> Noise:
    """The mirror's noise: the same draws as parties holding ``generators`` (one per party)."""
    from protocols.arithmetic.joint_noise import joint_gaussian_plain

    return lambda shape: joint_gaussian_plain(shape, std, generators, frac_bits)


def dp_step(
    B,
    params: dict,
    rows_grads: dict | None,
    velocity: dict,
    tcfg: TrainConfig,
    plan: DPPlan,
    noise: Noise,
    step: int = 1,
    total: int = 1,
) -> tuple[dict, dict]:
    """One DP-SGD update.  rows_grads: per-example gradients keyed like params, each (N_t, *shape)
    (None for an empty batch).  Rounds: the norm clip (~40) + 3 batched truncations."""
    from mpcrnn.model import flatten
    from mpcrnn.train import update

    D = sum(v.numel() for v in params.values())
    if rows_grads is None:
        summed = B.const(0.0, torch.zeros(D, dtype=torch.float64)) + noise((D,))
    else:
        n = next(iter(rows_grads.values())).shape[0]
        rows = flatten({k: rows_grads[k] for k in params}, rows=n)  # (N_t, D)
        clipped = B.clip_rows(rows, plan.clip_applied, DP_RATIO_BITS)  # norms <= C; > 64 C: 0
        summed = clipped.sum(0) + noise((D,))  # (D,)
    combo = [(1.0 / plan.expected_batch, summed)]
    if tcfg.weight_decay and tcfg.optimizer != "adamw":
        combo.append((tcfg.weight_decay, flatten(params)))
    (g,) = B.lincomb_many([combo])
    return update(B, params, g, velocity, tcfg, step, total, grad_bound=dp_grad_bound(plan))


def dp_grad_bound(plan) -> float:
    """Public bound on the noisy mean gradient's entries for Adam on shares: 4 C (the clipped
    rows' mean has norm <= C N_t / qN; Poisson batches rarely exceed 2 qN, and the noise per
    entry is sigma C sqrt(p/(p-1)) / qN, far below C)."""
    return 4.0 * plan.clip


def train_dp(
    B,
    mcfg: ModelConfig,
    tcfg: TrainConfig,
    plan: DPPlan,
    data,
    params: dict,
    noise: Noise,
    schedule_seed: int,
    progress=None,
    start_epoch: int = 0,
    velocity: dict | None = None,
    on_epoch_end=None,
) -> tuple[dict, dict, list[np.ndarray]]:
    """DP-SGD over the Poisson schedule; returns (params, velocity, every batch of the run).
    ``data``: a :class:`mpcrnn.train.Dataset` (plaintext or shares).  ``progress`` gets public
    facts."""
    from mpcrnn.model import forward_backward
    from mpcrnn.train import batch_of, init_state, run_schedule

    velocity = velocity if velocity is not None else init_state(B, params, tcfg)
    T = data.x.shape[1]
    batches = {
        epoch: poisson_batches(
            plan.n_rows, plan.sample_rate, plan.steps_per_epoch, schedule_seed, epoch
        )
        for epoch in range(start_epoch, tcfg.epochs)
    }
    total = plan.steps_per_epoch * tcfg.epochs  # public step count

    def step_fn(idx, params, velocity, step):
        rows = None
        if len(idx):
            x, m, tgt = batch_of(data, idx, mcfg.task)
            rows, _ = forward_backward(B, mcfg, params, x, m, tgt, per_example=True)
        return dp_step(B, params, rows, velocity, tcfg, plan, noise, step, total)

    params, velocity = run_schedule(
        B,
        batches,
        lambda idx: ("dp", len(idx), T),
        step_fn,
        params,
        velocity,
        epochs=tcfg.epochs,
        first_step=plan.steps_per_epoch * start_epoch,
        prefetch=False,
        progress=progress,
        on_epoch_end=on_epoch_end,
    )
    return params, velocity, [idx for epoch in batches.values() for idx in epoch]


def run_dp(
    session,
    B,
    cfg,
    data,
    params: dict,
    n_rows: int,
    progress=None,
    noise_generator: torch.Generator | None = None,
    schedule_seed: int | None = None,
) -> tuple[dict, dict]:
    """DP-SGD on shares for :func:`mpcrnn.secure.run_training`: the public plan, a jointly drawn
    schedule seed, training; returns (params shares, the report's ``dp`` block).

    noise_generator / schedule_seed: tests only (None: this party's OS entropy / a joint seed).
    """
    n_params = sum(v.numel() for v in params.values())
    plan = make_plan(cfg.dp, cfg.train, n_rows, n_params, session.world_size, session.fp.frac_bits)
    seed = agree_schedule_seed(session) if schedule_seed is None else schedule_seed
    noise = shared_noise(session, plan.noise_std, noise_generator)
    params, _, batches = train_dp(
        B, cfg.model, cfg.train, plan, data, params, noise, seed, progress=progress
    )
    return params, report(cfg.dp, plan, batches)
