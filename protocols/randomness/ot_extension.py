"""Random oblivious transfer between two parties, extended from 128 base OTs (IKNP), and the AND
triples (XOR shares of bit products) it gives: ``--provider he``'s source of AND triples.

IKNP (Ishai, Kilian, Nissim, Petrank, CRYPTO 2003), semi-honest, ``kappa = 128``.  The
extension SENDER S holds ``Delta`` in {0,1}^128 and, from the base OTs, ``k_(Delta_i), i`` for
each ``i < 128``; the RECEIVER R holds both seeds ``k_0,i``, ``k_1,i``.  For ``m`` random OTs
with R's choice bits ``b`` (m,)::

    R:  t_i = G(k_0,i)  (m bits),   u_i = t_i xor G(k_1,i) xor b        -> S  (128 m bits)
    S:  q_i = G(k_(Delta_i),i) xor Delta_i u_i  =  t_i xor Delta_i b
    rows (transposed, j < m):  q_j = t_j xor b_j Delta
    S's messages  m0_j = H(j, q_j),  m1_j = H(j, q_j xor Delta);   R's  m_(b_j) = H(j, t_j)

``G`` is AES-128 in counter mode keyed by the seed (the nonce is the batch number, so every
batch reads fresh key stream); ``H`` is the tweakable correlation-robust hash of Guo, Katz,
Wang, Yu (IEEE S&P 2020) from fixed-key AES ``pi``: ``H(j, x) = pi(pi(x) xor j) xor pi(x)``;
only its lowest bit is used.  AES is OpenSSL's through ``cryptography``; nothing here is
lattice or block-cipher code, only the protocol around them.

AND triples from two random OTs (one with each party as sender, Gilboa's observation)::

    where p sends:  a_p = m0 xor m1 (p's);   m0 (p's) xor m_b (peer's) = a_p b_(1-p)
    c_p = (a_p & b_p) xor m0 (p sending) xor m_b (p receiving)
    c_0 xor c_1 = (a_0 xor a_1) & (b_0 xor b_1)

Party ``p``'s ``b_p`` are its choice bits as receiver (``os.urandom``).  Cost per AND bit: 16
bytes from each party (its ``u`` column), no bytes back, and AES on ~3 blocks of 16 bytes.

The base OTs (``Delta``-selected seeds) are made once per run from the HE products
(:meth:`protocols.randomness.he_triples.HomomorphicTriples._base_ots`): S's shares and R's of
``Delta_i (k_1,i - k_0,i)`` over Z_2^64, then R sends ``k_0,i + its share``.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KAPPA = 128
SEED = 16  # bytes per base-OT seed
CHUNK = 1 << 20  # OTs per piece of work (bounds memory: ~16 MB per 128-row matrix)
_FIXED_KEY = b"mpcrnn-tccr-hash"  # public: pi is a fixed-key permutation
_T8 = tuple(
    (np.uint64(s), np.uint64(m))
    for s, m in ((7, 0x00AA00AA00AA00AA), (14, 0x0000CCCC0000CCCC), (28, 0x00000000F0F0F0F0))
)


_ZEROS = np.zeros(CHUNK // 8, dtype=np.uint8)  # the key stream is AES-CTR over zeros


def prg(seed: bytes, batch: int, start: int, nbytes: int) -> np.ndarray:
    """Bytes ``[start, start + nbytes)`` (``start`` a multiple of 16) of the AES-128-CTR key
    stream under ``seed`` whose counter starts at ``batch * 2^64`` (uint8 array)."""
    block = (int(batch) << 64) + start // 16
    enc = Cipher(algorithms.AES(seed), modes.CTR(block.to_bytes(16, "big"))).encryptor()
    zeros = _ZEROS[:nbytes] if nbytes <= _ZEROS.size else bytes(nbytes)
    return np.frombuffer(enc.update(zeros), dtype=np.uint8)


def _transpose8(x: np.ndarray) -> None:
    """Transpose, in place, the 8x8 bit matrix in each uint64 (bit ``8r + c`` <-> ``8c + r``;
    Hacker's Delight 7-3), in cache-sized pieces."""
    t = np.empty(min(x.size, 1 << 15), dtype=np.uint64)
    for s in range(0, x.size, t.size):
        v, w = x[s : s + t.size], t[: min(t.size, x.size - s)]
        for shift, mask in _T8:
            np.right_shift(v, shift, out=w)
            np.bitwise_xor(w, v, out=w)
            np.bitwise_and(w, mask, out=w)
            np.bitwise_xor(v, w, out=v)
            np.left_shift(w, shift, out=w)
            np.bitwise_xor(v, w, out=v)


def transpose_bits(rows: np.ndarray) -> np.ndarray:
    """``(128, m/8)`` uint8 (bit j of row i: bit ``j % 8`` of byte ``j // 8``, little order) ->
    ``(m, 16)`` uint8 with bit i of row j equal to it (``m`` a multiple of 8)."""
    n_rows, nb = rows.shape
    # the byte transposes are torch's copies (numpy's strided uint8 copies took 2x as long)
    out = torch.from_numpy(rows).t().contiguous().numpy()  # (nb, n_rows)
    words = out.reshape(-1).view(np.uint64)  # [byte column c, row block R]: 8 rows' bytes
    _transpose8(words)  # -> byte k holds bit k of those 8 rows: OT 8c + k, bits 8R .. 8R+7
    blocks = torch.from_numpy(out).reshape(nb, n_rows // 8, 8)
    return blocks.transpose(1, 2).reshape(nb * 8, n_rows // 8).contiguous().numpy()


def _aes(data: np.ndarray) -> np.ndarray:
    enc = Cipher(algorithms.AES(_FIXED_KEY), modes.ECB()).encryptor()
    out = enc.update(np.ascontiguousarray(data))  # the array's buffer: no copy to bytes
    return np.frombuffer(out, dtype=np.uint8).reshape(data.shape)


def hash_bits(rows: np.ndarray, batch: int, first: int) -> np.ndarray:
    """Lowest bit of ``H(j, rows[j])`` for ``j = first, first + 1, ..``; the tweak is ``(j,
    batch)``: (m, 16) uint8 -> (m,) uint8 in {0, 1}."""
    y = _aes(rows)
    tweak = np.zeros((rows.shape[0], 2), dtype=np.uint64)
    tweak[:, 0] = np.arange(first, first + rows.shape[0], dtype=np.uint64)
    tweak[:, 1] = batch
    z = _aes(y ^ tweak.view(np.uint8))
    return (z[:, 0] ^ y[:, 0]) & 1


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """(m,) 0/1 -> (m/8,) uint8, little bit order (bit j of the words read as int64)."""
    return np.packbits(bits, bitorder="little")


def receive_piece(pairs, batch: int, start: int, choices: np.ndarray):
    """R's work for OTs ``start .. start + 8 len(choices)`` of a batch: ``(u, m_b)`` of the
    piece ((128, n/8) and (n/8,) uint8)."""
    n8 = choices.size
    t = np.stack([prg(k0, batch, start // 8, n8) for k0, _ in pairs])
    u = np.empty_like(t)
    for i, (_, k1) in enumerate(pairs):
        np.bitwise_xor(t[i], prg(k1, batch, start // 8, n8), out=u[i])
    u ^= choices
    return u, pack_bits(hash_bits(transpose_bits(t), batch, start))


def send_piece(chosen, delta: bytes, batch: int, start: int, u: np.ndarray):
    """S's work for the OTs of one piece of the peer's ``u``: ``(m0, m1)`` packed bits."""
    d = np.frombuffer(delta, np.uint8)
    mask = np.unpackbits(d, bitorder="little") * np.uint8(0xFF)
    q = np.stack([prg(k, batch, start // 8, u.shape[1]) for k in chosen])
    q ^= u & mask[:, None]
    rows = transpose_bits(q)
    m0 = pack_bits(hash_bits(rows, batch, start))
    rows ^= d
    return m0, pack_bits(hash_bits(rows, batch, start))


def _serial(fn, arglists):
    return [fn(*args) for args in arglists]


class RandomOt:
    """Both roles of one party's random OTs against one peer, after the base OTs.

    delta: 16 bytes (this party as sender); chosen: 128 seeds ``k_(Delta_i), i`` of the peer's
    pairs; pairs: this party's 128 ``(k_0, k_1)`` (as receiver).  Batches must be run in the
    same order by both parties: a receiver's n-th batch meets the peer sender's n-th (the batch
    number keys the PRG and the hash's tweak).  A batch is cut into pieces of ``CHUNK`` OTs,
    which ``starmap`` (``(function, argument lists) -> results``) may run on this party's
    worker processes (:class:`protocols.randomness.he_workers.HeWorkers`)."""

    def __init__(self, delta: bytes, chosen: list[bytes], pairs: list[tuple[bytes, bytes]]):
        self.delta = np.frombuffer(delta, np.uint8)
        self.chosen, self.pairs = list(chosen), list(pairs)
        self.received, self.sent = 0, 0  # batches run in each role

    def receive(self, choices: np.ndarray, m: int, starmap=_serial):
        """R's side of a batch of ``m`` OTs (``m`` a multiple of 8): ``choices`` (m/8,) packed
        bits.  Returns ``(u, m_b)``: the message for the peer ((128, m/8) uint8) and R's
        messages ``m_(b_j)`` (m/8,) packed bits."""
        self.received += 1
        args = [
            (self.pairs, self.received, s, choices[s // 8 : min(m, s + CHUNK) // 8])
            for s in range(0, m, CHUNK)
        ]
        pieces = starmap(receive_piece, args)
        return np.concatenate([u for u, _ in pieces], axis=1), np.concatenate(
            [g for _, g in pieces]
        )

    def send(self, u: np.ndarray, m: int, starmap=_serial):
        """S's side of the batch for the peer's ``u`` ((128, m/8) uint8, checked by the caller).
        Returns ``(m0, m1)`` as packed bits (m/8,)."""
        self.sent += 1
        delta = self.delta.tobytes()
        args = [
            (self.chosen, delta, self.sent, s, u[:, s // 8 : min(m, s + CHUNK) // 8])
            for s in range(0, m, CHUNK)
        ]
        pieces = starmap(send_piece, args)
        return np.concatenate([a for a, _ in pieces]), np.concatenate([b for _, b in pieces])


def and_shares(
    a_mine: tuple[np.ndarray, np.ndarray], got: np.ndarray, choices: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This party's AND-triple shares ``(a_p, b_p, c_p)`` as packed bits from its sender
    outputs ``a_mine = (m0, m1)``, its receiver outputs ``got`` and its ``choices``."""
    m0, m1 = a_mine
    a = m0 ^ m1
    return a, choices, (a & choices) ^ m0 ^ got


def random_bits(m: int) -> np.ndarray:
    """``m`` uniform bits, packed ((m/8,) uint8), from ``os.urandom``."""
    return np.frombuffer(os.urandom(m // 8), dtype=np.uint8).copy()
