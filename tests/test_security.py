"""What leaves shares during a real 3-party + dealer training run.

Instrumentation (inside each party process): every CrypTen opening function
(``reveal``/``reveal_batch``/``get_plain_text`` of arithmetic and binary shares, and
``MPCTensor.get_plain_text``), every method of CrypTen's communicator (ours,
:mod:`protocols.network.communicator`) and every send/receive of the links of
:mod:`protocols.network.links`
(which carry every byte between processes: torch.distributed is not used) is wrapped to record
its caller outside the transport.  Asserted: plaintext openings happen only through
``protocols/arithmetic/reveal.py``'s ``reveal`` (and only for the final weights, all in the ledger);
CrypTen's own openings happen only inside its masked-opening protocol steps; our collectives
come only from the reveal module.
"""

from __future__ import annotations

# CrypTen's openings of *masked* values: x - a, y - b (Beaver), r-masked squares, XOR-masked
# AND inputs, the masked bit of B2A.  Each opened value is uniform, independent of the secret.
CRYPTEN_MASKED_OPENINGS = {
    ("ArithmeticSharedTensor", "reveal_batch", "__beaver_protocol"),
    ("ArithmeticSharedTensor", "reveal", "square"),
    ("BinarySharedTensor", "reveal_batch", "AND"),
    ("BinarySharedTensor", "reveal", "B2A_single_bit"),
}
OUR_COLLECTIVE_CALLERS = {"reveal", "open_masked", "gather_masked", "_exchange"}


def instrument():
    """Wrap CrypTen's openings and the communicator's collectives in this party process; returns
    the two counters they fill: (CrypTen openings by (class, function, caller), our collectives
    by (collective, caller))."""
    import collections
    import inspect

    from crypten import communicator as comm
    from crypten.mpc import MPCTensor
    from crypten.mpc.primitives import ArithmeticSharedTensor, BinarySharedTensor

    crypten_open, ours = collections.Counter(), collections.Counter()

    def wrap(owner, name, sink, key):
        orig = inspect.getattr_static(owner, name)
        fn = orig.__func__ if isinstance(orig, staticmethod) else orig

        def wrapper(*a, **k):
            caller = inspect.stack()[1]
            sink[key(caller)] += 1
            return fn(*a, **k)

        setattr(owner, name, staticmethod(wrapper) if isinstance(orig, staticmethod) else wrapper)

    for cls in (ArithmeticSharedTensor, BinarySharedTensor, MPCTensor):
        for name in ("reveal", "reveal_batch", "get_plain_text"):
            if hasattr(cls, name):
                wrap(
                    cls,
                    name,
                    crypten_open,
                    lambda c, cls=cls, name=name: (cls.__name__, name, c.function),
                )
    inst = comm.get()

    def origin():
        """The first caller outside the transport (CrypTen's and ours) and these wrappers."""
        skip = (
            "crypten/communicator/",
            "protocols/network/communicator.py",
            "protocols/network/links.py",
            "test_security.py",
        )
        frame = next(
            f
            for f in inspect.stack()[1:]
            if not any(k in f.filename.replace("\\", "/") for k in skip)
        )
        file = frame.filename.replace("\\", "/")
        if file.endswith("protocols/arithmetic/reveal.py"):
            return frame.function
        if "/protocols/" in file:
            return "protocols/" + file.split("/protocols/")[-1]
        return file.split("site-packages/")[-1]

    # every method of CrypTen's communicator (ours: protocols.network.communicator, over the links)
    for name in (
        "all_reduce",
        "reduce",
        "gather",
        "all_gather",
        "broadcast",
        "send",
        "recv",
        "isend",
        "irecv",
        "scatter",
        "barrier",
        "send_obj",
        "recv_obj",
        "broadcast_obj",
    ):
        bound = getattr(inst, name)

        def collective(*a, _b=bound, _n=name, **k):
            ours[(_n, origin())] += 1
            return _b(*a, **k)

        setattr(inst, name, collective)
    from protocols.network.links import Links

    # the links themselves: every byte any process sends or receives passes one of these
    for name in (
        "exchange",
        "send",
        "recv_from",
        "send_bytes",
        "recv_bytes",
        "recv_message",
        "post_recv",
        "transfer",
    ):
        fn = getattr(Links, name)

        def link(self, *a, _f=fn, _n=name, **k):
            ours[(f"links.{_n}", origin())] += 1
            return _f(self, *a, **k)

        setattr(Links, name, link)
    return crypten_open, ours


def instrumented_party(session, reveal_to, mode="mpc", adversarial="none", rows=12):
    rank = session.rank
    from mpcrnn import data as D
    from mpcrnn.config import AdversarialConfig, FedAvgConfig, ModelConfig, RunConfig, TrainConfig
    from mpcrnn.fedavg import run_fedavg
    from mpcrnn.secure import run_training

    crypten_open, ours = instrument()
    spec = D.JAPANESE_VOWELS_SPEC
    part = D.scale_features(D.split_rows(D.japanese_vowels("train"), [rows] * 3, 0)[rank], spec)
    cfg = RunConfig(
        model=ModelConfig(hidden_size=4),
        train=TrainConfig(epochs=1, batch_size=12, clip_norm=1.0),
        spec=spec,
        reveal_to=reveal_to,
        mode=mode,
        fedavg=FedAvgConfig(rounds=2, local_epochs=1, update_clip=0.05),
        adversarial=AdversarialConfig(method=adversarial, steps=2, alpha=0.05),
    )
    s = session
    result = (run_fedavg if mode == "fedavg" else run_training)(s, cfg, part)
    return (
        dict(crypten_open),
        dict(ours),
        s.ledger.to_json(),
        result["params"] is not None,
        dict(s.stats.rounds),
    )


