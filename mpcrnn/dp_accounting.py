"""DP-SGD accounting with Opacus, and the run report's ``dp`` block (public values only).

The privacy statement of :mod:`mpcrnn.dp` (its module docstring): epsilon from
``opacus.accountants`` over (sigma, q, steps); sigma from Opacus's ``get_noise_multiplier`` for a
target epsilon; the epsilon against a data party that knows the schedule; and the probability,
bounded from public values, of a truncation failure inside the norm clip (excluded from delta).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

from mpcrnn.config import DPConfig
from protocols.errors import ConfigError, expected_got

if TYPE_CHECKING:
    from mpcrnn.dp import DPPlan


def epsilon_spent(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str
) -> float:
    """Opacus's accountant over ``steps`` identical steps (what PrivacyEngine records): inf
    for sigma = 0."""
    if steps == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    from opacus.accountants import create_accountant

    acc = create_accountant(mechanism=accountant)
    for _ in range(steps):
        acc.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)
    # Opacus's analysis warns (numpy log of 0 at q = 1; optimal RDP order at the edge): values
    # unaffected
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return float(acc.get_epsilon(delta=delta))


def noise_for_epsilon(
    target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str
) -> float:
    """sigma from ``opacus.accountants.utils.get_noise_multiplier`` (epsilon_tolerance 0.01)."""
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return float(
                get_noise_multiplier(
                    target_epsilon=target_epsilon,
                    target_delta=delta,
                    sample_rate=sample_rate,
                    steps=steps,
                    accountant=accountant,
                )
            )
    except ValueError as exc:  # "The privacy budget is too low."
        raise ConfigError(
            expected_got(
                "[dp] epsilon",
                "a budget Opacus can reach with sigma <= 1e6",
                target_epsilon,
                f"Opacus: {exc}",
            )
        ) from None


def clip_failure_bound(rows_clipped: int, plan: DPPlan) -> float:
    """Union bound on a truncation failure inside the norm clip over the run, from public values.

    Per row: x*A (D elements at scale 2^(f+G), sum_j |x_j A| <= sqrt(2 D) C') and (x A) y (scale
    2^2f, sum <= sqrt(D) C' (1 + err)); a failure has probability ~|v| / 2^63 (v encoded).  The
    per-row scalars (||x||^2, the Newton iterates) depend on the row's norm and are left out.
    """
    from protocols.arithmetic.norm_clip import CLIP_RELATIVE_ERROR, DP_RATIO_BITS, scale_bits

    f, D, c = plan.frac_bits, plan.n_params, plan.clip_applied
    G = scale_bits(DP_RATIO_BITS)
    per_row = (
        math.sqrt(2 * D) * c * 2.0 ** (f + G)
        + math.sqrt(D) * c * (1 + CLIP_RELATIVE_ERROR) * 2.0 ** (2 * f)
    ) / 2.0**63
    return rows_clipped * per_row


def report(dp: DPConfig, plan: DPPlan, batches: list[np.ndarray]) -> dict:
    """The run report's ``dp`` block (public values only): epsilon, delta, accountant, sigma, C,
    sampling, the epsilon against a schedule-aware party, and the stated exclusions."""
    eps = epsilon_spent(
        plan.noise_multiplier, plan.sample_rate, plan.steps, dp.delta, dp.accountant
    )
    fail = clip_failure_bound(int(sum(len(b) for b in batches)), plan)
    return {
        "mechanism": (
            "DP-SGD inside MPC: per-example clipping and jointly generated Gaussian noise on shares"
        ),
        "epsilon": _num(eps),
        "delta": dp.delta,
        "accountant": "opacus.accountants."
        + ("RDPAccountant" if dp.accountant == "rdp" else "PRVAccountant"),
        "noise_multiplier": plan.noise_multiplier,
        "noise_multiplier_from": (
            "given ([dp] noise)"
            if dp.noise is not None
            else f"opacus get_noise_multiplier(target_epsilon={dp.epsilon}, delta={dp.delta})"
        ),
        "clip_norm": plan.clip,
        "clip_applied": plan.clip_applied,
        "sampling": _sampling(plan, batches),
        "noise": _noise(plan),
        "epsilon_vs_schedule_aware_party": _schedule_aware(dp, plan, batches),
        "delta_excludes": {
            "clip_truncation_failure_bound": fail,
            "note": "the guarantee is conditional on no truncation failure inside the norm clip; "
            "unconditionally delta + (1 + e^epsilon) * this bound",
        },
        "delta_vs_1_over_n": "ok"
        if dp.delta < 1.0 / plan.n_rows
        else f"delta >= 1/N = {1.0 / plan.n_rows:.3g}: too large to be meaningful",
    }


def _sampling(plan: DPPlan, batches: list[np.ndarray]) -> dict:
    return {
        "method": "poisson",
        "sample_rate": plan.sample_rate,
        "expected_batch_size": plan.expected_batch,
        "steps": plan.steps,
        "steps_per_epoch": plan.steps_per_epoch,
        "epochs": plan.epochs,
        "rows": plan.n_rows,
        "batch_sizes_min_max": [int(min(map(len, batches))), int(max(map(len, batches)))]
        if batches
        else None,
        "public_to": "every data party (membership and size of every batch); not in the run file",
        "gradient_divided_by": "the expected batch size q N",
    }


def _noise(plan: DPPlan) -> dict:
    p = plan.world_size
    return {
        "parties": p,
        "std_each_party": _per_party(plan),
        "std_total": plan.noise_std * math.sqrt(p / max(p - 1, 1)),
        "std_left_after_any_one_party_subtracts_its_own": plan.noise_std,
        "units": "per coordinate of the summed clipped gradients (before / qN)",
        "covers": "one semi-honest party (not coalitions)",
    }


def _schedule_aware(dp: DPConfig, plan: DPPlan, batches: list[np.ndarray]) -> dict:
    """Epsilon against a data party: q = 1 over the most steps any row took part in."""
    counts = np.zeros(plan.n_rows, dtype=np.int64)
    for b in batches:
        counts[b] += 1
    k = int(counts.max()) if len(counts) else 0
    eps_zero_out = epsilon_spent(plan.noise_multiplier, 1.0, k, dp.delta, dp.accountant)
    eps_replace = epsilon_spent(plan.noise_multiplier / 2, 1.0, k, dp.delta, dp.accountant)
    return {
        "epsilon": _num(eps_zero_out),
        "epsilon_replace_one": _num(eps_replace),
        "max_steps_of_any_row": k,
        "sample_rate": 1.0,
        "note": "a data party knows the batch schedule: no amplification by sampling. "
        "epsilon: zero-out adjacency (a row replaced by one with zero gradient; sensitivity C); "
        "epsilon_replace_one: sensitivity 2C",
    }


def _per_party(plan: DPPlan) -> float:
    from protocols.arithmetic.joint_noise import per_party_std

    return per_party_std(plan.noise_std, plan.world_size)


def _num(x: float) -> float | None:
    return None if not math.isfinite(x) else x
