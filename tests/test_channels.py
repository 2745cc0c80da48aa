"""Attacks on the network of a real run (`mpcrnn party` / `mpcrnn dealer` processes on loopback).

Each attack is first shown to work against ``--insecure-plaintext-transport`` (today's trust
level before issue 14) and then to fail against the default transport (mutual TLS 1.3, every
certificate pinned by the run file):

* a stranger takes rank 1 / reaches a party's link port (with an unpinned certificate, with
  none, with junk, with party 1's public certificate but not its key), before and after the
  real party 1 joins;  a rogue dealer started before the real one;
* a man in the middle on the link party 1 <-> party 0 rewrites bytes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from launch.netns import keygen as _keygen  # `mpcrnn keygen` as an organization runs it
from mpcrnn import data as D
from protocols.network.channels import HELLO, MAGIC
from protocols.network.parties import WIRE_PROTOCOL

MPCRNN = str(Path(sys.executable).with_name("mpcrnn"))
RUN_TOML = (
    '[run]\nparties = 2\nprovider = "ttp"\n[model]\nhidden_size = 4\n'
    "[train]\nepochs = 1\nbatch_size = 20\n"
)
TOTAL = 3  # party 0, party 1, dealer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Run:
    """Files, identities and process launching for one 2-party + dealer run on loopback."""

    def __init__(self, tmp: Path, insecure: bool, timeout: float = 60) -> None:
        self.tmp, self.insecure, self.timeout = tmp, insecure, timeout
        self.port = _free_port()
        self.files = []
        for r, part in enumerate(D.split_rows(D.japanese_vowels("train"), [20, 20], 3)):
            D.write_npz(part, tmp / f"p{r}.npz")
            self.files.append(str(tmp / f"p{r}.npz"))
        self.fp = {
            name: _keygen(tmp / f"key-{name}")
            for name in ("party0", "party1", "dealer", "stranger")
        }
        body = RUN_TOML
        if insecure:
            body = body.replace(
                'provider = "ttp"\n', 'provider = "ttp"\ninsecure_plaintext_transport = true\n'
            )
        else:
            body += "[identities]\n" + "".join(
                f'{k} = "{self.fp[k]}"\n' for k in ("party0", "party1", "dealer")
            )
        (tmp / "run.toml").write_text(body)
        # the rogue dealer's own run file pins ITS certificate as the dealer
        # (it passes its own checks)
        rogue = body.replace(self.fp["dealer"], self.fp["stranger"]) if not insecure else body
        (tmp / "rogue.toml").write_text(rogue)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(
        self,
        name: str,
        rank: int | None = None,
        port: int | None = None,
        config: str = "run.toml",
        key: str | None = None,
        timeout: float | None = None,
    ) -> subprocess.Popen:
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port or self.port),
            "WORLD_SIZE": "3",
            "MPCRNN_LINK_IFNAME": "lo",
        }
        t = str(timeout or self.timeout)
        cfg = str(self.tmp / config)
        if rank is None:
            cmd = [MPCRNN, "dealer", "--config", cfg, "--timeout", t]
        else:
            env["RANK"] = str(rank)
            cmd = [
                MPCRNN,
                "party",
                "--config",
                cfg,
                "--data",
                self.files[rank],
                "--out",
                str(self.tmp / f"out{rank}"),
                "--timeout",
                t,
            ]
        if not self.insecure:
            cmd += ["--key", str(self.tmp / f"key-{key or name}")]
        self.procs[name] = p = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        return p

    def finish(self, limit: float = 300) -> dict[str, tuple[int, str, str]]:
        out = {}
        deadline = time.monotonic() + limit
        for name, p in self.procs.items():
            try:
                o, e = p.communicate(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                for q in self.procs.values():
                    q.kill()
                raise AssertionError(
                    f"{name} hung past the test's limit (no honest process may hang)"
                ) from None
            out[name] = (p.returncode, o, e)
        return out

    def kill(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.communicate()


def _wait_listening(port: int, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                s.sendall(
                    b"\0" * HELLO.size
                )  # a junk hello: refused at once, does not hold the listener up
                return
        time.sleep(0.2)
    raise AssertionError(f"nobody listened on {port}")


def _listening_ports(pid: int) -> set[int]:
    """Ports that process ``pid`` listens on (from /proc: what anyone on the host can see)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:
                ports.add(int(parts[1].split(":")[1], 16))
    return ports


