"""Attacks on a released model, in plain torch: FGSM and PGD (L-infinity) on the exported
``torch.nn.RNN/GRU/LSTM`` + linear head, for measuring robust accuracy.

A released model is plaintext by nature, so these run outside MPC, on the evaluating party's
own rows.  They perturb exactly as :mod:`mpcrnn.adversarial` does during training: valid time
steps only (padding stays 0), sign(0) = +1, steps clamped to the declared value range
[-R, R]; PGD starts at x (no random start) and projects onto the eps-ball after every step.
x: (N, T, I) scaled features, lengths (N,), y (N,) class indices.
"""

from __future__ import annotations

import torch

from protocols.errors import ConfigError, expected_got


def _valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(N, T, 1) 0/1 mask of valid steps."""
    return (torch.arange(x.shape[1])[None, :] < lengths[:, None]).to(x.dtype).unsqueeze(-1)


def _signed_grad(model, x, lengths, y) -> torch.Tensor:
    xr = x.detach().clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(xr, lengths), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, xr)
    return _valid(x, lengths) * torch.where(g >= 0, 1.0, -1.0).to(x.dtype)


def fgsm(model, x, lengths, y, eps: float, value_range: float) -> torch.Tensor:
    """x + eps * sign(dL/dx) on valid steps, clamped to [-R, R]."""
    return (x + eps * _signed_grad(model, x, lengths, y)).clamp(-value_range, value_range).detach()


def pgd(
    model, x, lengths, y, eps: float, alpha: float, steps: int, value_range: float
) -> torch.Tensor:
    """``steps`` FGSM steps of size alpha, each projected onto the eps-ball around x and [-R, R]."""
    x_k = x
    for _ in range(steps):
        moved = (x_k + alpha * _signed_grad(model, x_k, lengths, y) - x).clamp(-eps, eps)
        x_k = (x + moved).clamp(-value_range, value_range).detach()
    return x_k


def robust_accuracy(
    model,
    x,
    lengths,
    y,
    method: str,
    eps: float,
    value_range: float,
    steps: int = 10,
    alpha: float | None = None,
) -> float:
    """Accuracy on the attacked rows (method "fgsm" or "pgd"; PGD's alpha defaults to
    2.5 eps / steps; "none": the clean rows)."""
    model = model.double().eval()
    x = torch.as_tensor(x, dtype=torch.float64)
    lengths, y = torch.as_tensor(lengths), torch.as_tensor(y)
    if method == "none":
        adv = x
    elif method == "fgsm":
        adv = fgsm(model, x, lengths, y, eps, value_range)
    elif method == "pgd":
        adv = pgd(model, x, lengths, y, eps, alpha or 2.5 * eps / steps, steps, value_range)
    else:
        raise ConfigError(expected_got("attack method", "none, fgsm or pgd", method))
    with torch.no_grad():
        return float((model(adv, lengths).argmax(1) == y).double().mean())
