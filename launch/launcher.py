"""Spawn N parties and the dealer on this machine; watch them; stop everyone if one dies.

Strict and boring: a fork server with torch imported and nothing else
(:mod:`launch.start_method`: each process starts as a spawned one would, without re-importing
torch); a fresh ``file://`` rendezvous per run in a private folder (0700); every process's
throw-away identity made in memory (pinned in the run's configuration) and handed to its child
over the start pipe, never written to disk (the child holds its key in a memfd: nothing
outlives the run, even a SIGKILLed launcher); every exit code checked; if any process exits
non-zero (or is killed) the others are terminated within a second and :class:`PartyError`
names the one that died first; Ctrl-C terminates all children.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

from launch.party import PartyJob, party_entry
from launch.start_method import process_context
from mpcrnn.readers import MAX_FILE_BYTES
from protocols.errors import PartyError
from protocols.network.parties import TIMEOUT_S


def launch_local(
    cfg,
    train_files: list[str],
    test_files: list[str | None],
    out_dir: str,
    timeout_s: float = TIMEOUT_S,
    show_progress: bool = True,
    on_start=None,
    resume: bool = False,
    strict: bool = False,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> list[dict]:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        # children inherit it before numpy loads: BLAS threads spin-wait, and 3 parties + the
        # dealer on 2 cores made the polynomial fit at start-up 20-50x slower than alone
        os.environ.setdefault(var, "1")
    ctx = process_context()  # after the variables: the fork server's environment is its start's
    n_processes = cfg.parties + (1 if cfg.provider == "TTP" else 0)
    tmp = tempfile.mkdtemp(prefix="mpcrnn-run-")  # 0700
    try:
        cfg, pems = throwaway_identities(cfg)
        jobs = [
            PartyJob(
                rank,
                f"file://{tmp}/rendezvous",
                cfg,
                train_files[rank] if rank < cfg.parties else None,
                test_files[rank] if rank < cfg.parties else None,
                out_dir,
                timeout_s,
                show_progress=show_progress and rank == 0,
                resume=resume,
                identity_pem=pems[rank],
                strict=strict,
                max_file_bytes=max_file_bytes,
            )
            for rank in range(n_processes)
        ]
        procs, pipes = _spawn(ctx, jobs, cfg)
        if on_start:
            on_start([p.pid for p in procs])
        return _watch(procs, pipes, cfg, show_progress)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def throwaway_identities(cfg) -> tuple:
    """``cfg`` with a fresh identity per process pinned, and each process's (certificate PEM,
    key PEM), made in memory only; unchanged (no keys) with the insecure transport."""
    from dataclasses import replace

    from protocols.network.identity import new_identity_pem

    n_processes = cfg.parties + (1 if cfg.provider == "TTP" else 0)
    if cfg.insecure_plaintext_transport:
        return cfg, [None] * n_processes
    made = [new_identity_pem(_name(rank, cfg)) for rank in range(n_processes)]
    pins = tuple(fp for _, _, fp in made)
    return replace(cfg, identities=pins), [(cert, key) for cert, key, _ in made]


def _spawn(ctx, jobs: list[PartyJob], cfg) -> tuple[list, list]:
    """Start one process per job; (processes, the read ends of their report pipes)."""
    procs, pipes = [], []
    for job in jobs:
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=party_entry, args=(job, send), name=_name(job.rank, cfg))
        p.start()
        send.close()
        procs.append(p)
        pipes.append(recv)
    return procs, pipes


def _watch(procs, pipes, cfg, show_progress: bool) -> list[dict]:
    """Wait for every process: their reports in rank order, or :class:`PartyError` naming the
    root cause (the others stopped) as soon as one fails or is stopped."""
    messages: dict[int, tuple] = {}
    stopped_since: dict[int, float] = {}
    try:
        while True:
            _drain(pipes, messages)
            failed = [(rank, p) for rank, p in enumerate(procs) if p.exitcode not in (None, 0)]
            if failed:
                time.sleep(1.0)  # let the other exits land, then blame the root cause
                _drain(pipes, messages)
                rank, p = _culprit(procs, messages)
                _stop_all(procs)
                detail = messages.get(rank, ("error", f"exit code {p.exitcode}"))[1]
                raise PartyError(
                    f"{_name(rank, cfg)} died (exit code {p.exitcode}): {detail}. "
                    f"All other processes were stopped; no model was written as final"
                )
            if all(p.exitcode == 0 for p in procs):
                break
            stopped = _stopped(procs, stopped_since)
            if stopped is not None:
                _stop_all(procs)
                raise PartyError(
                    f"{_name(stopped, cfg)} was stopped (not running for {STOPPED_LIMIT_S:g} s, "
                    "e.g. SIGSTOP or a debugger). All other processes were stopped; no model was "
                    "written as final"
                )
            time.sleep(0.1)
    except KeyboardInterrupt:
        _stop_all(procs)
        raise
    except PartyError:
        if show_progress and sys.stderr.isatty():
            # a killed party's progress bar may have left its line open (a carriage return)
            sys.stderr.write("\n")
        raise
    finally:
        for r in pipes:
            r.close()
    return [messages.get(rank, ("ok", {}))[1] for rank in range(len(procs))]


# A process that is stopped (state T: SIGSTOP, SIGTSTP, a debugger) this long stops the run and is
# named: its peers would only notice after --timeout, and would blame each other.
STOPPED_LIMIT_S = 10.0


def _stopped(procs, since: dict[int, float]) -> int | None:
    """The rank of a child stopped for STOPPED_LIMIT_S (from /proc/<pid>/stat), else None."""
    now = time.monotonic()
    for rank, p in enumerate(procs):
        try:
            with open(f"/proc/{p.pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            since.pop(rank, None)
            continue
        if state in (b"T", b"t"):
            if now - since.setdefault(rank, now) >= STOPPED_LIMIT_S:
                return rank
        else:
            since.pop(rank, None)
    return None


def _drain(pipes, messages) -> None:
    for rank, r in enumerate(pipes):
        if rank not in messages and r.poll():
            try:
                messages[rank] = r.recv()
            except EOFError:
                messages[rank] = ("error", "exited without a report")


def _culprit(procs, messages):
    """The process that failed first *on its own*: killed by a signal or silent, before one
    that only reports losing a peer (a consequence, not a cause)."""
    failed = [(rank, p) for rank, p in enumerate(procs) if p.exitcode not in (None, 0)]

    def weight(item):
        rank, p = item
        msg = messages.get(rank, ("error", ""))[1]
        if p.exitcode is not None and p.exitcode < 0:
            return 0  # killed by a signal
        if rank not in messages:
            return 1  # died without a report
        return 3 if "lost contact" in str(msg) else 2

    return min(failed, key=weight)


def _name(rank: int, cfg) -> str:
    return "dealer" if rank == cfg.parties else f"party {rank}"


def _stop_all(procs) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 5
    for p in procs:
        p.join(timeout=max(0.1, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()
