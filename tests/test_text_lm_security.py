"""A language model on shares, in processes: a 3-party + dealer run (with and without DP-SGD)
opens only the final weights, in the ledger (every other opening is a masked Beaver/protocol
opening, the instrumentation of tests/test_security.py); and ``mpcrnn train``'s launcher pools
each party's held-out sums into bits per character, in mpc and fedavg mode."""

from __future__ import annotations

import pytest

V, T = 5, 6
IDS = [[1, 2, 3, 4, 1, 2], [3, 4, 1, 2, 3, 4], [2, 3, 4], [4, 1, 2, 3, 4, 1]]


def lm_party(session, dp: bool):
    import numpy as np
    from test_security import instrument

    from mpcrnn.config import DPConfig, ModelConfig, RunConfig, TrainConfig
    from mpcrnn.declaration import DataSpec, SequenceData
    from mpcrnn.secure import run_training
    from mpcrnn.text import one_hot

    crypten_open, ours = instrument()
    spec = DataSpec(n_features=V, classes=(), max_len=T, kind="text-lm", min_rows=1)
    part = SequenceData(  # this party's own windows, never sent in clear
        one_hot(IDS, T, V), np.array([len(r) for r in IDS]), np.zeros(len(IDS), int), ()
    )
    cfg = RunConfig(
        model=ModelConfig(
            input_size=V, hidden_size=3, embedding_dim=2, task="lm", output_size=V, num_classes=0
        ),
        train=TrainConfig(epochs=1, batch_size=12, optimizer="sgd" if dp else "adam"),  # 1 step
        spec=spec,
        reveal_to=(0, 2),
        dp=DPConfig(enabled=True, noise=1.0, clip=1.0) if dp else DPConfig(),
    )
    result = run_training(session, cfg, part)
    return dict(crypten_open), dict(ours), session.ledger.to_json(), result["params"] is not None


@pytest.mark.parametrize("dp", [False, True])
def test_language_model_run_opens_only_the_final_weights(parties, dp):
    from test_text_security import assert_only_the_final_weights_to_0_and_2

    outs = parties(lm_party, world_size=3, provider="TTP", args=(dp,), timeout_s=300)
    assert_only_the_final_weights_to_0_and_2(outs)


@pytest.mark.parametrize("mode", ["mpc", "fedavg"])
def test_train_pools_held_out_bits_per_character(tmp_path, launcher, mode):
    import hashlib

    from launch.runfile import build
    from mpcrnn.report import summarize

    voc = tmp_path / "vocab.txt"
    voc.write_text("a\nb\nc\n \n\\n\n", encoding="utf-8")
    digest = hashlib.sha256(voc.read_bytes()).hexdigest()
    data = {"kind": "text-lm", "max_len": 8, "min_rows": 1, "vocab": str(voc)}
    data["vocab_sha256"] = digest
    cfg = build(
        {"data": data, "model": {"embedding_dim": 2, "hidden_size": 3}},
        {"parties": 2, "epochs": 1, "batch_size": 8, "insecure_plaintext_transport": True}
        | {"mode": mode},
    )
    files, tests = [], []
    texts = ["abc ab\nca bc\n" * 2, "ca ba\nab cc\n" * 2]
    for r, text in enumerate(texts):
        for name, body, out in (("train", text, files), ("test", text[::-1], tests)):
            (tmp_path / f"p{r}-{name}.txt").write_text(body, encoding="utf-8")
            out.append(str(tmp_path / f"p{r}-{name}.txt"))
    reports = launcher(cfg, files, tests, str(tmp_path / "out"), timeout_s=60, show_progress=False)
    lines: list[str] = []
    summary = summarize(cfg, reports, False, files, echo=lines.append, test_files=tests)
    got = summary["test_bits_per_char"]
    assert got["tokens"] == sum(len(t) - 1 for t in texts)  # every token but the first
    assert (
        0 < got[f"{mode}_model_polynomial"] < 5 and 0 < got[f"{mode}_model_exact_activations"] < 5
    )
    who = {"mpc": "MPC", "fedavg": "FedAvg"}[mode]
    assert any(line.startswith(f"  {who} model test bits per character") for line in lines)
    for p in summary["parties"]:  # the report holds sums, never a party's text
        assert "abc" not in str(p) and set(p["local_test"]) >= {"bits_exact", "tokens"}
