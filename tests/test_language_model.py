"""The character language model's per-step loss and gradients against torch autograd (mirror
1e-10) and on shares (in-process, 2e-2 as tests/test_cells.py; the softmax on shares adds
~1e-3); bits per character from the same loss."""

from __future__ import annotations

import math

import pytest
import torch

from mpcrnn.backend import PlainBackend, SharedBackend
from mpcrnn.config import ActivationConfig, ModelConfig
from mpcrnn.language_model import bits_per_char, lm_forward_backward
from mpcrnn.model import export_state_dicts, init_params
from mpcrnn.text import one_hot
from mpcrnn.train import masks

V = 7


def _lm_batch(cell, layers=1):
    g = torch.Generator().manual_seed(5)
    cfg = ModelConfig(
        cell=cell, input_size=V, hidden_size=4, num_layers=layers, num_classes=V, embedding_dim=3
    )
    lengths = torch.tensor([6, 3, 1, 5])
    ids = torch.randint(0, V, (4, 6), generator=g)
    x = torch.as_tensor(one_hot([ids[i, :n].tolist() for i, n in enumerate(lengths)], 6, V))
    m = masks(lengths, 6)
    return cfg, ids, lengths, x.transpose(0, 1), m.transpose(0, 1)


def _torch_loss(cfg, ids, lengths):
    model = export_state_dicts(cfg, init_params(cfg, 2)).double()
    out, _ = model.rnn(model.embedding(ids))
    logits = model.fc(out[:, :-1])  # (N, T-1, V)
    valid = torch.arange(1, ids.shape[1])[None, :] < lengths[:, None]
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, V), ids[:, 1:].reshape(-1), reduction="none"
    )
    loss = (ce * valid.reshape(-1)).sum()
    loss.backward()
    return model, logits, loss, valid


@pytest.mark.parametrize("cell,layers", [("gru", 1), ("lstm", 2), ("rnn", 1)])
def test_lm_loss_gradients_match_torch_autograd(cell, layers):
    cfg, ids, lengths, x, m = _lm_batch(cell, layers)
    B = PlainBackend(ActivationConfig(exact=True))
    grads, logits = lm_forward_backward(B, cfg, init_params(cfg, 2), x, m)
    model, ref_logits, loss, valid = _torch_loss(cfg, ids, lengths)
    keep = valid.unsqueeze(-1)  # past a row's end the mirror's state is frozen, torch's runs on
    torch.testing.assert_close(
        logits.transpose(0, 1) * keep, ref_logits.detach() * keep, atol=1e-10, rtol=0
    )
    named = {"embedding.weight": model.embedding.weight, **dict(model.rnn.named_parameters())}
    named.update({f"fc.{k}": v for k, v in model.fc.named_parameters()})
    assert set(named) == set(grads)
    for k, v in named.items():
        torch.testing.assert_close(grads[k], v.grad, atol=1e-10, rtol=0, msg=k)
    bpc = bits_per_char(B, cfg, init_params(cfg, 2), x, m)
    assert bpc == pytest.approx(float(loss.detach()) / float(valid.sum()) / math.log(2), abs=1e-10)


def test_lm_on_shares_matches_mirror_in_process():
    from protocols.arithmetic.sharing import public, share
    from protocols.network.parties import init_in_process

    s = init_in_process()
    cfg, _, _, x, m = _lm_batch("gru")
    B = SharedBackend(s, ActivationConfig())
    sh = lambda v: share(s, v, src=0, shape=tuple(v.shape))  # noqa: E731
    params = {k: public(s, v) for k, v in init_params(cfg, 2).items()}
    grads, logits = lm_forward_backward(B, cfg, params, sh(x), sh(m))
    ref, ref_logits = lm_forward_backward(
        PlainBackend(ActivationConfig()), cfg, init_params(cfg, 2), x, m
    )
    torch.testing.assert_close(s.fp.decode(logits), ref_logits, atol=2e-2, rtol=0)
    for k in ref:
        torch.testing.assert_close(s.fp.decode(grads[k]), ref[k], atol=2e-2, rtol=0, msg=k)


