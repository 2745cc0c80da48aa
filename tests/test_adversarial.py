"""Adversarial training on shares (mpcrnn.adversarial): the input gradient, the perturbation,
the mixed training step, and what is opened.

Tolerances (as in tests/test_cells.py): the mirror with exact activations against torch
autograd, 1e-9 (float64 both); shares against the mirror with the same polynomials, 2e-2 on
dL/dx (fixed point, f = 16).  x_adv on shares equals the mirror's x_adv exactly where the two
agree on the sign of dx; they may disagree only where |dx| is within the fixed-point error of 0,
and the tests count those places.
"""

from __future__ import annotations

import pytest
import torch

from mpcrnn.adversarial import adversarial_gradients, perturb
from mpcrnn.backend import PlainBackend, SharedBackend
from mpcrnn.config import ActivationConfig, AdversarialConfig, ModelConfig
from mpcrnn.model import export_state_dicts, forward_backward, init_params
from mpcrnn.train import masks

CASES = [(c, L) for c in ("rnn", "gru", "lstm") for L in (1, 2)]
SIGN_TOL = 2e-2  # |dx| below this may be rounded across 0 on shares (the dx tolerance)


def _batch(cell="gru", layers=1, seed=0):
    """test_cells' batch with its padding zeroed, as the data intake gives."""
    from test_cells import _batch as cells_batch

    cfg, x, lengths, y = cells_batch(cell, layers, seed)
    return cfg, x * masks(lengths, x.shape[1]), lengths, y


def _mirror_dx(cfg, x, lengths, y, exact):
    B = PlainBackend(ActivationConfig(exact=exact))
    onehot = torch.nn.functional.one_hot(y, cfg.num_classes).double()
    m = masks(lengths, x.shape[1]).transpose(0, 1)
    return forward_backward(
        B, cfg, init_params(cfg, 1), x.transpose(0, 1), m, onehot, input_grad=True
    )


@pytest.mark.parametrize("cell,layers", CASES)
def test_input_gradient_matches_torch_autograd(cell, layers):
    cfg, x, lengths, y = _batch(cell, layers)
    grads, _, dx = _mirror_dx(cfg, x, lengths, y, exact=True)
    model = export_state_dicts(cfg, init_params(cfg, 1)).double()
    xr = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(model(xr, lengths), y, reduction="sum").backward()
    torch.testing.assert_close(dx.transpose(0, 1), xr.grad, atol=1e-9, rtol=0)
    assert (
        dx.transpose(0, 1)[masks(lengths, 6).squeeze(-1) == 0] == 0
    ).all()  # padding: no gradient
    plain, _ = forward_backward(
        PlainBackend(ActivationConfig(exact=True)),
        cfg,
        init_params(cfg, 1),
        x.transpose(0, 1),
        masks(lengths, 6).transpose(0, 1),
        torch.nn.functional.one_hot(y, 3).double(),
    )
    for k in plain:  # asking for dx changes nothing else
        torch.testing.assert_close(grads[k], plain[k], atol=0, rtol=0)


def test_fgsm_mirror_is_torch_fgsm():
    cfg, x, lengths, y = _batch("lstm", 1)
    acfg = AdversarialConfig(method="fgsm", eps=0.1)
    B = PlainBackend(ActivationConfig(exact=True))
    m = masks(lengths, 6).transpose(0, 1)
    onehot = torch.nn.functional.one_hot(y, 3).double()
    x_adv = perturb(
        B, cfg, acfg, init_params(cfg, 1), x.transpose(0, 1), m, onehot, value_range=8.0
    ).transpose(0, 1)
    from mpcrnn.attacks import fgsm

    ref = fgsm(
        export_state_dicts(cfg, init_params(cfg, 1)).double(),
        x,
        lengths,
        y,
        eps=0.1,
        value_range=8.0,
    )
    torch.testing.assert_close(x_adv, ref, atol=1e-12, rtol=0)
    assert ((x_adv - x).abs() <= 0.1 + 1e-12).all()
    assert (x_adv[masks(lengths, 6).squeeze(-1) == 0] == 0).all()


def _shared_adv(session, cfg, acfg, x, lengths, y, src=0):
    from protocols.arithmetic.sharing import public, share

    B = SharedBackend(session, ActivationConfig())
    m = masks(lengths, x.shape[1])
    onehot = torch.nn.functional.one_hot(y, cfg.num_classes).double()
    sh = lambda v: share(session, v if session.rank == src else None, src=src, shape=tuple(v.shape))  # noqa: E731
    params = {k: public(session, v) for k, v in init_params(cfg, 1).items()}
    xs, ms, ts = sh(x).transpose(0, 1), sh(m).transpose(0, 1), sh(onehot)
    _, _, dx = forward_backward(B, cfg, params, xs, ms, ts, input_grad=True)
    x_adv = perturb(B, cfg, acfg, params, xs, ms, ts, value_range=8.0, dx=dx)
    grads = adversarial_gradients(B, cfg, acfg, params, xs, ms, ts, value_range=8.0)
    return dx, x_adv, grads


def _mirror_adv(cfg, acfg, x, lengths, y):
    B = PlainBackend(ActivationConfig())
    m = masks(lengths, 6).transpose(0, 1)
    onehot = torch.nn.functional.one_hot(y, 3).double()
    params = init_params(cfg, 1)
    _, _, dx = forward_backward(B, cfg, params, x.transpose(0, 1), m, onehot, input_grad=True)
    x_adv = perturb(B, cfg, acfg, params, x.transpose(0, 1), m, onehot, value_range=8.0, dx=dx)
    return (
        dx,
        x_adv,
        adversarial_gradients(B, cfg, acfg, params, x.transpose(0, 1), m, onehot, value_range=8.0),
    )


