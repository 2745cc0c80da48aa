"""Random OT extension and AND triples (protocols/randomness/ot_extension.py), in one process:
the bit transpose against numpy's unpack/pack, each OT against its definition, AND triples
exactly, and the key-stream freshness a receiver's choices depend on.  About 2 s."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.randomness.ot_extension import (
    KAPPA,
    RandomOt,
    and_shares,
    random_bits,
    transpose_bits,
)


def _bits(packed: np.ndarray) -> np.ndarray:
    return np.unpackbits(packed, bitorder="little")


def _base(delta: bytes, pairs):
    """The base OTs' outcome, made in the clear: seed ``pairs[i][Delta_i]`` for each i."""
    d = _bits(np.frombuffer(delta, np.uint8))
    return [pairs[i][d[i]] for i in range(KAPPA)]


def two_parties():
    """Party p sends in instance p (its Delta) and receives in instance 1 - p."""
    deltas = [os.urandom(16) for _ in range(2)]
    pairs = [[(os.urandom(16), os.urandom(16)) for _ in range(KAPPA)] for _ in range(2)]
    return [RandomOt(deltas[p], _base(deltas[p], pairs[1 - p]), pairs[p]) for p in range(2)]


def run_batch(parties, m, choices=None):
    choices = choices or [random_bits(m) for _ in range(2)]
    recv = [parties[p].receive(choices[p], m) for p in range(2)]
    sent = [parties[p].send(recv[1 - p][0], m) for p in range(2)]
    return choices, recv, sent


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_transpose_bits_matches_numpy(nbytes, seed):
    rows = np.random.default_rng(seed).integers(0, 256, (KAPPA, nbytes), dtype=np.uint8)
    want = np.packbits(np.unpackbits(rows, axis=1, bitorder="little").T, axis=1, bitorder="little")
    assert np.array_equal(transpose_bits(rows), want)


@pytest.mark.parametrize("m", [8, 1024, (1 << 20) + 128])  # one piece; the piece boundary
def test_each_random_ot_delivers_the_chosen_message(m):
    parties = two_parties()
    choices, recv, sent = run_batch(parties, m)
    for p in range(2):  # p sends, 1 - p receives
        m0, m1 = (_bits(x) for x in sent[p])
        b, got = _bits(choices[1 - p]), _bits(recv[1 - p][1])
        assert np.array_equal(np.where(b == 1, m1, m0), got)
        if m >= 1024:  # the other message is not the chosen one's copy: ~half the bits differ
            assert 0.45 < float(np.mean(m0 ^ m1)) < 0.55


def test_and_triples_are_exact_and_fresh_per_batch():
    parties = two_parties()
    triples = []
    for _ in range(2):
        choices, recv, sent = run_batch(parties, 4096)
        shares = [and_shares(sent[p], recv[p][1], choices[p]) for p in range(2)]
        a, b, c = (shares[0][i] ^ shares[1][i] for i in range(3))
        assert np.array_equal(c, a & b)
        triples.append(a)
    assert not np.array_equal(triples[0], triples[1])


def test_the_sender_cannot_read_choice_differences_across_batches():
    """The attack: a sender XORs the receiver's u matrices of two batches.  Were the key stream
    the same in both (the batch not advancing the PRG's counter), that XOR would be the
    difference of the receiver's choice bits in every row; with fresh streams it is uniform."""
    parties = two_parties()
    m = 4096
    first = [random_bits(m) for _ in range(2)]
    second = [random_bits(m) for _ in range(2)]
    u1 = run_batch(parties, m, first)[1][1][0]
    u2 = run_batch(parties, m, second)[1][1][0]
    leak = _bits(first[1] ^ second[1])
    rows_equal_to_leak = sum(np.array_equal(_bits(u1[i] ^ u2[i]), leak) for i in range(KAPPA))
    assert rows_equal_to_leak == 0
