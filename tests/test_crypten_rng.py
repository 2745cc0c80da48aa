"""CrypTen's secret draws come from AES-256-CTR streams (issue 26), not torch's Mersenne
Twister: the PRZS generators and the local one of a session are stream generators, CrypTen's
draw functions (in every module that imported them) read them, k-bit draws keep the low k bits,
and the draws are the keystream of AES-256-CTR under SHA-256 of the seed (checked against
``cryptography`` directly)."""

from __future__ import annotations

import hashlib

import torch

from protocols.network.parties import init_in_process
from protocols.randomness.crypten_rng import StreamGenerator, seed_bytes

CPU = torch.device("cpu")


def _keystream_words(seed: int, n: int) -> torch.Tensor:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = hashlib.sha256(b"mpcrnn-ring-stream\x00" + seed_bytes(seed)).digest()
    out = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor().update(bytes(8 * n))
    return torch.frombuffer(bytearray(out), dtype=torch.int64)


def test_a_session_draws_przs_and_local_randomness_from_aes_streams():
    init_in_process()
    import crypten

    for key in ("prev", "next", "local"):
        g = crypten.generators[key][CPU]
        assert isinstance(g, StreamGenerator), (key, type(g))
        assert g.initial_seed().bit_length() > 64  # a 256-bit seed, not a 64-bit one


def test_cryptens_draw_functions_read_the_stream_in_every_module():
    init_in_process()
    import crypten.common.rng as rng
    import crypten.mpc.primitives.arithmetic as arithmetic
    import crypten.mpc.primitives.binary as binary
    import crypten.mpc.provider.ttp_provider as ttp

    seed = 12345678901234567890123456789
    for draw in (rng.generate_random_ring_element, arithmetic.generate_random_ring_element):
        got = draw(torch.Size([3, 5]), generator=StreamGenerator(seed), device=CPU)
        assert torch.equal(got.reshape(-1), _keystream_words(seed, 15))
    for draw in (rng.generate_kbit_random_tensor, binary.generate_kbit_random_tensor):
        bits = draw(torch.Size([40]), bitlength=1, generator=StreamGenerator(seed), device=CPU)
        assert torch.equal(bits, _keystream_words(seed, 40) & 1)
    full = ttp.generate_kbit_random_tensor((4,), generator=StreamGenerator(seed), device=CPU)
    assert torch.equal(full, _keystream_words(seed, 4))


def test_a_sharing_of_zero_is_zero_and_torch_generators_still_work():
    init_in_process()
    import crypten.common.rng as rng
    from crypten.mpc.primitives import ArithmeticSharedTensor

    zero = ArithmeticSharedTensor.PRZS(torch.Size([6]))  # one party: prev == next
    assert torch.equal(zero.share, torch.zeros(6, dtype=torch.int64))
    g = torch.Generator().manual_seed(3)  # CrypTen's own path for any other generator
    assert rng.generate_random_ring_element((2,), generator=g).shape == (2,)


def test_ring_stream_draws_are_one_keystream_across_chunks_and_calls():
    """RingStream draws in 64 KiB chunks: draws of any sizes, one after another, are the one
    AES-256-CTR keystream cut in order (no chunk boundary skips or repeats a byte)."""
    from protocols.randomness.streams import RingStream

    seed = 2**200 + 17
    s = RingStream(seed)
    sizes = [(3,), (100, 200), (8192,), (1,), (9000,), (5,)]
    got = torch.cat([s.draw(size).reshape(-1) for size in sizes])
    assert torch.equal(got, _keystream_words(seed, got.numel()))
