"""Exact two-party HE products over Z_2^64 (protocols/randomness/he_products.py): both parties
in this process, their keys separate; a few seconds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("tenseal")

from protocols.randomness.he_context import HeKeys, HeParams, PeerMessageError  # noqa: E402
from protocols.randomness.he_crt import random_ring  # noqa: E402
from protocols.randomness.he_jobs import BitJob, DualJob, MatJob, MulJob  # noqa: E402
from protocols.randomness.he_products import HeProducts  # noqa: E402

EDGES = np.array([-(2**63), 2**63 - 1, 0, -1, 1, -2], dtype=np.int64)


@pytest.fixture(scope="module")
def pair():
    a, b = HeKeys(HeParams()), HeKeys(HeParams())
    a.set_peer(b.public_bytes(), "party 1")
    b.set_peer(a.public_bytes(), "party 0")
    return HeProducts(a), HeProducts(b)


def _ring(n: int) -> np.ndarray:
    return random_ring(n).view(np.int64)


def _run(pair, jobs, lefts, rights):
    a, b = pair
    cts = a.encrypt(jobs, lefts)
    answers, shares_b = b.evaluate(jobs, rights, cts, "party 0")
    shares_a = a.decrypt(jobs, answers, "party 1")
    return [sa + sb for sa, sb in zip(shares_a, shares_b)]


def test_elementwise_products_exact_random_and_edges(pair):
    x = np.concatenate([np.repeat(EDGES, len(EDGES)), _ring(9000)])
    y = np.concatenate([np.tile(EDGES, len(EDGES)), _ring(9000)])
    (got,) = _run(pair, [MulJob(x.size)], [x], [y])
    assert np.array_equal(got, x * y)  # numpy int64 wraps: the product mod 2^64


def test_one_left_operand_with_several_right_ones_exact(pair):
    # MulJob(n, reps): x encrypted once, answered with each column of y; element-major
    n, reps = 8192 + 37, 3
    x, y = _ring(n), _ring(n * reps).reshape(n, reps)
    y[:8, 1] = EDGES[:6].tolist() + [0, 0]
    a, _ = pair
    job = MulJob(n, reps)
    assert (a.count(job, "in"), a.count(job, "out")) == (2, 2 * reps)
    (got,) = _run(pair, [job], [x], [y])
    assert np.array_equal(got.reshape(n, reps), x[:, None] * y)


@pytest.mark.parametrize("n,reps", [(8192 + 37, 3), (len(EDGES) ** 2, 1)])
def test_both_cross_terms_in_one_answer_exact(pair, n, reps):
    # DualJob: A encrypts [u_A | v_A], B answers Enc(u_A) v_B + Enc(v_A) u_B; element-major
    x, y = _ring(n * (1 + reps)).reshape(n, 1 + reps), _ring(n * (1 + reps)).reshape(n, 1 + reps)
    x[: len(EDGES) ** 2, 0], y[: len(EDGES) ** 2, 0] = np.repeat(EDGES, len(EDGES)), 0
    x[: len(EDGES) ** 2, 1], y[: len(EDGES) ** 2, 1] = 0, np.tile(EDGES, len(EDGES))
    if n > 8192:
        x[8192:, 1:] = 0  # the last block answers with one term, or none (column of zeros)
        y[8192:, 0] = 0
    a, _ = pair
    job = DualJob(n, reps)
    blocks = -(-n // 8192)
    assert (a.count(job, "in"), a.count(job, "out")) == (blocks * (1 + reps), blocks * reps)
    (got,) = _run(pair, [job], [x], [y])
    want = x[:, :1] * y[:, 1:] + x[:, 1:] * y[:, :1]  # int64 wraps: mod 2^64
    assert np.array_equal(got.reshape(n, reps), want)


@pytest.mark.parametrize(
    "n,k,m",
    [(3, 5, 4), (32, 32, 96), (1, 200, 7), (6, 6, 6), (96, 256, 32)],  # last: 13 k-blocks
)
def test_matrix_products_exact(pair, n, k, m):
    x, y = _ring(n * k).reshape(n, k), _ring(k * m).reshape(k, m)
    x[0, : min(k, len(EDGES))] = EDGES[: min(k, len(EDGES))]
    (got,) = _run(pair, [MatJob(n, k, m)], [x], [y])
    assert torch.equal(
        torch.from_numpy(got.reshape(n, m)), torch.from_numpy(x) @ torch.from_numpy(y)
    )


def test_edge_matrices_exact(pair):
    x = np.full((4, 8), -(2**63), dtype=np.int64)
    y = np.full((8, 3), -1, dtype=np.int64)
    (got,) = _run(pair, [MatJob(4, 8, 3)], [x], [y])
    assert torch.equal(
        torch.from_numpy(got.reshape(4, 3)), torch.from_numpy(x) @ torch.from_numpy(y)
    )


@pytest.mark.parametrize("job", [MulJob(5), BitJob(9), MatJob(2, 3, 4), DualJob(5, 2)], ids=str)
def test_an_all_zero_operand_gives_zero_products_not_seals_transparent_error(pair, job):
    # y = 0 in a whole ciphertext (9 random bits: 1 in 512) makes SEAL's product "transparent",
    # which it refuses: seen first as RuntimeError in a run of --provider he
    n_x, n_y = (job.n * job.k, job.k * job.m) if isinstance(job, MatJob) else (job.n, job.n)
    if isinstance(job, DualJob):
        n_x = n_y = job.n * (1 + job.reps)
    x = _ring(n_x) & 1 if isinstance(job, BitJob) else _ring(n_x)
    (got,) = _run(pair, [job], [x], [np.zeros(n_y, np.int64)])
    assert not got.any()


def test_bit_products_exact(pair):
    x, y = _ring(3000) & 1, _ring(3000) & 1
    (got,) = _run(pair, [BitJob(3000)], [x], [y])
    assert np.array_equal(got, x * y)


def test_several_jobs_in_one_message(pair):
    x1, y1 = _ring(5), _ring(5)
    x2, y2 = _ring(6).reshape(2, 3), _ring(12).reshape(3, 4)
    got = _run(pair, [MulJob(5), MatJob(2, 3, 4)], [x1, x2], [y1, y2])
    assert np.array_equal(got[0], x1 * y1)
    assert np.array_equal(
        got[1].reshape(2, 4), (torch.from_numpy(x2) @ torch.from_numpy(y2)).numpy()
    )


def test_malformed_ciphertext_names_the_peer(pair):
    a, b = pair
    cts = a.encrypt([MulJob(4)], [_ring(4)])
    bad = [b"\x00garbage" * 10] + cts[1:]
    with pytest.raises(PeerMessageError, match="party 0"):
        b.evaluate([MulJob(4)], [_ring(4)], bad, "party 0")
    truncated = [cts[0][: len(cts[0]) // 2]] + cts[1:]
    with pytest.raises(PeerMessageError, match="party 0"):
        b.evaluate([MulJob(4)], [_ring(4)], truncated, "party 0")
    # a valid ciphertext at the wrong level (an answer where a fresh one is expected)
    answers, _ = b.evaluate([MulJob(4)], [_ring(4)], cts, "party 0")
    with pytest.raises(PeerMessageError, match="party 1"):
        b.evaluate([MulJob(4)], [_ring(4)], answers, "party 1")


def test_mismatched_parameters_refused():
    a = HeKeys(HeParams())
    other = HeKeys(HeParams(plain_bits=58))
    with pytest.raises(PeerMessageError, match="party 1's HE parameters"):
        a.set_peer(other.public_bytes(), "party 1")
    with pytest.raises(PeerMessageError, match="party 1"):
        a.set_peer(b"\x01\x02", "party 1")


def test_parameters_below_128_bit_security_refused():
    from protocols.errors import ConfigError

    with pytest.raises(ConfigError, match="128-bit"):
        HeParams(coeff_bits=(60, 60, 60, 60)).check()


@pytest.mark.parametrize("t", [576460752302473217, 576460752303210497, (1 << 61) - 1])
def test_mulmod_matches_python_integers_across_pieces(t):
    from protocols.randomness.he_crt import mulmod

    edges = np.array([0, 1, 2**64 - 1, t - 1, t, 2 * t], dtype=np.uint64)
    a = np.concatenate([random_ring(20000), edges])  # more than one piece of 8192
    for c in (0, 1, 2, t - 1, t // 3, int(random_ring(1)[0]) % t):
        want = np.array([int(x) * c % t for x in a.tolist()], dtype=np.uint64)
        assert np.array_equal(mulmod(a, c, t), want), c


def test_coefficient_plaintext_equals_seals_own_and_refuses_coefficients_past_t(pair):
    from protocols.randomness.he_context import coeff_plain

    keys = pair[0].keys
    t = keys.primes[0]
    coeffs = np.zeros(keys.params.poly_degree, dtype=np.uint64)
    coeffs[[0, 3, 8191]] = [7, 5, t - 1]
    built = coeff_plain(keys.contexts[0], coeffs)
    seal_text = keys.seal.Plaintext(f"{t - 1:X}x^8191 + 5x^3 + 7")
    assert built.to_string() == seal_text.to_string()
    coeffs[1] = t  # not a residue: SEAL's validity check refuses it
    with pytest.raises(PeerMessageError):
        coeff_plain(keys.contexts[0], coeffs)


def _budgets(pa, pb, job, y, flood: bool) -> list[int]:
    """The decryptor's noise budget (bits) in the first answer of each prime of ``job`` with
    the evaluator's operand ``y``, its noise flooded or not."""
    from protocols.randomness.he_context import from_bytes

    a = pa.keys
    n_x = job.n * getattr(job, "k", 1) * (1 + job.reps if isinstance(job, DualJob) else 1)
    pb.flood = flood
    try:
        answers, _ = pb.evaluate([job], [y], pa.encrypt([job], [_ring(n_x)]), "x")
    finally:
        pb.flood = True
    per_prime = pa.count(job, "out")
    return [
        a.decryptors[j].invariant_noise_budget(
            from_bytes(a.seal.Ciphertext(), a.contexts[j], answers[j * per_prime], "x")
        )
        for j in range(len(a.primes))
    ]


