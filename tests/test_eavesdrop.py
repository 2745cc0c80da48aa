"""A passive eavesdropper on every link of a 3-party + dealer training run.

The capture is an ``AF_PACKET`` raw socket on ``lo`` (root only; skipped otherwise, saying
why): every TCP segment between every two processes, reassembled per direction by sequence
number.  :func:`eavesdrop` sees ONLY those bytes plus public knowledge (the code's framing: the
clear hello, 4-byte-length JSON on connections to rank 0, then 8-byte-length messages; the model
shapes of the public run configuration).  How far it gets:

* **Plaintext transport** (``--insecure-plaintext-transport``): every seed of the run, checked
  against the values the processes actually used (each party's PRZS ``next``/``prev`` seeds and
  the ``global`` one, CrypTen's TTP seeds and the dealer's bulk-stream seeds: every 8-byte
  field of every message of 8, 32 or 64 bytes is a candidate, and all true seeds (a 256-bit
  seed by its low 8 bytes) are among them),
  and the released model: the last six messages each party sent to another party are its
  shares of the six weight tensors (the final reveal), their sum decodes to the model, equal to
  the parties' opened weights within fixed-point rounding.  And **training data**: with the
  bulk seeds and party 0's request lists (pickled, in clear on its link to the dealer), it
  replays every party's triple stream with the public code
  (:class:`protocols.randomness.streams.RingStream`)
  exactly as the dealer does, up to the first product whose left operand has the public shape
  of an input batch; that mask plus the sum of the parties' opened ``x - a`` is the batch:
  all 12 sequences of the first training batch, each equal to one party's true row within
  2^-15 (checked against every party's data).  Decoding the other batches the same way only
  needs more bookkeeping; the test stops at the first.
* **Default transport** (mutual TLS 1.3): the same script recovers no model and no row, and none
  of the true seeds' 8-byte encodings appears anywhere in the capture (all streams, all bytes).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest
import torch
from mpc_harness import run_parties

from protocols.network.channels import HELLO, MAGIC

WEIGHTS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "fc.weight", "fc.bias")
SO_RCVBUFFORCE = 33


class Capture:
    """Every TCP segment on ``lo`` while running, reassembled per direction (src, dst) by
    sequence number."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 256 << 20)
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        self.flows: dict[tuple, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self.sock.recv(1 << 18)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(frame) < 34 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            ihl, total = (ip[0] & 15) * 4, struct.unpack("!H", ip[2:4])[0]
            if ip[9] != 6:
                continue
            tcp = ip[ihl:total]
            sport, dport, seq = struct.unpack("!HHI", tcp[:8])
            off, flags = (tcp[12] >> 4) * 4, tcp[13]
            flow = self.flows.setdefault(
                (ip[12:16], sport, ip[16:20], dport), {"isn": None, "segs": {}}
            )
            if flags & 0x02:  # SYN
                flow["isn"] = seq
            payload = bytes(tcp[off:])
            if payload:
                flow["segs"][seq] = payload

    def stop(self) -> dict[tuple, bytes]:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        streams = {}
        for key, flow in self.flows.items():
            if flow["isn"] is None:
                continue
            data, start = bytearray(), (flow["isn"] + 1) & 0xFFFFFFFF
            for seq in sorted(flow["segs"], key=lambda s: (s - start) & 0xFFFFFFFF):
                pos = (seq - start) & 0xFFFFFFFF
                seg = flow["segs"][seq]
                if pos > len(data):
                    break  # a segment the capture missed: stop this stream here
                data[pos : pos + len(seg)] = seg
            streams[(key[1], key[3])] = bytes(data)
        return streams


def _frames(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 8 <= len(data):
        (n,) = struct.unpack_from("<q", data, pos)
        if not 0 <= n <= len(data) - pos - 8:
            break
        out.append(data[pos + 8 : pos + 8 + n])
        pos += 8 + n
    return out


def _covered(frames: list[bytes]) -> int:
    return sum(8 + len(f) for f in frames)


def eavesdrop(
    streams: dict[tuple, bytes], shapes: dict[str, tuple], x_rows: tuple | None = None
) -> dict:
    """The attacker: only the captured bytes, the code's framing and the public model shapes."""
    hellos = {}  # (sport, dport) -> (rank of the sender, mode, where its messages start)
    for key, data in streams.items():
        if len(data) >= HELLO.size and data.startswith(MAGIC):
            _, rank, _, mode, n_cert = HELLO.unpack_from(data)
            hellos[key] = (rank, mode, HELLO.size + n_cert)
    messages = {}  # (sender rank, receiver rank) -> list of payloads
    for (a, b), (rank, _mode, pos) in hellos.items():
        back = hellos.get((b, a))
        if back is None:
            continue
        data = streams[(a, b)]
        # 4-byte-length JSONs first: on the connection to rank 0, the inner hello / address
        # book; then a lower rank tells a higher one its heartbeat address
        skip = (0 in (rank, back[0])) + (rank < back[0])
        for _ in range(skip):
            if pos + 4 > len(data):
                break
            pos += 4 + struct.unpack_from("<I", data, pos)[0]
        frames = _frames(data[pos:])
        # two connections per pair: the data link's framing covers more bytes than the
        # heartbeat connection's fixed-size frames parsed as if they were framed messages
        if _covered(frames) >= _covered(messages.get((rank, back[0]), [])):
            messages[(rank, back[0])] = frames
    seeds = set()
    for frames in messages.values():
        for f in frames:
            if len(f) in (8, 32, 64):  # 32: a PRZS seed; 64: the dealer's (CrypTen's, the bulk)
                seeds.update(f[i : i + 8] for i in range(0, len(f), 8))
    model = None
    parties = sorted({s for s, _ in messages if (s, (s + 1) % 3) in messages and s < 3})
    if len(parties) == 3:
        tails = [messages[(p, (p + 1) % 3)][-len(WEIGHTS) :] for p in parties]
        try:
            model = {}
            for k, name in enumerate(WEIGHTS):
                total = sum(torch.frombuffer(bytearray(t[k]), dtype=torch.int64) for t in tails)
                model[name] = (total.double() / 2**16).reshape(shapes[name])
        except (RuntimeError, ValueError, IndexError):
            model = None
    return {
        "seed_candidates": seeds,
        "model": model,
        "links_read": len(messages),
        "rows": _first_input_batch(messages, x_rows) if x_rows else None,
    }


def _first_input_batch(messages: dict, x_rows: tuple) -> torch.Tensor | None:
    """The dealer's view plus the party links: replay every party's bulk stream (seeds from the
    dealer's first message to each party; request lists from party 0's pickled requests, public
    code :class:`protocols.randomness.streams.RingStream`) up to the first ``matmul`` whose left
    operand has
    the public shape of an input batch ``(T * batch, features)``; that Beaver mask ``a`` plus the
    sum of the parties' opened ``x - a`` (the opening of that request group: the k-th message of
    that length on each party's link, the first that decodes within the public value bound) is
    the batch itself.  None if any step fails (as it must on the TLS transport)."""
    import pickle

    from protocols.randomness.requests import from_wire
    from protocols.randomness.streams import RingStream

    MASK_PRODUCTS = ("maskmul", "maskmatmul")  # the wire names of the mask products

    def output_size(req):
        return from_wire(req).output_size()

    try:
        requests = [pickle.loads(f) for f in messages[(0, 3)]]
        bulk = [
            m["args"][0]
            for m in requests
            if isinstance(m, dict)
            and m.get("function") == "mpcrnn_bulk"
            and m["kwargs"].get("plan") is None
        ]
        streams = [
            RingStream(int.from_bytes(messages[(3, i)][0][32:64], "little")) for i in range(3)
        ]
    except Exception:  # noqa: BLE001 - garbage (encrypted) bytes: nothing to replay
        return None

    def draw(stream, req, rank):
        if req[0] == "mask":
            return [stream.draw(req[1])]
        if req[0] in MASK_PRODUCTS:
            return [None if rank == 0 else stream.draw(output_size(req))]
        if req[0] in ("wraps", "bit"):
            first = stream.draw(req[1])
            return [first, None if rank == 0 else stream.draw(req[1])]
        a, b = stream.draw(req[1]), stream.draw(req[2])
        return [a, b, None if rank == 0 else stream.draw(output_size(req))]

    numel = lambda shape: int(torch.Size(shape).numel())  # noqa: E731
    for group in bulk:
        opened, offset, mask = 0, None, None
        for req in group:
            got = [draw(streams[i], req, i) for i in range(3)]
            if offset is None and req[0] == "matmul" and tuple(req[1]) == tuple(x_rows):
                offset, mask = opened, sum(g[0] for g in got)
            if req[0] in ("mul", "matmul"):
                opened += numel(req[1]) + numel(req[2])
            elif req[0] == "mask":
                opened += numel(req[1])
        if offset is None:
            continue
        n = numel(x_rows)
        same = [[f for f in messages[(i, (i + 1) % 3)] if len(f) == 8 * opened] for i in range(3)]
        for k in range(min(len(c) for c in same)):
            total = sum(
                torch.frombuffer(bytearray(same[i][k]), dtype=torch.int64)[offset : offset + n]
                for i in range(3)
            )
            x = (total + mask.reshape(-1)).double() / 2**16
            if x.abs().max() <= 8.0:  # the public value bound: a wrong pairing decodes to noise
                return x.reshape(x_rows)
        return None
    return None


def run_and_leak(session):
    """A small training run that also reports, from inside, the seeds it used (ground truth)."""
    rank = session.rank
    import crypten
    from crypten.mpc.provider.ttp_provider import TTPClient

    from mpcrnn import data as D
    from mpcrnn.config import ModelConfig, RunConfig, TrainConfig
    from mpcrnn.secure import run_training

    spec = D.JAPANESE_VOWELS_SPEC
    part = D.scale_features(D.split_rows(D.japanese_vowels("train"), [12, 12, 12], 0)[rank], spec)
    cfg = RunConfig(
        model=ModelConfig(hidden_size=4), train=TrainConfig(epochs=1, batch_size=12), spec=spec
    )
    import torch

    seeds = [
        crypten.generators[k][torch.device("cpu")].initial_seed()
        for k in ("prev", "next", "global")
    ]
    seeds += [TTPClient.get().generator.initial_seed(), session.triples.seed]
    s = session
    result = run_training(s, cfg, part)
    return seeds, {k: v.clone() for k, v in result["params"].items()}, torch.as_tensor(part.x)


def _capture_run(insecure: bool):
    cap = Capture()
    time.sleep(0.2)
    try:
        outs = run_parties(
            run_and_leak, world_size=3, provider="TTP", timeout_s=600, insecure=insecure
        )
    finally:
        streams = cap.stop()
    truth = {(int(v) % 2**64).to_bytes(8, "little") for seeds, _, _ in outs for v in seeds}
    params = outs[0][1]
    shapes = {k: tuple(v.shape) for k, v in params.items()}
    rows = torch.cat(
        [x for _, _, x in outs]
    )  # every party's (scaled) training sequences: the ground truth
    found = eavesdrop(
        streams, shapes, x_rows=(rows.shape[1] * 12, rows.shape[2])
    )  # T x batch 12, features
    return streams, truth, params, found, rows


def _matched_rows(batch: torch.Tensor, rows: torch.Tensor, T: int) -> int:
    """How many sequences of a decoded (T * B, F) batch equal one of the true training rows."""
    seqs = batch.reshape(T, -1, batch.shape[-1]).transpose(0, 1)
    return sum(bool(((rows - seq).abs().amax(dim=(1, 2)) < 2**-15).any()) for seq in seqs)


needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="capturing loopback packets (AF_PACKET) needs root"
)


@needs_root
def test_eavesdropper_recovers_seeds_and_model_from_the_plaintext_transport(parties):
    streams, truth, params, found, rows = _capture_run(insecure=True)
    assert len(truth) == 10  # 3 PRZS next seeds (= the next party's prev), 1 global, 3 TTP, 3 bulk
    assert truth <= found["seed_candidates"], "the eavesdropper missed a seed"
    assert found["model"] is not None
    for k in WEIGHTS:
        torch.testing.assert_close(found["model"][k], params[k], atol=2**-14, rtol=0, msg=k)
    # and the training data: the first batch's 12 sequences, each equal to one party's true row
    assert found["rows"] is not None and _matched_rows(found["rows"], rows, rows.shape[1]) == 12


@needs_root
def test_eavesdropper_recovers_nothing_from_the_tls_transport(parties):
    streams, truth, params, found, rows = _capture_run(insecure=False)
    assert found["links_read"] >= 6  # it did see the run's connections (the clear hellos)
    everything = b"".join(streams.values())
    assert len(everything) > 100_000
    assert not any(seed in everything for seed in truth), "a seed crossed the network in clear"
    assert not (truth & found["seed_candidates"])
    assert found["model"] is None or not all(
        torch.allclose(found["model"][k], params[k], atol=1e-3) for k in WEIGHTS
    )
    assert found["rows"] is None or _matched_rows(found["rows"], rows, rows.shape[1]) == 0
