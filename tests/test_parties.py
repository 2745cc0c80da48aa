"""Joining a run (protocols.network.parties): every process on one release, or none starts."""

from __future__ import annotations

import pytest
from mpc_harness import _party_main


def _never_reached(session):
    raise AssertionError("the run must stop while joining")


def _older_release_main(fn, rank, *rest):
    """Party 1 runs a release with another wire protocol (what a host that missed an upgrade is)."""
    import protocols.network.parties as parties

    if rank == 1:
        parties.WIRE_PROTOCOL -= 1
    _party_main(fn, rank, *rest)


def test_mismatched_releases_stop_before_anything_is_shared(parties):
    """Different wire protocols would give silently wrong triples: every process refuses at join."""
    from protocols.network.parties import WIRE_PROTOCOL

    with pytest.raises(AssertionError) as info:
        parties(
            _never_reached, world_size=3, provider="TTP", entry=_older_release_main, timeout_s=60
        )
    want = (
        f"AgreementError: party 1's mpcrnn wire protocol: expected {WIRE_PROTOCOL} (party 0's), "
        f"got {WIRE_PROTOCOL - 1}. every party and the dealer must run the same mpcrnn release"
    )
    report = str(info.value)
    for who in ("party 0", "party 1", "party 2", "dealer"):
        assert f"{who} raised:" in report
    assert report.count(want) == 4


def test_wire_protocol_check_names_the_dealer():
    from protocols.network.parties import check_wire_protocol

    assert check_wire_protocol([2, 2, 2], 2) is None
    assert check_wire_protocol([2, 2, 3], 2).startswith(
        "the dealer's mpcrnn wire protocol: expected 2"
    )