def _pair_for(params):
    a, b = HeKeys(params), HeKeys(params)
    a.set_peer(b.public_bytes(), "party 1")
    b.set_peer(a.public_bytes(), "party 0")
    return HeProducts(a), HeProducts(b)


@pytest.mark.parametrize("plain", [(59, 3), (45, 4)])  # the default; SPU's choice of primes
@pytest.mark.parametrize("terms", [1, 16])
def test_the_analytic_noise_bound_holds_over_seals_own_noise(plain, terms):
    """he_noise's bound on the operand-dependent noise of a sum of ``terms`` products, against
    the noise SEAL's decryptor reads (at the product level, before anything else is added),
    for random operands and for the largest centered coefficients ``(t - 1) / 2``."""
    from protocols.randomness.he_context import coeff_plain, from_bytes, to_bytes
    from protocols.randomness.he_noise import dependent_noise

    params = HeParams(plain_bits=plain[0], primes=plain[1])
    pa, _ = _pair_for(params)
    keys, t = pa.keys, pa.keys.primes[0]
    top = keys.contexts[0].first_context_data()
    log_room = math.log2(math.prod(m.value() for m in top.parms().coeff_modulus()) / t)
    bound = math.log2(dependent_noise(pa.degree, t, terms))
    rng = np.random.default_rng(terms)
    for y_kind in ("random", "largest"):
        acc = None
        for _ in range(terms):
            x = rng.integers(0, t, pa.degree, dtype=np.uint64)
            y = rng.integers(0, t, pa.degree, dtype=np.uint64)
            if y_kind == "largest":
                y[:] = (t - 1) // 2
            sent = to_bytes(keys.encryptors[0].encrypt_symmetric(pa._coeff_plain(x, 0)))
            ct = from_bytes(keys.seal.Ciphertext(), keys.contexts[0], sent, "x")
            prod = keys.seal.Ciphertext()
            keys.evaluators[0].multiply_plain(ct, coeff_plain(keys.contexts[0], y), prod)
            acc = prod if acc is None else (keys.evaluators[0].add_inplace(acc, prod) or acc)
        measured = log_room - 1 - keys.decryptors[0].invariant_noise_budget(acc)
        assert measured <= bound, (y_kind, measured, bound)


