"""Per-party checkpoints of shares, bound to their owner and run, and agreed resume.

Each party writes ONLY its own shares, after every epoch (FedAvg: every round), into its own
folder ``<checkpoints>/party<r>/`` (0700), one file per epoch ``epoch-<eeeeee>.ckpt`` (0600).
A file is sealed with AES-256-GCM (``cryptography``'s AESGCM: an authenticated cipher, not
ours) under a 256-bit key that only this party holds (``<its folder>/key``, 0600, created on
the first save); the associated data binds the file to its rank, epoch, configuration digest,
schedule length and run identity (:func:`protocols.network.public_exchange.agree_run_id`:
every party's nonce, hashed at the start of a fresh run)::

    file = MAGIC | header length (4 bytes LE) | header (JSON: rank, epoch, digest, epochs, run)
           | nonce (12 bytes) | AESGCM(key, nonce, torch.save({"params", "velocity"}), header)

So another party's file, another run's file, a truncated or corrupted file, a file of the
right party renamed to another epoch: each fails to open, and the error names the file and
what was expected.  Shares are also encrypted at rest: summing several parties' checkpoint
folders gives nothing without each party's key.  Names that do not match the pattern
(``party0-epochold.pt``, editor back-ups) are never read.

The last two epochs are kept, so a party that died while writing epoch e still shares epoch
e-1 with the others.  Resume: every party announces its newest epoch (public), all load the
newest epoch that every party has, after announcing that file's run identity: every party's
must be the same (else one :class:`AgreementError` line naming the file), and the resumed run
adopts it.  So a file of any other run is refused, whatever folder or key it came with; a fresh
run removes its folder's files of other runs with its first checkpoint.  The batch schedule is
a function of (seed, epoch), and fresh randomness after a restart is fine (any masks work), so
nothing else needs saving.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
from pathlib import Path

import torch

from protocols.errors import AgreementError, DataError, expected_got

KEEP = 2
MAGIC = b"mpcrnn-checkpoint-2\n"  # 2: the header carries the run identity
NAME = re.compile(r"^epoch-(\d{6})\.ckpt$")
KEY_BYTES = 32
NONCE_BYTES = 12


def party_dir(directory: str | Path, rank: int) -> Path:
    return Path(directory) / f"party{rank}"


def _path(directory: str | Path, rank: int, epoch: int) -> Path:
    return party_dir(directory, rank) / f"epoch-{epoch:06d}.ckpt"


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def _key(directory: str | Path, rank: int, create: bool) -> bytes:
    """This party's checkpoint key (created 0600 on first use when ``create``)."""
    path = party_dir(directory, rank) / "key"
    if not path.exists() and create:
        _private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(KEY_BYTES))
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise DataError(
            expected_got(
                str(path),
                "this party's checkpoint key (written with its first checkpoint)",
                type(exc).__name__,
            )
        ) from None
    if len(key) != KEY_BYTES:
        raise DataError(
            expected_got(str(path), f"a {KEY_BYTES}-byte checkpoint key", f"{len(key)} bytes")
        )
    return key


FIELDS = {"rank", "epoch", "digest", "epochs", "run"}


def _header(rank: int, epoch: int, digest: str, epochs: int, run_id: str) -> bytes:
    return json.dumps(
        {"rank": rank, "epoch": epoch, "digest": digest, "epochs": epochs, "run": run_id},
        sort_keys=True,
    ).encode()


def _file_run(path: Path) -> str | None:
    """The run identity a checkpoint's header claims (None: unreadable or not a checkpoint).
    Unauthenticated until :func:`load` opens the file with it as associated data."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC) + 4)
            if not head.startswith(MAGIC) or len(head) < len(MAGIC) + 4:
                return None
            (n,) = struct.unpack_from("<I", head, len(MAGIC))
            meta = json.loads(f.read(min(n, 4096)))
        run = meta.get("run") if isinstance(meta, dict) else None
    except (OSError, ValueError):
        return None
    return run if isinstance(run, str) else None


def save(
    directory: str | Path,
    rank: int,
    epoch: int,
    digest: str,
    params: dict,
    velocity: dict,
    epochs: int = 0,
    run_id: str = "",
) -> Path:
    """Seal and write this party's shares for ``epoch`` atomically; keep the newest ``KEEP`` of
    this run and remove this party's files of any other run (the folder is this run's now)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = _key(directory, rank, create=True)
    target = _path(directory, rank, epoch)
    buf = io.BytesIO()
    torch.save({"params": params, "velocity": velocity}, buf)
    header = _header(rank, epoch, digest, epochs, run_id)
    nonce = os.urandom(NONCE_BYTES)
    blob = (
        MAGIC
        + struct.pack("<I", len(header))
        + header
        + nonce
        + AESGCM(key).encrypt(nonce, buf.getvalue(), header)
    )
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(blob)
    os.replace(tmp, target)  # atomic: a checkpoint file is complete or absent
    for other in _epochs(directory, rank):
        if _file_run(_path(directory, rank, other)) != run_id:
            _path(directory, rank, other).unlink()
    for old in sorted(_epochs(directory, rank))[:-KEEP]:
        _path(directory, rank, old).unlink()
    return target


