"""What one party process (or the dealer) does in a run, for the launcher and ``mpcrnn party``.

A party: reads and validates ONLY its own file (nothing is sent before validation passes),
joins the run, agrees on public metadata, trains on shares, writes what it is entitled to:
the model (if it is a receiver) and its own report with its local test accuracy.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mpcrnn.readers import MAX_FILE_BYTES
from protocols.errors import MpcrnnError, PartyError
from protocols.network.parties import TIMEOUT_S


@dataclass(frozen=True)
class PartyJob:
    rank: int
    rendezvous: str
    run_config: object  # mpcrnn.config.RunConfig
    train_file: str | None  # None for the dealer
    test_file: str | None
    out_dir: str
    timeout_s: float = TIMEOUT_S
    show_progress: bool = False
    resume: bool = False
    key_dir: str | None = (
        None  # this process's identity (mpcrnn keygen); None with the insecure transport
    )
    # a throw-away identity (certificate PEM, key PEM) from the launcher, held in memory only
    identity_pem: tuple | None = field(default=None, repr=False)
    run_file: str | None = None  # the run file this process read (its SHA-256 is printed)
    strict: bool = False  # refuse (not just warn) when this party is below [data] min_rows
    max_file_bytes: int = MAX_FILE_BYTES  # larger files are refused unread
    he_workers: int = 1  # --provider he: processes for this party's HE products (this host)


def run_party(job: PartyJob) -> dict:
    """Run one party to completion; returns its report dict (also written to out_dir)."""
    import torch

    torch.set_num_threads(1)
    from mpcrnn import data as D
    from protocols.network.parties import init_party, shutdown

    cfg = job.run_config
    spec = transport_spec(job)
    if job.key_dir or job.run_file:  # an organization's own process: what it trusts, to compare
        sys.stderr.write("".join(f"{line}\n" for line in trust_lines(job)))
    if spec.is_dealer:
        from protocols.randomness.dealer import serve

        session = init_party(spec)
        try:
            transport = transport_report(session)
            served = serve(session)
        finally:
            shutdown()
        return {"role": "dealer", "requests_served": served, "transport": transport}
    cfg.validate()
    local = D.scale_features(
        D.load_party_file(job.train_file, cfg.spec, job.max_file_bytes), cfg.spec, job.train_file
    )
    test = (
        D.scale_features(
            D.load_party_file(job.test_file, cfg.spec, job.max_file_bytes), cfg.spec, job.test_file
        )
        if job.test_file
        else None
    )
    warning = D.check_min_rows(local, cfg.spec, job.train_file, job.strict)
    if warning:
        sys.stderr.write(f"\nwarning: party {job.rank}: {warning}\n")
    from mpcrnn.secure import fixed_point

    # count_traffic: CrypTen's own round/byte counters, for the report
    session = init_party(spec, fp=fixed_point(cfg), count_traffic=True)
    try:
        return _run_joined(job, cfg, session, local, test)
    except BaseException:
        shutdown()  # close every link before reporting
        raise


def trust_lines(job: PartyJob) -> list[str]:
    """What two organizations read to each other (by phone) before trusting a run, one line
    each: the run file's SHA-256 (the run file is the only trust anchor), the digest of the
    configuration built from it, and every fingerprint this process pins."""
    import hashlib

    from protocols.errors import ConfigError, expected_got

    cfg = job.run_config
    who = _who(job.rank, cfg.parties)
    lines = []
    if job.run_file:
        try:
            digest = hashlib.sha256(Path(job.run_file).read_bytes()).hexdigest()
        except OSError as exc:
            raise ConfigError(
                expected_got(job.run_file, "a readable run file", type(exc).__name__)
            ) from None
        lines.append(f"{who}: run file {job.run_file} sha256:{digest}")
    lines.append(f"{who}: run configuration sha256:{cfg.digest()}")
    for rank, fp in enumerate(cfg.identities):
        lines.append(f"{who}: pins {_who(rank, cfg.parties)} {fp}")
    return lines


def _who(rank: int, world_size: int) -> str:
    return "dealer" if rank == world_size else f"party {rank}"


def transport_spec(job: PartyJob):
    """The PartySpec of a job, with its identity and every pinned fingerprint (validated)."""
    from protocols.network.identity import identity_in_memory, load_identity
    from protocols.network.parties import PartySpec

    cfg = job.run_config
    spec = PartySpec(
        job.rank,
        cfg.parties,
        job.rendezvous,
        cfg.provider,
        job.timeout_s,
        insecure=cfg.insecure_plaintext_transport,
        pins=tuple(cfg.identities),
        he=cfg.he_params() if cfg.provider == "HE" else None,
        he_workers=job.he_workers,
    )
    spec.validate_role()
    identity = None
    if not cfg.insecure_plaintext_transport and job.identity_pem:
        identity = identity_in_memory(*job.identity_pem)
    elif not cfg.insecure_plaintext_transport and job.key_dir:
        identity = load_identity(job.key_dir)
    from dataclasses import replace

    spec = replace(spec, identity=identity)
    spec.validate()
    return spec


def transport_report(session) -> dict:
    """What the report says about the network: TLS with pinned certificates or INSECURE
    plaintext, and every connection attempt that was refused (rank claimed, fingerprint)."""
    kind = (
        "mutual TLS 1.3, every process's certificate pinned by the run file"
        if session.secure
        else "INSECURE plaintext TCP (--insecure-plaintext-transport): no authentication, "
        "no encryption"
    )
    return {
        "kind": kind,
        "secure": session.secure,
        "refused_connections": list(session.refused),
    }


def _run_joined(job: PartyJob, cfg, session, local, test) -> dict:
    from protocols.network.parties import shutdown

    progress = _Progress(session) if job.show_progress else None
    try:
        result, by_round = _train(job, cfg, session, local, test, progress)
    except BaseException:
        if progress is not None:
            progress.close()  # the error line starts on a fresh line, not after the bar
        raise
    if progress:
        progress.done()
    if job.rank == 0 and session.has_dealer:
        from protocols.randomness.dealer import stop_dealer

        stop_dealer(session)
    report = _party_report(job, cfg, session, result, by_round)
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if result["params"] is not None:
        from mpcrnn.model_file import write_model_file
        from mpcrnn.secure import evaluate_local

        model_path = out / f"model-party{job.rank}.pt"
        saved = write_model_file(
            model_path, cfg.model, cfg.activation, cfg.spec, result["params"], session.run_id
        )
        report["model_file"] = str(model_path)
        if test is not None:  # evaluate exactly the weights saved, as `predict` will
            report["local_test"] = evaluate_local(cfg, saved, test)
        if test is not None and cfg.spec.window is not None:  # forecasting: naive forecasts
            from mpcrnn.readers_series import naive_sums

            report["local_naive"] = naive_sums(job.test_file, cfg.spec, job.max_file_bytes)
    shutdown()
    import resource

    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (out / f"report-party{job.rank}.json").write_text(json.dumps(report, indent=2))
    return report


def _train(job: PartyJob, cfg, session, local, test, progress) -> tuple[dict, list[dict]]:
    """The run of ``cfg.mode`` (mpcrnn.secure or mpcrnn.fedavg): (its result, fedavg's local
    test accuracy per round)."""
    from mpcrnn.secure import evaluate_local, run_training

    by_round: list[dict] = []
    checkpoints = str(Path(job.out_dir) / "checkpoints")
    if cfg.mode != "fedavg":
        result = run_training(
            session, cfg, local, progress=progress, checkpoint_dir=checkpoints, resume=job.resume
        )
        return result, by_round
    from mpcrnn.fedavg import run_fedavg

    def on_round(r, params):  # this party's own test rows, in plaintext; nothing is sent
        if test is not None:
            by_round.append({"round": r, **evaluate_local(cfg, params, test, polynomial=False)})

    result = run_fedavg(
        session,
        cfg,
        local,
        progress=progress,
        checkpoint_dir=checkpoints,
        resume=job.resume,
        on_round=on_round,
    )
    return result, by_round


def _party_report(job: PartyJob, cfg, session, result: dict, by_round: list[dict]) -> dict:
    """This party's report: public facts of the run, its ledger of openings, its costs."""
    report = {
        "role": "party",
        "rank": job.rank,
        "rows": result["counts"][job.rank],
        "train_seconds": result["seconds"],
        "resumed_from_epoch": result["resumed_from"],
        "step_seconds": result["step_seconds"],
        "step_rounds": result.get("step_rounds", []),
        "communication": session.stats.snapshot(),
        "crypten_counted": {"rounds": session.comm_rounds, "bytes": session.comm_bytes},
        "ledger": session.ledger.to_json(),
        "received_model": result["params"] is not None,
        "mode": cfg.mode,
        "run_id": session.run_id,
        "transport": transport_report(session),
    }
    overlap = getattr(session.triples, "overlap", None)  # --provider he: the prefetch's
    if overlap is not None:
        report["he_prefetch"] = overlap.to_json()
    if cfg.mode == "fedavg":
        report["round_seconds"] = result["round_seconds"]
        report["local_train_seconds"] = result["local_seconds"]
        report["revealed_intermediate_models"] = cfg.fedavg_rounds
        if by_round:
            report["local_test_by_round"] = by_round
    if "dp" in result:  # DP-SGD: epsilon, delta, accountant, sigma, C, sampling (public values)
        report["dp"] = result["dp"]
    if result.get("train_accuracy") is not None:
        report["train_accuracy_revealed"] = result["train_accuracy"]
    return report


