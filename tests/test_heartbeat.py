"""protocols.network.heartbeat on socket pairs, in one process, with short intervals: a silent peer
whose
connection stays open is named within the limit; a live one never is; an ended one is neither
named nor polled (an ended socket stays readable: watching it would spin)."""

from __future__ import annotations

import socket
import threading
import time

from protocols.network.heartbeat import Heartbeat

NAMES = ["party 0", "party 1", "dealer"]
FAST = {"interval_s": 0.1, "limit_s": 0.8}


def test_a_silent_peer_is_named_within_the_limit_and_on_stop_runs():
    mine, theirs = socket.socketpair()  # theirs stays open and never writes: a stopped process
    stopped = []
    t0 = time.monotonic()
    hb = Heartbeat({2: mine}, NAMES, on_stop=stopped.append, **FAST).start()
    try:
        assert hb._found.wait(5)
        took = time.monotonic() - t0
        assert stopped == [2] and hb.stopped == 2
        assert FAST["limit_s"] <= took < FAST["limit_s"] + 1.0, took
        assert hb.verdict().startswith("dealer stopped responding: no heartbeat for")
    finally:
        hb.close()
        theirs.close()


def test_live_peers_are_never_named():
    a, b = socket.socketpair()
    one = Heartbeat({1: a}, NAMES, **FAST).start()
    two = Heartbeat({0: b}, NAMES, **FAST).start()
    try:
        time.sleep(3 * FAST["limit_s"])
        assert one.verdict() is None and two.verdict() is None
        assert one.verdict(settle=True) is None  # no suspect: returns at once
    finally:
        one.close()
        two.close()


def test_an_ended_peer_is_not_stopped_and_not_polled():
    mine, theirs = socket.socketpair()
    theirs.close()  # party 1 exited: end of stream, not silence
    to_dealer, dealer_end = socket.socketpair()  # the dealer is alive and beating
    hb = Heartbeat({1: mine, 2: to_dealer}, NAMES, **FAST).start()
    dealer = Heartbeat({0: dealer_end}, NAMES, **FAST).start()
    try:
        time.sleep(0.3)
        cpu = time.process_time()
        time.sleep(2 * FAST["limit_s"])
        assert hb.verdict() is None and dealer.verdict() is None
        assert time.process_time() - cpu < 0.5  # the thread waits, it does not spin
    finally:
        hb.close()
        dealer.close()


def test_settle_waits_for_the_verdict_on_a_suspect():
    mine, theirs = socket.socketpair()
    hb = Heartbeat({1: mine}, NAMES, **FAST).start()
    try:
        time.sleep(0.6 * FAST["limit_s"])  # silent for more than limit / 2: a suspect
        got = []
        waiter = threading.Thread(target=lambda: got.append(hb.verdict(settle=True)))
        waiter.start()
        waiter.join(5)
        assert got and got[0].startswith("party 1 stopped responding")
    finally:
        hb.close()
        theirs.close()
