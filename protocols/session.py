"""The per-party state every protocol takes explicitly: :class:`MpcSession`.

One object per party process, returned by :func:`protocols.network.parties.init_party` (or
:func:`~protocols.network.parties.init_in_process` for one party in-process), and passed to
every protocol that opens values, talks to peers or draws correlated randomness (MPyC's
``runtime`` is the model: all state on one object, openings name their receivers).

It bundles who this party is, the fixed-point format, where correlated randomness comes from
(the dealer or party 0), the reveal ledger, the transport and the communication counters:
mpcrnn's own (:class:`protocols.stats.CommStats`, by kind) and, when ``count_traffic`` is on,
CrypTen's (:attr:`MpcSession.comm_rounds`, :attr:`comm_bytes`).

CrypTen itself still reaches the same transport through its process-wide communicator singleton
(its ``MPCTensor`` operations call ``crypten.communicator.get()``); that is CrypTen's design, not
ours, and :func:`~protocols.network.parties.init_party` installs the session's transport there.
mpcrnn's own code takes the transport from the session only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from protocols.arithmetic.fixed_point import FixedPoint
from protocols.arithmetic.reveal import RevealLedger
from protocols.stats import CommStats


@dataclass
class MpcSession:
    """A party's (or the dealer's) view of one run.

    rank: 0..world_size-1 for a data party; world_size for the dealer.
    world_size: the number of DATA parties (the dealer is not counted).
    transport: this process's communicator (:mod:`protocols.network.communicator`): the
        authenticated links to every other process, the dealer link, CrypTen's counters.
    triples: where this party's correlated randomness comes from
        (:class:`protocols.randomness.triples.DealerTriples` with a dealer,
        :class:`~protocols.randomness.triples.FirstPartyTriples` without); None at the dealer.
    fp: the fixed-point format of every share.
    ledger: every value opened through :mod:`protocols.arithmetic.reveal`, with its receivers.
    stats: mpcrnn's own rounds/bytes counters, by kind.
    count_traffic: also count this session's direct-link openings in CrypTen's counters.
    refused: connection attempts refused while joining (rank claimed, fingerprint; the report).
    run_id: the run's identity (:func:`protocols.network.public_exchange.agree_run_id`, or the
        one a resumed run's checkpoints carry); "" until the run agrees it.
    """

    rank: int
    world_size: int
    transport: object
    triples: object | None
    fp: FixedPoint = field(default_factory=FixedPoint)
    ledger: RevealLedger = field(default_factory=RevealLedger)
    stats: CommStats = field(default_factory=CommStats)
    count_traffic: bool = False
    refused: tuple = ()
    run_id: str = ""

    @property
    def links(self):
        """The direct links between data parties (:class:`protocols.network.links.Links`);
        None for a single party."""
        return self.transport.links if self.world_size > 1 else None

    @property
    def has_dealer(self) -> bool:
        return bool(getattr(self.transport, "has_dealer", False))

    @property
    def is_dealer(self) -> bool:
        return self.has_dealer and self.rank == self.world_size

    @property
    def secure(self) -> bool:
        """Mutual TLS with pinned certificates (False: ``--insecure-plaintext-transport``)."""
        return bool(getattr(self.transport, "secure", False))

    def fresh(self, fp: FixedPoint | None = None) -> MpcSession:
        """A session over the same transport and randomness source with its own ledger and
        counters (a test or benchmark measuring one computation).  The randomness source is
        the same object: a dealer stream is a position shared with the dealer, never restarted."""
        return replace(self, fp=fp or self.fp, ledger=RevealLedger(), stats=CommStats())

    def enable_traffic_counting(self) -> None:
        """Count rounds and bytes in CrypTen's counters from now on (a CrypTen setting,
        process-wide: CrypTen's own operations are counted only while it is on), this
        session's direct-link openings included (the run report and the benchmarks read them)."""
        from protocols.runtime import load_crypten

        load_crypten().config.cfg.communicator.verbose = True
        self.count_traffic = True

    def reset_traffic(self) -> None:
        """Zero CrypTen's round and byte counters of this process."""
        self.transport.reset_communication_stats()

    @property
    def comm_rounds(self) -> int:
        """CrypTen's round counter of this process (counted while ``count_traffic`` is on)."""
        return int(self.transport.comm_rounds)

    @property
    def comm_bytes(self) -> int:
        """CrypTen's byte counter of this process (counted while ``count_traffic`` is on)."""
        return int(self.transport.comm_bytes)