def _epochs(directory: str | Path, rank: int) -> list[int]:
    folder = party_dir(directory, rank)
    if not folder.is_dir():
        return []
    return [int(m.group(1)) for p in folder.iterdir() if (m := NAME.match(p.name))]


def latest_epoch(directory: str | Path, rank: int) -> int:
    """Newest epoch this party has a checkpoint file for (0 if none)."""
    return max(_epochs(directory, rank), default=0)


def agree_epoch(session, directory: str | Path) -> int:
    """All parties: the newest epoch every party has (0: start from scratch)."""
    from protocols.network.public_exchange import exchange_public

    return min(int(e) for e in exchange_public(session, latest_epoch(directory, session.rank)))


def start_epoch(session, directory, resume: bool) -> int:
    """All parties, at the start of a run: the run identity goes on the session (a fresh one all
    parties contribute to, or, when resuming, the one the checkpoints carry), and the epoch to
    start from (0: from scratch).  See :func:`resume_point` for the checks."""
    from protocols.network.public_exchange import agree_run_id

    session.run_id = agree_run_id(session)
    if not (resume and directory):
        return 0
    start, run_id = resume_point(session, directory)
    if start:
        session.run_id = run_id
    return start


def resume_point(session, directory: str | Path) -> tuple[int, str]:
    """All parties: (the newest epoch every party has, the run identity its files carry), or
    (0, "") when some party has none.  Every party's file of that epoch must claim the same run
    (checked again, authenticated, by :func:`load`).

    Raises:
        AgreementError: a party's file is of another run (named, with both run ids).
    """
    from protocols.network.public_exchange import exchange_public

    epoch = agree_epoch(session, directory)
    if not epoch:
        return 0, ""
    runs = exchange_public(session, _file_run(_path(directory, session.rank, epoch)))
    claimed = [(r, run) for r, run in enumerate(runs) if isinstance(run, str)]
    if not claimed:
        return epoch, ""
    first_rank, first = claimed[0]
    for r, run in claimed:
        if run != first:
            raise AgreementError(
                expected_got(
                    f"checkpoint {_path(directory, r, epoch)}: run",
                    f"run {first[:12]} (party {first_rank}'s checkpoint)",
                    f"run {run[:12]}",
                    "every party must resume from the same run's files; "
                    "start a fresh run without --resume",
                )
            )
    return epoch, first


def load(
    directory: str | Path,
    rank: int,
    epoch: int,
    digest: str,
    epochs: int = 0,
    run_id: str | None = None,
) -> tuple[dict, dict]:
    """This party's shares of ``epoch``, after checking the file is its own, of this run
    (``run_id``: the run identity it must carry; None: any)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    path = _path(directory, rank, epoch)
    where = f"checkpoint {path}"
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise DataError(expected_got(where, "a readable file", type(exc).__name__)) from None
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 4:
        raise DataError(expected_got(where, "an mpcrnn checkpoint", "another kind of file"))
    (n,) = struct.unpack_from("<I", blob, len(MAGIC))
    start = len(MAGIC) + 4
    try:
        header = blob[start : start + n]
        meta = json.loads(header)
        if set(meta) != FIELDS:
            raise ValueError("fields")
    except ValueError:
        raise DataError(
            expected_got(where, "an mpcrnn checkpoint header", "a damaged one")
        ) from None
    _check_header(meta, where, rank, epoch, digest, epochs)
    if run_id is not None and meta["run"] != run_id:
        raise AgreementError(
            expected_got(
                f"{where}: run",
                f"run {str(run_id)[:12]} (the run being resumed)",
                f"run {str(meta['run'])[:12]}",
                "every party must resume from the same run's files",
            )
        )
    body = blob[start + n :]
    try:
        plain = AESGCM(_key(directory, rank, create=False)).decrypt(
            body[:NONCE_BYTES], body[NONCE_BYTES:], header
        )
    except (InvalidTag, ValueError):
        raise DataError(
            expected_got(
                where,
                f"a file sealed by party {rank} of this run",
                "one that fails authentication (corrupted, truncated, or another party's or run's)",
            )
        ) from None
    state = torch.load(io.BytesIO(plain), weights_only=True)
    return state["params"], state["velocity"]


def _check_header(meta: dict, where: str, rank: int, epoch: int, digest: str, epochs: int):
    """The header names this party, this epoch and this run (its configuration digest)."""
    if meta["rank"] != rank:
        raise DataError(
            expected_got(
                where,
                f"a checkpoint of party {rank}",
                f"one of party {meta['rank']}",
                "each party resumes from its own files only",
            )
        )
    if meta["epoch"] != epoch:
        raise DataError(
            expected_got(where, f"epoch {epoch} (its name)", f"epoch {meta['epoch']} inside")
        )
    if meta["digest"] != digest:
        if epochs and meta["epochs"] and meta["epochs"] != epochs:
            raise AgreementError(
                expected_got(
                    f"{where}: schedule",
                    f"{epochs} epochs (this run)",
                    f"{meta['epochs']} epochs (the checkpointed run)",
                    "the schedule cannot be extended or shortened on --resume: "
                    "resume with the same --epochs, or start a new run",
                )
            )
        raise AgreementError(
            expected_got(
                f"{where}: run configuration",
                digest[:16] + "...",
                str(meta["digest"])[:16] + "...",
                "resume with the same options",
            )
        )
