"""The data sets and their split among parties; runs through the launcher; the mirror."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .results import ROOT

GUNPOINT = Path(os.environ.get("MPCRNN_GUNPOINT", ROOT.parent / "shared" / "datasets" / "gunpoint"))
# GunPoint: 50 rows, 2 steps per epoch; the cosine schedule's mean lr is half of torch's constant
# one, and it needs 320 epochs (640 steps) where torch's Adam is within 3 points at 80
# (benchmarks/results/learning.md)
EPOCHS = {"japanese_vowels": 20, "gunpoint": 320}


def gunpoint_spec():
    from mpcrnn import data as D

    # z-normalized series (UCR): public bounds [-2.5, 2.5] from that convention, not from the
    # rows; frames of 10 steps (15 model steps of 10 values): step by step (150 x 1) neither
    # torch's Adam nor the mirror learns GunPoint (benchmarks/results/defaults-sweep.md)
    return D.DataSpec(
        n_features=1,
        classes=("1", "2"),
        max_len=150,
        scaling="bounds",
        feature_low=(-2.5,),
        feature_high=(2.5,),
        frame=10,
    )


def load(name: str):
    """(spec, raw train, raw test) of ``japanese_vowels`` (shipped) or ``gunpoint`` (UCR, from
    ``../shared/datasets/gunpoint/`` or ``$MPCRNN_GUNPOINT``)."""
    from mpcrnn import data as D

    if name == "japanese_vowels":
        return D.JAPANESE_VOWELS_SPEC, D.japanese_vowels("train"), D.japanese_vowels("test")
    spec = gunpoint_spec()
    return (
        spec,
        D.read_ts(GUNPOINT / "GunPoint_TRAIN.ts", spec),
        D.read_ts(GUNPOINT / "GunPoint_TEST.ts", spec),
    )


def party_parts(raw_tr, raw_te, smoke: bool = False):
    """The train and test rows split among 3 parties: 50/30/20 (seeds 0 and 1); ``smoke``: 16,
    8, 8 train and 8, 8, 8 test rows."""
    from mpcrnn import data as D

    if smoke:
        return D.split_rows(raw_tr, [16, 8, 8], 0), D.split_rows(raw_te, [8, 8, 8], 1)
    return D.split_rows(raw_tr, [0.5, 0.3, 0.2], 0), D.split_rows(raw_te, [0.5, 0.3, 0.2], 1)


def run_config(name: str, cell: str, layers: int, seed: int, epochs: int, **train_overrides):
    """The defaults for data set ``name``: only the data declaration and epochs differ."""
    from mpcrnn.config import ModelConfig, RunConfig, TrainConfig

    spec, _, _ = load(name)
    return RunConfig(
        model=ModelConfig(
            cell=cell, num_layers=layers, input_size=spec.input_size, num_classes=len(spec.classes)
        ),
        train=TrainConfig(epochs=epochs, seed=seed, **train_overrides),
        spec=spec,
    )


# ---------------------------------------------------------------- runs


def launch_parties(
    run_cfg, parts, tests, workdir: Path, timeout_s: float = 120
) -> tuple[list[dict], float]:
    """One run through the launcher (party processes + dealer) on party files written to
    ``workdir``; returns (the data parties' reports, wall seconds).  ``parts``/``tests`` are RAW
    rows: every party scales its own file by the declared bounds (launch/party.py), as in a
    deployment; already-scaled rows would be scaled twice."""
    from launch.launcher import launch_local
    from mpcrnn import data as D

    files, tfiles = D.write_party_files(parts, tests, workdir)
    t0 = time.perf_counter()
    reports = launch_local(
        run_cfg, files, tfiles, str(workdir / "run"), timeout_s=timeout_s, show_progress=False
    )
    return [r for r in reports if r.get("role") == "party"], time.perf_counter() - t0


def pooled_accuracy(evals: list[dict], key: str = "accuracy_exact") -> float:
    """Each party's own test evaluation, pooled (weighted by its test rows)."""
    return sum(e[key] * e["rows"] for e in evals) / sum(e["rows"] for e in evals)


def mirror(cfg, tr, te, backend=None) -> tuple[float, float]:
    """The plaintext mirror trained on scaled rows ``tr``: (test accuracy with exact
    activations, as MPC's model is evaluated; max |x| / B).  ``backend``: a
    :class:`mpcrnn.backend.PlainBackend` (subclass) to train with, e.g. one that injects a
    fault (``one_bad_step.py``); default a plain one."""
    from mpcrnn.backend import PlainBackend
    from mpcrnn.model import init_params
    from mpcrnn.secure import evaluate_local
    from mpcrnn.train import plain_dataset, train

    B = backend or PlainBackend(cfg.activation)
    data = plain_dataset(tr.x, tr.lengths, tr.y, cfg.model)
    params, _ = train(B, cfg.model, cfg.train, data, init_params(cfg.model, cfg.train.seed))
    acc = evaluate_local(cfg, params, te, polynomial=False)["accuracy_exact"]
    return acc, B.max_abs_preactivation


def mirror_on_party_order(cfg, spec, parts, te, backend=None) -> float:
    """The mirror on the rows in MPC's order: the parties' parts concatenated in rank order,
    as :func:`mpcrnn.secure.share_all` pools them.  The batch schedule permutes row INDICES,
    so this order, not the file's, is the trajectory an MPC run with this seed follows (up to
    fixed-point noise); the mirror on the file's order is another draw of the batches."""
    from mpcrnn import data as D
    from mpcrnn.secure import concat

    return mirror(cfg, D.scale_features(concat(parts), spec), te, backend)[0]


def tecator_demo(seed: int, prefix: str, **overrides):
    """``mpcrnn train --demo tecator``'s run configuration at ``seed`` (with ``overrides`` of its
    settings, e.g. ``epochs``), the party files it writes (in a fresh temporary folder) and the
    pooled, scaled rows in MPC's order: ``(cfg, train_files, test_files, train, test)``."""
    import tempfile

    from launch.runfile import build
    from mpcrnn import data as D
    from mpcrnn.secure import concat
    from mpcrnn.tecator import demo_files, demo_run_file

    over = {"seed": seed, **{k: v for k, v in overrides.items() if v is not None}}
    cfg = build(demo_run_file({"run": {"insecure_plaintext_transport": True}}), over)
    work = Path(tempfile.mkdtemp(prefix=prefix))
    train_files, test_files = demo_files(cfg, work, lambda _line: None)

    def pooled(files):
        return D.scale_features(concat([D.load_party_file(f, cfg.spec) for f in files]), cfg.spec)

    return cfg, train_files, test_files, pooled(train_files), pooled(test_files)