def _stranger(
    port: int,
    claimed: int,
    cert_pem: bytes = b"",
    mode: int = 1,
    junk: bytes | None = None,
    then_tls_with: Path | None = None,
) -> dict:
    """A process that is not in the run tries to take rank ``claimed`` at ``port``: it sends an
    mpcrnn hello (or ``junk``) and records every byte it gets back.  ``then_tls_with``: if the
    honest side answers, try the TLS handshake with that key folder's (unpinned) key."""
    got = bytearray()
    outcome = {"handshake": None}
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(
            junk
            if junk is not None
            else HELLO.pack(MAGIC, claimed, TOTAL, mode, len(cert_pem)) + cert_pem
        )
        if then_tls_with is not None:
            head = _recv_some(s, HELLO.size)
            got += head
            if len(head) == HELLO.size:
                n = HELLO.unpack(head)[4]
                peer_pem = _recv_some(s, n)
                got += peer_pem
                import ssl

                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                ctx.load_cert_chain(str(then_tls_with / "cert.pem"), str(then_tls_with / "key.pem"))
                try:
                    t = ctx.wrap_socket(s, server_side=False)
                    t.settimeout(15)
                    data = t.recv(1 << 16)  # the server rejects our certificate: an alert or EOF
                    outcome["handshake"] = f"app data {len(data)} bytes"
                    got += data
                except (ssl.SSLError, OSError) as exc:
                    outcome["handshake"] = f"failed: {type(exc).__name__}"
            outcome["received"] = bytes(got)
            return outcome
        while True:
            try:
                chunk = s.recv(1 << 16)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            got += chunk
    outcome["received"] = bytes(got)
    return outcome


