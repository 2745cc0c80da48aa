"""Protocols on shares against torch: 1 party in-process, and 2/3 parties in processes (TTP, TFP).

Tolerance: CrypTen's fixed point keeps f = 16 fractional bits; every truncation is off by at most
one unit (2^-16 = 1.5e-5), so a product of values below 8 in magnitude is within 1e-4 and a
(4x5)@(5x3) matmul within 2e-4 of float64.
"""

from __future__ import annotations

import re

import pytest
import torch
from mpc_harness import _party_main

from protocols.randomness.requests import MaskProductRequest, MaskRequest, Op, ProductRequest

TOL = 2e-4


def _inputs():
    g = torch.Generator().manual_seed(7)
    x = torch.rand(4, 5, generator=g, dtype=torch.float64) * 6 - 3
    y = torch.rand(5, 3, generator=g, dtype=torch.float64) * 6 - 3
    w = torch.rand(4, 5, generator=g, dtype=torch.float64) * 6 - 3
    return x, y, w


def arithmetic_party(rank: int):
    """Each input is owned by a different party; returns opened results."""
    from protocols.arithmetic.multiply import Product, multiply_many
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import share
    from protocols.session import MpcSession

    s = MpcSession.current()
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

    init_in_process()
    _check(arithmetic_party(0))


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


def _older_release_main(fn, rank, *rest):
    """Party 1 runs a release with another wire protocol (what a host that missed an upgrade is)."""
    import protocols.network.parties as parties

    if rank == 1:
        parties.WIRE_PROTOCOL -= 1
    _party_main(fn, rank, *rest)


def test_mismatched_releases_stop_before_anything_is_shared(parties):
    """Different wire protocols would give silently wrong triples: every process refuses at join."""
    from protocols.network.parties import WIRE_PROTOCOL

    with pytest.raises(AssertionError) as info:
        parties(
            arithmetic_party, world_size=3, provider="TTP", entry=_older_release_main, timeout_s=60
        )
    want = (
        f"AgreementError: party 1's mpcrnn wire protocol: expected {WIRE_PROTOCOL} (party 0's), "
        f"got {WIRE_PROTOCOL - 1}. every party and the dealer must run the same mpcrnn release"
    )
    report = str(info.value)
    for who in ("party 0", "party 1", "party 2", "dealer"):
        assert f"{who} raised:" in report
    assert report.count(want) == 4


def test_wire_protocol_check_names_the_dealer():
    from protocols.network.parties import check_wire_protocol

    assert check_wire_protocol([2, 2, 2], 2) is None
    assert check_wire_protocol([2, 2, 3], 2).startswith(
        "the dealer's mpcrnn wire protocol: expected 2"
    )


def shares_party(rank: int):
    from protocols.arithmetic.sharing import share
    from protocols.session import MpcSession

    s = MpcSession.current()
    x, _, _ = _inputs()
    return share(s, x if rank == 0 else None, src=0, shape=tuple(x.shape))


def test_shares_look_random_and_sum_to_value(parties):
    shares = parties(shares_party, world_size=3, provider="TFP")
    x, _, _ = _inputs()
    total = sum(shares)
    torch.testing.assert_close(total.double() / 2**16, x, atol=2e-5, rtol=0)
    # no single share is close to the encoded value: each is masked by the PRZS randomness
    enc = torch.round(x * 2**16).long()
    for sh in shares:
        assert (sh - enc).abs().min() > 2**40


def _edge_ring_values(n: int = 4000) -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    edges = torch.tensor(
        [-(2**63), 2**63 - 1, -1, 0, 1, 2**62, -(2**62), 2**16, -(2**16) - 1], dtype=torch.int64
    )
    return torch.cat(
        [edges, torch.randint(-(2**63), 2**63 - 1, (n,), generator=g, dtype=torch.int64)]
    )


@pytest.mark.parametrize("as_numpy", [False, True])
@pytest.mark.parametrize("n_shares", [2, 3, 4])
def test_count_wraps_is_exact_over_the_integers(n_shares, as_numpy):
    """theta = (sum over the integers - wrapped sum) / 2^64, checked with Python's exact ints on
    random shares plus every pairing of the edge values (-2^63 + -2^63 wraps down once)."""
    from protocols.arithmetic.truncation import count_wraps

    base = _edge_ring_values()
    shares = [base.roll(7 * i) for i in range(n_shares)]
    edges = base[:9]
    shares[0] = torch.cat([shares[0], edges.repeat_interleave(9)])
    for i in range(1, n_shares):
        shares[i] = torch.cat([shares[i], edges.repeat(9)])
    got = count_wraps([s.numpy() for s in shares] if as_numpy else shares).tolist()
    rows = zip(*[s.tolist() for s in shares])
    want = []
    for row in rows:
        exact = sum(row)
        wrapped = (exact + 2**63) % 2**64 - 2**63
        want.append((exact - wrapped) // 2**64)
    assert got == want
    assert count_wraps([edges[:1], edges[:1]]).item() == -1  # CrypTen's own count says 0 here


@pytest.mark.parametrize("k", [0, 1, 16, 33, 63])
def test_shift_right_trunc_matches_division_toward_zero(k):
    from protocols.arithmetic.truncation import shift_right_trunc

    x = _edge_ring_values()
    want = [(abs(v) >> k) * (1 if v >= 0 else -1) for v in x.tolist()]  # exact, toward zero
    assert shift_right_trunc(x, k).tolist() == want
    ks = torch.full_like(x, k)
    assert shift_right_trunc(x, ks).tolist() == want
    assert shift_right_trunc(x.numpy(), k).tolist() == want
    assert shift_right_trunc(x.numpy(), ks.numpy()).tolist() == want


@pytest.mark.parametrize(
    "requests,message",
    [
        (
            [MaskProductRequest(Op.MUL, (2, 3), (2, 3), 1, 1)],
            "maskmul at 0: expected a mask of size (2, 3) 1 requests back",
        ),
        (
            [MaskRequest((2, 3)), MaskProductRequest(Op.MUL, (2, 3), (2, 3), 1, 2)],
            "maskmul at 1: expected a mask of size (2, 3) 2 requests back",
        ),
        (
            [MaskRequest((2, 4)), MaskProductRequest(Op.MUL, (2, 3), (2, 3), 1, 1)],
            "maskmul at 1: expected a mask of size (2, 3) 1 requests back",
        ),
        (
            [
                ProductRequest(Op.MUL, (2, 3), (2, 3)),
                MaskProductRequest(Op.MUL, (2, 3), (2, 3), 1, 1),
            ],
            "maskmul at 1: expected a mask of size (2, 3) 1 requests back",
        ),
    ],
)
def test_mask_references_are_checked(requests, message):
    """A maskmul must name masks of its operand sizes earlier in the same list: the parties and
    the dealer both refuse anything else before drawing a single value."""
    from protocols.errors import ProtocolError
    from protocols.randomness.requests import check_mask_references

    with pytest.raises(ProtocolError, match=re.escape(message)):
        check_mask_references(requests)
    check_mask_references(
        [
            MaskRequest((2, 3)),
            ProductRequest(Op.MUL, (1,), (1,)),
            MaskProductRequest(Op.MUL, (2, 3), (2, 3), 2, 2),
        ]
    )


def fixed_operand_party(rank: int):
    """W (6x4, party 0's) opened once for three products: x1 @ W^T, x2 @ W^T, g @ W."""
    from protocols.arithmetic.multiply import FixedOperand, multiply_fixed
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import share
    from protocols.session import MpcSession

    s = MpcSession.current()
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
