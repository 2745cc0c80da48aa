"""Per-party checkpoints of shares, written atomically every epoch, and agreed resume.

Each party writes ONLY its own shares (``party{r}-epoch{e}.pt``: weights and momenta as int64
shares, the epoch, the run configuration's SHA-256): a checkpoint alone reveals nothing.  The
last two epochs are kept, so a party that died while writing epoch e still shares epoch e-1
with the others.  Resume: every party announces its newest complete epoch, all load the newest
epoch that every party has (public: epoch numbers).  The batch schedule is a function of
(seed, epoch), and fresh randomness after a restart is fine (any masks work), so nothing else
needs saving.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from protocols.errors import AgreementError, DataError, expected_got

KEEP = 2


def _path(directory: Path, rank: int, epoch: int) -> Path:
    return directory / f"party{rank}-epoch{epoch}.pt"


def save(directory: str | Path, rank: int, epoch: int, digest: str, params: dict, velocity: dict) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = _path(directory, rank, epoch)
    tmp = target.with_suffix(".tmp")
    torch.save({"rank": rank, "epoch": epoch, "digest": digest, "params": params, "velocity": velocity}, tmp)
    os.replace(tmp, target)  # atomic: a checkpoint file is complete or absent
    for old in sorted(directory.glob(f"party{rank}-epoch*.pt"), key=lambda p: int(p.stem.split("epoch")[1]))[:-KEEP]:
        old.unlink()
    return target


def latest_epoch(directory: str | Path, rank: int) -> int:
    """Newest complete epoch this party has on disk (0 if none)."""
    epochs = [int(p.stem.split("epoch")[1]) for p in Path(directory).glob(f"party{rank}-epoch*.pt")]
    return max(epochs, default=0)


def agree_epoch(session, directory: str | Path) -> int:
    """All parties: the newest epoch every party has (0: start from scratch)."""
    from protocols.public_exchange import exchange_public

    return min(int(e) for e in exchange_public(latest_epoch(directory, session.rank)))


def load(directory: str | Path, rank: int, epoch: int, digest: str) -> tuple[dict, dict]:
    path = _path(Path(directory), rank, epoch)
    try:
        blob = torch.load(path, weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise DataError(f"cannot read checkpoint {path}: {type(exc).__name__}") from None
    if blob.get("digest") != digest:
        raise AgreementError(expected_got(f"run configuration of checkpoint {path.name}", digest[:16] + "...",
                                          str(blob.get("digest"))[:16] + "...", "resume with the same options"))
    return blob["params"], blob["velocity"]
