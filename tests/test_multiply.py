"""Beaver products on shares (protocols.arithmetic.multiply) against torch: 1 party in-process,
and 2/3 parties in processes (TTP, TFP).

Tolerance: CrypTen's fixed point keeps f = 16 fractional bits; every truncation is off by at most
one unit (2^-16 = 1.5e-5), so a product of values below 8 in magnitude is within 1e-4 and a
(4x5)@(5x3) matmul within 2e-4 of float64.
"""

from __future__ import annotations

import pytest
import torch

TOL = 2e-4


def _inputs():
    g = torch.Generator().manual_seed(7)
    x = torch.rand(4, 5, generator=g, dtype=torch.float64) * 6 - 3
    y = torch.rand(5, 3, generator=g, dtype=torch.float64) * 6 - 3
    w = torch.rand(4, 5, generator=g, dtype=torch.float64) * 6 - 3
    return x, y, w


def arithmetic_party(session):
    """Each input is owned by a different party; returns opened results."""
    rank = session.rank
    from protocols.arithmetic.multiply import Product, multiply_many
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import share

    s = session
    x, y, w = _inputs()
    own = lambda v, src: share(s, v if rank == src else None, src=src, shape=tuple(v.shape))  # noqa: E731
    xs, ys, ws = own(x, 0), own(y, 1 % s.world_size), own(w, s.world_size - 1)
    # x enters three products (opened once); the last product has operands of its own
    prod, mm, sq, own_pair = multiply_many(
        s,
        [
            Product.mul(xs, ws),
            Product.matmul(xs, ys),
            Product.mul(xs, xs),
            Product.mul(xs + ws, ws - xs),
        ],
    )
    everyone = tuple(range(s.world_size))
    out = {
        name: reveal(s, v, to=everyone, what=name, why="test")
        for name, v in {"x": xs, "sum": xs + ws, "mul": prod, "matmul": mm, "square": sq}.items()
    }
    out["own"] = reveal(s, own_pair, to=everyone, what="own", why="test")
    out["rounds"] = s.stats.snapshot()
    out["ledger"] = s.ledger.to_json()
    return out


def _check(out):
    x, y, w = _inputs()
    torch.testing.assert_close(out["x"], x, atol=2e-5, rtol=0)
    torch.testing.assert_close(out["sum"], x + w, atol=4e-5, rtol=0)
    torch.testing.assert_close(out["mul"], x * w, atol=TOL, rtol=0)
    torch.testing.assert_close(out["matmul"], x @ y, atol=TOL, rtol=0)
    torch.testing.assert_close(out["square"], x * x, atol=TOL, rtol=0)
    if "own" in out:
        torch.testing.assert_close(out["own"], (x + w) * (w - x), atol=TOL, rtol=0)


def test_arithmetic_in_process():
    from protocols.network.parties import init_in_process

    session = init_in_process()
    _check(arithmetic_party(session))


@pytest.mark.parametrize("world_size,provider", [(3, "TTP"), (2, "TTP"), (3, "TFP")])
def test_arithmetic_multiprocess(world_size, provider, parties):
    outs = parties(arithmetic_party, world_size=world_size, provider=provider)
    for out in outs:
        _check(out)
        assert [e["what"] for e in out["ledger"]] == ["x", "sum", "mul", "matmul", "square", "own"]
    # the three products were batched: one opening round for all of them
    assert outs[0]["rounds"]["rounds"]["beaver"] == 1
    assert outs[0]["rounds"]["rounds"].get("truncate", 0) == (1 if world_size > 2 else 0)
    # opened elements: x (4x5) ONCE for all three products (mul, matmul, square), w (4x5), y
    # (5x3), and both operands of the product of its own (w + x) * y^T-shaped ones (4x5 each)
    assert outs[0]["rounds"]["bytes_sent"]["beaver"] == 8 * (20 + 20 + 15 + 20 + 20)


def fixed_operand_party(session):
    """W (6x4, party 0's) opened once for three products: x1 @ W^T, x2 @ W^T, g @ W."""
    rank = session.rank
    from protocols.arithmetic.multiply import FixedOperand, multiply_fixed
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import share

    s = session
    w, x1, x2, g = _fixed_inputs()
    own = lambda v, src: share(s, v if rank == src else None, src=src, shape=tuple(v.shape))  # noqa: E731
    ws, x1s, x2s, gs = own(w, 0), own(x1, 1 % s.world_size), own(x2, 0), own(g, s.world_size - 1)
    fixed = FixedOperand(s, ws, [((5, 4), True), ((5, 4), True), ((5, 6), False)])
    everyone = tuple(range(s.world_size))
    out = {}
    for name, x, tr in (("x1 W^T", x1s, True), ("x2 W^T", x2s, True), ("g W", gs, False)):
        out[name] = reveal(s, multiply_fixed(s, x, fixed, tr), to=everyone, what=name, why="test")
    from protocols.errors import ProtocolError

    with pytest.raises(
        ProtocolError, match="more products with a fixed operand than it was prepared for"
    ):
        multiply_fixed(s, x1s, fixed, True)
    out["stats"] = s.stats.snapshot()
    return out


def _fixed_inputs():
    g = torch.Generator().manual_seed(3)
    return tuple(
        torch.rand(*shape, generator=g, dtype=torch.float64) * 4 - 2
        for shape in ((6, 4), (5, 4), (5, 4), (5, 6))
    )


@pytest.mark.parametrize("world_size,provider", [(3, "TTP"), (2, "TTP"), (3, "TFP")])
def test_fixed_operand_is_opened_once_for_all_its_products(world_size, provider, parties):
    w, x1, x2, g = _fixed_inputs()
    for out in parties(fixed_operand_party, world_size=world_size, provider=provider):
        torch.testing.assert_close(out["x1 W^T"], x1 @ w.T, atol=TOL, rtol=0)
        torch.testing.assert_close(out["x2 W^T"], x2 @ w.T, atol=TOL, rtol=0)
        torch.testing.assert_close(out["g W"], g @ w, atol=TOL, rtol=0)
        # opened: W (24 elements) once, then each left operand (20, 20, 30) once
        assert out["stats"]["bytes_sent"]["beaver"] == 8 * (24 + 20 + 20 + 30)
        assert out["stats"]["rounds"]["beaver"] == 3
