"""The many-to-one regression head (task "regress"): the value at each row's last valid step,
loss sum_rows ||y - target||^2 / 2.  Mirror (exact activations) against torch autograd within
1e-10 for every cell and depth (summed and per-example gradients); shares against the mirror
(polynomials) within the fixed-point tolerance of tests/test_cells.py."""

from __future__ import annotations

import pytest
import torch

from mpcrnn.backend import PlainBackend, SharedBackend
from mpcrnn.config import ActivationConfig, ModelConfig
from mpcrnn.model import export_state_dicts, forward_backward, init_params
from mpcrnn.train import masks

CASES = [(c, L) for c in ("rnn", "gru", "lstm") for L in (1, 2)]


def _batch(cell, layers, outputs=1):
    g = torch.Generator().manual_seed(7)
    cfg = ModelConfig(
        cell=cell,
        input_size=3,
        hidden_size=4,
        num_layers=layers,
        num_classes=0,
        task="regress",
        output_size=outputs,
    )
    x = torch.rand(5, 6, 3, generator=g, dtype=torch.float64) * 2 - 1
    lengths = torch.tensor([6, 3, 1, 5, 6])
    target = torch.rand(5, outputs, generator=g, dtype=torch.float64) * 2 - 1  # (N, O)
    return cfg, x, lengths, target


def _torch_grads(cfg, x, lengths, target, rows=None):
    model = export_state_dicts(cfg, init_params(cfg, 3)).double()
    sel = slice(None) if rows is None else slice(rows, rows + 1)
    out = model(x[sel], lengths[sel])
    (0.5 * ((out - target[sel]) ** 2).sum()).backward()
    named = {
        **dict(model.rnn.named_parameters()),
        **{f"fc.{k}": v for k, v in model.fc.named_parameters()},
    }
    return out.detach(), {k: v.grad for k, v in named.items()}


@pytest.mark.parametrize("cell,layers", CASES)
@pytest.mark.parametrize("outputs", [1, 3])
def test_last_step_regression_matches_torch_autograd(cell, layers, outputs):
    cfg, x, lengths, target = _batch(cell, layers, outputs)
    m = masks(lengths, 6).transpose(0, 1)
    B = PlainBackend(ActivationConfig(exact=True))
    grads, out = forward_backward(B, cfg, init_params(cfg, 3), x.transpose(0, 1), m, target)
    ref, ref_grads = _torch_grads(cfg, x, lengths, target)
    assert out.shape == (5, outputs)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    assert set(grads) == set(ref_grads)
    for k, v in ref_grads.items():
        torch.testing.assert_close(grads[k], v, atol=1e-10, rtol=0, msg=k)
    # per-example gradients (DP-SGD's clipping) are each row's own torch gradient
    per, _ = forward_backward(
        B, cfg, init_params(cfg, 3), x.transpose(0, 1), m, target, per_example=True
    )
    for i in range(5):
        _, row = _torch_grads(cfg, x, lengths, target, rows=i)
        for k, v in row.items():
            torch.testing.assert_close(per[k][i], v, atol=1e-10, rtol=0, msg=f"{k} row {i}")


def test_padding_after_the_end_does_not_change_the_value():
    """The target is read at each row's last valid step: garbage-free padding of any length
    gives the same value and gradient (the mask holds the state)."""
    cfg, x, lengths, target = _batch("gru", 1)
    B = PlainBackend(ActivationConfig(exact=True))
    longer = torch.cat([x * masks(lengths, 6), torch.zeros(5, 4, 3, dtype=torch.float64)], 1)
    short = x * masks(lengths, 6)
    outs = []
    for xx in (short, longer):
        m = masks(lengths, xx.shape[1]).transpose(0, 1)
        outs.append(forward_backward(B, cfg, init_params(cfg, 3), xx.transpose(0, 1), m, target))
    torch.testing.assert_close(outs[0][1], outs[1][1], atol=1e-12, rtol=0)
    for k in outs[0][0]:
        torch.testing.assert_close(outs[0][0][k], outs[1][0][k], atol=1e-12, rtol=0)


@pytest.mark.parametrize("cell,layers", CASES)
def test_shares_match_mirror_in_process(cell, layers):
    from protocols.arithmetic.sharing import public
    from protocols.network.parties import init_in_process

    s = init_in_process()
    cfg, x, lengths, target = _batch(cell, layers)
    m = masks(lengths, 6).transpose(0, 1)
    B = SharedBackend(s, ActivationConfig())
    params = {k: public(s, v) for k, v in init_params(cfg, 3).items()}
    g_sh, out_sh = forward_backward(
        B, cfg, params, s.fp.encode(x.transpose(0, 1)), s.fp.encode(m), s.fp.encode(target)
    )
    g_pl, out_pl = forward_backward(
        PlainBackend(ActivationConfig()), cfg, init_params(cfg, 3), x.transpose(0, 1), m, target
    )
    torch.testing.assert_close(s.fp.decode(out_sh), out_pl, atol=2e-3, rtol=0)
    for k in g_pl:
        torch.testing.assert_close(s.fp.decode(g_sh[k]), g_pl[k], atol=2e-2, rtol=0, msg=k)
