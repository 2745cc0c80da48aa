"""The only place where values leave secret shares.

Two kinds of opening exist, and they all happen here.  Everything else that moves bytes moves
randomness or public values: the dealer link (:mod:`protocols.randomness.streams`,
:mod:`protocols.randomness.triples`,
:mod:`protocols.randomness.dealer`) and the public metadata
(:mod:`protocols.network.public_exchange`).

* :func:`reveal` opens a *secret value* (model weights at the end of a run, or metrics the user
  asked for) to named parties.  Every call is recorded in the :class:`RevealLedger` with what,
  shape, to whom and why, and the ledger goes into the run report.
* :func:`open_masked` / :func:`gather_masked` open values that are uniformly random by
  construction (``[x] - [a]`` with a fresh Beaver mask, ``[z] + [r]`` with a fresh wrap mask,
  ``x ^ a`` with a fresh binary mask in :mod:`protocols.arithmetic.sign_bit`).
  They carry no information about the secrets and are counted (rounds, bytes), not ledgered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from protocols.errors import ProtocolError, SecurityError, expected_got


@dataclass(frozen=True)
class LedgerEntry:
    what: str
    shape: tuple[int, ...]
    to: tuple[int, ...]
    why: str


@dataclass
class RevealLedger:
    """Record of every opening of a secret value; ``allowed_to`` is the run's reveal policy."""

    entries: list[LedgerEntry] = field(default_factory=list)

    def record(self, entry: LedgerEntry) -> None:
        self.entries.append(entry)

    def to_json(self) -> list[dict]:
        return [asdict(e) for e in self.entries]


def reveal(
    session,
    x_shared: torch.Tensor,
    *,
    to: tuple[int, ...],
    what: str,
    why: str,
    allowed_to: tuple[int, ...] | None = None,
) -> torch.Tensor | None:
    """Open ``[x]`` (int64 shares at scale 2^f) to the parties ``to``; returns float64 there.

    Rounds: 1 per receiver (a reduce to that rank).  Parties not in ``to`` get ``None``.

    Raises:
        SecurityError: a receiver outside ``allowed_to`` (the run's ``--reveal-to``) or an
            invalid rank.  Nothing is sent in that case.
    """
    to = tuple(sorted(set(to)))
    if not to or any(not 0 <= r < session.world_size for r in to):
        raise SecurityError(
            expected_got("reveal receivers", f"ranks in 0..{session.world_size - 1}", to)
        )
    if allowed_to is not None and not set(to) <= set(allowed_to):
        raise SecurityError(
            expected_got(f"receivers of {what}", f"a subset of --reveal-to {tuple(allowed_to)}", to)
        )
    session.ledger.record(LedgerEntry(what, tuple(x_shared.shape), to, why))
    out = None
    if session.world_size == 1:
        return session.fp.decode(x_shared.clone())
    if len(to) == session.world_size:
        out = session.transport.all_reduce(x_shared.clone())
        session.stats.add("reveal", 8 * x_shared.numel())
        return session.fp.decode(out)
    for dst in to:
        res = session.transport.reduce(x_shared.clone(), dst)
        session.stats.add("reveal", 8 * x_shared.numel())
        if dst == session.rank:
            out = session.fp.decode(res)
    return out


def open_masked(
    session, masked: list[torch.Tensor], kind: str, combine: str = "add"
) -> list[torch.Tensor]:
    """Open uniformly masked values to all parties in ONE round: every party sends its flat
    share straight to every other party (point to point, all sends in flight at once) and sums
    them (``combine="add"``, arithmetic shares mod 2^64) or XORs them (``"xor"``, binary shares).

    Transport: the session's direct links (:mod:`protocols.network.links`), not a ring all-reduce
    (2(p-1) sequential hops per call).  Rounds: 1.  Bytes per party: (p-1) * 8 * n, counted
    once as one round in CrypTen's communicator statistics too (``session.count_traffic``)."""
    if session.world_size == 1:
        return masked
    flat = torch.cat([m.reshape(-1) for m in masked])
    total = flat.clone()
    for other in _exchange(session, flat):
        if combine == "xor":
            total ^= other
        else:
            total += other
    session.stats.add(kind, 8 * flat.numel())
    return _split_like(total, masked)


def gather_masked(session, masked: torch.Tensor, kind: str) -> list[torch.Tensor] | None:
    """Send a uniformly masked flat tensor to rank 0 (ONE round, over the direct links); rank 0
    gets every share (in rank order, its own included)."""
    links = _links(session)
    session.stats.add(kind, 8 * masked.numel())
    _count(session, masked.numel() * (session.world_size - 1 if session.rank == 0 else 1))
    if session.rank != 0:
        links.send(0, masked)
        return None
    return [masked] + links.recv_from(list(range(1, session.world_size)), masked)


def _exchange(session, flat: torch.Tensor) -> list[torch.Tensor]:
    """Send ``flat`` to every other data party and receive theirs (one round, all messages in
    flight at once, over the direct links).  Every wait has the run's timeout: a dead or silent
    peer raises :class:`PartyError` naming it, never hangs."""
    links = _links(session)
    _count(session, flat.numel() * (session.world_size - 1))
    return links.exchange(flat)


def _links(session):
    if session.links is None:  # a multi-party session always has its transport's links
        raise ProtocolError(
            "internal: a multi-party session without its direct links (protocols.network.links)"
        )
    return session.links


def _count(session, n_elements: int) -> None:
    """One round and ``n_elements`` ring elements sent, in CrypTen's own counters (the run
    report and the benchmarks read them), when the session counts (``session.count_traffic``)."""
    if session.count_traffic:
        session.transport._log_communication(n_elements)


def _split_like(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    out, pos = [], 0
    for t in like:
        n = t.numel()
        out.append(flat[pos : pos + n].reshape(t.shape))
        pos += n
    return out
