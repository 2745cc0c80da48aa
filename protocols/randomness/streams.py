"""The randomness a data party shares with the dealer: seeds, and the ring streams they seed.

At start-up the dealer draws, per data party, a 256-bit seed for CrypTen's TTP generator (an
AES-CTR stream too: :mod:`protocols.randomness.crypten_rng`) and one for mpcrnn's bulk stream
(separate, so that bulk requests fetched ahead of use never desynchronize from CrypTen's
on-demand requests), and sends each party its two seeds, and nothing else, over
the dealer's authenticated link (:mod:`protocols.network.channels`).  Party ``i`` then draws its own
shares of every triple from its :class:`RingStream`; the dealer draws the same values from its
copy of every party's stream.

One stream object per process: a party's bulk stream is a position in a sequence it shares with
the dealer (two objects restarting it from the seed would reuse randomness and desynchronize from
the dealer).  :func:`protocols.network.parties.init_party` gives the seed to the one
:class:`protocols.randomness.triples.DealerTriples` of the process's session, which owns the
stream; :meth:`protocols.session.MpcSession.fresh` shares that object, never copies it.
"""

from __future__ import annotations

import hashlib

import torch

BULK_SEED_BYTES = 32  # mpcrnn's bulk stream: a 256-bit seed, the AES-256 key's source
TTP_SEED_BYTES = 32  # CrypTen's TTP generator (a crypten_rng.StreamGenerator), 256 bits


class RingStream:
    """A party's stream of uniform ring elements (Z_2^64 as int64), shared with the dealer.

    A cryptographic PRG: the keystream of AES-256 in counter mode (``cryptography``, AES-NI),
    keyed by SHA-256 of the seed (a non-negative int of at most 256 bits: 256 random bits from
    ``os.urandom`` at the dealer, or a 128-bit plan seed), 8 bytes per element.  Predicting an
    element from others is breaking AES.  CrypTen's own draws use the same streams
    (:mod:`protocols.randomness.crypten_rng`).
    """

    def __init__(self, seed: int) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        material = b"mpcrnn-ring-stream\x00" + int(seed).to_bytes(BULK_SEED_BYTES, "little")
        key = hashlib.sha256(material).digest()
        # the key is never reused with another counter start: one stream per key, nonce zero
        self._aes = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()

    def draw(self, size) -> torch.Tensor:
        size = tuple(int(d) for d in size)
        n = 1
        for d in size:
            n *= d
        out = torch.empty(n + 2, dtype=torch.int64)  # update_into wants a block's slack
        buf = out.numpy().view("uint8")
        # in chunks that stay in the CPU's cache: 4-5 GB/s here, against 0.5-1 GB/s for one
        # update over a multi-megabyte buffer
        for start in range(0, n, _CHUNK):
            k = min(_CHUNK, n - start)
            done = self._aes.update_into(_ZEROS[: 8 * k], buf[8 * start : 8 * (start + k) + 16])
            if done != 8 * k:  # CTR is a stream mode: every byte comes out at once
                raise RuntimeError("AES-CTR returned a short keystream")
        return out[:n].view(size)


_CHUNK = 8192  # ring elements per AES-CTR update (64 KiB)
_ZEROS = memoryview(bytes(8 * _CHUNK))  # the plaintext every stream encrypts (read only)


def plan_stream(seed: int, index: int) -> RingStream:
    """The stream of the ``index``-th replayed step plan for the party whose bulk seed is
    ``seed``: SHA-256(seed, index), so the dealer can compute a plan's randomness ahead of time
    (while the parties run the step before) without the order of other requests mattering."""
    import hashlib

    digest = hashlib.sha256(f"mpcrnn-plan:{seed}:{index}".encode()).digest()
    return RingStream(int.from_bytes(digest[:16], "little"))


def send_dealer_seeds(links, world_size: int) -> tuple[list, list[RingStream], list[int]]:
    """The dealer, once at start-up: a fresh seed per party for CrypTen's TTP generator and one
    for the bulk stream, each sent only to its party over ``links`` (the dealer's
    :class:`protocols.network.links.Links`).  Returns CrypTen's per-party generators, the bulk
    streams and the bulk seeds."""
    from protocols.randomness.crypten_rng import StreamGenerator, fresh_seed

    crypten_seeds = [fresh_seed() for _ in range(world_size)]
    bulk_seeds = [fresh_seed() for _ in range(world_size)]
    for rank in range(world_size):
        bulk = bulk_seeds[rank].to_bytes(BULK_SEED_BYTES, "little")
        links.send_bytes(rank, crypten_seeds[rank].to_bytes(TTP_SEED_BYTES, "little") + bulk)
    generators = [StreamGenerator(seed) for seed in crypten_seeds]
    return generators, [RingStream(seed) for seed in bulk_seeds], bulk_seeds


def receive_dealer_seeds(c) -> int:
    """A data party, once at start-up: the dealer's two seeds (see :func:`send_dealer_seeds`)
    over ``c``, this process's communicator.  CrypTen's TTP client (CrypTen's singleton) gets
    its generator (built here: CrypTen's own set-up would receive its seed over
    torch.distributed); returns the bulk seed, for the session's one
    :class:`~protocols.randomness.triples.DealerTriples`."""
    from crypten.mpc.provider.ttp_provider import TTPClient

    from protocols.randomness.crypten_rng import StreamGenerator

    data = c.links.recv_bytes(c.get_ttp_rank(), TTP_SEED_BYTES + BULK_SEED_BYTES)
    crypten_seed = int.from_bytes(data[:TTP_SEED_BYTES], "little")
    bulk_seed = int.from_bytes(data[TTP_SEED_BYTES:], "little")
    inner = TTPClient._TTPClient__TTPClient  # CrypTen's singleton class (name-mangled)
    client = inner.__new__(inner)
    client.ttp_group, client.comm_group = c.ttp_group, c.ttp_comm_group
    client.generator = StreamGenerator(crypten_seed)
    client.generator_cuda = None
    TTPClient._TTPClient__instance = client
    return bulk_seed
