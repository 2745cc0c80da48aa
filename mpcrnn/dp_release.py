"""``mpcrnn predict --dp-epsilon``: noisy release of a released model's class probabilities.

A per-query guarantee (the Laplace mechanism on each probability vector), weaker than DP-SGD
(:mod:`mpcrnn.dp`), which protects the training data once for unlimited use of the weights.
"""

from __future__ import annotations

import os

import torch

from protocols.errors import ConfigError, expected_got

PREDICT_L1_SENSITIVITY = 2.0  # any two probability vectors differ by at most 2 in L1


def laplace_scores(
    probs: torch.Tensor, epsilon: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Release (N, C) softmax probabilities with Laplace noise of scale 2 / epsilon per entry.

    Each row's vector is epsilon-DP with respect to ANY change of what produced it (the training
    data behind the model, or the query row), because its L1 sensitivity is at most 2.  It is a
    per-query guarantee: N released rows about the same training data compose to N epsilon
    (basic composition).  ``generator=None``: inverse-CDF on 53-bit uniforms from ``os.urandom``;
    a floating-point Laplace sampler (Mironov 2012 caveat), output rounded to 2^-20.
    """
    check_predict_epsilon(epsilon)
    scale = PREDICT_L1_SENSITIVITY / epsilon
    n = probs.numel()
    if generator is None:
        raw = torch.frombuffer(bytearray(os.urandom(8 * max(n, 1))), dtype=torch.int64)[:n]
        u = (((raw >> 11) & ((1 << 53) - 1)).to(torch.float64) + 0.5) / 2.0**53 - 0.5  # (-1/2, 1/2)
    else:
        u = torch.rand(n, generator=generator, dtype=torch.float64) - 0.5
    noise = -scale * torch.sign(u) * torch.log1p(-2 * u.abs().clamp(max=0.5 - 2.0**-54))
    out = probs.to(torch.float64) + noise.reshape(probs.shape)
    return torch.round(out * 2.0**20) / 2.0**20


def check_predict_epsilon(epsilon) -> None:
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon < float("inf")):
        raise ConfigError(
            expected_got("prediction epsilon (--dp-epsilon)", "a finite number > 0", epsilon)
        )


def predict_dp_note(epsilon: float, queries: int) -> dict:
    """What ``mpcrnn predict --dp-epsilon`` states next to the noisy scores."""
    return {
        "mechanism": "Laplace on each released probability vector",
        "epsilon_per_query": epsilon,
        "l1_sensitivity": PREDICT_L1_SENSITIVITY,
        "laplace_scale": PREDICT_L1_SENSITIVITY / epsilon,
        "queries": queries,
        "epsilon_all_queries_basic_composition": epsilon * queries,
        "note": "per-query guarantee: each released vector is epsilon-DP w.r.t. any change of "
        "the training data or of its query row; the rows of one call (and every later call) "
        "compose. Weaker than DP-SGD, which protects the training data once for unlimited use "
        "of the weights; these weights are still in the clear for whoever holds the model file",
    }


def laplace_values(values, low: float, high: float, epsilon: float, generator=None):
    """Release regression values (numpy (N, O), target units) clamped to the public [low, high]
    with Laplace noise of scale (high - low) / epsilon per value: a clamped value moves by at
    most high - low under any change of what produced it (sensitivity high - low), so each
    released value is epsilon-DP per query (O values of a row compose to O epsilon)."""
    import numpy as np

    clamped = torch.as_tensor(np.clip(values, low, high), dtype=torch.float64)
    noisy = laplace_scores(clamped, epsilon * PREDICT_L1_SENSITIVITY / (high - low), generator)
    return noisy.numpy()


def predict_values_dp_note(spec, epsilon: float, queries: int) -> dict:
    """What ``mpcrnn predict --dp-epsilon`` states next to noisy regression values."""
    width = spec.target_high - spec.target_low
    return {
        "mechanism": "Laplace on each released value, clamped to [target_low, target_high]",
        "epsilon_per_value": epsilon,
        "sensitivity": width,
        "laplace_scale": width / epsilon,
        "values": queries,
        "epsilon_all_values_basic_composition": epsilon * queries,
        "note": "per-query guarantee: each released value is epsilon-DP w.r.t. any change of the "
        "training data or of its query row (the clamp bounds its range by the public target "
        "bounds); values of one call and every later call compose",
    }


# ---------------------------------------------------------------- a language model's tokens

LM_LOGP_FLOOR = 4.0  # L: log-probabilities clamped to [-L, 0] before the noisy max (nats)


def noisy_next_token(
    logits: torch.Tensor, epsilon: float, temperature: float = 1.0, generator=None
) -> int:
    """``predict --generate --dp-epsilon``: one next token by report-noisy-max with Gumbel noise
    (the exponential mechanism).  Utility u_k = max(log_softmax(logits / temperature)_k, -L) in
    [-L, 0], so any change of what produced the logits (the training data behind the model, the
    prompt) moves each u_k by at most L (sensitivity L); argmax_k(u_k + Gumbel(2 L / epsilon))
    draws k with probability proportional to exp(epsilon u_k / (2 L)): epsilon-DP per token.
    ``generator=None``: uniforms from ``os.urandom`` (as :func:`laplace_scores`)."""
    check_predict_epsilon(epsilon)
    u = torch.log_softmax(logits.double() / temperature, -1).clamp(min=-LM_LOGP_FLOOR)
    n = u.numel()
    if generator is None:
        raw = torch.frombuffer(bytearray(os.urandom(8 * n)), dtype=torch.int64)[:n]
        v = (((raw >> 11) & ((1 << 53) - 1)).to(torch.float64) + 0.5) / 2.0**53  # (0, 1)
    else:
        v = torch.rand(n, generator=generator, dtype=torch.float64).clamp(min=2.0**-53)
    gumbel = -torch.log(-torch.log(v))
    return int((u + (2 * LM_LOGP_FLOOR / epsilon) * gumbel).argmax())


def generate_dp_note(epsilon: float, tokens: int) -> dict:
    """What ``mpcrnn predict --generate --dp-epsilon`` states next to the text."""
    return {
        "mechanism": "report-noisy-max with Gumbel noise (exponential mechanism) on the "
        "next-token log-probabilities clamped to [-L, 0]",
        "epsilon_per_token": epsilon,
        "sensitivity": LM_LOGP_FLOOR,
        "gumbel_scale": 2 * LM_LOGP_FLOOR / epsilon,
        "tokens": tokens,
        "epsilon_all_tokens_basic_composition": epsilon * tokens,
        "note": "per-token guarantee: each sampled token is epsilon-DP w.r.t. any change of the "
        "training data or of the prompt; the tokens of one call (and every later call) compose. "
        "The weights themselves are in the clear for whoever holds the model file",
    }
