"""Bringing parties up and down: in-process (one party, unit tests) or N processes over the
run's own authenticated links.

Ranks: data parties are ``0..world_size-1``; the dealer (TTP), when present, is rank
``world_size`` (CrypTen's convention).  Every blocking wait on a peer has ``timeout_s``, so a
dead or silent peer turns into a :class:`PartyError`, never a hang.

The network is :mod:`protocols.network.channels` (mutual TLS 1.3 between every two processes, each
certificate pinned by the run file, or ``--insecure-plaintext-transport``); CrypTen's
communicator runs over it (:mod:`protocols.network.communicator`); torch.distributed is not used.
Rendezvous: ``tcp://host:port`` (rank 0 listens on exactly that address) for several hosts, or
``file:///path`` on one machine (rank 0 writes its 127.0.0.1 port into that fresh file).
``MPCRNN_LINK_IFNAME`` (or ``GLOO_SOCKET_IFNAME``, still read) names the interface whose
address this process listens on for links.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.errors import AgreementError, ConfigError, MpcrnnError, expected_got
from protocols.runtime import load_crypten

PROVIDERS = ("TTP", "TFP", "HE")
TIMEOUT_S = 120.0  # the default limit on every wait for a peer (--timeout)

# What the bytes between parties and the dealer mean; bumped whenever that changes (2: the
# triple streams moved to numpy's PCG64, and the mask / maskmul requests arrived; 3: every
# process on one authenticated mesh, CrypTen's traffic and the dealer's on it, no gloo; 5: the
# bulk streams are AES-256-CTR from 256-bit seeds; 6: CrypTen's PRZS and TTP draws too, and
# heartbeats carry who each process heard from; 7: --provider he opens its own links and stacks
# matrix products by shared operand and squares by halves; 8: its answers' level is chosen by
# the analytic noise bound, and the flood widened; 9: its elementwise products come back with
# both cross terms in one answer).  Hosts on different releases would
# otherwise compute garbage silently (their triple shares no longer match), so every process
# compares it right after joining, before anything is shared.
WIRE_PROTOCOL = 9


@dataclass(frozen=True)
class PartySpec:
    """Who this process is in the run.

    rank: 0..world_size-1 for data parties, world_size for the dealer.
    world_size: number of data parties (the dealer is not counted).
    rendezvous: ``tcp://host:port`` (rank 0 listens there) or ``file:///path`` (one machine).
    provider: ``TTP`` (dealer process, secure), ``HE`` (two data parties make their triples with
        homomorphic encryption, no dealer) or ``TFP`` (party 0 makes all triples: simulation).
    timeout_s: limit on every wait for a peer, including the rendezvous itself.
    identity: this process's key and certificate (:func:`protocols.network.identity.load_identity`).
    pins: every rank's certificate fingerprint, rank order, the dealer last (the run file's
        ``[identities]``).
    insecure: ``--insecure-plaintext-transport``: no identities, no encryption.
    he_workers: with provider HE, the local processes that compute this party's homomorphic
        products (``mpcrnn party --he-workers``; :mod:`protocols.randomness.he_workers`).
    """

    rank: int
    world_size: int
    rendezvous: str
    provider: str = "TTP"
    timeout_s: float = TIMEOUT_S
    identity: object = None  # protocols.network.identity.Identity
    pins: tuple = ()
    insecure: bool = False
    he: object = None  # HeParams with provider HE (None: the defaults)
    he_workers: int = 1  # HE worker processes on this host (a local choice, not in the run file)

    @property
    def total(self) -> int:
        return self.world_size + (1 if self.has_dealer else 0)

    def names(self) -> list[str]:
        return [f"party {r}" for r in range(self.world_size)] + (
            ["dealer"] if self.has_dealer else []
        )

    @property
    def has_dealer(self) -> bool:
        return self.provider == "TTP"

    @property
    def is_dealer(self) -> bool:
        return self.has_dealer and self.rank == self.world_size

    def validate(self) -> None:
        self.validate_role()
        self.validate_identity()

    def validate_role(self) -> None:
        """Provider, world size, rank, rendezvous and timeout (no identity yet)."""
        if self.provider not in PROVIDERS:
            raise ConfigError(expected_got("provider", " or ".join(PROVIDERS), self.provider))
        if self.world_size < 1:
            raise ConfigError(expected_got("world size (data parties)", ">= 1", self.world_size))
        if self.provider == "HE" and self.world_size != 2:
            from protocols.randomness.he_triples import needs_two

            raise ConfigError(needs_two(self.world_size))
        top = self.world_size if self.has_dealer else self.world_size - 1
        if not 0 <= self.rank <= top:
            raise ConfigError(expected_got("rank", f"0..{top}", self.rank))
        if not (self.rendezvous.startswith("tcp://") or self.rendezvous.startswith("file://")):
            raise ConfigError(
                expected_got("rendezvous", "tcp://host:port or file:///path", self.rendezvous)
            )
        if self.timeout_s <= 0:
            raise ConfigError(expected_got("timeout_s", "> 0", self.timeout_s))

    def validate_identity(self) -> None:
        """The pinned fingerprints and this process's own certificate among them."""
        if self.insecure or self.total == 1:
            return
        from protocols.network.identity import check_fingerprint

        if len(self.pins) != self.total:
            raise ConfigError(
                expected_got(
                    "[identities] in the run file",
                    f"a fingerprint for each of the {self.total} "
                    "processes (party0.., dealer; mpcrnn keygen prints them)",
                    f"{len(self.pins)}",
                    "or run with --insecure-plaintext-transport (no authentication, no encryption)",
                )
            )
        pins = [
            check_fingerprint(p, f"fingerprint of {n}") for p, n in zip(self.pins, self.names())
        ]
        if len(set(pins)) != len(pins):
            raise ConfigError(
                expected_got(
                    "[identities]",
                    "a different certificate for every process",
                    "a fingerprint listed twice",
                )
            )
        if self.identity is None:
            raise ConfigError(
                expected_got(
                    f"{self.names()[self.rank]}'s identity",
                    "--key DIR (from mpcrnn keygen)",
                    "none",
                    "or run with --insecure-plaintext-transport (no authentication, no encryption)",
                )
            )
        mine = self.identity.fingerprint
        if mine != pins[self.rank]:
            raise ConfigError(
                expected_got(
                    f"this process's certificate ({self.names()[self.rank]})",
                    f"{pins[self.rank]} (pinned in the run file)",
                    mine,
                    "use this rank's own --key, or fix [identities]",
                )
            )


