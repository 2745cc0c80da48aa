"""The per-party state every protocol takes explicitly (no hidden globals in our code).

``MpcSession`` bundles who this party is, the fixed-point format, where correlated randomness
comes from (the dealer or party 0), the reveal ledger, the transport and the communication
counters: mpcrnn's own (:class:`protocols.stats.CommStats`, by kind) and, when
``count_traffic`` is on, CrypTen's (:attr:`MpcSession.comm_rounds`, :attr:`comm_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocols.arithmetic.fixed_point import FixedPoint
from protocols.arithmetic.reveal import RevealLedger
from protocols.stats import CommStats


@dataclass
class MpcSession:
    rank: int
    world_size: int
    fp: FixedPoint
    triples: object  # protocols.randomness.triples.DealerTriples or FirstPartyTriples
    ledger: RevealLedger = field(default_factory=RevealLedger)
    stats: CommStats = field(default_factory=CommStats)
    # the process's transport, owned by its communicator (protocols.network.communicator); None:
    # one party
    links: object = None
    # also count this session's direct-link traffic in CrypTen's counters (comm_rounds, comm_bytes)
    count_traffic: bool = False

    @classmethod
    def current(
        cls,
        fp: FixedPoint | None = None,
        ledger: RevealLedger | None = None,
        *,
        count_traffic: bool = False,
    ) -> MpcSession:
        """Session for the party initialized in this process (see :mod:`protocols.network.parties`).

        The randomness source follows the run: the dealer when the run has one (TTP), else
        party 0 (TFP).  ``count_traffic``: turn on CrypTen's round and byte counters (a CrypTen
        setting, process-wide: CrypTen's own operations are counted only while it is on) and
        count this session's openings there too (the run report and the benchmarks read them).
        """
        import crypten.communicator as comm

        from protocols.randomness.triples import DealerTriples, FirstPartyTriples

        transport = comm.get()
        if count_traffic:
            from crypten.config import cfg

            cfg.communicator.verbose = True
        fp = fp or FixedPoint()
        stats = CommStats()
        rank, ws = transport.get_rank(), transport.get_world_size()
        has_dealer = getattr(transport, "has_dealer", False)
        source = DealerTriples(stats, transport) if has_dealer else FirstPartyTriples()
        links = transport.links if ws > 1 else None
        return cls(rank, ws, fp, source, ledger or RevealLedger(), stats, links, count_traffic)

    @property
    def comm_rounds(self) -> int:
        """CrypTen's round counter of this process (counted while ``count_traffic`` is on)."""
        import crypten.communicator as comm

        return int(comm.get().comm_rounds)

    @property
    def comm_bytes(self) -> int:
        """CrypTen's byte counter of this process (counted while ``count_traffic`` is on)."""
        import crypten.communicator as comm

        return int(comm.get().comm_bytes)
