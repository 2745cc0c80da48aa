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


def _tls_pair(tmp_path):
    """(our TLS socket, the peer's TLS socket, arm): mutual TLS 1.3 over a relay that, once
    ``arm`` is set, flips one byte of the next chunk the peer sends (an on-path attacker)."""
    import ssl

    from protocols.network.identity import keygen

    keygen(str(tmp_path / "a"))
    keygen(str(tmp_path / "b"))

    def ctx(protocol, me, peer):
        c = ssl.SSLContext(protocol)
        c.minimum_version = ssl.TLSVersion.TLSv1_3
        c.check_hostname, c.verify_mode = False, ssl.CERT_REQUIRED
        c.load_cert_chain(str(tmp_path / me / "cert.pem"), str(tmp_path / me / "key.pem"))
        c.load_verify_locations(cafile=str(tmp_path / peer / "cert.pem"))
        return c

    ours_raw, relay_a = socket.socketpair()
    peer_raw, relay_b = socket.socketpair()
    arm = threading.Event()

    def relay(src, dst, flip):
        while True:
            try:
                data = bytearray(src.recv(65536))
            except OSError:
                return
            if not data:
                return
            if flip and arm.is_set():
                data[-1] ^= 0x01  # in the record's authentication tag
                arm.clear()
            try:
                dst.sendall(data)
            except OSError:
                return

    threading.Thread(target=relay, args=(relay_a, relay_b, False), daemon=True).start()
    threading.Thread(target=relay, args=(relay_b, relay_a, True), daemon=True).start()
    peer_box = []
    t = threading.Thread(
        target=lambda: peer_box.append(
            ctx(ssl.PROTOCOL_TLS_CLIENT, "b", "a").wrap_socket(peer_raw, server_side=False)
        ),
        daemon=True,
    )
    t.start()
    ours = ctx(ssl.PROTOCOL_TLS_SERVER, "a", "b").wrap_socket(ours_raw, server_side=True)
    t.join(10)
    return ours, peer_box[0], arm


def test_a_flipped_heartbeat_byte_is_an_integrity_error_naming_the_link(tmp_path):
    """Issue 26 #7: a changed byte on a heartbeat connection was swallowed (an SSLError is an
    OSError: the peer was marked gone and never watched again).  Now it stops the run like one
    on a data link: on_stop runs, and the data links raise IntegrityError naming the link."""
    from protocols.errors import IntegrityError
    from protocols.network.links import Links

    ours, peer, arm = _tls_pair(tmp_path)
    stopped = []
    hb = Heartbeat({1: ours}, NAMES, on_stop=stopped.append, rank=0, **FAST).start()
    try:
        peer.send(b"\x01")
        time.sleep(0.3)
        assert hb.tampered is None and not stopped
        arm.set()
        peer.send(b"\x01")  # this record arrives with one byte changed
        assert hb._found.wait(5)
        assert stopped == [1] and hb.tampered == 1 and hb.stopped is None
        error = Links(0, 2, {}, 5.0, NAMES, True, hb)._stopped_peer()
        assert isinstance(error, IntegrityError), error
        assert str(error).startswith(
            "party 0: heartbeat link party 0 <-> party 1 failed the TLS integrity check"
        ), error
    finally:
        hb.close()
        peer.close()


def test_dropped_heartbeats_do_not_get_a_party_that_sends_data_accused():
    """Issue 26 #7: dropping only the heartbeat packets of two live, training parties made
    each accuse the other.  A peer whose heartbeats stop but whose data keeps arriving is
    not stopped; once its data stops too, it is named as before."""
    mine, theirs = socket.socketpair()  # the peer's heartbeats never arrive (dropped)
    stopped = []
    hb = Heartbeat({1: mine}, NAMES, on_stop=stopped.append, **FAST).start()
    try:
        until = time.monotonic() + 4 * FAST["limit_s"]
        while time.monotonic() < until:
            hb.heard_data(1)  # the data link: a message from party 1 arrived
            time.sleep(0.1)
        assert hb.stopped is None and not stopped, hb.verdict()
        assert hb._found.wait(5)  # data stopped too: now it is named
        assert stopped == [1]
    finally:
        hb.close()
        theirs.close()


def _three(black_hole: tuple[int, int] | None = None, **kw):
    """Heartbeats of party 0, party 1 and the dealer, one socket pair per two of them; the
    pair ``black_hole`` gets two unconnected ends instead (every heartbeat between them is
    dropped, both connections stay open).  Returns (heartbeats, their on_stop logs, spares)."""
    socks: dict[int, dict[int, socket.socket]] = {0: {}, 1: {}, 2: {}}
    spares = []
    for i, j in ((0, 1), (0, 2), (1, 2)):
        if (i, j) == black_hole:
            (socks[i][j], x), (socks[j][i], y) = socket.socketpair(), socket.socketpair()
            spares += [x, y]  # open, never read nor written: the packets are dropped
        else:
            socks[i][j], socks[j][i] = socket.socketpair()
    logs = {r: [] for r in socks}
    beats = {
        r: Heartbeat(socks[r], NAMES, on_stop=logs[r].append, rank=r, **FAST, **kw).start()
        for r in socks
    }
    return beats, logs, spares


def test_dropped_heartbeats_on_a_link_without_data_accuse_nobody():
    """Issue 26: the dealer's links to parties 1.. carry no data after the seeds, so dropping
    only the heartbeats between the dealer and a party used to get each accused by the other
    (no data could speak for it).  Each heartbeat now also says how long ago its sender last
    heard from every other process (directly: heartbeat or data), so party 1, which hears from
    both, vouches for each to the other: nobody is accused."""
    beats, logs, spares = _three(black_hole=(0, 2))
    try:
        time.sleep(5 * FAST["limit_s"])
        assert all(hb.stopped is None for hb in beats.values()), [
            hb.verdict() for hb in beats.values()
        ]
        assert logs == {0: [], 1: [], 2: []}
    finally:
        for hb in beats.values():
            hb.close()
        for s in spares:
            s.close()


def test_a_stopped_process_is_still_named_by_everyone_when_others_vouch():
    """The vouching must not hide a stopped process: the dealer stops (its heartbeat thread
    halts, its connections stay open); nobody hears from it any more, so nobody can vouch
    for it, and both parties name it within the limit (plus the one-heartbeat lag)."""
    beats, logs, spares = _three()
    try:
        time.sleep(2 * FAST["limit_s"])
        t0 = time.monotonic()
        beats[2]._halt.set()  # stopped: SIGSTOP, a frozen VM
        assert beats[0]._found.wait(5) and beats[1]._found.wait(5)
        took = time.monotonic() - t0
        assert logs[0] == [2] and logs[1] == [2], logs
        assert took < FAST["limit_s"] + 1.0, took
    finally:
        for hb in beats.values():
            hb.close()
        for s in spares:
            s.close()
