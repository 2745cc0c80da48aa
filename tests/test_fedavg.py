"""``--mode fedavg``: secure aggregation against plaintext FedAvg, failures, resume, accuracy.

Tolerances.  The secure weighted mean: every party's vector is encoded at 2^-16, every
coefficient w_i/W too, one truncation: within (max|u| + 3) 2^-16 per entry, 2e-4 for the
vectors here (|u| <= 8), and with update clipping on shares within 2e-4 as well (the clip
factor's relative error is below 1e-4, tests/test_norm_clip.py).  What leaves shares in this
mode is checked in tests/test_security.py (only the ledgered per-round averages).
"""

from __future__ import annotations

import pytest
import torch

from mpcrnn import data as D
from mpcrnn.config import FedAvgConfig, ModelConfig, RunConfig, TrainConfig
from protocols.errors import ConfigError

D_LEN = 50


def _vectors(p: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    # norms from ~0.5 to ~30: with clip 2.0 some parties are clipped, some are not
    return [
        torch.randn(D_LEN, generator=g, dtype=torch.float64).clamp(-8, 8) * s
        for s in (0.07, 4.0, 0.5, 1.0)[:p]
    ]


def mean_party(session, weights, clip):
    rank = session.rank
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.secure_average import weighted_mean

    s = session
    everyone = tuple(range(s.world_size))
    mean = weighted_mean(s, _vectors(s.world_size)[rank], weights, clip)
    return reveal(s, mean, to=everyone, what="mean", why="test"), s.ledger.to_json()


@pytest.mark.parametrize(
    "world_size,weights,clip",
    [
        (3, [135, 81, 54], 0.0),  # public row counts
        (3, [1, 1, 1], 2.0),  # equal weights, update clipping on shares
        (2, [3, 1], 2.0),
    ],
)
def test_weighted_mean_equals_the_plaintext_weighted_mean(world_size, weights, clip, parties):
    from protocols.arithmetic.norm_clip import clip_rows_to_norm_plain

    vs = torch.stack(_vectors(world_size))
    if clip:
        vs = clip_rows_to_norm_plain(vs, clip)
        assert (
            torch.stack(_vectors(world_size)).norm(dim=1) > clip
        ).any()  # the test does clip something
    w = torch.tensor(weights, dtype=torch.float64)
    expected = (w[:, None] * vs).sum(0) / w.sum()
    for got, ledger in parties(
        mean_party, world_size=world_size, provider="TTP", args=(weights, clip)
    ):
        torch.testing.assert_close(got, expected, atol=2e-4, rtol=0)
        assert [e["what"] for e in ledger] == ["mean"]  # the protocol itself opened nothing


@pytest.mark.parametrize(
    "vector,weights,clip,msg",
    [
        (torch.zeros(4), [1, 1], 0.0, r"aggregation weights: expected one per party \(1\), got 2"),
        (torch.zeros(4), [-1], 0.0, "aggregation weights: expected non-negative, not all zero"),
        (torch.zeros(4), [0], 0.0, "aggregation weights: expected non-negative, not all zero"),
        (torch.zeros(4), [1], -1.0, "update clipping norm: expected >= 0"),
        (torch.zeros(2, 2), [1], 0.0, r"vector to aggregate: expected 1-D \(D,\), got \(2, 2\)"),
        (
            torch.tensor([1.0, float("nan")]),
            [1],
            0.0,
            "vector entries: expected finite .* got a value outside",
        ),
        (
            torch.full((4,), 1e5),
            [1],
            1.0,
            "norm of the vector to clip: expected below 2\\^14, got a larger norm",
        ),
    ],
)
def test_weighted_mean_rejects_bad_input_without_showing_values(vector, weights, clip, msg):
    from protocols.arithmetic.secure_average import weighted_mean
    from protocols.network.parties import init_in_process

    session = init_in_process()
    with pytest.raises(ConfigError, match=msg) as err:
        weighted_mean(session, vector.double(), weights, clip)
    assert "100000" not in str(err.value) and "1e+05" not in str(err.value)


def _cfg(rounds=2, local_epochs=1, hidden=4, clip=0.0, lr=0.2, momentum=0.9):
    return RunConfig(
        model=ModelConfig(hidden_size=hidden),
        train=TrainConfig(optimizer="sgd", batch_size=20, lr=lr, momentum=momentum),
        spec=D.JAPANESE_VOWELS_SPEC,
        mode="fedavg",
        fedavg=FedAvgConfig(rounds=rounds, local_epochs=local_epochs, update_clip=clip),
    )


def _parts(sizes=(40, 25, 15)):
    return [
        D.scale_features(p, D.JAPANESE_VOWELS_SPEC)
        for p in D.split_rows(D.japanese_vowels("train"), list(sizes), 0)
    ]


def fedavg_party(session, cfg):
    rank = session.rank
    from mpcrnn.fedavg import run_fedavg

    return run_fedavg(session, cfg, _parts()[rank])["params"]


def test_fedavg_rounds_equal_plaintext_fedavg(parties):
    """Two rounds on shares == two rounds of plaintext FedAvg (same local training, row-weighted
    mean in float64), up to the fixed-point error of the two openings."""
    from mpcrnn.fedavg import flatten, local_train, unflatten
    from mpcrnn.model import init_params

    cfg = _cfg()
    parts, counts = _parts(), torch.tensor([40.0, 25.0, 15.0], dtype=torch.float64)
    theta = init_params(cfg.model, cfg.train.seed)
    for r in range(2):
        local = torch.stack([flatten(local_train(cfg, theta, parts[i], r, i)) for i in range(3)])
        theta = unflatten((counts[:, None] * local).sum(0) / counts.sum(), theta)
    outs = parties(fedavg_party, world_size=3, provider="TTP", args=(cfg,))
    for got in outs:
        for k in theta:
            torch.testing.assert_close(got[k], theta[k], atol=1e-3, rtol=0, msg=k)
    assert all(
        torch.equal(outs[0][k], outs[2][k]) for k in theta
    )  # every party holds the same opened model


def test_fedavg_config_errors():
    with pytest.raises(
        ConfigError, match=r"\[run\] reveal_to with mode fedavg: expected all parties"
    ):
        RunConfig(mode="fedavg", reveal_to=(0,)).validate()
    with pytest.raises(
        ConfigError, match=r"\[fedavg\] weighting: expected rows or equal, got median"
    ):
        RunConfig(mode="fedavg", fedavg=FedAvgConfig(weighting="median")).validate()
    with pytest.raises(
        ConfigError,
        match=r"\[fedavg\] rounds: expected >= 0 \(0: one per epoch\), got -1",
    ):
        RunConfig(mode="fedavg", fedavg=FedAvgConfig(rounds=-1)).validate()
    assert RunConfig(mode="fedavg", train=TrainConfig(epochs=7)).fedavg_rounds == 7
    assert RunConfig(fedavg=FedAvgConfig(rounds=3), train=TrainConfig(epochs=7)).fedavg_rounds == 3
    with pytest.raises(ConfigError, match="mode: expected mpc or fedavg, got sgd"):
        RunConfig(mode="sgd").validate()


def _files(tmp_path, parts):
    files = []
    for r, p in enumerate(parts):
        D.write_npz(p, tmp_path / f"p{r}.npz")
        files.append(str(tmp_path / f"p{r}.npz"))
    return files


def test_fedavg_kill_mid_round_names_the_party_then_resume(tmp_path, kill_resume):
    """Party 1 is killed during round 3 (after every party checkpointed round 2): the launcher
    stops everyone and names it, no model is written; --resume continues from round 2 and ends
    at the uninterrupted run's model (fresh masks: equal up to fixed-point noise, which SGD then
    amplifies: two uninterrupted runs of this configuration differ by up to 2.4e-4; at lr 0.2
    with momentum 0.9 by 4.8e-3, so this test uses plain SGD at lr 0.05)."""
    cfg = _cfg(rounds=8, local_epochs=4, hidden=16, lr=0.05, momentum=0.0)
    files = _files(tmp_path, D.split_rows(D.japanese_vowels("train"), [90, 90, 90], 0))
    out = kill_resume(cfg, files, tmp_path, kill_after=2, rank=1)
    assert out["error"] is not None and "party 1 died" in out["error"]
    assert out["models_after_kill"] == []
    assert 2 <= out["reports"][0]["resumed_from_epoch"] < 8
    for k in out["ref"]:
        torch.testing.assert_close(
            out["got"][k], out["ref"][k], atol=2e-3, rtol=0, msg=lambda m, k=k: f"{k}: {m}"
        )


def test_fedavg_japanese_vowels_close_to_centralized_training(tmp_path, subprocesses):
    """The demo through the CLI: 3 organizations (135/81/54 rows), GRU H=32, one round per
    epoch (12) x 2 local epochs; asserted: within 2 points of centralized torch training
    (pooled rows), and 12 averages in the ledger."""
    import json
    import sys
    from pathlib import Path

    mpcrnn = str(Path(sys.executable).with_name("mpcrnn"))
    res = subprocesses.run(
        [mpcrnn, "train", "--mode", "fedavg", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "reveals 12 intermediate global models" in res.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    fed = report["test_accuracy"]["fedavg_model"]
    central = report["baseline"]["centralized_plaintext_exact"]
    assert fed >= central - 0.02, (fed, central)
    assert [e["what"] for e in report["parties"][1]["ledger"]] == [
        f"global model after round {r}" for r in range(1, 13)
    ]
    assert report["revealed"]["intermediate_global_models"] == 12


def test_run_file_selects_fedavg_for_party_processes(tmp_path):
    """`mpcrnn party --config run.toml` on each host: [run] mode and [fedavg] reach RunConfig
    (and its digest, so hosts with different FedAvg settings stop at agreement)."""
    from launch.runfile import build, read_file

    f = tmp_path / "run.toml"
    f.write_text(
        '[run]\nmode = "fedavg"\n[fedavg]\nrounds = 3\nlocal_epochs = 1\n'
        'weighting = "equal"\nupdate_clip = 2.5\n'
    )
    cfg = build(read_file(str(f)), {})
    assert (cfg.mode, cfg.fedavg) == (
        "fedavg",
        FedAvgConfig(rounds=3, local_epochs=1, weighting="equal", update_clip=2.5),
    )
    assert cfg.digest() != build(read_file(str(f)), {"rounds": 4}).digest()
    f.write_text("[fedavg]\nround = 3\n")
    with pytest.raises(
        ConfigError,
        match=r"keys of \[fedavg\]: "
        r"expected local_epochs, rounds, update_clip, weighting, got round",
    ):
        read_file(str(f))


def metrics_party(session, cfg):
    rank = session.rank
    from mpcrnn.fedavg import run_fedavg

    s = session
    out = run_fedavg(s, cfg, _parts()[rank])
    return out["train_accuracy"], out["params"], s.ledger.to_json()


def test_fedavg_reveal_metrics_opens_only_the_pooled_count(parties):
    """--reveal-metrics in fedavg: each party counts its own correct rows in plaintext and shares
    the count; only the sum is opened (one more ledger entry), and it equals the plaintext count."""
    from dataclasses import replace

    from mpcrnn.model import export_state_dicts

    cfg = replace(_cfg(rounds=1), reveal_metrics=True)
    outs = parties(metrics_party, world_size=3, provider="TTP", args=(cfg,))
    params = outs[0][1]
    model = export_state_dicts(cfg.model, params)
    correct = 0
    for p in _parts():
        with torch.no_grad():
            pred = (
                model(torch.as_tensor(p.x, dtype=torch.float32), torch.as_tensor(p.lengths))
                .argmax(1)
                .numpy()
            )
        correct += int((pred == p.y).sum())
    for acc, _, ledger in outs:
        assert acc == correct / 80
        assert [e["what"] for e in ledger] == [
            "global model after round 1",
            "training accuracy (correct rows, all parties pooled)",
        ]
        assert tuple(ledger[1]["shape"]) == (1,)
