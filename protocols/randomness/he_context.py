"""BFV parameters, keys and the bytes that travel for the homomorphic provider (``--provider he``).

Library: Microsoft SEAL 4.x through TenSEAL 0.3.18's ``tenseal.sealapi`` (wheels for this
Python; OpenFHE's wheels do not import on 3.11).  Nothing here is lattice code: key
generation, encryption, evaluation and (de)serialization are SEAL's.

Parameters (:class:`HeParams`, recorded in the hashed run file): ring degree ``N = 8192``,
ciphertext modulus ``q`` of 60+60+60+38 = 218 bits, which is the HE standard's limit for
128-bit classical security at ``N = 8192`` (homomorphicencryption.org, 2018, Table 1:
``log q <= 109 / 218 / 438`` for ``N = 4096 / 8192 / 16384``; SEAL enforces it with
``sec_level_type.tc128``); plaintext moduli: ``L = 3`` batching primes of 59 bits (``t = 1 mod
2N``), a CRT basis of ~177 bits for 64-bit ring products (:mod:`protocols.randomness.he_crt`)
with ``sigma = 40`` bits of statistical slack.

Each party makes its secret key on its own host (one per plaintext prime) and sends only the
public keys.  Bytes from a peer are loaded by SEAL with its validity checks
(``is_valid_for``: sizes, parameters, coefficients below the moduli) and then checked for the
expected size and level here; anything else is one :class:`PeerMessageError` naming the peer.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from dataclasses import asdict, dataclass

import numpy as np

from protocols.errors import ConfigError, ProtocolError, expected_got

# homomorphicencryption.org security standard (2018), Table 1, classical 128-bit, ternary secret
MAX_LOG_Q_128 = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}
LEN = struct.Struct("<I")


class PeerMessageError(ProtocolError):
    """A peer's homomorphic-encryption message (key or ciphertext) failed validation: wrong
    size, wrong parameters or garbage.  Nothing from it was used."""


@dataclass(frozen=True)
class HeParams:
    """BFV parameters of a run (every party must use the same: they are in the run file)."""

    poly_degree: int = 8192
    coeff_bits: tuple[int, ...] = (60, 60, 60, 38)
    plain_bits: int = 59
    primes: int = 3
    sigma: int = 40

    def check(self) -> None:
        """Raises ConfigError unless the parameters give 128-bit security (HE standard)."""
        limit = MAX_LOG_Q_128.get(self.poly_degree)
        if limit is None:
            raise ConfigError(
                expected_got("[he] poly_degree", "one of " + str(sorted(MAX_LOG_Q_128)), "other")
            )
        if sum(self.coeff_bits) > limit:
            raise ConfigError(
                expected_got(
                    "[he] coeff_bits total",
                    f"<= {limit} (128-bit security at N={self.poly_degree})",
                    sum(self.coeff_bits),
                )
            )
        if not 20 <= self.plain_bits <= 60 or not 1 <= self.primes <= 8 or self.sigma < 40:
            raise ConfigError(
                expected_got(
                    "[he] plain_bits / primes / sigma", "20..60 / 1..8 / >= 40", "other values"
                )
            )

    def spec(self) -> str:
        """The run file's ``[run] he`` string of these parameters (:meth:`parse` reads it)."""
        q = "+".join(str(b) for b in self.coeff_bits)
        t = f"{self.primes}x{self.plain_bits}"
        return f"bfv n={self.poly_degree} q={q} t={t} sigma={self.sigma}"

    @classmethod
    def parse(cls, text: str) -> HeParams:
        """Parameters from the run file's ``[run] he`` string, e.g. ``bfv n=8192
        q=60+60+60+38 t=3x59 sigma=40`` (checked for 128-bit security).

        Raises:
            ConfigError: another syntax, or parameters below 128-bit security."""
        try:
            head, *items = str(text).split()
            kv = dict(item.split("=", 1) for item in items)
            primes, bits = kv.pop("t").split("x")
            params = cls(
                poly_degree=int(kv.pop("n")),
                coeff_bits=tuple(int(b) for b in kv.pop("q").split("+")),
                plain_bits=int(bits),
                primes=int(primes),
                sigma=int(kv.pop("sigma")),
            )
            if head != "bfv" or kv:
                raise ValueError
        except (KeyError, ValueError):
            raise ConfigError(
                expected_got("[run] he", f"like '{cls().spec()}'", "another syntax")
            ) from None
        params.check()
        return params

    def digest(self) -> str:
        """A short fingerprint of the parameters (compared between parties before any data)."""
        text = repr(sorted(asdict(self).items())).encode()
        return hashlib.sha256(b"mpcrnn-he:" + text).hexdigest()[:16]


def _workdir() -> str:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return tempfile.mkdtemp(prefix="mpcrnn-he-", dir=base)


_DIR: list[str] = []


