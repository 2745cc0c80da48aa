"""Adversarial training on shares: FGSM / PGD perturbations computed without opening anything.

Per training step, on the batch's x (T, N, I), masks m (T, N, 1) and targets (all shares)::

    g_clean, dx = forward_backward(x, input_grad=True)        dx = dL/dx, (T, N, I)
    FGSM:  x_adv = P(x + eps * s(dx))
    PGD:   x_0 = x;  x_{k+1} = P(x + clip(x_k + alpha * s(dL/dx at x_k) - x, -eps, eps)),  k < steps
    g     = (1 - mix) g_clean + mix g(x_adv)

``s(g) = m * (2 [g >= 0] - 1)``: the sign on valid steps (the sign-bit circuit), 0 on padding,
so padding stays 0 and sequence lengths stay secret.  ``P`` clamps to the declared value range
[-R, R] (R = the data declaration's value_bound: every valid input lies in it), so x_adv is an
input the declaration admits; the eps-ball holds by construction (FGSM) or by the clip (PGD).
dx is BPTT's ``da @ W_ih`` for the first layer, in the same round as the weight gradients.

Nothing is opened: the sign is a sign-bit circuit on shares, clamps are ReLUs on shares.  Cost
per step: FGSM adds one forward + backward pass (the gradient at x_adv), one sign-bit circuit
and one clamp over T*N*I values; PGD adds ``steps`` passes and their signs and clips.

The same code runs on the plaintext backend (the mirror) with exact or polynomial activations.
"""

from __future__ import annotations

from mpcrnn.config import AdversarialConfig, ModelConfig
from mpcrnn.model import forward_backward


def perturb(
    B,
    mcfg: ModelConfig,
    acfg: AdversarialConfig,
    params: dict,
    x,
    m,
    target,
    value_range: float,
    dx=None,
):
    """x_adv (T, N, I) for the batch (see the module docstring).  ``dx``: dL/dx at x if known."""
    if dx is None:
        _, _, dx = forward_backward(B, mcfg, params, x, m, target, input_grad=True)
    if acfg.method == "fgsm":
        (step,) = B.lincomb_many([[(1.0, x), (acfg.eps, B.masked_sign(dx, m))]])
        return B.clip_value(step, value_range)
    x_k = x
    for k in range(acfg.steps):
        if k:
            _, _, dx = forward_backward(B, mcfg, params, x_k, m, target, input_grad=True)
        (moved,) = B.lincomb_many([[(1.0, x_k), (-1.0, x), (acfg.step_size, B.masked_sign(dx, m))]])
        x_k = B.clip_value(x + B.clip_value(moved, acfg.eps), value_range)
    return x_k


def adversarial_gradients(
    B, mcfg: ModelConfig, acfg: AdversarialConfig, params: dict, x, m, target, value_range: float
) -> dict:
    """The step's gradients (summed over rows): (1 - mix) g(x) + mix g(x_adv), keyed like params."""
    g_clean, _, dx = forward_backward(B, mcfg, params, x, m, target, input_grad=True)
    x_adv = perturb(B, mcfg, acfg, params, x, m, target, value_range, dx=dx)
    g_adv, _ = forward_backward(B, mcfg, params, x_adv, m, target)
    names = list(g_clean)
    mixed = B.lincomb_many([[(1.0 - acfg.mix, g_clean[k]), (acfg.mix, g_adv[k])] for k in names])
    return dict(zip(names, mixed))