def test_lm_training_lowers_bits_per_char_and_generates():
    from mpcrnn.config import TrainConfig
    from mpcrnn.language_model import generate, train_lm

    text = "abcabcabcabcabcabcabc"
    cfg = ModelConfig(cell="gru", input_size=4, hidden_size=8, num_classes=4, embedding_dim=4)
    ids = [[1 + "abc".index(c) for c in text[i : i + 8]] for i in range(12)]
    x = torch.as_tensor(one_hot(ids, 8, 4))
    m = masks(torch.full((12,), 8), 8)
    B = PlainBackend(ActivationConfig())
    before = bits_per_char(B, cfg, init_params(cfg, 0), x.transpose(0, 1), m.transpose(0, 1))
    tcfg = TrainConfig(epochs=30, batch_size=6, lr=0.05)
    params, _ = train_lm(B, cfg, tcfg, x, m, init_params(cfg, 0))
    after = bits_per_char(B, cfg, params, x.transpose(0, 1), m.transpose(0, 1))
    assert after < 0.5 < 1.5 < before  # log2(4) = 2 bits at random; the cycle is predictable
    model = export_state_dicts(cfg, params).double()
    assert generate(model, [1, 2, 3], 6, temperature=0) == [1, 2, 3, 1, 2, 3]
    sampled = generate(model, [1], 20, temperature=1.0, seed=3)
    assert sampled == generate(model, [1], 20, temperature=1.0, seed=3) and len(sampled) == 20


def _lm_rows():
    """A tiny character corpus: 8 rows of 6 tokens over V = 5, each party holds some."""
    text = "abcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcd"
    ids = [[1 + "abcd".index(c) for c in text[i : i + 6]] for i in range(0, 48, 6)]
    x = torch.as_tensor(one_hot(ids, 6, 5))
    return x, masks(torch.full((8,), 6), 6)


def _lm_setup():
    from mpcrnn.config import TrainConfig

    cfg = ModelConfig(cell="gru", input_size=5, hidden_size=4, num_classes=5, embedding_dim=3)
    return cfg, TrainConfig(epochs=1, batch_size=4, lr=0.05)


def lm_party(session):
    from mpcrnn.language_model import train_lm
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import public, share

    cfg, tcfg = _lm_setup()
    x, m = _lm_rows()
    parts = [(0, 3), (3, 6), (6, 8)]  # rows of party 0, 1, 2: each shares its own
    xs = [
        share(session, x[a:b] if session.rank == r else None, src=r, shape=(b - a, 6, 5))
        for r, (a, b) in enumerate(parts)
    ]
    ms = [
        share(session, m[a:b] if session.rank == r else None, src=r, shape=(b - a, 6, 1))
        for r, (a, b) in enumerate(parts)
    ]
    B = SharedBackend(session, ActivationConfig())
    params = {k: public(session, v) for k, v in init_params(cfg, 0).items()}
    params, _ = train_lm(B, cfg, tcfg, torch.cat(xs), torch.cat(ms), params)
    everyone = tuple(range(session.world_size))
    return {k: reveal(session, v, to=everyone, what=k, why="test") for k, v in params.items()}


def test_lm_trained_on_shares_by_three_parties_matches_its_mirror(parties):
    from mpcrnn.language_model import train_lm

    cfg, tcfg = _lm_setup()
    x, m = _lm_rows()
    B = PlainBackend(ActivationConfig())
    mirror, _ = train_lm(B, cfg, tcfg, x, m, init_params(cfg, 0))
    outs = parties(lm_party, world_size=3, provider="TTP", timeout_s=900)
    xt, mt = x.transpose(0, 1), m.transpose(0, 1)
    ref = bits_per_char(B, cfg, mirror, xt, mt)
    for opened in outs:
        for k in mirror:
            torch.testing.assert_close(opened[k], mirror[k], atol=2e-2, rtol=0, msg=k)
        assert abs(bits_per_char(B, cfg, opened, xt, mt) - ref) < 0.05
