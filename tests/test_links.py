"""The direct links between data parties (protocols.links): results, large transfers, and the
typed errors a silent, dead or out-of-step peer produces (never a hang)."""

from __future__ import annotations

import time

import pytest
import torch

from mpc_harness import run_parties


def exchange_party(rank: int, n: int):
    from protocols.reveal import gather_masked, open_masked
    from protocols.session import MpcSession

    s = MpcSession.current()
    assert s.links is not None  # multi-party runs open masked values over the links
    base = torch.arange(n, dtype=torch.int64)
    x = base * (rank + 1) + rank
    (total,) = open_masked(s, [x], "test")
    gathered = gather_masked(s, x + 7, "test")
    # checked here (8 MB tensors do not travel back through the test's queue reliably)
    total_ok = torch.equal(total, sum(base * (r + 1) + r for r in range(s.world_size)))
    if rank == 0:
        return total_ok, [torch.equal(g, base * (r + 1) + r + 7) for r, g in enumerate(gathered)]
    return total_ok, gathered


@pytest.mark.parametrize("world_size,n", [(3, 5), (2, 1), (4, 1 << 20)])  # 1 << 20: 8 MB each way at once
def test_exchange_and_gather(world_size, n):
    outs = run_parties(exchange_party, world_size=world_size, provider="TTP", args=(n,), timeout_s=240)
    for rank, (total_ok, gathered) in enumerate(outs):
        assert total_ok
        assert gathered == ([True] * world_size if rank == 0 else None)


def silent_party(rank: int):
    from protocols.errors import PartyError
    from protocols.reveal import open_masked
    from protocols.session import MpcSession

    s = MpcSession.current()
    if rank == 1:
        time.sleep(s.links.timeout_s + 4)  # alive, but never answers
        return None
    t0 = time.monotonic()
    try:
        open_masked(s, [torch.zeros(3, dtype=torch.int64)], "test")
    except PartyError as exc:
        return str(exc), time.monotonic() - t0, s.links.timeout_s
    return None


def test_silent_peer_times_out_naming_it():
    out = run_parties(silent_party, world_size=2, provider="TFP", timeout_s=24)[0]  # slack for start-up on a busy machine
    msg, waited, limit = out
    assert "party 0: lost contact with party 1" in msg and f"no data for {limit:g} s" in msg
    assert limit <= waited < limit + 3


def dead_party(rank: int):
    import os

    from protocols.errors import PartyError
    from protocols.reveal import open_masked
    from protocols.session import MpcSession

    s = MpcSession.current()
    if rank == 2:
        os._exit(3)  # dies without a word
    t0 = time.monotonic()
    try:
        open_masked(s, [torch.zeros(3, dtype=torch.int64)], "test")
    except PartyError as exc:
        return str(exc), time.monotonic() - t0
    return None


def test_dead_peer_is_named_at_once():
    for rank, out in enumerate(run_parties(dead_party, world_size=3, provider="TFP", timeout_s=60, may_die=(2,))[:2]):
        msg, waited = out
        assert f"party {rank}: lost contact with party 2" in msg
        assert waited < 5  # the closed connection, not the 30 s timeout


def desync_party(rank: int):
    from protocols.errors import PartyError
    from protocols.reveal import open_masked
    from protocols.session import MpcSession

    s = MpcSession.current()
    try:
        open_masked(s, [torch.zeros(4 if rank == 1 else 3, dtype=torch.int64)], "test")
    except PartyError as exc:
        return str(exc)
    return None


def test_out_of_step_peer_raises_instead_of_garbage():
    outs = run_parties(desync_party, world_size=2, provider="TFP", timeout_s=30)
    assert "party 0: party 1 sent 32 bytes where 24 were expected" in outs[0]
    assert outs[1] and outs[1].startswith("party 1: ")  # waits for 8 more bytes: party 0's close ends it
