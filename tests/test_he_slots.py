"""Elementwise cross products as few encryptions (protocols/randomness/he_slots.py), without HE:
the two parties' job lists must agree, and the shares their cross terms give (simulated in the
clear, exactly over Z_2^64) must assemble into each product's ``a_0 b_1 + a_1 b_0``; squares
by halves into ``2 a_0 a_1``.  Fast: no processes, no keys."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from protocols.randomness.he_slots import cover, slot_jobs, square_job, square_shares


def _ring(*shape) -> torch.Tensor:
    return torch.randint(-(2**63), 2**63 - 1, shape, dtype=torch.int64)


def _party(shapes: dict, pairs: list, size_of: dict):
    """One party's products: ``pairs`` of operand names, each operand one tensor of
    ``shapes[name]`` (a name used twice is the same tensor), expanded to ``size_of[pair]``."""
    ops = {name: _ring(*shape) for name, shape in shapes.items()}
    return [(ops[a].expand(size_of[a, b]), ops[b].expand(size_of[a, b])) for a, b in pairs]


def _cross(jobs0, jobs1):
    """Each party's ``(decrypted, mask)`` parts of every dual job, simulated in the clear: party
    p decrypts ``U_p V'_(1-p) + V_p U'_(1-p) + r_p`` (its left ``[U_p | V_p]``, the peer's
    right ``[U' | V']``) and the peer keeps ``-r_p``."""
    s0, s1 = [], []
    for (job, l0, r0), (job1, l1, r1) in zip(jobs0, jobs1):
        assert job == job1 and l0.shape == r0.shape == (job.n, 1 + job.reps)
        L0, L1, R0, R1 = (torch.from_numpy(x) for x in (l0, l1, r0, r1))
        r = [_ring(job.n, job.reps) for _ in range(2)]
        z0 = L0[:, :1] * R1[:, 1:] + L0[:, 1:] * R1[:, :1] + r[0]
        z1 = L1[:, :1] * R0[:, 1:] + L1[:, 1:] * R0[:, :1] + r[1]
        s0.append((z0.reshape(-1).numpy(), (-r[1]).reshape(-1).numpy()))
        s1.append((z1.reshape(-1).numpy(), (-r[0]).reshape(-1).numpy()))
    return s0, s1


def _check(shapes, pairs, size_of):
    p0, p1 = _party(shapes, pairs, size_of), _party(shapes, pairs, size_of)
    (jobs0, asm0), (jobs1, asm1) = slot_jobs(p0, 0), slot_jobs(p1, 1)
    s0, s1 = _cross(jobs0, jobs1)
    for (a0, b0), (a1, b1), c0, c1 in zip(p0, p1, asm0(s0), asm1(s1)):
        want = (a0 * b1 + a1 * b0).reshape(-1)
        assert torch.equal(torch.from_numpy(c0) + torch.from_numpy(c1), want)
    return jobs0


def test_a_gate_mask_met_by_several_masks_is_encrypted_once_and_every_product_is_exact():
    shapes = {"g": (4, 6), "h": (4, 6), "c": (4, 6), "d": (4, 6), "x": (4, 1), "y": (4, 6)}
    pairs = [("g", "h"), ("g", "c"), ("d", "g"), ("x", "y"), ("h", "c")]
    size_of = {p: (4, 6) for p in pairs}
    jobs = _check(shapes, pairs, size_of)
    # g covers three products, h-c needs one more, and the broadcast x*y one of its own; each
    # party encrypts half of each group's [u | v_q] and answers the other half, both cross
    # terms at once: 5 * 12 answered elements, (4 + 2 + 2) * 12 encrypted ([u | v_q]), per party
    assert sorted(j.reps for j, _, _ in jobs) == [1, 1, 3]
    assert sum(j.n * j.reps for j, _, _ in jobs) == 5 * 12
    assert sum(j.n * (1 + j.reps) for j, _, _ in jobs) == 8 * 12


@pytest.mark.parametrize("seed", range(5))
def test_random_product_graphs_are_exact_and_encrypt_no_more_than_one_operand_each(seed):
    rng = random.Random(seed)
    names = [f"m{i}" for i in range(rng.randint(2, 9))]
    shapes = {name: (3, 5) for name in names}
    pairs = [tuple(rng.sample(names, 2)) for _ in range(rng.randint(1, 15))]
    size_of = {p: (3, 5) for p in pairs}
    jobs = _check(shapes, pairs, size_of)
    assert sum(j.reps for j, _, _ in jobs) == len(pairs)  # one answer per product
    assert len(jobs) <= min(len(pairs), len(names))  # a group per cover vertex
    assert all(j.n == 8 for j, _, _ in jobs)  # half of 15 elements, rounded up, per party


def test_the_cover_breaks_ties_by_position_never_by_pointer():
    # a fresh product's two operands tie (one product each): the left one is encrypted
    prods = [(_ring(3), _ring(3)) for _ in range(4)]
    for key, members in cover(prods):
        (i,) = members
        assert key[0] == prods[i][0].data_ptr()


@pytest.mark.parametrize("sizes", [[5, 3], [1], [4, 4, 1]])
def test_squares_made_in_one_direction_each_give_two_a0_a1(sizes):
    sq = [[_ring(n) for n in sizes] for _ in range(2)]  # each party's shares
    (job, l0, r0), (job1, l1, r1) = square_job(sq[0], 0), square_job(sq[1], 1)
    assert job == job1 and job.n == -(-sum(sizes) // 2)  # half the slots
    # party p decrypts L_p R_(1-p) + r_p; the peer keeps -r_p as its mask share
    r = [_ring(job.n) for _ in range(2)]
    dec = [torch.from_numpy(l0) * torch.from_numpy(r1) + r[0], None]
    dec[1] = torch.from_numpy(l1) * torch.from_numpy(r0) + r[1]
    got = [square_shares(dec[p].numpy(), (-r[1 - p]).numpy(), p, sq[p]) for p in range(2)]
    u0, u1 = torch.cat(sq[0]), torch.cat(sq[1])
    assert np.array_equal(got[0] + got[1], (2 * u0 * u1).numpy())
