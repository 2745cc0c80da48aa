"""Properties of the randomness requests (protocols/randomness/requests.py) and their answers.

For random lists of every request kind (shapes that broadcast or chain, masks referenced by
later mask products), the TTP exchange is run in this process, without a network: each data
party's :class:`PartyShares` draws from its :class:`RingStream`, the dealer's
:class:`DealerAnswers` draws from copies of the same streams, and party 0's missing slots are
filled from the dealer's flat answer split by ``output_size`` (as ``DealerTriples`` does).

Stated contracts checked: ``output_size`` is torch's result shape (broadcasting, matmul,
``b^T``); the dealer sends exactly ``numel(output_size)`` values per request (none for a mask);
each party's shares have the request's shapes; the shares reconstruct to the correlation the
module docstring names (``c = a * b`` / ``a @ b``, ``c = a & b`` on XOR shares, ``theta_r`` the
wraps of r's shares, one bit both as XOR and arithmetic shares, ``c = op(a, b)`` of the masks
referenced ``back_a`` / ``back_b`` requests earlier); ``wire`` / ``from_wire`` round-trip.
In-process, no processes: part of ``make test-fast``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.arithmetic.truncation import count_wraps
from protocols.errors import ProtocolError
from protocols.randomness.dealer import DealerAnswers
from protocols.randomness.requests import (
    AndRequest,
    BitRequest,
    MaskProductRequest,
    MaskRequest,
    Op,
    ProductRequest,
    WrapsRequest,
    check_mask_references,
    from_wire,
    product_size,
)
from protocols.randomness.streams import RingStream
from protocols.randomness.triples import PartyShares

FAST = settings(max_examples=50, deadline=None)

dims = st.integers(1, 4)
shapes = st.lists(dims, min_size=1, max_size=3).map(tuple)


@st.composite
def broadcasting_pairs(draw):
    """Two shapes torch broadcasts: ``b`` from ``a`` with some dims set to 1 and some leading
    dims dropped (and the roles maybe swapped)."""
    a = draw(shapes)
    b = tuple(1 if draw(st.booleans()) else d for d in a)[draw(st.integers(0, len(a) - 1)) :]
    return (a, b) if draw(st.booleans()) else (b, a)


@st.composite
def matmul_pairs(draw, transpose_b=False):
    """(.., n, k) and (.., k, m) (``b`` given as (.., m, k) when ``transpose_b``), with batch
    dims that broadcast."""
    n, k, m = draw(dims), draw(dims), draw(dims)
    batch_a, batch_b = draw(broadcasting_pairs()) if draw(st.booleans()) else ((), ())
    return batch_a + (n, k), batch_b + ((m, k) if transpose_b else (k, m))


@st.composite
def request_lists(draw):
    """A list of every kind; each mask product follows the two masks it references."""
    out: list = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["mul", "matmul", "and", "wraps", "bit", "mask", "maskprod"]))
        if kind == "mul":
            out.append(ProductRequest(Op.MUL, *draw(broadcasting_pairs())))
        elif kind == "matmul":
            out.append(ProductRequest(Op.MATMUL, *draw(matmul_pairs())))
        elif kind == "and":
            s = draw(shapes)
            out.append(AndRequest(s, s))
        elif kind in ("wraps", "bit", "mask"):
            out.append(
                {"wraps": WrapsRequest, "bit": BitRequest, "mask": MaskRequest}[kind](draw(shapes))
            )
        else:  # a mask product, after its masks and up to two other requests
            op = draw(st.sampled_from([Op.MUL, Op.MATMUL]))
            fillers = [BitRequest((1,))] * draw(st.integers(0, 2))
            if draw(st.booleans()):  # x * x or x @ x^T: one mask referenced twice
                a = draw(shapes) if op is Op.MUL else draw(matmul_pairs())[0]
                back = 1 + len(fillers)
                product = MaskProductRequest(op, a, a, back, back, op is Op.MATMUL)
                out += [MaskRequest(a), *fillers, product]
            else:
                transpose_b = op is Op.MATMUL and draw(st.booleans())
                a, b = draw(broadcasting_pairs() if op is Op.MUL else matmul_pairs(transpose_b))
                back = 1 + len(fillers)
                product = MaskProductRequest(op, a, b, back + 1, back, transpose_b)
                out += [MaskRequest(a), MaskRequest(b), *fillers, product]
    return out


def exchange(requests, world_size: int, seed: int):
    """Every party's shares for ``requests`` (party 0's ``c`` from the dealer) and the dealer's
    flat answer."""
    seeds = [seed + 7919 * i for i in range(world_size)]
    drawn = [PartyShares(RingStream(s), i).answer(requests) for i, s in enumerate(seeds)]
    parts = DealerAnswers([RingStream(s) for s in seeds]).answer(requests)
    flat = torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)
    assert flat.dtype == torch.int64
    sizes = [r.output_size() for r in requests]
    assert flat.numel() == sum(torch.Size(s).numel() for s in sizes)  # what party 0 receives
    pos = 0
    for req, item, size in zip(requests, drawn[0], sizes):
        n = torch.Size(size).numel()
        c0 = flat[pos : pos + n].reshape(size)
        pos += n
        if isinstance(req, MaskRequest):
            assert n == 0  # the dealer sends nothing for a mask
        else:
            assert item[-1] is None  # party 0 waits for the dealer's share
            item[-1] = c0
    return drawn


def total(shares):
    out = shares[0].clone()
    for s in shares[1:]:
        out += s  # wraps mod 2^64, as the ring does
    return out


def xor(shares):
    out = shares[0].clone()
    for s in shares[1:]:
        out ^= s
    return out


@FAST
@given(broadcasting_pairs())
def test_mul_output_size_is_torch_broadcasting(pair):
    a, b = pair
    assert product_size(Op.MUL, a, b) == tuple((torch.zeros(a) * torch.zeros(b)).shape)


@FAST
@given(st.data(), st.booleans())
def test_matmul_output_size_is_torch_matmul(data, transpose_b):
    a, b = data.draw(matmul_pairs(transpose_b))
    rhs = torch.zeros(b).transpose(-2, -1) if transpose_b else torch.zeros(b)
    assert product_size(Op.MATMUL, a, b, transpose_b) == tuple((torch.zeros(a) @ rhs).shape)


@FAST
@given(dims, dims, dims)
def test_matmul_of_shapes_that_do_not_chain_is_refused(n, k, m):
    with pytest.raises(ProtocolError, match="do not chain"):
        product_size(Op.MATMUL, (n, k), (k + 1, m))


@FAST
@given(request_lists())
def test_wire_round_trip(requests):
    check_mask_references(requests)
    for req in requests:
        wire = req.wire()
        assert all(isinstance(v, str | int | tuple) for v in wire)  # CrypTen's unpickler
        assert from_wire(wire) == req


@FAST
@given(request_lists(), st.integers(2, 4), st.integers(0, 2**32))
def test_answers_have_the_requested_sizes_and_correlations(requests, world_size, seed):
    drawn = exchange(requests, world_size, seed)
    masks = {}
    for pos, req in enumerate(requests):
        items = [d[pos] for d in drawn]  # every party's answer to this request
        assert len({len(i) for i in items}) == 1
        match req:
            case MaskRequest():
                assert all(len(i) == 1 and i[0].shape == req.size for i in items)
                masks[pos] = total([i[0] for i in items])
            case MaskProductRequest():
                (c,) = zip(*items)
                assert all(ci.shape == req.output_size() for ci in c)
                a, b = masks[pos - req.back_a], masks[pos - req.back_b]
                if req.op is Op.MUL:
                    want = a * b
                else:
                    want = a @ (b.transpose(-2, -1) if req.transpose_b else b)
                assert torch.equal(total(c), want)
            case ProductRequest():
                a, b, c = zip(*items)
                assert all(ai.shape == req.size_a for ai in a)
                assert all(bi.shape == req.size_b for bi in b)
                assert all(ci.shape == req.output_size() for ci in c)
                fn = torch.mul if req.op is Op.MUL else torch.matmul
                assert torch.equal(total(c), fn(total(a), total(b)))
            case AndRequest():
                a, b, c = zip(*items)
                assert all(v.shape == req.size_a for v in (*a, *b, *c))
                assert torch.equal(xor(c), xor(a) & xor(b))
            case WrapsRequest():
                r, theta = zip(*items)
                assert all(v.shape == req.size for v in (*r, *theta))
                assert torch.equal(total(theta), count_wraps(list(r)))
            case BitRequest():
                bits, arith = zip(*items)
                assert all(v.shape == req.size for v in (*bits, *arith))
                assert all(bool(((v == 0) | (v == 1)).all()) for v in bits)
                assert torch.equal(total(arith), xor(bits))


@FAST
@given(request_lists(), st.integers(1, 3), st.booleans())
def test_a_mask_product_without_its_masks_is_refused_before_anything_is_drawn(
    requests, past, which
):
    """A mask product whose reference points before the start of the list is a caller's bug:
    ProtocolError from ``answer`` (the party's and the dealer's alike), before any draw."""
    products = [p for p, r in enumerate(requests) if isinstance(r, MaskProductRequest)]
    if not products:
        return
    pos = products[-1]
    req = requests[pos]
    backs = (pos + past, req.back_b) if which else (req.back_a, pos + past)
    broken = MaskProductRequest(req.op, req.size_a, req.size_b, *backs, req.transpose_b)
    bad = requests[:pos] + [broken] + requests[pos + 1 :]
    stream = RingStream(1)
    with pytest.raises(ProtocolError, match="expected a mask of size"):
        PartyShares(stream, 1).answer(bad)
    with pytest.raises(ProtocolError, match="expected a mask of size"):
        DealerAnswers([RingStream(1), RingStream(2)]).answer(bad)
    assert torch.equal(stream.draw((4,)), RingStream(1).draw((4,)))  # nothing was drawn
