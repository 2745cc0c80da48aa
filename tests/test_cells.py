"""Cells: the mirror against torch autograd, export into torch, and shares against the mirror.

Tolerances:
* mirror (exact activations) vs torch.nn.{RNN,GRU,LSTM} + autograd: 1e-10 (float64 vs float64).
* shares vs mirror (same polynomials): fixed point with f = 16 bits; each truncation errs by
  <= 2^-16 and errors accumulate over T steps and through the backward pass; measured worst
  ~5e-3 on these sizes; we assert 2e-2 on logits/probabilities and gradients (CrypTen's softmax
  adds ~1e-3).
"""

from __future__ import annotations

import pytest
import torch

from mpcrnn.backend import PlainBackend, SharedBackend
from mpcrnn.config import ActivationConfig, ModelConfig
from mpcrnn.model import export_state_dicts, forward_backward, init_params
from mpcrnn.train import masks

CASES = [(c, L) for c in ("rnn", "gru", "lstm") for L in (1, 2)]


def _batch(cell="gru", layers=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = ModelConfig(cell=cell, input_size=3, hidden_size=4, num_layers=layers, num_classes=3)
    x = torch.rand(5, 6, 3, generator=g, dtype=torch.float64) * 2 - 1
    lengths = torch.tensor([6, 3, 1, 5, 6])
    y = torch.tensor([0, 2, 1, 1, 0])
    return cfg, x, lengths, y


def _mirror(cfg, x, lengths, y, exact):
    B = PlainBackend(ActivationConfig(exact=exact))
    onehot = torch.nn.functional.one_hot(y, cfg.num_classes).double()
    m = masks(lengths, x.shape[1]).transpose(0, 1)
    return forward_backward(B, cfg, init_params(cfg, 1), x.transpose(0, 1), m, onehot)


@pytest.mark.parametrize("cell,layers", CASES)
def test_mirror_gradients_match_torch_autograd(cell, layers):
    cfg, x, lengths, y = _batch(cell, layers)
    grads, logits = _mirror(cfg, x, lengths, y, exact=True)
    model = export_state_dicts(cfg, init_params(cfg, 1)).double()
    ref = model(x, lengths)
    torch.nn.functional.cross_entropy(ref, y, reduction="sum").backward()
    torch.testing.assert_close(logits, ref.detach(), atol=1e-10, rtol=0)
    named = {
        **dict(model.rnn.named_parameters()),
        **{f"fc.{k}": v for k, v in model.fc.named_parameters()},
    }
    assert set(named) == set(grads)
    for k, v in named.items():
        torch.testing.assert_close(grads[k], v.grad, atol=1e-10, rtol=0, msg=k)


def test_init_reproduces_torch_and_export_loads():
    cfg = ModelConfig(cell="lstm", input_size=3, hidden_size=4, num_layers=2, num_classes=3)
    params = init_params(cfg, 5)
    torch.manual_seed(5)
    ref = torch.nn.LSTM(3, 4, 2, batch_first=True)
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(params[k], v.double(), atol=0, rtol=0)
    model = export_state_dicts(cfg, params)
    fresh = torch.nn.LSTM(3, 4, 2, batch_first=True)
    fresh.load_state_dict(model.rnn.state_dict())  # torch's own keys and shapes


def _shared_grads(session, cfg, x, lengths, y, src=0):
    from protocols.arithmetic.sharing import public, share

    B = SharedBackend(session, ActivationConfig())
    rank = session.rank
    m = masks(lengths, x.shape[1])
    onehot = torch.nn.functional.one_hot(y, cfg.num_classes).double()
    sh = lambda v: share(session, v if rank == src else None, src=src, shape=tuple(v.shape))  # noqa: E731
    params = {k: public(session, v) for k, v in init_params(cfg, 1).items()}
    grads, logits = forward_backward(
        B, cfg, params, sh(x).transpose(0, 1), sh(m).transpose(0, 1), sh(onehot)
    )
    return grads, logits


def _compare(grads_sh, logits_sh, decode, cfg, x, lengths, y, tol=2e-2):
    grads, logits = _mirror(cfg, x, lengths, y, exact=False)
    torch.testing.assert_close(decode(logits_sh), logits, atol=tol, rtol=0)
    for k in grads:
        torch.testing.assert_close(decode(grads_sh[k]), grads[k], atol=tol, rtol=0, msg=k)


@pytest.mark.parametrize("cell,layers", CASES)
def test_shared_backend_matches_mirror_in_process(cell, layers):
    from protocols.network.parties import init_in_process

    session = init_in_process()
    s = session
    cfg, x, lengths, y = _batch(cell, layers)
    grads, logits = _shared_grads(s, cfg, x, lengths, y)
    _compare(grads, logits, s.fp.decode, cfg, x, lengths, y)


def shares_party(session, cell, layers):
    from protocols.arithmetic.reveal import reveal

    s = session
    cfg, x, lengths, y = _batch(cell, layers)
    grads, logits = _shared_grads(s, cfg, x, lengths, y, src=s.world_size - 1)
    everyone = tuple(range(s.world_size))
    opened = {k: reveal(s, v, to=everyone, what=k, why="test") for k, v in grads.items()}
    return opened, reveal(s, logits, to=everyone, what="logits", why="test"), s.stats.snapshot()


@pytest.mark.parametrize("cell,layers", [("gru", 1), ("lstm", 2)])
def test_three_parties_and_dealer_match_mirror(cell, layers, parties):
    outs = parties(shares_party, world_size=3, provider="TTP", args=(cell, layers), timeout_s=300)
    cfg, x, lengths, y = _batch(cell, layers)
    for grads, logits, _ in outs:
        _compare(grads, logits, lambda v: v, cfg, x, lengths, y)


def _regress_batch(cell):
    g = torch.Generator().manual_seed(4)
    cfg = ModelConfig(
        cell=cell, input_size=3, hidden_size=4, num_classes=0, task="regress_steps", output_size=2
    )
    x = torch.rand(5, 6, 3, generator=g, dtype=torch.float64) * 2 - 1
    lengths = torch.tensor([6, 3, 1, 5, 6])
    target = torch.rand(6, 5, 2, generator=g, dtype=torch.float64)  # (T, N, O)
    return cfg, x, lengths, target


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_sequence_regression_mse_matches_autograd_and_shares(cell):
    from protocols.arithmetic.sharing import public
    from protocols.network.parties import init_in_process

    cfg, x, lengths, target = _regress_batch(cell)
    m = masks(lengths, 6).transpose(0, 1)  # (T, N, 1)
    grads, out = forward_backward(
        PlainBackend(ActivationConfig(exact=True)),
        cfg,
        init_params(cfg, 2),
        x.transpose(0, 1),
        m,
        target,
    )
    model = export_state_dicts(cfg, init_params(cfg, 2)).double()
    ref = model(x, lengths).transpose(0, 1)  # (T, N, O)
    loss = 0.5 * (((ref - target) ** 2) * m).sum()  # masked per-step MSE
    loss.backward()
    # valid steps agree; after a row's end our state is frozen and torch's runs on (masked out)
    torch.testing.assert_close(out * m, ref.detach() * m, atol=1e-10, rtol=0)
    named = {
        **dict(model.rnn.named_parameters()),
        **{f"fc.{k}": v for k, v in model.fc.named_parameters()},
    }
    for k, v in named.items():
        torch.testing.assert_close(grads[k], v.grad, atol=1e-10, rtol=0, msg=k)
    session = init_in_process()
    s = session
    B = SharedBackend(s, ActivationConfig())
    params = {k: public(s, v) for k, v in init_params(cfg, 2).items()}
    g_sh, out_sh = forward_backward(
        B, cfg, params, s.fp.encode(x.transpose(0, 1)), s.fp.encode(m), s.fp.encode(target)
    )
    g_pl, out_pl = forward_backward(
        PlainBackend(ActivationConfig()), cfg, init_params(cfg, 2), x.transpose(0, 1), m, target
    )
    torch.testing.assert_close(s.fp.decode(out_sh), out_pl, atol=2e-3, rtol=0)
    for k in g_pl:
        torch.testing.assert_close(s.fp.decode(g_sh[k]), g_pl[k], atol=2e-2, rtol=0, msg=k)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_mpc_forward_within_approximation_error_of_torch(cell):
    """Shares (polynomial activations) vs the exported model in torch (exact activations): the
    logits differ by the propagated approximation error.  With the default polynomial (max
    error 0.033 tanh / 0.0164 sigmoid) and |W| <= 1/sqrt(H) this stays below 0.05 here."""
    from protocols.arithmetic.sharing import public
    from protocols.network.parties import init_in_process

    session = init_in_process()
    s = session
    cfg, x, lengths, _ = _batch(cell, 2)
    params = init_params(cfg, 1)
    from mpcrnn.model import forward

    logits_sh, _ = forward(
        SharedBackend(s, ActivationConfig()),
        cfg,
        {k: public(s, v) for k, v in params.items()},
        s.fp.encode(x.transpose(0, 1)),
        s.fp.encode(masks(lengths, 6).transpose(0, 1)),
    )
    exact = export_state_dicts(cfg, params).double()(x, lengths).detach()
    err = (s.fp.decode(logits_sh) - exact).abs().max().item()
    assert 1e-4 < err < 0.05, err  # non-zero (polynomials differ from tanh) and bounded
