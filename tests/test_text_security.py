"""What leaves shares during a 3-party + dealer text run with a trainable embedding: only the
final weights (the embedding table among them), in the ledger; every other opening is a masked
Beaver/protocol opening (the instrumentation of tests/test_security.py)."""

from __future__ import annotations

TEXTS = ["ok see you", "WIN CASH now", "call me later", "FREE prize!!", "lunch?", "txt STOP"]


def text_party(session):
    from test_security import instrument

    from mpcrnn.config import ModelConfig, RunConfig, TrainConfig
    from mpcrnn.declaration import DataSpec, SequenceData
    from mpcrnn.secure import run_training
    from mpcrnn.text import encode_texts

    crypten_open, ours = instrument()
    spec = DataSpec(n_features=256, classes=("ham", "spam"), max_len=6, kind="text")
    x, lengths = encode_texts(TEXTS, spec)  # this party's own rows, never sent in clear
    part = SequenceData(x, lengths.astype("int64"), (lengths % 2).astype("int64"), spec.classes)
    cfg = RunConfig(
        model=ModelConfig(
            input_size=256, hidden_size=3, num_classes=2, embedding_dim=2, cell="lstm"
        ),
        train=TrainConfig(epochs=1, batch_size=9),
        spec=spec,
        reveal_to=(0, 2),
    )
    result = run_training(session, cfg, part)
    return dict(crypten_open), dict(ours), session.ledger.to_json(), result["params"] is not None


def test_text_run_opens_only_the_final_weights(parties):
    outs = parties(text_party, world_size=3, provider="TTP", timeout_s=900)
    assert_only_the_final_weights_to_0_and_2(outs)


def assert_only_the_final_weights_to_0_and_2(outs) -> None:
    """Each party's (CrypTen's openings, ours, ledger, got the model) of an embedding + 1-layer
    RNN run with ``reveal_to = (0, 2)``: masked openings only, and the ledger is the final
    weights, each opened to parties 0 and 2."""
    from test_security import _only_masked_openings_and_ledgered_reveals

    names = ["embedding.weight"] + [
        f"{k}_l0" for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    ]
    for rank, (crypten_open, ours, ledger, got_model) in enumerate(outs):
        assert got_model == (rank in (0, 2))
        _only_masked_openings_and_ledgered_reveals(crypten_open, ours)
        assert [e["what"] for e in ledger] == [
            f"final weight {k}" for k in (*names, "fc.weight", "fc.bias")
        ]
        assert all(tuple(e["to"]) == (0, 2) for e in ledger)