def _temp_path() -> str:
    """A new private file (mode 0600, in this process's 0700 folder, /dev/shm where there)."""
    if not _DIR:
        _DIR.append(_workdir())
    fd, path = tempfile.mkstemp(dir=_DIR[0])
    os.close(fd)
    return path


@dataclass(frozen=True)
class Spooled:
    """A serialized SEAL object in a private file of this host, passed between a party and its
    own worker processes instead of the bytes (:mod:`protocols.randomness.he_workers`); whoever
    reads it removes it."""

    path: str


def to_bytes(obj) -> bytes:
    """SEAL's serialization of a key or ciphertext (sealapi saves to a path only: a private
    temporary file, removed at once)."""
    return unspool(to_file(obj))


def to_file(obj) -> Spooled:
    """SEAL's serialization of ``obj``, left in a private file."""
    path = _temp_path()
    obj.save(path)
    return Spooled(path)


def spool(data) -> Spooled:
    """``data`` (bytes-like) in a private file."""
    path = _temp_path()
    with open(path, "wb") as f:
        f.write(data)
    return Spooled(path)


def unspool(item: Spooled) -> bytes:
    """The bytes of a spooled file, which is removed."""
    try:
        with open(item.path, "rb") as f:
            return f.read()
    finally:
        os.unlink(item.path)


def from_bytes(obj, context, data, what: str):
    """Load ``data`` (bytes-like, or a :class:`Spooled` file, removed after) into ``obj`` (a
    fresh SEAL object) with SEAL's validity checks.

    Raises:
        PeerMessageError: ``data`` is not a valid ``what`` for ``context`` (``what`` names the
            peer and the item, never its content)."""
    item = data if isinstance(data, Spooled) else spool(data)
    try:
        obj.load(context, item.path)
    except Exception:  # noqa: BLE001 - SEAL raises several types for invalid data
        raise PeerMessageError(
            expected_got(what, "a valid SEAL object for the run's [he] parameters", "invalid bytes")
        ) from None
    finally:
        os.unlink(item.path)
    return obj


_SEAL_HEADER = struct.Struct("<HBBBBHQ")  # magic, header size, version, compression, -, size
_VERSION: list[bytes] = []


def _header(size: int) -> bytes:
    """SEAL's serialization header (``SEALHeader``) for ``size`` bytes, uncompressed, with the
    installed SEAL's version (read once from one of its own saves)."""
    if not _VERSION:
        import tenseal.sealapi as seal

        _VERSION.append(to_bytes(seal.Plaintext())[3:5])
    major, minor = _VERSION[0]
    return _SEAL_HEADER.pack(0xA15E, _SEAL_HEADER.size, major, minor, 0, 0, size)


def coeff_plain(context, coeffs):
    """A SEAL ``Plaintext`` with the given coefficients (uint64, each below the plaintext
    modulus, at most N of them), built as SEAL's own uncompressed serialization (``Plaintext``:
    parms_id zero, coefficient count, scale 1.0, then its ``DynArray``) and loaded with SEAL's
    validity checks: one pass, where SEAL's hex-polynomial text took ~5 ms per 8192 terms."""
    import tenseal.sealapi as seal

    coeffs = np.ascontiguousarray(coeffs, dtype=np.uint64)
    array = struct.pack("<Q", coeffs.size) + coeffs.tobytes()
    array = _header(_SEAL_HEADER.size + len(array)) + array
    members = bytes(32) + struct.pack("<Qd", coeffs.size, 1.0) + array
    return from_bytes(
        seal.Plaintext(), context, _header(_SEAL_HEADER.size + len(members)) + members, "plaintext"
    )


def noise_ciphertext(context, level_data, noise: np.ndarray):
    """A SEAL ``Ciphertext`` ``(e, 0)`` at ``level_data``'s level: adding it to a ciphertext
    adds the integer polynomial ``noise`` (int64, N coefficients, each below every modulus of
    the level in absolute value) to its noise.  Built as SEAL's own uncompressed serialization
    (``Ciphertext``: parms_id, NTT flag, size 2, degree, modulus count, scale 1.0, correction
    factor 1, then its ``DynArray``: poly-major, RNS residues of each polynomial) and loaded with
    SEAL's validity checks."""
    import tenseal.sealapi as seal

    moduli = [m.value() for m in level_data.parms().coeff_modulus()]
    n = noise.size
    e = noise.astype(np.int64)
    data = np.zeros((2, len(moduli), n), dtype=np.uint64)
    for i, q in enumerate(moduli):
        data[0, i] = np.where(e < 0, np.uint64(q) - (-e).astype(np.uint64), e.astype(np.uint64))
    array = struct.pack("<Q", data.size) + data.tobytes()
    array = _header(_SEAL_HEADER.size + len(array)) + array
    parms = struct.pack("<4Q", *level_data.parms_id())
    members = parms + b"\x00" + struct.pack("<QQQdQ", 2, n, len(moduli), 1.0, 1) + array
    blob = _header(_SEAL_HEADER.size + len(members)) + members
    return from_bytes(seal.Ciphertext(), context, blob, "noise ciphertext")