def init_party(spec: PartySpec, *, fp=None, count_traffic: bool = False):
    """Join the run as a data party or the dealer and return this process's session: the mesh,
    CrypTen's communicator, PRNGs and (with a dealer) the seeds it shares with each party, all
    received over the mesh.

    fp: the fixed-point format of the run (:class:`protocols.arithmetic.fixed_point.FixedPoint`;
        None: the default).  count_traffic: turn on CrypTen's round and byte counters
        (:meth:`protocols.session.MpcSession.enable_traffic_counting`).

    Returns:
        :class:`protocols.session.MpcSession`, the one session of this process.
    Raises:
        PartyError: the mesh was not complete within ``timeout_s`` (naming who is missing and
            any refused connection), or a peer died while the seeds were exchanged.
        AgreementError: a process runs another release (wire protocol).
    """
    spec.validate()
    load_crypten()
    import torch
    from crypten.config import cfg

    from protocols.network.communicator import communicator_class, install
    from protocols.randomness.crypten_rng import seed_local, setup_przs

    torch.set_num_threads(1)
    cfg.mpc.provider = spec.provider  # CrypTen's own operations read it from its global config
    names = spec.names()
    secure = not spec.insecure and spec.total > 1
    links, refused = _open_links(spec, names, secure)
    transport = communicator_class()(
        spec.rank, spec.world_size, links, spec.has_dealer, spec.rendezvous, secure
    )
    install(transport)  # CrypTen's own operations reach it as their singleton
    try:
        bulk_seed = None
        if not spec.is_dealer:
            setup_przs(transport)  # PRZS seeds (AES-CTR streams): over the mesh (inside TLS)
            if spec.has_dealer:
                from protocols.randomness.streams import receive_dealer_seeds

                bulk_seed = receive_dealer_seeds(transport)
        seed_local()
        session = _session(spec, transport, bulk_seed, fp, count_traffic, refused)
    except MpcrnnError:
        _teardown()
        raise
    return session


