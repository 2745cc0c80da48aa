"""CrypTen's secret random draws from AES-256-CTR streams instead of torch's Mersenne Twister.

CrypTen draws every secret random ring element through two functions of
``crypten.common.rng`` (``generate_random_ring_element``, ``generate_kbit_random_tensor``),
passing a ``torch.Generator``: the pairwise ``prev``/``next`` generators of its pseudo-random
sharings of zero (PRZS: the masks under which every party shares its own rows), the ``local``
one, and the generator each party shares with the dealer for CrypTen's own TTP requests.
torch's generators are Mersenne Twisters with 64-bit seeds: statistical, not cryptographic (its
state follows from 624 outputs).  Here each of those generators is a :class:`StreamGenerator`:
an AES-256-CTR keystream (:class:`protocols.randomness.streams.RingStream`) under a 256-bit seed
from ``os.urandom``; :func:`install` makes the two functions draw from it (any other generator
goes to CrypTen's own code).  Draws are the keystream's 8-byte words (uniform over Z_2^64);
a k-bit draw keeps the low k bits.

Seeds (:func:`setup_przs`, replacing ``crypten._setup_prng``): each data party draws its
``next`` seed and sends it to the next party (rank + 1 mod n), whose ``prev`` seed it is, over
their authenticated link; ``local`` never leaves the process.  ``global`` (all parties, public:
CrypTen uses it only for dropout masks, which mpcrnn does not use) stays a torch generator
seeded by party 0.  The dealer's seeds: :mod:`protocols.randomness.streams`.
"""

from __future__ import annotations

import os

import torch

from protocols.randomness.streams import BULK_SEED_BYTES, RingStream

SEED_BYTES = BULK_SEED_BYTES  # 256-bit seeds, like the bulk streams'
_CPU = torch.device("cpu")
_PATCHED = (
    "crypten.common.rng",
    "crypten.mpc.primitives.arithmetic",
    "crypten.mpc.primitives.binary",
    "crypten.mpc.provider.ttp_provider",
    "crypten.mpc.provider.tfp_provider",
)


class StreamGenerator:
    """What CrypTen is given where it expects a ``torch.Generator``: an AES-256-CTR stream.

    ``device`` and ``initial_seed()`` are the two generator attributes CrypTen reads."""

    device = _CPU

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.stream = RingStream(self.seed)

    def initial_seed(self) -> int:
        return self.seed

    def ring(self, size) -> torch.Tensor:
        """Uniform elements of Z_2^64 (int64) of shape ``size``."""
        return self.stream.draw(_shape(size))


def fresh_seed() -> int:
    """A 256-bit seed from the OS's CSPRNG."""
    return int.from_bytes(os.urandom(SEED_BYTES), "little")


def seed_bytes(seed: int) -> bytes:
    return int(seed).to_bytes(SEED_BYTES, "little")


def _shape(size) -> tuple[int, ...]:
    if isinstance(size, int):
        return (size,)
    return tuple(int(d) for d in size)


def _resolve(generator, kwargs):
    if generator is not None:
        return generator
    import crypten

    device = kwargs.get("device") or _CPU
    return crypten.generators["local"][torch.device(device)]


def install() -> None:
    """Make CrypTen's two draw functions use :class:`StreamGenerator`s (idempotent; every
    module that imported them by name is patched)."""
    import importlib

    rng = importlib.import_module("crypten.common.rng")
    if getattr(rng, "_mpcrnn_streams", False):
        return
    ring_of, kbit_of = rng.generate_random_ring_element, rng.generate_kbit_random_tensor

    def generate_random_ring_element(size, ring_size=(2**64), generator=None, **kwargs):
        generator = _resolve(generator, kwargs)
        if isinstance(generator, StreamGenerator) and ring_size == 2**64:
            return generator.ring(size)
        return ring_of(size, ring_size, generator=generator, **kwargs)

    def generate_kbit_random_tensor(size, bitlength=None, generator=None, **kwargs):
        generator = _resolve(generator, kwargs)
        if not isinstance(generator, StreamGenerator):
            return kbit_of(size, bitlength, generator=generator, **kwargs)
        draws = generator.ring(size)
        if bitlength is None or bitlength >= 64:
            return draws
        return draws & ((1 << bitlength) - 1)

    for name in _PATCHED:
        module = importlib.import_module(name)
        if hasattr(module, "generate_random_ring_element"):
            module.generate_random_ring_element = generate_random_ring_element
        if hasattr(module, "generate_kbit_random_tensor"):
            module.generate_kbit_random_tensor = generate_kbit_random_tensor
    rng._mpcrnn_streams = True


def setup_przs(transport) -> None:
    """A data party, once at start-up: its ``prev``/``next``/``local`` generators (see the
    module docstring) over ``transport``'s links (``transport.links``), and ``global``."""
    import crypten

    rank, n, links = transport.rank, transport.world_size, transport.links
    next_seed = fresh_seed()
    if n >= 2:
        links.send_bytes((rank + 1) % n, seed_bytes(next_seed))
        prev_seed = int.from_bytes(links.recv_bytes((rank - 1) % n, SEED_BYTES), "little")
    else:
        prev_seed = next_seed  # one party: prev - next = 0, the sharing of zero
    public = os.urandom(8) if rank == 0 else bytes(8)
    if n >= 2:
        if rank == 0:
            for r in range(1, n):
                links.send_bytes(r, public)
        else:
            public = bytes(links.recv_bytes(0, 8))
    shared = torch.Generator(device=_CPU)
    shared.manual_seed(int.from_bytes(public, "little"))
    generators = crypten.generators
    generators["prev"][_CPU] = StreamGenerator(prev_seed)
    generators["next"][_CPU] = StreamGenerator(next_seed)
    generators["global"][_CPU] = shared
    seed_local()


def seed_local() -> None:
    """This process's ``local`` generator: a stream no other process knows."""
    import crypten

    crypten.generators["local"][_CPU] = StreamGenerator(fresh_seed())
