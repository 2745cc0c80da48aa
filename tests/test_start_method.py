"""How a run's local processes start (launch/start_method.py): from a fork server that has
imported torch and numpy and nothing else, so a party inherits no state of the process that
started it."""

from __future__ import annotations

import os
import sys

import launch.start_method as start_method
from launch.start_method import process_context

PARENT_ONLY = "set in the parent after import; a child must not see it"


def _child_view(out) -> None:
    """What a child holds when its target starts."""
    out.put(
        {
            "modules": sorted(
                m
                for m in ("torch", "numpy", "crypten", "protocols.network.parties", "mpcrnn")
                if m in sys.modules
            ),
            "marker": getattr(start_method, "marker", None),
            "threads_env": os.environ.get("OMP_NUM_THREADS"),
            "urandom": os.urandom(16),
            "pid": os.getpid(),
        }
    )


def _children(n: int) -> list[dict]:
    ctx = process_context()
    out = ctx.Queue()
    procs = [ctx.Process(target=_child_view, args=(out,)) for _ in range(n)]
    for p in procs:
        p.start()
    views = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return views


def test_children_start_with_torch_imported_and_nothing_of_the_parent(subprocesses, monkeypatch):
    """Every child has torch and numpy (the point) but no CrypTen or mpcrnn module, none of the
    parent's later state, its own randomness and pid, and one BLAS thread (the environment the
    server started with: conftest sets it before anything starts)."""
    from protocols.runtime import load_crypten

    load_crypten()  # the parent has CrypTen; a child must not inherit it
    monkeypatch.setattr(start_method, "marker", PARENT_ONLY, raising=False)
    views = _children(3)
    assert len({v["pid"] for v in views} - {os.getpid()}) == 3
    assert len({v["urandom"] for v in views}) == 3
    for v in views:
        assert v["modules"] == ["numpy", "torch"]
        assert v["marker"] is None
        assert v["threads_env"] == "1"