def _recv_some(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def _listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    s.settimeout(60)
    return s


def _addr(listener: socket.socket) -> str:
    host, port = listener.getsockname()
    return f"{host}:{port}"


def _accept_as(listener: socket.socket, rank: int) -> socket.socket:
    """Accept a plaintext-transport connection and answer its hello as ``rank``."""
    conn, _ = listener.accept()
    conn.settimeout(60)
    assert len(_recv_some(conn, HELLO.size)) == HELLO.size
    conn.sendall(HELLO.pack(MAGIC, rank, TOTAL, 0, 0))
    return conn


def _send_json(s: socket.socket, obj) -> None:
    body = json.dumps(obj).encode()
    s.sendall(len(body).to_bytes(4, "little") + body)


def _recv_json(s: socket.socket):
    return json.loads(_recv_some(s, int.from_bytes(_recv_some(s, 4), "little")))


def test_on_the_plaintext_transport_a_stranger_takes_rank_1_and_gets_a_seed(tmp_path, subprocesses):
    """The attack works where there is no authentication: the stranger's plaintext hello
    claiming rank 1 is accepted, it receives the address book, answers the dealer's link and
    both heartbeat connections as party 1, and then receives party 0's PRZS seed."""
    run = Run(tmp_path, insecure=True, timeout=30)
    try:
        run.start("party0", 0)
        _wait_listening(run.port)
        run.start("dealer")
        links, beats = _listener(), _listener()  # the stranger plays rank 1 to the end
        with socket.create_connection(("127.0.0.1", run.port), timeout=60) as s:
            s.sendall(HELLO.pack(MAGIC, 1, TOTAL, 0, 0))
            assert (
                len(_recv_some(s, HELLO.size)) == HELLO.size
            )  # party 0 answers: accepted as party 1
            _send_json(s, {"rank": 1, "wire": WIRE_PROTOCOL, "addr": _addr(links)})
            book = _recv_json(s)  # the address book, sent once the dealer joined
            assert set(book) == {"versions", "addrs"}
            host, port = _recv_json(s)["heartbeat"].rsplit(":", 1)  # party 0's heartbeat port
            to_dealer = _accept_as(links, 1)  # the dealer connects to "party 1" for its link
            _send_json(to_dealer, {"heartbeat": _addr(beats)})
            with socket.create_connection((host, int(port)), timeout=60) as h:
                h.sendall(HELLO.pack(MAGIC, 1, TOTAL, 0, 0))  # taken as party 1 there too
                assert len(_recv_some(h, HELLO.size)) == HELLO.size
                dealer_beat = _accept_as(beats, 1)
                seed = _recv_some(s, 40)  # party 0's next PRZS seed: 8-byte header + payload
            assert len(seed) == 40 and int.from_bytes(seed[:8], "little") == 32
            to_dealer.close()
            dealer_beat.close()
    finally:
        run.kill()


def test_strangers_rogue_dealer_and_impostors_are_refused_and_the_run_completes(
    tmp_path, subprocesses
):
    """Membership on the default transport.  Before party 1 joins: a stranger with a valid but
    unpinned certificate, one with no certificate, one speaking plaintext, junk bytes, and an
    impostor presenting party 1's (public) certificate without its key all try to take rank 1;
    a rogue dealer (its own run file pins its own certificate) tries to take the dealer's rank.
    After party 1 joined: strangers try rank 1 again at party 0, and the dealer's rank at party
    1's link port.  Every attempt is refused and named in the honest process's stderr and
    report (rank claimed, fingerprint seen); no stranger receives a single byte (the impostor
    only the public hello, certificate and TLS handshake); the real run completes."""
    run = Run(tmp_path, insecure=False, timeout=90)
    stranger_pem = (tmp_path / "key-stranger" / "cert.pem").read_bytes()
    party1_pem = (tmp_path / "key-party1" / "cert.pem").read_bytes()
    try:
        run.start("party0", 0)
        _wait_listening(run.port)
        before = {
            "unpinned": _stranger(run.port, 1, stranger_pem),
            "no certificate": _stranger(run.port, 1),
            "plaintext": _stranger(run.port, 1, mode=0),
            "junk": _stranger(run.port, 1, junk=os.urandom(200)),
        }
        impostor = _stranger(run.port, 1, party1_pem, then_tls_with=tmp_path / "key-stranger")
        rogue = run.start("rogue dealer", None, config="rogue.toml", key="stranger", timeout=8)
        rogue_out = rogue.communicate(timeout=120)
        run.procs.pop("rogue dealer")
        p1 = run.start("party1", 1)
        deadline = time.monotonic() + 120
        while not _listening_ports(p1.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        (link_port,) = _listening_ports(p1.pid)  # party 1 listens for the dealer's link
        time.sleep(1.0)  # party 1 has connected to party 0 by now
        after = {
            "rank 1 again, unpinned": _stranger(run.port, 1, stranger_pem),
            "rank 1 again, no certificate": _stranger(run.port, 1),
            "dealer at party 1's link port, unpinned": _stranger(link_port, 2, stranger_pem),
            "dealer at party 1's link port, no certificate": _stranger(link_port, 2),
        }
        run.start("dealer")
        results = run.finish()
    finally:
        run.kill()
    for name, outcome in {**before, **after}.items():
        assert outcome["received"] == b"", name  # refused before anything was sent to it
    # the impostor saw only public bytes: party 0's hello and certificate, then the handshake failed
    assert impostor["received"].startswith(MAGIC) and impostor["handshake"] in (
        "failed: SSLError",
        "failed: SSLEOFError",
        "failed: ConnectionResetError",
        "app data 0 bytes",
    ), impostor
    assert rogue.returncode != 0 and "could not join the run" in rogue_out[1]
    for name in ("party0", "party1", "dealer"):
        assert results[name][0] == 0, (name, results[name][2][-2000:])
    err0, err1 = results["party0"][2], results["party1"][2]
    fp_s = run.fp["stranger"]
    assert (
        f"claiming rank 1 (party 1) presented certificate {fp_s}, not the one pinned for party 1"
        in err0
    )
    assert "claiming rank 1 (party 1) presented no certificate" in err0
    assert "expected the TLS transport, got the plaintext one" in err0
    assert "sent no mpcrnn hello (junk)" in err0
    assert (
        f"claiming rank 1 (party 1) with certificate {run.fp['party1']} failed the TLS handshake"
        in err0
    )
    assert (
        f"claiming rank 2 (dealer) presented certificate {fp_s}, not the one pinned for dealer"
        in err0
    )  # the rogue
    assert (
        f"claiming rank 1 (party 1), fingerprint {fp_s}: not a rank this process waits for" in err0
    )  # after
    assert (
        f"claiming rank 2 (dealer) presented certificate {fp_s}, not the one pinned for dealer"
        in err1
    )
    assert "claiming rank 2 (dealer) presented no certificate" in err1
    reports = [json.loads(results[n][1]) for n in ("party0", "party1")]
    assert all(r["received_model"] and r["transport"]["secure"] for r in reports)
    assert any(fp_s in line for line in reports[0]["transport"]["refused_connections"])
    assert any(fp_s in line for line in reports[1]["transport"]["refused_connections"])


class Relay:
    """A man in the middle: forwards one TCP connection (listen -> target) both ways and flips one
    byte of the upstream direction (party 1 -> party 0).  ``at``: stream offset of the flip
    (TLS: anywhere after the handshake); ``frame``: parse the plaintext framing instead and flip
    the highest byte of the first ring element of the ``frame``-th message carrying >= 64 bytes
    (a share, changed by 2^56: silently wrong unless authenticated)."""

    def __init__(self, target_port: int, at: int | None = None, frame: int | None = None) -> None:
        self.target, self.at, self.frame = target_port, at, frame
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.flipped = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        down, _ = self.listener.accept()
        up = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self._pump, args=(up, down, False), daemon=True).start()
        self._pump(down, up, True)

    def _pump(self, src, dst, tamper: bool) -> None:
        seen = 0
        parser = _FrameParser(self.frame) if tamper and self.frame is not None else None
        try:
            while True:
                data = bytearray(src.recv(1 << 16))
                if not data:
                    break
                if tamper and self.at is not None and seen <= self.at < seen + len(data):
                    data[self.at - seen] ^= 0x40
                    self.flipped += 1
                if parser is not None:
                    self.flipped += parser.feed(data)
                seen += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _FrameParser:
    """Follows the plaintext stream party 1 -> party 0 (clear hello, then 4-byte-length JSON
    hello, then 8-byte-length messages) and flips a byte of the chosen message in place."""

    def __init__(self, target: int) -> None:
        self.target, self.pos, self.count, self.state, self.need, self.done = (
            target,
            0,
            0,
            "hello",
            HELLO.size,
            False,
        )
        self.header = bytearray()

    def feed(self, data: bytearray) -> int:
        flipped, i = 0, 0
        while i < len(data):
            take = min(self.need, len(data) - i)
            if (
                self.state == "payload"
                and not self.done
                and self.need_total >= 64
                and self.count == self.target
                and self.need == self.need_total
                and take >= 8
            ):
                data[i + 7] ^= 0x01  # highest byte of the first int64 share
                flipped, self.done = 1, True
            if self.state in ("hello", "json-len", "len"):
                self.header += data[i : i + take]
            i += take
            self.need -= take
            if self.need:
                continue
            if self.state == "hello":
                self.state, self.need, self.header = "json-len", 4, bytearray()
            elif self.state == "json-len":
                self.state, self.need = "json", int.from_bytes(self.header, "little")
                self.header = bytearray()
            elif self.state == "json" or self.state == "payload":
                self.state, self.need, self.header = "len", 8, bytearray()
            elif self.state == "len":
                n = int.from_bytes(self.header, "little")
                if n >= 64:
                    self.count += 1
                self.state, self.need, self.need_total = "payload", n, n
                if n == 0:
                    self.state, self.need, self.header = "len", 8, bytearray()
                self.header = bytearray()
        return flipped


def _mitm_run(tmp_path, insecure: bool):
    run = Run(tmp_path, insecure=insecure, timeout=40)
    relay = Relay(run.port, at=None if insecure else 40_000, frame=30 if insecure else None)
    try:
        run.start("party0", 0)
        _wait_listening(run.port)
        run.start("dealer")
        run.start("party1", 1, port=relay.port)  # told to reach rank 0 through the relay
        results = run.finish()
    finally:
        run.kill()
    return run, relay, results


def test_on_the_plaintext_transport_a_rewritten_share_goes_unnoticed(tmp_path, subprocesses):
    """The attack works without integrity: a share from party 1 changed by 2^56 in transit, and
    every process exits 0 with a model (trained on a corrupted opening)."""
    run, relay, results = _mitm_run(tmp_path, insecure=True)
    assert relay.flipped == 1
    for name, (code, _, err) in results.items():
        assert code == 0, (name, err[-1500:])
    assert (tmp_path / "out0" / "model-party0.pt").exists()


def test_a_rewritten_byte_stops_the_run_with_an_integrity_error_naming_the_link(
    tmp_path, subprocesses
):
    """The same relay on the default transport (the pin check passes: it forwards party 1's own
    handshake) flips one byte after the handshake: party 0 stops with the integrity error naming
    the link, everyone stops within the timeout, no model is written."""
    run, relay, results = _mitm_run(tmp_path, insecure=False)
    assert relay.flipped == 1
    code0, _, err0 = results["party0"]
    assert code0 == 6, err0[-2000:]  # IntegrityError
    assert "link party 0 <-> party 1 failed the TLS integrity check" in err0
    assert all(code != 0 for code, _, _ in results.values())
    assert not list(tmp_path.glob("out*/model-*.pt"))


# ---------------------------------------------------------- configuration errors (no network)


def test_keygen_key_is_private_and_fingerprint_is_the_certificates(tmp_path, subprocesses):
    import ssl

    from protocols.network.identity import fingerprint, load_identity

    fp = _keygen(tmp_path / "id")
    assert (tmp_path / "id" / "key.pem").stat().st_mode & 0o777 == 0o600
    der = ssl.PEM_cert_to_DER_cert((tmp_path / "id" / "cert.pem").read_text())
    assert fp == fingerprint(der) == load_identity(str(tmp_path / "id")).fingerprint
    again = subprocesses.run(
        [MPCRNN, "keygen", "--out", str(tmp_path / "id")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        again.returncode != 0 and "not overwritten" in again.stderr
    )  # an identity is never replaced silently


def test_a_readable_key_is_refused(tmp_path, subprocesses):
    from protocols.errors import ConfigError
    from protocols.network.identity import load_identity

    _keygen(tmp_path / "id")
    os.chmod(tmp_path / "id" / "key.pem", 0o644)
    with pytest.raises(ConfigError, match=r"permissions of .*key.pem: expected 0600"):
        load_identity(str(tmp_path / "id"))


@pytest.mark.parametrize("case", ["other-key", "not-a-key"])
def test_a_key_that_does_not_match_its_certificate_is_one_line_at_start(tmp_path, case):
    """Issue 26 #3: found at load, not after 39 handshake retries with party 0 blamed."""
    import shutil

    from protocols.errors import ConfigError
    from protocols.network.identity import keygen, load_identity

    keygen(str(tmp_path / "a"))
    keygen(str(tmp_path / "b"))
    key = tmp_path / "a" / "key.pem"
    if case == "other-key":
        shutil.copy(tmp_path / "b" / "key.pem", key)
    else:
        key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError) as err:
        load_identity(str(tmp_path / "a"))
    text = str(err.value)
    assert "\n" not in text and "key.pem" in text, text
    assert re.search(r"expected the private key of .*cert\.pem", text), text
    assert "nonsense" not in text and "PRIVATE" not in text, text


def test_run_file_identities_must_name_every_process(tmp_path):
    from launch.runfile import build
    from protocols.errors import ConfigError

    fp = "sha256:" + "ab" * 32
    with pytest.raises(
        ConfigError,
        match=r"\[identities\] keys: expected party0, party1, dealer, got dealer, party0",
    ):
        build({"run": {"parties": 2}, "identities": {"party0": fp, "dealer": fp}}, {})
    with pytest.raises(
        ConfigError, match=r"\[identities\] party1: expected sha256: and 64 hex digits"
    ):
        build(
            {"run": {"parties": 2}, "identities": {"party0": fp, "party1": "md5:00", "dealer": fp}},
            {},
        )
    cfg = build(
        {
            "run": {"parties": 2},
            "identities": {"party0": fp, "party1": fp.replace("ab", "cd"), "dealer": fp},
        },
        {},
    )
    other = build(
        {
            "run": {"parties": 2},
            "identities": {"party0": fp, "party1": fp.replace("ab", "ef"), "dealer": fp},
        },
        {},
    )
    assert (
        cfg.identities[1] != other.identities[1] and cfg.digest() != other.digest()
    )  # pins are agreed and hashed
    assert cfg.checkpoint_digest() == other.checkpoint_digest()


@pytest.mark.parametrize("case", ["no identities", "no key", "wrong key"])
def test_party_without_its_pinned_identity_stops_with_one_line(case, tmp_path, subprocesses):
    run = Run(tmp_path, insecure=False)
    if case == "no identities":
        (tmp_path / "run.toml").write_text(RUN_TOML)
    args = [
        MPCRNN,
        "party",
        "--config",
        str(tmp_path / "run.toml"),
        "--rank",
        "1",
        "--rendezvous",
        f"tcp://127.0.0.1:{_free_port()}",
        "--data",
        run.files[1],
        "--timeout",
        "5",
    ]
    if case == "wrong key":
        args += ["--key", str(tmp_path / "key-party0")]
    elif case == "no identities":
        args += ["--key", str(tmp_path / "key-party1")]
    res = subprocesses.run(args, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    want = {
        "no identities": r"\[identities\] in the run file: "
        r"expected a fingerprint for each of the 3 processes",
        "no key": r"party 1's identity: expected --key DIR",
        "wrong key": rf"this process's certificate \(party 1\): expected {run.fp['party1']} "
        r"\(pinned in the run file\), "
        rf"got {run.fp['party0']}",
    }[case]
    import re

    assert re.search(want, last), last


def _trickle(folder: Path, stop: threading.Event, every_s: float, opened: list) -> None:
    """A stranger at rank 0's rendezvous: an mpcrnn hello announcing a 16 KB certificate, sent
    one byte every ``every_s`` seconds (each byte came before a per-recv timeout could end it)."""
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        found = [p for p in folder.glob("mpcrnn-run-*/rendezvous") if p.read_text().strip()]
        if found:
            break
        time.sleep(0.05)
    else:
        return
    host, _, port = found[0].read_text().strip().rpartition(":")
    hello = HELLO.pack(MAGIC, 1, TOTAL, 1, 16 << 10)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        opened.append(s.getsockname())
        for i in range(len(hello) + (16 << 10)):
            if stop.wait(every_s):
                return
            try:
                s.send(hello[i : i + 1] if i < len(hello) else b"-")
            except OSError:
                return


def test_a_trickling_stranger_does_not_stall_the_set_up(tmp_path, monkeypatch, launcher):
    """Issue 26 #6: a stranger trickling its hello one byte every 2 s into rank 0's listener
    while the honest processes join: the run completes within its timeout (old code: rank 0
    served one connection at a time with a per-recv limit, so the set-up stalled past it)."""
    import tempfile

    from launch.launcher import launch_local
    from mpcrnn.config import ModelConfig, RunConfig, TrainConfig

    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(runs))
    cfg = RunConfig(
        model=ModelConfig(hidden_size=4),
        train=TrainConfig(epochs=1, batch_size=20),
        spec=D.JAPANESE_VOWELS_SPEC,
        parties=2,
    )
    files = []
    for r, part in enumerate(D.split_rows(D.japanese_vowels("train"), [20, 20], 3)):
        D.write_npz(part, tmp_path / f"p{r}.npz")
        files.append(str(tmp_path / f"p{r}.npz"))
    stop, opened = threading.Event(), []
    t = threading.Thread(target=_trickle, args=(runs, stop, 2.0, opened), daemon=True)
    t.start()
    try:
        reports = launch_local(
            cfg, files, [None, None], str(tmp_path / "out"), timeout_s=30, show_progress=False
        )
    finally:
        stop.set()
        t.join(timeout=10)
    assert opened, "the stranger never connected"
    assert len(reports) == 3 and reports[0]["rows"] == 20


def test_refusals_are_kept_in_bounded_memory(capsys):
    """Issue 26 #6: 3000 junk connections grew the report to 215 KB; now a refusal repeated
    from other ports of the same host is counted on one entry, at most ``KEEP`` distinct ones
    are kept with their details (and warned about once each), the rest only counted."""
    from protocols.network.channels import _refusals
    from protocols.network.handshake import Refusals, refuse

    log = Refusals()
    for i in range(3000):
        a, b = socket.socketpair()
        b.close()
        refuse(a, "party 0", Exception(f"a connection from 10.0.0.1:{i + 1000}: junk"), log)
    for i in range(3000):  # 3000 hosts
        log.append(f"a connection from 10.1.{i // 250}.{i % 250}:5000: junk")
    kept = list(log)
    assert len(log) == 6000 and len(kept) == Refusals.KEEP + 1
    assert kept[0] == "a connection from 10.0.0.1: junk (3000 times)"
    assert (
        kept[-1] == f"{3000 - Refusals.KEEP + 1} more refused connection attempt(s), counted only"
    )
    assert sum(len(k) for k in kept) < 5000
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert _refusals(log).startswith(". Refused 6000 connection attempt(s): a connection from")
