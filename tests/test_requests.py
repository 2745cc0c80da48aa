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


def test_ring_streams_are_aes_ctr_keystreams():
    """Issue 26 #7: the correlated randomness comes from a cryptographic PRG: a RingStream is
    the AES-256-CTR keystream under SHA-256 of its 256-bit seed (was numpy's PCG64), the same
    sequence however it is split into draws."""
    import hashlib
    import os

    import numpy as np
    import torch
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    from protocols.randomness.streams import BULK_SEED_BYTES, RingStream

    seed = int.from_bytes(os.urandom(BULK_SEED_BYTES), "little")
    key = hashlib.sha256(b"mpcrnn-ring-stream\x00" + seed.to_bytes(32, "little")).digest()
    keystream = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor().update(bytes(8 * 40))
    want = torch.from_numpy(np.frombuffer(keystream, dtype=np.int64).copy())
    s = RingStream(seed)
    got = torch.cat([s.draw((2, 3)).reshape(-1), s.draw(()).reshape(-1), s.draw((33,))])
    assert torch.equal(got, want)
    assert not torch.equal(RingStream(seed + 1).draw((40,)), want)
