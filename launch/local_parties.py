"""Run a function in N real party processes (plus the dealer) on this machine; collect results.

The tests and the benchmarks both need "run ``fn(session, ...)`` in every party of a fresh MPC
run and give me what party 0 returned", without going through the CLI's data files and reports.
This module is that runner.  It lives in the product (``launch`` wires processes together) so
that ``tests/`` and ``benchmarks/`` import it by its package name, never by putting a folder on
``sys.path``.

CrypTen's own unittest multi-process pattern runs the test body in the parent, so this runner
spawns the parties itself, with :func:`launch.start_method.process_context` (a fork server
with torch imported; never the process-wide start method),
a fresh ``file://`` rendezvous per run (no port collisions between concurrent runs), and a hard
timeout: a stuck party fails the run, it never hangs CI.  Each party's exception is reported
with its rank and traceback.  By default every process gets a throw-away identity and all are
pinned, as in a deployment (``insecure=True``: plaintext links).
"""

from __future__ import annotations

import os
import pickle
import queue
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

from launch.start_method import process_context


def _party_main(
    fn, rank, world_size, rendezvous, provider, timeout_s, args, results, transport=None
):
    """The body of one spawned process: join the run, then ``fn(session, *args)`` (the dealer
    serves instead), and put ``(rank, "ok", pickled result)`` or ``(rank, "error", traceback)``
    on ``results``.  Tests that alter a process before it joins pass their own ``entry`` that
    calls this."""
    try:
        import torch

        torch.set_num_threads(1)
        from protocols.network.identity import load_identity
        from protocols.network.parties import PartySpec, init_party, shutdown

        key_dirs, pins, insecure = transport or ((), (), True)
        identity = None if insecure else load_identity(key_dirs[rank])
        spec = PartySpec(
            rank, world_size, rendezvous, provider, timeout_s, identity, tuple(pins), insecure
        )
        session = init_party(spec)
        if spec.is_dealer:
            from protocols.randomness.dealer import serve

            results.put((rank, "ok", _bytes(serve(session))))
        else:
            out = fn(session, *args)
            from protocols.randomness.dealer import stop_dealer

            stop_dealer(session)  # party 0 of a run with a dealer: tell it to exit
            results.put((rank, "ok", _bytes(out)))
        shutdown()
    except BaseException:  # noqa: BLE001 - report everything to the parent
        results.put((rank, "error", traceback.format_exc()))


def make_identities(folder, n_procs: int, insecure: bool = False) -> tuple:
    """(key folders, pinned fingerprints, insecure) for ``n_procs`` processes: fresh keys under
    ``folder`` (or nothing with ``insecure``)."""
    if insecure:
        return (), (), True
    from protocols.network.identity import keygen

    dirs = [os.path.join(str(folder), f"id{rank}") for rank in range(n_procs)]
    return dirs, tuple(keygen(d) for d in dirs), False


def _bytes(result: Any) -> bytes:
    """A party's result as self-contained bytes: the queue's own pickler would pass tensors as
    file descriptors that the parent fetches from the child later, and a child that has exited
    by then fails the run with ConnectionResetError (seen once in ~30 runs)."""
    return pickle.dumps(result)


def run_parties(
    fn: Callable[..., Any],
    world_size: int = 3,
    provider: str = "TTP",
    args: tuple = (),
    timeout_s: float = 120.0,
    may_die: tuple[int, ...] = (),
    entry: Callable[..., None] | None = None,
    insecure: bool = False,
) -> list[Any]:
    """Run ``fn(session, *args)`` in ``world_size`` party processes, each with the
    :class:`protocols.session.MpcSession` its ``init_party`` returned; return results by rank.

    ``fn`` must be importable (module level).  Raises AssertionError naming every failed party,
    except the ranks in ``may_die`` that exit without a result (their entry is None).
    ``entry``: a module-level replacement for the process body (it calls ``_party_main``), for
    tests that alter one process before it joins.
    ``insecure``: ``--insecure-plaintext-transport``; by default every process gets a fresh
    throw-away identity (keygen in the run's temporary folder) and all are pinned.
    """
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # one BLAS thread per party process, as the launcher does
    ctx = process_context()  # after the variables: the fork server's environment is its start's
    results = ctx.Queue()
    n_procs = world_size + (1 if provider == "TTP" else 0)
    with tempfile.TemporaryDirectory(prefix="mpcrnn-rdv-") as tmp:
        rendezvous = f"file://{tmp}/rendezvous"
        transport = make_identities(tmp, n_procs, insecure)
        procs = [
            ctx.Process(
                target=entry or _party_main,
                args=(fn, rank, world_size, rendezvous, provider, timeout_s / 2, args, results)
                + (transport,),
                daemon=True,
            )
            for rank in range(n_procs)
        ]
        for p in procs:
            p.start()
        got = _collect(procs, results, timeout_s)
    return _outcome(got, procs, world_size, provider, may_die)


def _collect(procs: list, results, timeout_s: float) -> dict[int, tuple[str, Any]]:
    """Every process's (status, payload) that arrives within ``timeout_s`` (sooner when every
    process has either reported or exited and one exited with an error); then join or kill
    them all."""
    got: dict[int, tuple[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while len(got) < len(procs) and time.monotonic() < deadline:
        try:
            rank, status, payload = results.get(timeout=0.5)
            got[rank] = (status, payload)
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in procs) and all(
                p.exitcode is not None or r in got for r, p in enumerate(procs)
            ):
                break
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join()
    return got


def _outcome(got: dict, procs: list, world_size: int, provider: str, may_die) -> list[Any]:
    """The data parties' results by rank, or AssertionError naming every process that failed."""
    errors = []
    for rank in range(len(procs)):
        who = "dealer" if rank == world_size and provider == "TTP" else f"party {rank}"
        if rank not in got and rank in may_die:
            continue
        if rank not in got:
            errors.append(
                f"{who}: no result (exit code {procs[rank].exitcode}; timed out or crashed)"
            )
        elif got[rank][0] == "error":
            errors.append(f"{who} raised:\n{got[rank][1]}")
        else:
            got[rank] = ("ok", pickle.loads(got[rank][1]))
    if errors:
        raise AssertionError("MPC run failed:\n" + "\n".join(errors))
    return [got[r][1] if r in got else None for r in range(world_size)]


def kill_when_all_exist(paths: list, rank: int, within_s: float = 120.0):
    """An ``on_start`` callback for :func:`launch.launcher.launch_local`: SIGKILL process ``rank``
    as soon as every file in ``paths`` exists (e.g. every party's checkpoint of epoch 2)."""
    import signal
    import threading
    from pathlib import Path

    def on_start(pids):
        def watch():
            deadline = time.monotonic() + within_s
            while time.monotonic() < deadline:
                if all(Path(p).exists() for p in paths):
                    os.kill(pids[rank], signal.SIGKILL)
                    return
                time.sleep(0.01)

        threading.Thread(target=watch, daemon=True).start()

    return on_start