@pytest.mark.parametrize("plain", [(59, 3), (45, 4)])
def test_flooding_is_sigma_bits_wider_than_the_unflooded_noise(plain):
    """Unflooded, an answer's noise is about 2^(log2(q'/t) - budget); the flood's width W must
    exceed it by sigma = 40 bits (measured here; he_noise's analytic bound is refused below
    sigma), and decryption must stay exact at the widest sum of products."""
    params = HeParams(plain_bits=plain[0], primes=plain[1])
    pa, pb = _pair_for(params)
    level = pb.answer_levels[0]
    room = level.total_coeff_modulus_bit_count() - pa.keys.primes[0].bit_length()
    assert min(f.coefficient_bits for f in pb.floods) >= params.sigma
    for job in (MulJob(100), MatJob(4, pa.k_max, 4)):
        n_y = job.k * job.m if isinstance(job, MatJob) else job.n
        noise_bits = room - min(_budgets(pa, pb, job, _ring(n_y), flood=False))
        assert min(pb.flood_bits) - noise_bits >= params.sigma
        assert min(_budgets(pa, pb, job, _ring(n_y), flood=True)) >= 1


def test_parameters_whose_flood_cannot_reach_sigma_are_refused():
    from protocols.errors import ConfigError

    keys = HeKeys(HeParams(coeff_bits=(60, 60, 38)))  # 128-bit secure, too little room
    with pytest.raises(ConfigError, match=r"noise flooding: expected >= sigma = 40 bits"):
        HeProducts(keys)


@pytest.mark.parametrize("job", [MulJob(8192), DualJob(8192)], ids=str)
def test_the_decryptor_cannot_tell_the_evaluators_operand_from_the_noise(pair, job):
    """The attack: the decrypting party reads its answer's noise size (SEAL's noise budget,
    from its own secret key) to tell an evaluator's operand of ones from a random one.  It
    works without flooding (53 against 52 bits, every time, measured) and fails with it; for
    one product and for both cross terms in one answer."""
    pa, pb = pair
    shape = (8192, 1 + job.reps) if isinstance(job, DualJob) else (8192,)
    seen = {}
    for flood in (False, True):
        for name in ("ones", "random"):
            ys = [
                np.ones(shape, np.int64)
                if name == "ones"
                else _ring(8192 * len(shape)).reshape(shape)
                for _ in range(3)
            ]
            seen[flood, name] = np.mean([_budgets(pa, pb, job, y, flood) for y in ys])
    assert seen[False, "ones"] > seen[False, "random"]  # the attack on unflooded answers
    assert abs(seen[True, "ones"] - seen[True, "random"]) < 0.5
