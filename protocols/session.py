"""The per-party state every protocol takes explicitly (no hidden globals in our code).

``MpcSession`` bundles who this party is, the fixed-point format, where correlated randomness
comes from (the dealer or party 0), the reveal ledger and the communication counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocols.fixed_point import FixedPoint
from protocols.reveal import RevealLedger
from protocols.stats import CommStats


@dataclass
class MpcSession:
    rank: int
    world_size: int
    fp: FixedPoint
    triples: object  # protocols.triples.TripleSource
    ledger: RevealLedger = field(default_factory=RevealLedger)
    stats: CommStats = field(default_factory=CommStats)
    links: object = None  # protocols.links.Links, the transport (owned by the communicator of this process; None: one party)

    @classmethod
    def current(
        cls, fp: FixedPoint | None = None, ledger: RevealLedger | None = None
    ) -> MpcSession:
        """Session for the party initialized in this process (see :mod:`protocols.parties`)."""
        import crypten.communicator as comm
        from crypten.config import cfg

        from protocols.triples import DealerTriples, FirstPartyTriples

        fp = fp or FixedPoint()
        stats = CommStats()
        rank, ws = comm.get().get_rank(), comm.get().get_world_size()
        source = DealerTriples(stats) if cfg.mpc.provider == "TTP" else FirstPartyTriples()
        links = (
            comm.get().links if ws > 1 else None
        )  # the process's transport (protocols.communicator)
        return cls(rank, ws, fp, source, ledger or RevealLedger(), stats, links)