def _only_masked_openings_and_ledgered_reveals(crypten_open, ours):
    # CrypTen opened nothing in plaintext, only masked values inside its protocol steps
    assert set(crypten_open) <= CRYPTEN_MASKED_OPENINGS, crypten_open
    assert not any(k[1] == "get_plain_text" for k in crypten_open)
    # who moved bytes: masked openings and the ledgered reveal; CrypTen's from its primitives;
    # dealer requests and answers; the public metadata exchange (digest, row counts)
    for (name, where), _n in ours.items():
        assert (
            where in OUR_COLLECTIVE_CALLERS
            or where.startswith("crypten/mpc/primitives/")  # CrypTen's masked openings (above)
            or where
            in (
                "crypten/mpc/provider/ttp_provider.py",
                "protocols/randomness/triples.py",
            )  # dealer requests (public shapes) and randomness
            or (
                where == "protocols/network/public_exchange.py"
                and name in ("links.send_bytes", "links.recv_message")
            )
        ), (name, where)


def test_only_final_weights_leave_shares_and_only_to_receivers(parties):
    outs = parties(instrumented_party, world_size=3, provider="TTP", args=((0, 2),), timeout_s=600)
    for rank, (crypten_open, ours, ledger, got_model, _kinds) in enumerate(outs):
        assert got_model == (rank in (0, 2))
        _only_masked_openings_and_ledgered_reveals(crypten_open, ours)
        assert ours.get(("reduce", "reveal"), 0) == 2 * len(ledger)  # one reduce per receiver
        # the ledger: the final weights, to ranks 0 and 2, and nothing else
        assert [e["what"] for e in ledger] == [
            f"final weight {k}"
            for k in (
                "weight_ih_l0",
                "weight_hh_l0",
                "bias_ih_l0",
                "bias_hh_l0",
                "fc.weight",
                "fc.bias",
            )
        ]
        assert all(tuple(e["to"]) == (0, 2) and e["why"] == "trained model output" for e in ledger)


def test_adversarial_training_opens_nothing_new(parties):
    """Adversarial training (FGSM; PGD repeats the same primitives) adds input gradients,
    sign-bit circuits and clamps on shares: the ledger is exactly the standard run's (the final
    weights), every other opening is masked."""
    outs = parties(
        instrumented_party,
        world_size=3,
        provider="TTP",
        args=((0, 2), "mpc", "fgsm", 4),  # one step of 12 rows: the openings of every step alike
        timeout_s=600,
    )
    for rank, (crypten_open, ours, ledger, got_model, kinds) in enumerate(outs):
        assert got_model == (rank in (0, 2))
        _only_masked_openings_and_ledgered_reveals(crypten_open, ours)
        assert kinds["and"] > 0  # the sign-bit circuits ran
        assert ours.get(("reduce", "reveal"), 0) == 2 * len(ledger)
        assert [e["what"] for e in ledger] == [
            f"final weight {k}"
            for k in (
                "weight_ih_l0",
                "weight_hh_l0",
                "bias_ih_l0",
                "bias_hh_l0",
                "fc.weight",
                "fc.bias",
            )
        ]


def test_fedavg_opens_only_each_rounds_average_never_a_party_model(parties):
    """Update clipping on (so comparisons and Beaver products run too); 2 rounds."""
    outs = parties(
        instrumented_party, world_size=3, provider="TTP", args=((), "fedavg"), timeout_s=600
    )
    for crypten_open, ours, ledger, got_model, kinds in outs:
        assert got_model
        _only_masked_openings_and_ledgered_reveals(crypten_open, ours)
        assert (
            kinds["and"] > 0 and kinds["b2a"] > 0
        )  # the clipping comparisons did run (XOR-masked openings)
        # every plaintext opening of ours is the ledgered all-party reveal: one per round
        assert ours.get(("all_reduce", "reveal"), 0) == len(ledger) == 2
        assert ours.get(("reduce", "reveal"), 0) == 0
        assert [(e["what"], tuple(e["to"]), tuple(e["shape"])) for e in ledger] == [
            (
                f"global model after round {r}",
                (0, 1, 2),
                (4 * 3 * 12 + 4 * 3 * 4 + 2 * 12 + 9 * 4 + 9,),
            )
            for r in (1, 2)
        ]


def reveal_policy_party(session):
    import torch

    from protocols.arithmetic.reveal import reveal
    from protocols.errors import SecurityError

    s = session
    try:
        reveal(s, torch.zeros(2, dtype=torch.long), to=(1,), what="w", why="test", allowed_to=(0,))
    except SecurityError as exc:
        return str(exc), s.ledger.to_json()
    return None, s.ledger.to_json()


def test_reveal_outside_policy_is_refused_before_sending(parties):
    for msg, ledger in parties(reveal_policy_party, world_size=2, provider="TFP"):
        assert msg and "expected a subset of --reveal-to (0,), got (1,)" in msg
        assert ledger == []
