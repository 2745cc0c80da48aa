"""Training pieces: clipping on shares vs torch, the activation guard on the real data, and
configurations that the fixed-point ring cannot hold."""

from __future__ import annotations

import pytest
import torch

from mpcrnn import data as D
from mpcrnn.backend import PlainBackend
from mpcrnn.config import ActivationConfig, ModelConfig, RunConfig, TrainConfig
from mpcrnn.model import init_params
from mpcrnn.train import plain_dataset, train
from protocols.errors import ConfigError, PrecisionError


def _grad():
    g = torch.Generator().manual_seed(3)
    return torch.randn(200, generator=g, dtype=torch.float64) * 0.7


def clip_party(session):
    rank = session.rank
    from mpcrnn.backend import SharedBackend
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import share

    s = session
    B = SharedBackend(s, ActivationConfig())
    x = share(s, _grad() if rank == 2 else None, src=2, shape=(200,))
    everyone = tuple(range(s.world_size))
    return (
        reveal(s, B.clip_value(x, 0.5), to=everyone, what="v", why="test"),
        reveal(s, B.clip_norm(x, 2.0), to=everyone, what="n", why="test"),
        reveal(s, B.clip_norm(x, 100.0), to=everyone, what="n2", why="test"),
    )


def test_clipping_on_three_parties_matches_torch(parties):
    v, n, n2 = parties(clip_party, world_size=3, provider="TTP")[0]
    g = _grad()
    torch.testing.assert_close(v, g.clamp(-0.5, 0.5), atol=1e-4, rtol=0)
    ref = g.clone().requires_grad_(True)
    ref.grad = g.clone()
    torch.nn.utils.clip_grad_norm_([ref], 2.0)
    torch.testing.assert_close(
        n, ref.grad, atol=1e-4, rtol=2e-3
    )  # CrypTen inv_sqrt: ~1e-3 relative
    assert abs(float(n.norm()) - 2.0) < 1e-2
    torch.testing.assert_close(
        n2, g, atol=1e-4, rtol=2e-3
    )  # norm below c: unchanged (up to inv_sqrt(1))
    torch.testing.assert_close(
        PlainBackend(ActivationConfig()).clip_norm(g, 2.0), ref.grad, atol=0, rtol=1e-6
    )  # torch adds 1e-6 to the norm


# the 3x longer schedule trains 18 epochs (~10 s on a busy core): `slow`, out of `make test-fast`
@pytest.mark.parametrize("epochs", [6, pytest.param(18, marks=pytest.mark.slow)])
def test_guard_holds_on_japanese_vowels(epochs):
    """The default polynomial's interval contains every gate pre-activation of the plaintext
    mirror trained on the real data with the demo schedule (6 epochs), and with a 3x longer
    one."""
    spec = D.JAPANESE_VOWELS_SPEC
    tr = D.scale_features(D.japanese_vowels("train"), spec)
    mcfg = ModelConfig()
    B = PlainBackend(ActivationConfig())
    train(
        B,
        mcfg,
        TrainConfig(epochs=epochs),
        plain_dataset(tr.x, tr.lengths, tr.y, mcfg),
        init_params(mcfg, 0),
    )
    assert 0.3 < B.max_abs_preactivation < 0.9, (epochs, B.max_abs_preactivation)


def test_too_many_fraction_bits_is_a_precision_error():
    RunConfig(spec=D.JAPANESE_VOWELS_SPEC).validate()
    with pytest.raises(
        PrecisionError,
        match=r"largest \|value\| of gate products: expected <= 8 with 20 fractional bits.*got 256",
    ):
        RunConfig(spec=D.JAPANESE_VOWELS_SPEC, frac_bits=20).validate()


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"lr": 0.0}, r"\[train\] lr: expected in \(0, 10\], got 0.0"),
        ({"momentum": 1.0}, r"momentum: expected in \[0, 1\), got 1.0"),
        ({"clip_norm": -1.0}, r"clip_value and clip_norm: expected >= 0"),
        ({"epochs": 0}, r"\[train\] epochs: expected >= 1"),
    ],
)
def test_bad_train_config(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        TrainConfig(**kwargs).validate()
