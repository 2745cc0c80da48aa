"""--provider he (protocols/randomness/he_triples.py): two real party processes make every kind
of randomness with homomorphic encryption; the parent checks each answer exactly over the ring.
About 15 s (two processes, TLS off)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("tenseal")


from protocols.randomness.requests import (  # noqa: E402
    AndRequest,
    BitRequest,
    MaskProductRequest,
    MaskRequest,
    Op,
    ProductRequest,
)

REQUESTS = [
    ProductRequest(Op.MUL, (4, 3), (4, 3)),
    ProductRequest(Op.MUL, (5, 1, 3), (2, 3)),  # broadcasting
    ProductRequest(Op.MATMUL, (6, 5), (5, 7)),
    ProductRequest(Op.MATMUL, (2, 3, 300), (300, 4)),  # batched, k above one CRT chunk
    MaskRequest((3, 8)),
    MaskRequest((5, 8)),
    MaskProductRequest(Op.MATMUL, (3, 8), (5, 8), 2, 1, True),  # a @ b^T
    MaskProductRequest(Op.MUL, (3, 8), (3, 8), 3, 3),  # a square
    AndRequest((7,), (7,)),
    BitRequest((9,)),
    MaskRequest((4, 8)),  # 10: a weight mask w
    MaskRequest((3, 8)),  # 11, 12: two time steps' masks
    MaskRequest((3, 8)),
    MaskProductRequest(Op.MATMUL, (3, 8), (4, 8), 2, 3, True),  # 13: a_11 @ w^T
    MaskProductRequest(Op.MATMUL, (3, 8), (4, 8), 2, 4, True),  # 14: a_12 @ w^T (one job)
    MaskRequest((8, 5)),  # 15
    MaskProductRequest(Op.MATMUL, (3, 8), (8, 5), 5, 1),  # 16: a_11 @ m_15
    MaskRequest((5,)),  # 17
    MaskProductRequest(Op.MUL, (5,), (5,), 1, 1),  # 18: a second square (29 elements: odd)
    MaskRequest((3, 8)),  # 19
    MaskProductRequest(Op.MUL, (3, 8), (3, 8), 9, 8),  # 20: a_11 * a_12
    MaskProductRequest(Op.MUL, (3, 8), (3, 8), 10, 2),  # 21: a_11 * m_19 (a_11 encrypted once)
]


def fetch_party(session):
    """A recorded step (a fetch per group), then its replay (one batch at begin); AND triples
    in OT batches of 256 (the request's 448 OTs: two batches)."""
    from protocols.randomness import he_triples

    he_triples.OT_BATCH = 256
    t = session.triples
    answers = []
    for _ in range(2):
        t.begin("step")
        answers.append(t.fetch(REQUESTS[:4]) + t.fetch(REQUESTS[4:]))
        t.end()
    import crypten.mpc

    a, b, c = crypten.mpc.get_default_provider().generate_additive_triple((3, 2), (2, 4), "matmul")
    crypten_triple = [x.share for x in (a, b, c)]
    ot = (t.ot.delta.tobytes(), t.ot.chosen, t.ot.pairs)
    return answers, session.stats.snapshot(), crypten_triple, ot


def _check(outs):
    for pos, req in enumerate(REQUESTS):
        if isinstance(req, ProductRequest):
            a, b, c = (_sum(outs, pos, i) for i in range(3))
            want = a * b if req.op is Op.MUL else a @ b
            assert torch.equal(c, want), pos
    a, b = _sum(outs, 4, 0), _sum(outs, 5, 0)
    assert torch.equal(_sum(outs, 6, 0), a @ b.T)
    assert torch.equal(_sum(outs, 7, 0), a * a)
    x = [outs[r][0][8] for r in range(2)]
    a, b, c = (x[0][i] ^ x[1][i] for i in range(3))
    assert torch.equal(c, a & b)
    w, a11, a12, m15 = (_sum(outs, pos, 0) for pos in (10, 11, 12, 15))
    assert torch.equal(_sum(outs, 13, 0), a11 @ w.T)  # the weight mask stacked (he_matmul)
    assert torch.equal(_sum(outs, 14, 0), a12 @ w.T)
    assert torch.equal(_sum(outs, 16, 0), a11 @ m15)
    m17 = _sum(outs, 17, 0)
    assert torch.equal(_sum(outs, 18, 0), m17 * m17)  # squares: one direction each
    assert torch.equal(_sum(outs, 20, 0), a11 * a12)  # a shared mask (he_slots)
    assert torch.equal(_sum(outs, 21, 0), a11 * _sum(outs, 19, 0))
    r_bin = outs[0][0][9][0] ^ outs[1][0][9][0]
    assert set(r_bin.unique().tolist()) <= {0, 1}
    assert torch.equal(_sum(outs, 9, 1), r_bin)


def _sum(outs, pos, i):
    return outs[0][0][pos][i] + outs[1][0][pos][i]


def test_every_kind_is_exact_for_two_parties(parties):
    outs = parties(fetch_party, world_size=2, provider="HE", timeout_s=120)
    for step in range(2):  # recorded, then replayed from one batch
        _check([(answers[step], stats) for answers, stats, *_ in outs])
    assert not torch.equal(outs[0][0][0][0][0], outs[0][0][1][0][0])  # fresh randomness
    a, b, c = (outs[0][2][i] + outs[1][2][i] for i in range(3))
    assert torch.equal(c, a @ b)  # CrypTen's own operations reach the HE provider
    for _, stats, *_ in outs:
        sent = stats["bytes_sent"]
        assert sent["he_offline"] > 0 and sent["he_ot"] > 0 and "dealer" not in sent
    for p in range(2):  # base OTs: p holds, for each i, the peer's seed chosen by its Delta bit
        delta, chosen, _ = outs[p][3]
        pairs = outs[1 - p][3][2]
        bits = [(delta[i // 8] >> (i % 8)) & 1 for i in range(128)]
        assert chosen == [pairs[i][bits[i]] for i in range(128)]
        assert 0 < sum(bits) < 128


B_STEP = [ProductRequest(Op.MUL, (4, 3), (4, 3))]


def prefetch_party(session):
    """Steps naming the next step's key: its plan is computed on a thread, over the HE
    provider's own links, while the step runs.  Taken by the next step of that key (3); waited
    for by a fetch outside any step, then taken (5); dropped by a step of another key (8)."""
    t = session.triples
    assert t.links is session.transport.links.offline and t.links is not session.transport.links
    assert t.prefetch  # the default
    a_steps, b_steps = [], []

    def step(key, nxt):
        t.begin(key, nxt)
        if key == "a":
            a_steps.append(t.fetch(REQUESTS[:4]) + t.fetch(REQUESTS[4:]))
        else:
            b_steps.append(t.fetch(B_STEP))
        t.end()

    step("a", None)  # 1: recorded
    step("a", "a")  # 2: computed at begin; the prefetch of the next "a" starts
    step("a", "a")  # 3: taken from it; another starts
    outside = t.fetch(B_STEP)  # 4: waits for that prefetch, then computes
    step("a", "b")  # 5: taken (no plan for "b" yet: nothing starts)
    step("b", "a")  # 6: recorded
    step("a", "a")  # 7: computed; a prefetch of "a" starts
    step("b", None)  # 8: that prefetch is waited for and dropped
    return a_steps, b_steps + [outside], t.overlap.to_json()


def test_the_next_steps_plan_is_computed_beside_this_step_and_is_exact(parties):
    outs = parties(prefetch_party, world_size=2, provider="HE", timeout_s=180)
    for step in range(5):
        _check([(outs[r][0][step], None) for r in range(2)])
    for step in range(3):
        (a0, b0, c0), (a1, b1, c1) = outs[0][1][step][0], outs[1][1][step][0]
        assert torch.equal(c0 + c1, (a0 + a1) * (b0 + b1))
    for _, _, overlap in outs:
        assert overlap["prefetched_steps"] == 3, overlap
        assert 0 <= overlap["hidden_s"] <= overlap["offline_s"]


def peer_dies_during_prefetch_party(session):
    """Party 1 leaves without a word while party 0's prefetch thread waits for it on the HE
    links: party 0's next begin raises the thread's error, naming party 1, at once."""
    import os
    import time

    from protocols.errors import PartyError

    t = session.triples
    t.prefetch = session.rank == 0
    t.begin("a")
    t.fetch(B_STEP)
    t.end()
    t.begin("a", "a")  # party 0's prefetch starts
    t.fetch(B_STEP)
    t.end()
    if session.rank == 1:
        os._exit(3)
    t0 = time.monotonic()
    try:
        t.begin("a")
    except PartyError as exc:
        return str(exc), time.monotonic() - t0
    return None


def test_a_peer_that_dies_during_a_prefetch_is_named_at_the_next_step(parties):
    (msg, waited), _ = parties(
        peer_dies_during_prefetch_party, world_size=2, provider="HE", timeout_s=60, may_die=(1,)
    )
    assert "party 0: lost contact with party 1" in msg, msg
    assert waited < 10  # the closed connection, not the 60 s timeout


def test_more_than_two_parties_refused_before_anything_starts():
    from protocols.errors import ConfigError
    from protocols.network.parties import PartySpec

    with pytest.raises(ConfigError, match="2 .*--provider ttp"):
        PartySpec(0, 3, "file:///x", "HE").validate_role()


def bad_peer_party(session, what):
    """Party 1 sends garbage instead of its ciphertexts (``what`` "ciphertext") or an OT
    extension matrix one row short ("ot"); each party reports what it raised."""
    from protocols.errors import MpcrnnError

    t = session.triples
    if session.rank == 1 and what == "ciphertext":
        t.products.encrypt = lambda jobs, lefts: [
            b"\x00" * 100 for _ in range(t.products.total(jobs, "in"))
        ]
    elif session.rank == 1:
        receive = t.ot.receive
        t.ot.receive = lambda choices, m, *rest: (receive(choices, m)[0][:-1], None)
    try:
        t.fetch(REQUESTS[:1] if what == "ciphertext" else [AndRequest((3,), (3,))])
    except MpcrnnError as exc:
        return type(exc).__name__, str(exc)
    return None


@pytest.mark.parametrize(
    "what, says", [("ciphertext", "product ciphertext"), ("ot", "he_ot message size")]
)
def test_malformed_peer_message_is_one_typed_error_naming_the_peer(what, says, parties):
    outs = parties(bad_peer_party, world_size=2, provider="HE", args=(what,), timeout_s=120)
    assert outs[0][0] == "PeerMessageError" and "party 1" in outs[0][1], outs[0]
    assert says in outs[0][1] and "\n" not in outs[0][1]
    assert outs[1] is not None  # party 1 stops too (its peer left or sent an error)


def test_run_config_checks_the_he_parameters_and_the_party_count():
    from dataclasses import replace

    from mpcrnn.config import RunConfig
    from protocols.errors import ConfigError

    cfg = replace(RunConfig(), provider="HE", parties=2)
    cfg.validate()
    assert cfg.he_params().poly_degree == 8192
    for bad in ("bfv n=8192 q=60+60+60+60 t=3x59 sigma=40", "ckks n=8192", "bfv n=8192"):
        with pytest.raises(ConfigError, match=r"\[run\] he|128-bit"):
            replace(cfg, he=bad).validate()
    with pytest.raises(ConfigError, match="--provider ttp"):
        replace(cfg, parties=3).validate()
    assert replace(cfg, he="bfv n=8192 q=60+60+60+38 t=3x58 sigma=40").digest() != cfg.digest()
