"""The randomness a data party shares with the dealer: seeds, and the ring streams they seed.

At start-up the dealer draws, per data party, a seed for CrypTen's TTP generator and one for
mpcrnn's bulk stream (separate, so that bulk requests fetched ahead of use never desynchronize
from CrypTen's on-demand requests), and sends each party its two seeds, and nothing else, over
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

import struct

import torch

SEED = struct.Struct("<q")


class RingStream:
    """A party's stream of uniform ring elements (Z_2^64 as int64), shared with the dealer.

    numpy's PCG64, 64 raw bits per element (cheaper than torch's Mersenne Twister ``randint``
    over the full int64 range; drawing randomness is the dealer's largest cost).  Like CrypTen's
    generators it is a statistical PRG, not a cryptographic one; the seeds come from
    ``os.urandom`` at the dealer (README.md, "Threat model").
    """

    def __init__(self, seed: int) -> None:
        import numpy as np

        self._bits = np.random.PCG64(seed)

    def draw(self, size) -> torch.Tensor:
        import numpy as np

        size = tuple(int(d) for d in size)
        n = 1
        for d in size:
            n *= d
        return torch.from_numpy(self._bits.random_raw(n).view(np.int64)).view(size)


def plan_stream(seed: int, index: int) -> RingStream:
    """The stream of the ``index``-th replayed step plan for the party whose bulk seed is
    ``seed``: SHA-256(seed, index), so the dealer can compute a plan's randomness ahead of time
    (while the parties run the step before) without the order of other requests mattering."""
    import hashlib

    digest = hashlib.sha256(f"mpcrnn-plan:{seed}:{index}".encode()).digest()
    return RingStream(int.from_bytes(digest[:16], "little"))


def send_dealer_seeds(
    links, world_size: int
) -> tuple[list[torch.Generator], list[RingStream], list[int]]:
    """The dealer, once at start-up: a fresh seed per party for CrypTen's TTP generator and one
    for the bulk stream, each sent only to its party over ``links`` (the dealer's
    :class:`protocols.network.links.Links`).  Returns CrypTen's per-party generators, the bulk
    streams and the bulk seeds."""
    import os

    crypten_seeds = [SEED.unpack(os.urandom(8))[0] for _ in range(world_size)]
    bulk_seeds = [int.from_bytes(os.urandom(8), "little") >> 1 for _ in range(world_size)]
    for rank in range(world_size):
        links.send_bytes(rank, SEED.pack(crypten_seeds[rank]) + SEED.pack(bulk_seeds[rank]))
    generators = []
    for seed in crypten_seeds:
        g = torch.Generator(device="cpu")
        g.manual_seed(seed)
        generators.append(g)
    return generators, [RingStream(seed) for seed in bulk_seeds], bulk_seeds


def receive_dealer_seeds(c) -> int:
    """A data party, once at start-up: the dealer's two seeds (see :func:`send_dealer_seeds`)
    over ``c``, this process's communicator.  CrypTen's TTP client (CrypTen's singleton) gets
    its generator (built here: CrypTen's own set-up would receive its seed over
    torch.distributed); returns the bulk seed, for the session's one
    :class:`~protocols.randomness.triples.DealerTriples`."""
    from crypten.mpc.provider.ttp_provider import TTPClient

    data = c.links.recv_bytes(c.get_ttp_rank(), 2 * SEED.size)
    crypten_seed, bulk_seed = SEED.unpack_from(data, 0)[0], SEED.unpack_from(data, SEED.size)[0]
    inner = TTPClient._TTPClient__TTPClient  # CrypTen's singleton class (name-mangled)
    client = inner.__new__(inner)
    client.ttp_group, client.comm_group = c.ttp_group, c.ttp_comm_group
    client.generator = torch.Generator(device="cpu")
    client.generator.manual_seed(crypten_seed)
    client.generator_cuda = None
    TTPClient._TTPClient__instance = client
    return bulk_seed