class _Progress:
    """Rank 0's progress: epoch (or round) and step, s/step, rounds, MB sent.  No secret values.

    On a terminal (stderr a tty): a tqdm bar, redrawn in place.  Otherwise (a log file, a pipe):
    one plain line per epoch, no carriage returns.  Called with the training loop's events
    (``epoch``, ``epochs``, ``step``, ``steps``, ``seconds``, optional ``unit``); ``shown``: an
    unfinished bar line is on stderr; ``done()`` ends it and prints the training time.
    """

    def __init__(self, session, stream=None) -> None:
        self.s = session
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.perf_counter()
        self.shown = False
        self.bar = None
        self.epoch_seconds: list[float] = []

    def _counters(self) -> str:
        st = self.s.stats
        return f"rounds {st.total_rounds}, sent {st.total_bytes / 1e6:.1f} MB"

    def __call__(self, ev: dict) -> None:
        unit = ev.get("unit", "epoch")
        self.epoch_seconds.append(ev["seconds"])
        if self.tty:
            if self.bar is None:
                from tqdm import tqdm

                done_steps = (ev["epoch"] - 1) * ev["steps"] + ev["step"] - 1  # after --resume
                cols, rows = _terminal_size(self.stream)  # 0 x 0: a pty that never said
                self.bar = tqdm(
                    desc=f"  {unit} {ev['epoch']}/{ev['epochs']}",
                    total=ev["epochs"] * ev["steps"],
                    initial=done_steps,
                    file=self.stream,
                    unit="step",
                    ncols=cols or 100,
                    nrows=rows or 24,  # tqdm hides its bar on a terminal of 0 rows
                    dynamic_ncols=bool(cols),
                    leave=True,
                )
            self.bar.set_description(f"  {unit} {ev['epoch']}/{ev['epochs']}", refresh=False)
            self.bar.set_postfix_str(self._counters(), refresh=False)  # tqdm shows s/step
            self.bar.update(1)
            self.shown = True
        elif ev["step"] == ev["steps"]:
            n, total = len(self.epoch_seconds), sum(self.epoch_seconds)
            self.stream.write(
                f"  {unit} {ev['epoch']}/{ev['epochs']}: {n} steps in {total:.1f} s "
                f"({total / n:.2f} s/step), {self._counters()}\n"
            )
            self.stream.flush()
        if ev["step"] == ev["steps"]:
            self.epoch_seconds = []

    def close(self) -> None:
        """End the bar's line (it stays on screen as it last was); nothing without a bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.shown = False

    def done(self) -> None:
        self.close()
        self.stream.write(f"  trained in {time.perf_counter() - self.t0:.1f} s\n")
        self.stream.flush()


def _terminal_size(stream) -> tuple[int, int]:
    """(columns, lines) of the terminal behind ``stream``; (0, 0) when it does not say."""
    try:
        return tuple(os.get_terminal_size(stream.fileno()))
    except (OSError, ValueError, AttributeError):
        return 0, 0


# Exceptions that mean the network failed under a party (a peer closed its connection, reset
# it, never answered, or broke TLS).  The links (protocols.network.links,
# protocols.network.channels) already
# turn what they see into PartyError; these are the same failures raised elsewhere (the
# dealer's socket, the rendezvous).  Anything else is a bug and is reported as one.
LOST_CONTACT = (ConnectionError, TimeoutError, ssl.SSLError, socket.gaierror, socket.herror)


def describe_failure(exc: BaseException, who: str) -> tuple[str, int]:
    """(one-line message, exit code) for an exception that ended a party process: expected
    errors as they are, connection errors as lost contact, anything else as an internal error
    with its type named."""
    first = str(exc).splitlines()[0][:300] if str(exc) else ""
    if isinstance(exc, MpcrnnError):
        return f"{type(exc).__name__}: {exc}", exc.exit_code
    if isinstance(exc, LOST_CONTACT):
        lost = PartyError(f"{who}: lost contact with a peer ({type(exc).__name__}: {first})")
        return f"PartyError: {lost}", lost.exit_code
    return f"internal error {type(exc).__name__}: {first}", 1


def party_entry(job: PartyJob, conn) -> None:
    """Process target used by the launcher: run, report status through ``conn``, exit code."""
    try:
        report = run_party(job)
        conn.send(("ok", report))
        code = 0
    except KeyboardInterrupt:
        code = 130
    except BaseException as exc:  # noqa: BLE001 - reported by type: expected, network, or a bug
        import traceback

        who = "dealer" if job.train_file is None else f"party {job.rank}"
        message, code = describe_failure(exc, who)
        conn.send(("error", message))
        if code == 1 and os.environ.get("MPCRNN_DEBUG"):
            traceback.print_exc()
    conn.close()
    os._exit(code)