def _compare(shared, decode, cfg, acfg, x, lengths, y) -> int:
    """Assert shares vs mirror; returns the number of x_adv entries whose sign step differs."""
    dx_sh, adv_sh, g_sh = (
        decode(v) if not isinstance(v, dict) else {k: decode(t) for k, t in v.items()}
        for v in shared
    )
    dx, adv, g = _mirror_adv(cfg, acfg, x, lengths, y)
    torch.testing.assert_close(dx_sh, dx, atol=SIGN_TOL, rtol=0)
    differs = (adv_sh - adv).abs() > 1e-3  # a sign step is eps (or alpha) wide; rounding is ~1e-5
    assert (dx[differs].abs() < SIGN_TOL).all(), "x_adv differs where dx is clearly signed"
    torch.testing.assert_close(adv_sh[~differs], adv[~differs], atol=1e-3, rtol=0)
    if not differs.any():
        for k in g:
            torch.testing.assert_close(g_sh[k], g[k], atol=2e-2, rtol=0, msg=k)
    return int(differs.sum())


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
@pytest.mark.parametrize("cell,layers", [("gru", 1), ("lstm", 2), ("rnn", 1)])
def test_shares_match_the_mirror_in_process(cell, layers, method):
    from protocols.network.parties import init_in_process

    session = init_in_process()
    s = session
    cfg, x, lengths, y = _batch(cell, layers)
    acfg = AdversarialConfig(method=method, eps=0.1, steps=3, alpha=0.04)
    n_differ = _compare(
        _shared_adv(s, cfg, acfg, x, lengths, y), s.fp.decode, cfg, acfg, x, lengths, y
    )
    assert n_differ <= 2, n_differ  # of 90 values; measured 0 here


def adv_party(session, cell, layers, method):
    from protocols.arithmetic.reveal import reveal

    s = session
    cfg, x, lengths, y = _batch(cell, layers)
    acfg = AdversarialConfig(method=method, eps=0.1, steps=2, alpha=0.05)
    dx, x_adv, grads = _shared_adv(s, cfg, acfg, x, lengths, y, src=s.world_size - 1)
    everyone = tuple(range(s.world_size))
    op = lambda v, w: reveal(s, v, to=everyone, what=w, why="test")  # noqa: E731
    return op(dx, "dx"), op(x_adv, "x_adv"), {k: op(v, k) for k, v in grads.items()}


@pytest.mark.parametrize("cell,layers,method", [("gru", 1, "fgsm"), ("lstm", 1, "pgd")])
def test_three_parties_and_dealer_match_the_mirror(cell, layers, method, parties):
    outs = parties(
        adv_party, world_size=3, provider="TTP", args=(cell, layers, method), timeout_s=300
    )
    cfg, x, lengths, y = _batch(cell, layers)
    acfg = AdversarialConfig(method=method, eps=0.1, steps=2, alpha=0.05)
    for out in outs:
        assert _compare(out, lambda v: v, cfg, acfg, x, lengths, y) <= 2


def test_config_is_validated():
    from protocols.errors import ConfigError

    for bad in (
        dict(method="cw"),
        dict(method="fgsm", eps=0),
        dict(method="pgd", alpha=0.5),
        dict(method="pgd", steps=0),
        dict(method="fgsm", mix=0),
    ):
        with pytest.raises(ConfigError):
            AdversarialConfig(**bad).validate()
    # the PGD step follows eps when not set, so a small eps alone is valid (FGSM and PGD)
    for method in ("fgsm", "pgd"):
        small = AdversarialConfig(method=method, eps=0.02)
        small.validate()
        assert small.step_size == pytest.approx(0.005)
    assert AdversarialConfig(method="pgd", eps=0.1, alpha=0.04).step_size == 0.04


def test_attack_command_on_a_released_model(tmp_path, subprocesses):
    """`mpcrnn attack` loads a model file and prints clean and robust accuracy (plain torch)."""
    import json
    import sys
    from pathlib import Path

    from mpcrnn import data as D
    from mpcrnn.model_file import write_model_file

    cfg = ModelConfig(cell="gru", input_size=12, hidden_size=4, num_classes=9)
    write_model_file(
        tmp_path / "m.pt", cfg, ActivationConfig(), D.JAPANESE_VOWELS_SPEC, init_params(cfg, 0)
    )
    rows = D.split_rows(D.japanese_vowels("test"), [20], 0)[0]
    D.write_npz(rows, tmp_path / "t.npz")
    mpcrnn = str(Path(sys.executable).with_name("mpcrnn"))
    r = subprocesses.run(
        [
            mpcrnn,
            "attack",
            "--model",
            str(tmp_path / "m.pt"),
            "--data",
            str(tmp_path / "t.npz"),
            "--eps",
            "0.1",
            "--pgd-steps",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["rows"] == 20 and set(got) == {"rows", "clean", "fgsm 0.1", "pgd 0.1"}
    assert got["pgd 0.1"] <= got["clean"] + 1e-9
    bad = subprocesses.run(
        [
            mpcrnn,
            "attack",
            "--model",
            str(tmp_path / "m.pt"),
            "--data",
            str(tmp_path / "t.npz"),
            "--eps",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: --eps: expected in (0, 1] (scaled feature units), got 3.0"
    ]
