"""Matrix cross products stacked by shared operand (protocols/randomness/he_matmul.py), without
HE: the two parties' job lists must agree, and the shares that a job list's cross terms give
(simulated here in the clear, exactly over Z_2^64) must assemble into each product's
``a_0 @ b_1 + a_1 @ b_0``.  Fast: no processes, no keys."""

from __future__ import annotations

import pytest
import torch

from protocols.randomness.he_matmul import mat_cost, stack

DEGREE, K_MAX = 8192, 256


def _ring(*shape) -> torch.Tensor:
    return torch.randint(-(2**63), 2**63 - 1, shape, dtype=torch.int64)


def _party(structure):
    """One party's 2-D products for ``structure``: a list of ``(a_name, b_name)`` over operands
    ``{name: shape}`` (a name used twice is the same tensor, as a mask referenced twice is)."""
    shapes, pairs = structure
    ops = {name: _ring(*shape) for name, shape in shapes.items()}
    views = {name: t for name, t in ops.items()}
    views.update({name + "^T": t.T for name, t in ops.items()})  # a transposed mask: one view
    return [(views[a], views[b]) for a, b in pairs]


def _simulate(jobs0, jobs1):
    """Each party's share of every job's cross terms ``L_0 R_1 + L_1 R_0`` (split by a random r)."""
    s0, s1 = [], []
    for (job, l0, r0), (job1, l1, r1) in zip(jobs0, jobs1):
        assert job == job1
        L0, R0 = torch.from_numpy(l0).reshape(job.n, job.k), torch.from_numpy(r0).reshape(job.k, -1)
        L1, R1 = torch.from_numpy(l1).reshape(job.n, job.k), torch.from_numpy(r1).reshape(job.k, -1)
        r = _ring(job.n, job.m)
        s0.append((L0 @ R1 + r).reshape(-1).numpy())
        s1.append((L1 @ R0 - r).reshape(-1).numpy())
    return s0, s1


W1_LIKE = (
    {"w": (96, 32), "v": (96, 32), **{f"a{t}": (32, 32) for t in range(6)}, "g": (32, 96)},
    [(f"a{t}", "w^T") for t in range(6)]  # one weight mask, six time steps: right shared
    + [("g", "v"), ("g", "w")],  # one left operand, two rights: left shared
)
CASES = {
    "w1-like": W1_LIKE,
    "alone": ({"x": (5, 7), "y": (7, 3)}, [("x", "y")]),
    "transposed": ({"x": (928, 12), "y": (12, 96)}, [("x", "y")]),
    "28 steps, transposed": (
        {"w": (96, 32), **{f"a{t}": (32, 32) for t in range(28)}},
        [(f"a{t}", "w^T") for t in range(28)],
    ),
    "k above one chunk": ({"x": (3, 300), "y": (300, 2), "z": (4, 300)}, [("x", "y"), ("z", "y")]),
    "square": ({"x": (6, 6)}, [("x", "x"), ("x", "x^T")]),
    "empty": ({"x": (0, 4), "y": (4, 3), "z": (2, 0), "u": (0, 5)}, [("x", "y"), ("z", "u")]),
}


@pytest.mark.parametrize("name", CASES)
def test_stacked_jobs_give_every_products_cross_terms_exactly(name):
    torch.manual_seed(0)
    mats0, mats1 = _party(CASES[name]), _party(CASES[name])
    jobs0, assemble0 = stack(mats0, DEGREE, K_MAX)
    jobs1, assemble1 = stack(mats1, DEGREE, K_MAX)
    s0, s1 = _simulate(jobs0, jobs1)
    for (a0, b0), (a1, b1), c0, c1 in zip(mats0, mats1, assemble0(s0), assemble1(s1)):
        want = a0 @ b1 + a1 @ b0
        assert torch.equal(torch.from_numpy(c0) + torch.from_numpy(c1), want)


def test_a_weight_mask_shared_by_the_time_steps_is_one_job_with_fewer_ciphertexts():
    mats = _party(W1_LIKE)
    jobs, _ = stack(mats, DEGREE, K_MAX)
    assert len(jobs) == 2  # the six time steps, then g @ [v | w]
    one_by_one = sum(mat_cost(a.shape[0], a.shape[1], b.shape[1], DEGREE, K_MAX) for a, b in mats)
    stacked = sum(mat_cost(j.n, j.k, j.m, DEGREE, K_MAX) for j, _, _ in jobs)
    assert stacked * 2 < one_by_one, (stacked, one_by_one)


def test_the_cheaper_orientation_is_taken():
    # (928, 12) @ (12, 96): encrypting the (96, 12) side and answering 96 x 928 sends fewer
    mats = [(_ring(928, 12), _ring(12, 96))]
    ((job, _, _),), _ = stack(mats, DEGREE, K_MAX)
    assert (job.n, job.k, job.m) == (96, 12, 928)
    assert mat_cost(96, 12, 928, DEGREE, K_MAX) < mat_cost(928, 12, 96, DEGREE, K_MAX)
