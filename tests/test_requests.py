"""Typed randomness requests (protocols.randomness.requests): references checked before a draw."""

from __future__ import annotations

import re

import pytest

from protocols.randomness.requests import MaskProductRequest, MaskRequest, Op, ProductRequest


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