def pack(blobs: list[bytes]) -> bytes:
    """Blobs with 4-byte length prefixes, concatenated."""
    return b"".join(LEN.pack(len(b)) + b for b in blobs)


def unpack(data: bytes, count: int, what: str) -> list[memoryview]:
    """The ``count`` blobs of :func:`pack`.

    Raises:
        PeerMessageError: another count, a length past the end or trailing bytes."""
    view, pos, out = memoryview(data), 0, []
    for _ in range(count):
        if pos + LEN.size > len(view):
            break
        (n,) = LEN.unpack_from(view, pos)
        pos += LEN.size
        if pos + n > len(view):
            break
        out.append(view[pos : pos + n])
        pos += n
    if len(out) != count or pos != len(view):
        raise PeerMessageError(
            expected_got(what, f"{count} framed items", "another framing or length")
        )
    return out


class HeKeys:
    """One party's BFV machinery: a SEAL context per plaintext prime, this party's secret and
    public keys (made here, or from ``secret``: :meth:`secret_bytes` of this party's own keys,
    in its worker processes), and, after :meth:`set_peer`, encryptors under the peer's keys."""

    def __init__(self, params: HeParams, secret: list[bytes] | None = None) -> None:
        import tenseal.sealapi as seal

        params.check()
        self.params, self.seal = params, seal
        n = params.poly_degree
        plain = seal.PlainModulus.Batching(n, [params.plain_bits] * params.primes)
        self.primes = tuple(int(t.value()) for t in plain)
        if len(set(self.primes)) != len(self.primes):
            raise ConfigError(expected_got("[he] plaintext primes", "distinct", "repeated"))
        self.contexts, self.sk, self.pk = [], [], []
        for t in plain:
            p = seal.EncryptionParameters(seal.SCHEME_TYPE.BFV)
            p.set_poly_modulus_degree(n)
            p.set_coeff_modulus(seal.CoeffModulus.Create(n, list(params.coeff_bits)))
            p.set_plain_modulus(t)
            ctx = seal.SEALContext(p, True, seal.SEC_LEVEL_TYPE.TC128)
            if not ctx.parameters_set():
                raise ConfigError(
                    expected_got("[he] parameters", "valid for SEAL", ctx.parameters_error_name())
                )
            if secret is None:
                kg = seal.KeyGenerator(ctx)
            else:  # this party's own key, in one of its own worker processes
                sk = from_bytes(seal.SecretKey(), ctx, secret[len(self.contexts)], "secret key")
                kg = seal.KeyGenerator(ctx, sk)
            pk = seal.PublicKey()
            kg.create_public_key(pk)
            self.contexts.append(ctx)
            self.sk.append(kg.secret_key())
            self.pk.append(pk)
        self.encoders = [seal.BatchEncoder(c) for c in self.contexts]
        self.evaluators = [seal.Evaluator(c) for c in self.contexts]
        # own operands: symmetric encryption under the own secret key, saved seed-compressed
        # (SEAL's Serializable: the uniform half is a PRNG seed): half the bytes, faster
        self.encryptors = [
            seal.Encryptor(c, pk, sk) for c, pk, sk in zip(self.contexts, self.pk, self.sk)
        ]
        self.decryptors = [seal.Decryptor(c, sk) for c, sk in zip(self.contexts, self.sk)]
        # the top data level of each prime: fresh ciphertexts (answers' level: HeProducts)
        self.top_ids = [list(c.first_context_data().parms_id()) for c in self.contexts]
        self.peer_encryptors: list = []
        self.peer_name = "peer"

    def secret_bytes(self) -> list[bytes]:
        """This party's secret keys, for its own worker processes on this host only
        (:mod:`protocols.randomness.he_workers`); never for a peer."""
        return [to_bytes(sk) for sk in self.sk]

    def public_bytes(self) -> bytes:
        """This party's public keys (one per prime), with the parameters' digest first."""
        return pack([self.params.digest().encode()] + [to_bytes(pk) for pk in self.pk])

    def set_peer(self, data: bytes, peer_name: str) -> None:
        """The peer's public keys (from :meth:`public_bytes`).

        Raises:
            PeerMessageError: malformed keys, or keys for other parameters (named ``peer_name``).
        """
        blobs = unpack(data, 1 + len(self.primes), f"{peer_name}'s HE public keys")
        if bytes(blobs[0]) != self.params.digest().encode():
            raise PeerMessageError(
                expected_got(f"{peer_name}'s HE parameters", self.params.digest(), "another digest")
            )
        seal = self.seal
        self.peer_encryptors = []
        for ctx, blob in zip(self.contexts, blobs[1:]):
            pk = from_bytes(seal.PublicKey(), ctx, blob, f"{peer_name}'s HE public key")
            self.peer_encryptors.append(seal.Encryptor(ctx, pk))
        self.peer_name = peer_name
        self.peer_public = bytes(data)
