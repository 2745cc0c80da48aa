"""The multi-process runner for tests: :mod:`launch.local_parties` (shared with benchmarks/),
re-exported under the name the test modules import, plus :func:`run_kill_resume`, a scenario
only tests use.  Imported as ``mpc_harness`` (pytest puts ``tests/`` on sys.path; there is no
``tests`` package, so CrypTen's site-packages ``test``/``benchmarks`` can never shadow ours).
"""

from __future__ import annotations

from launch.local_parties import _party_main, kill_when_all_exist, make_identities, run_parties

__all__ = [
    "_party_main",
    "kill_when_all_exist",
    "make_identities",
    "run_kill_resume",
    "run_parties",
]


def run_kill_resume(cfg, files: list[str], workdir, kill_after: int = 2, rank: int = 1) -> dict:
    """Three launcher runs of ``cfg`` on ``files``: uninterrupted (the reference); one in which
    process ``rank`` is SIGKILLed once every party has checkpointed epoch/round ``kill_after``;
    then ``--resume`` of that one.  Returns what the tests assert on: ``ref`` and ``got`` (party
    0's final state dicts), ``error`` (the launcher's PartyError message, or None if the kill
    came too late), ``models_after_kill`` (model files left by the killed run) and ``reports``
    (the resumed run's)."""
    from pathlib import Path

    import torch

    from launch.launcher import launch_local
    from protocols.errors import PartyError

    workdir = Path(workdir)
    launch_local(
        cfg, files, [None] * len(files), str(workdir / "ref"), timeout_s=30, show_progress=False
    )
    run = workdir / "run"
    kill = kill_when_all_exist(
        [
            run / "checkpoints" / f"party{r}" / f"epoch-{kill_after:06d}.ckpt"
            for r in range(len(files))
        ],
        rank,
    )
    error = None
    try:
        launch_local(
            cfg,
            files,
            [None] * len(files),
            str(run),
            timeout_s=30,
            show_progress=False,
            on_start=kill,
        )
    except PartyError as exc:
        error = str(exc)
    models_after_kill = sorted(p.name for p in run.glob("model-*.pt"))
    reports = launch_local(
        cfg, files, [None] * len(files), str(run), timeout_s=30, show_progress=False, resume=True
    )
    load = lambda d: torch.load(d / "model-party0.pt", weights_only=True)["state_dict"]  # noqa: E731
    return {
        "ref": load(workdir / "ref"),
        "got": load(run),
        "error": error,
        "models_after_kill": models_after_kill,
        "reports": reports,
    }