def _session(spec: PartySpec, transport, bulk_seed, fp, count_traffic: bool, refused):
    from protocols.randomness.triples import DealerTriples, FirstPartyTriples
    from protocols.session import MpcSession
    from protocols.stats import CommStats

    stats = CommStats()
    if spec.is_dealer:
        triples = None
    elif spec.has_dealer:
        triples = DealerTriples(stats, transport, bulk_seed)
    elif spec.provider == "HE":
        from protocols.randomness.he_context import HeParams
        from protocols.randomness.he_crypten import install_crypten_provider
        from protocols.randomness.he_triples import HomomorphicTriples

        params = spec.he or HeParams()
        triples = HomomorphicTriples(
            stats,
            transport.links.offline or transport.links,
            spec.rank,
            spec.world_size,
            params,
            spec.names(),
            workers=spec.he_workers,
        )
        install_crypten_provider(triples)
    else:
        triples = FirstPartyTriples()
    session = MpcSession(spec.rank, spec.world_size, transport, triples, stats=stats)
    session.refused = tuple(refused)
    if fp is not None:
        session.fp = fp
    if count_traffic:
        session.enable_traffic_counting()
    return session


def _open_links(spec: PartySpec, names: list[str], secure: bool):
    """The mesh (a complete one, on one release), its :class:`Links` with the heartbeat thread
    that names a stopped peer (:mod:`protocols.network.heartbeat`), and the connection attempts
    refused while joining."""
    from protocols.network.channels import Trust, local_address, open_mesh
    from protocols.network.heartbeat import Heartbeat, open_heartbeats, shut_down
    from protocols.network.links import Links

    if spec.total == 1:
        return Links(0, 1, {}, spec.timeout_s, names, secure), ()
    trust = Trust(spec.identity, tuple(spec.pins), spec.insecure)
    host = local_address(spec.rendezvous)
    mesh = open_mesh(spec.rank, names, spec.rendezvous, spec.timeout_s, trust, WIRE_PROTOCOL, host)
    mismatch = check_wire_protocol(mesh.versions, spec.world_size)
    if mismatch:
        Links(spec.rank, spec.world_size, mesh.socks, spec.timeout_s, names, secure).close()
        raise AgreementError(mismatch)
    beats = open_heartbeats(mesh, trust, host, spec.timeout_s)
    # --provider he: its own links, so the next step's HE work runs beside this step
    he = spec.provider == "HE"
    side = open_heartbeats(mesh, trust, host, spec.timeout_s, "he offline") if he else {}
    stop = lambda _: shut_down({**mesh.socks, **side})  # noqa: E731 - wakes every wait at once
    heartbeat = Heartbeat(beats, names, on_stop=stop, rank=spec.rank).start()
    links = Links(spec.rank, spec.world_size, mesh.socks, spec.timeout_s, names, secure, heartbeat)
    if side:
        links.offline = Links(
            spec.rank, spec.world_size, side, spec.timeout_s, names, secure, heartbeat
        )
    return links, tuple(mesh.refused)


def init_in_process(fp=None):
    """A session of a single party in this process (world size 1, TFP): the fast path for unit
    tests.  The first call joins; later calls return a fresh session (its own ledger and
    counters) over the same transport.

    The same communicator class as real runs, with no peers (its collectives are identities),
    so every CrypTen code path is the one used with N parties.  Shares equal plaintext here:
    this checks the arithmetic of every protocol (fixed point, truncation, polynomial trees,
    BPTT), not the secrecy; the multi-process tests do that.
    """
    global _IN_PROCESS
    crypten = load_crypten()
    from crypten.communicator.distributed_communicator import DistributedCommunicator

    installed = DistributedCommunicator.instance
    if _IN_PROCESS is None or installed is None or installed is not _IN_PROCESS.transport:
        _IN_PROCESS = init_party(PartySpec(0, 1, "file:///nonexistent-in-process", "TFP", 30.0))
    crypten.config.cfg.mpc.provider = "TFP"  # CrypTen's global: another join may have changed it
    return _IN_PROCESS.fresh(fp)


# the in-process session (one party, unit tests): CrypTen's communicator is process-wide, so
# this process can join only once
_IN_PROCESS = None


def shutdown() -> None:
    """Leave the run; safe to call twice or after a failed init."""
    _teardown()


def check_wire_protocol(versions: list, world_size: int) -> str | None:
    """The error message if any process (rank order; rank ``world_size`` is the dealer) runs
    another wire protocol than rank 0, else None."""
    for rank, version in enumerate(versions):
        if version != versions[0]:
            who = "the dealer" if rank == world_size else f"party {rank}"
            return expected_got(
                f"{who}'s mpcrnn wire protocol",
                f"{versions[0]} (party 0's)",
                version,
                "every party and the dealer must run the same mpcrnn release",
            )
    return None


def _teardown() -> None:
    try:
        from protocols.network.communicator import shutdown as close_transport

        close_transport()
    except Exception:  # noqa: BLE001 - best effort on the way out
        pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
