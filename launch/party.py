"""What one party process (or the dealer) does in a run, for the launcher and ``mpcrnn party``.

A party: reads and validates ONLY its own file (nothing is sent before validation passes),
joins the run, agrees on public metadata, trains on shares, writes what it is entitled to:
the model (if it is a receiver) and its own report with its local test accuracy.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from protocols.errors import MpcrnnError


@dataclass(frozen=True)
class PartyJob:
    rank: int
    rendezvous: str
    run_config: object  # mpcrnn.secure.RunConfig
    train_file: str | None  # None for the dealer
    test_file: str | None
    out_dir: str
    timeout_s: float = 60.0
    show_progress: bool = False
    resume: bool = False
    key_dir: str | None = (
        None  # this process's identity (mpcrnn keygen); None with the insecure transport
    )
    strict: bool = False  # refuse (not just warn) when this party is below [data] min_rows
    max_file_bytes: int = 512 << 20  # mpcrnn.data.MAX_FILE_BYTES: larger files are refused unread


def run_party(job: PartyJob) -> dict:
    """Run one party to completion; returns its report dict (also written to out_dir)."""
    import torch

    torch.set_num_threads(1)
    from mpcrnn import data as D
    from protocols.parties import init_party, shutdown

    cfg = job.run_config
    spec = transport_spec(job)
    if spec.is_dealer:
        from protocols.dealer import serve

        init_party(spec)
        try:
            transport = transport_report()
            served = serve()
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
    init_party(spec)
    try:
        return _run_joined(job, spec, cfg, local, test)
    except BaseException:
        shutdown()  # close every link before reporting
        raise


def transport_spec(job: PartyJob):
    """The PartySpec of a job, with its identity and every pinned fingerprint (validated)."""
    from protocols.identity import load_identity
    from protocols.parties import PartySpec

    cfg = job.run_config
    spec = PartySpec(
        job.rank,
        cfg.world_size,
        job.rendezvous,
        cfg.provider,
        job.timeout_s,
        insecure=cfg.insecure_transport,
        pins=tuple(cfg.identities),
    )
    spec.validate_role()
    identity = None
    if not cfg.insecure_transport and job.key_dir:
        identity = load_identity(job.key_dir)
    from dataclasses import replace

    spec = replace(spec, identity=identity)
    spec.validate()
    return spec


def transport_report() -> dict:
    """What the report says about the network: TLS with pinned certificates or INSECURE
    plaintext, and every connection attempt that was refused (rank claimed, fingerprint)."""
    import crypten.communicator as comm

    c = comm.get()
    kind = (
        "mutual TLS 1.3, every process's certificate pinned by the run file"
        if c.secure
        else "INSECURE plaintext TCP (--insecure-plaintext-transport): no authentication, no encryption"
    )
    return {
        "kind": kind,
        "secure": bool(c.secure),
        "refused_connections": list(getattr(c, "refused", [])),
    }


def _run_joined(job: PartyJob, spec, cfg, local, test) -> dict:
    from mpcrnn.secure import evaluate_local, fixed_point, run_training
    from protocols.parties import shutdown
    from protocols.session import MpcSession

    # count_traffic: CrypTen's own round/byte counters, for the report
    session = MpcSession.current(fixed_point(cfg), count_traffic=True)
    progress = _Progress(session) if job.show_progress else None
    by_round: list[dict] = []
    if cfg.mode == "fedavg":
        from mpcrnn.fedavg import run_fedavg

        def on_round(r, params):  # this party's own test rows, in plaintext; nothing is sent
            if test is not None:
                by_round.append({"round": r, **evaluate_local(cfg, params, test, polynomial=False)})

        result = run_fedavg(
            session,
            cfg,
            local,
            progress=progress,
            checkpoint_dir=str(Path(job.out_dir) / "checkpoints"),
            resume=job.resume,
            on_round=on_round,
        )
    else:
        result = run_training(
            session,
            cfg,
            local,
            progress=progress,
            checkpoint_dir=str(Path(job.out_dir) / "checkpoints"),
            resume=job.resume,
        )
    if progress:
        progress.done()
    if job.rank == 0 and spec.has_dealer:
        from protocols.dealer import stop_dealer

        stop_dealer()
    report = {
        "role": "party",
        "rank": job.rank,
        "rows": result["counts"][job.rank],
        "train_seconds": result["seconds"],
        "resumed_from_epoch": result["resumed_from"],
        "step_seconds": result["step_seconds"],
        "step_rounds": result.get("step_rounds", []),
        "communication": session.stats.snapshot(),
        "crypten_counted": _crypten_counters(),
        "ledger": session.ledger.to_json(),
        "received_model": result["params"] is not None,
        "mode": cfg.mode,
        "transport": transport_report(),
    }
    if cfg.mode == "fedavg":
        report["round_seconds"] = result["round_seconds"]
        report["local_train_seconds"] = result["local_seconds"]
        report["revealed_intermediate_models"] = cfg.fedavg.rounds
        if by_round:
            report["local_test_by_round"] = by_round
    if (
        "dp" in result
    ):  # DP-SGD: epsilon, delta, accountant, sigma, C, sampling (public values only)
        report["dp"] = result["dp"]
    if "train_accuracy" in result and result["train_accuracy"] is not None:
        report["train_accuracy_revealed"] = result["train_accuracy"]
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if result["params"] is not None:
        from mpcrnn.model_file import write_model_file

        model_path = out / f"model-party{job.rank}.pt"
        write_model_file(model_path, cfg.model, cfg.activation, cfg.spec, result["params"])
        report["model_file"] = str(model_path)
        if test is not None:  # evaluate exactly the weights saved (float32), as `predict` will
            saved = {k: v.float().double() for k, v in result["params"].items()}
            report["local_test"] = evaluate_local(cfg, saved, test)
    shutdown()
    import resource

    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (out / f"report-party{job.rank}.json").write_text(json.dumps(report, indent=2))
    return report


def _crypten_counters() -> dict:
    import crypten.communicator as comm

    c = comm.get()
    return {"rounds": int(c.comm_rounds), "bytes": int(c.comm_bytes)}


class _Progress:
    """Rank 0's progress line: epoch/step, s/step, rounds, MB sent.  No secret values."""

    def __init__(self, session) -> None:
        self.s = session
        self.t0 = time.perf_counter()

    def __call__(self, ev: dict) -> None:
        st = self.s.stats
        sys.stderr.write(
            f"\r  {ev.get('unit', 'epoch')} {ev['epoch']}/{ev['epochs']} step {ev['step']}/{ev['steps']}  "
            f"{ev['seconds']:.2f} s/step  rounds {st.total_rounds}  sent {st.total_bytes / 1e6:.1f} MB   "
        )
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write(f"\n  trained in {time.perf_counter() - self.t0:.1f} s\n")


def party_entry(job: PartyJob, conn) -> None:
    """Process target used by the launcher: run, report status through ``conn``, exit code."""
    try:
        report = run_party(job)
        conn.send(("ok", report))
        code = 0
    except MpcrnnError as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    except BaseException as exc:  # noqa: BLE001 - a bug: report type and first line only
        import traceback

        conn.send(
            (
                "error",
                f"internal error {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
            )
        )
        if os.environ.get("MPCRNN_DEBUG"):
            traceback.print_exc()
        code = 1
    conn.close()
    os._exit(code)
