"""HE products on worker processes (protocols/randomness/he_workers.py): exact results when the
two parties use different worker counts (the cut does not depend on them), slot jobs cut into
pieces and joined, a peer's bad ciphertext raised from a worker with its type, and the count
checked.  About 15 s (two spawned workers)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tenseal")

from protocols.errors import ConfigError  # noqa: E402
from protocols.randomness.he_context import HeKeys, HeParams, PeerMessageError  # noqa: E402
from protocols.randomness.he_crt import random_ring  # noqa: E402
from protocols.randomness.he_jobs import BitJob, MatJob, MulJob  # noqa: E402
from protocols.randomness.he_products import HeProducts  # noqa: E402
from protocols.randomness.he_workers import PIECE, HeWorkers, join, split  # noqa: E402


@pytest.fixture(scope="module")
def workers(subprocesses):  # the fixture marks the tests `processes` (worker processes start)
    a, b = HeKeys(HeParams()), HeKeys(HeParams())
    a.set_peer(b.public_bytes(), "party 1")
    b.set_peer(a.public_bytes(), "party 0")
    two = HeWorkers(HeProducts(a), 2, timeout_s=120)  # party 0: two processes
    one = HeWorkers(HeProducts(b), 1, timeout_s=120)  # party 1: in its own process
    yield two, one
    two.close()


def test_split_cuts_slot_jobs_only_and_join_restores_each_job():
    n = PIECE * 8192 * 2 + 5
    jobs = [MulJob(n), MatJob(2, 3, 4), BitJob(7)]
    xs = [np.arange(n), np.arange(6), np.arange(7)]
    pieces, px, _, owner = split(jobs, xs, xs, 8192)
    assert [type(p).__name__ for p in pieces] == ["MulJob"] * 3 + ["MatJob", "BitJob"]
    assert [p.n for p in pieces[:3]] == [PIECE * 8192, PIECE * 8192, 5] and owner == [0, 0, 0, 1, 2]
    back = join(px, owner, 3)
    assert all(np.array_equal(b, x) for b, x in zip(back, xs))


def test_products_exact_across_worker_counts(workers):
    two, one = workers
    n = PIECE * 8192 + 1000  # two pieces
    jobs = [MulJob(n), MatJob(6, 5, 7), BitJob(300), MatJob(32, 32, 96), MulJob(n, reps=3)]
    shapes = [(n, n), (30, 35), (300, 300), (32 * 32, 32 * 96), (n, 3 * n)]
    xs = [random_ring(a).view(np.int64) for a, _ in shapes]
    ys = [random_ring(b).view(np.int64) for _, b in shapes]
    xs[2], ys[2] = xs[2] & 1, ys[2] & 1
    ys[4] = ys[4].reshape(n, 3)  # one left operand, three right ones (cut by rows)
    pieces, px, py, owner = split(jobs, xs, ys, 8192)
    answers, masks = one.evaluate(pieces, py, two.encrypt(pieces, px), "party 0")
    got = join([d + e for d, e in zip(two.decrypt(pieces, answers, "party 1"), masks)], owner, 5)
    assert np.array_equal(got[0], xs[0] * ys[0])
    assert np.array_equal(got[1], (xs[1].reshape(6, 5) @ ys[1].reshape(5, 7)).reshape(-1))
    assert np.array_equal(got[2], xs[2] * ys[2])
    assert np.array_equal(got[3], (xs[3].reshape(32, 32) @ ys[3].reshape(32, 96)).reshape(-1))
    assert np.array_equal(got[4], (xs[4][:, None] * ys[4]).reshape(-1))  # element-major


def test_a_bad_ciphertext_is_refused_in_a_worker_naming_the_peer(workers):
    two, _ = workers
    jobs = [MulJob(10), MulJob(10)]
    blobs = [b"\x00" * 64] * (2 * 3)
    with pytest.raises(PeerMessageError, match="party 1's product ciphertext"):
        two.evaluate(jobs, [np.zeros(10, np.int64)] * 2, blobs, "party 1")


def test_worker_count_checked():
    with pytest.raises(ConfigError, match="--he-workers.*1..256"):
        HeWorkers(None, 0, timeout_s=1)


def test_ot_pieces_on_workers_equal_the_serial_ones(workers):
    import os

    from protocols.randomness.ot_extension import CHUNK, RandomOt, random_bits

    two, _ = workers
    delta, chosen = os.urandom(16), [os.urandom(16) for _ in range(128)]
    pairs = [(os.urandom(16), os.urandom(16)) for _ in range(128)]
    m = CHUNK + 1024  # two pieces
    choices, u_peer = random_bits(m), np.frombuffer(os.urandom(16 * m), np.uint8).reshape(128, -1)
    serial, pooled = RandomOt(delta, chosen, pairs), RandomOt(delta, chosen, pairs)
    for a, b in zip(serial.receive(choices, m), pooled.receive(choices, m, two.starmap)):
        assert np.array_equal(a, b)
    for a, b in zip(serial.send(u_peer, m), pooled.send(u_peer, m, two.starmap)):
        assert np.array_equal(a, b)
