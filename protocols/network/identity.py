"""Who a process is on the network: one key pair and self-signed certificate per organization.

``mpcrnn keygen --out DIR`` (:func:`keygen`) writes ``DIR/key.pem`` (ECDSA P-256, mode 0600:
it never leaves its host) and ``DIR/cert.pem`` (self-signed, public), and prints the
certificate's fingerprint, ``sha256:<hex of SHA-256 over the DER certificate>``.  The run file
lists every rank's fingerprint (``[identities]``), so the set of members is part of the
agreed, hashed configuration; :mod:`protocols.network.channels` accepts a peer only if the
certificate it proves to hold the key of (TLS 1.3, mutual) has the fingerprint pinned for the
rank it claims.  Nothing is trusted on first use; there is no certificate authority.

``mpcrnn train`` on one machine makes a throw-away identity per process in memory only
(:func:`new_identity_pem`); each child holds its key in an anonymous memory file
(:func:`identity_in_memory`, ``memfd_create``) that ssl reads by ``/proc/self/fd`` path and
that vanishes with the process: no key is ever on disk, so none outlives the run, even when
the launcher is killed.

The certificate is its own trust anchor (``basicConstraints CA:TRUE``, ``keyCertSign``), so
OpenSSL's chain check accepts exactly that one certificate and nothing else.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from protocols.errors import ConfigError, expected_got

KEY_FILE, CERT_FILE = "key.pem", "cert.pem"
FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")


def fingerprint(cert_der: bytes) -> str:
    """``sha256:<hex>`` of a DER certificate (what the run file pins)."""
    return "sha256:" + hashlib.sha256(cert_der).hexdigest()


def pem_to_der(cert_pem: bytes) -> bytes:
    import ssl

    try:
        return ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a PEM certificate") from None


def check_fingerprint(text: str, what: str) -> str:
    value = str(text).strip().lower()
    if not FINGERPRINT.match(value):
        raise ConfigError(
            expected_got(what, "sha256: and 64 hex digits (printed by mpcrnn keygen)", _short(text))
        )
    return value


def _short(text) -> str:
    s = str(text)
    return s[:24] + "..." if len(s) > 27 else s


@dataclass(frozen=True)
class Identity:
    """This process's own certificate (PEM, public) and the path of its private key."""

    cert_pem: bytes
    key_path: str
    cert_path: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(pem_to_der(self.cert_pem))


def load_identity(directory: str) -> Identity:
    """The identity ``mpcrnn keygen`` wrote into ``directory``.

    Raises:
        ConfigError: the folder lacks key.pem / cert.pem, the key is readable by others, or
            the key is not the private key of the certificate.
    """
    d = Path(directory)
    key, cert = d / KEY_FILE, d / CERT_FILE
    for path in (key, cert):
        if not path.is_file():
            raise ConfigError(
                expected_got(
                    f"--key {directory}",
                    f"a folder with {KEY_FILE} and {CERT_FILE} (mpcrnn keygen --out DIR)",
                    f"no {path.name}",
                )
            )
    mode = key.stat().st_mode & 0o077
    if mode:
        raise ConfigError(
            expected_got(
                f"permissions of {key}",
                "0600 (readable by its owner only)",
                oct(key.stat().st_mode & 0o777),
            )
        )
    pem = cert.read_bytes()
    try:
        pem_to_der(pem)
    except ValueError:
        raise ConfigError(expected_got(f"{cert}", "a PEM certificate", "something else")) from None
    check_key_matches(key, cert, pem)
    return Identity(pem, str(key), str(cert))


def check_key_matches(key: Path, cert: Path, cert_pem: bytes) -> None:
    """The private key in ``key`` is the one ``cert`` certifies (their public keys are equal).

    Raises:
        ConfigError: one line naming both files (never their contents).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    Pub = serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
        mine = private.public_key().public_bytes(serialization.Encoding.DER, Pub)
    except (ValueError, TypeError, OSError):
        mine = None
    theirs = x509.load_pem_x509_certificate(cert_pem).public_key()
    if mine != theirs.public_bytes(serialization.Encoding.DER, Pub):
        got = "another key" if mine is not None else "no readable unencrypted PEM key"
        raise ConfigError(
            expected_got(
                f"{key}",
                f"the private key of {cert}",
                got,
                "use the key.pem mpcrnn keygen wrote with this cert.pem",
            )
        )


def keygen(directory: str, name: str = "mpcrnn") -> str:
    """Write a fresh key pair and self-signed certificate into ``directory``; return the
    certificate's fingerprint.

    Refuses to overwrite an existing key (an organization's identity is pinned in run files).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = d / KEY_FILE, d / CERT_FILE
    if key_path.exists() or cert_path.exists():
        raise ConfigError(
            expected_got(
                f"keygen --out {directory}",
                "a folder without key.pem / cert.pem",
                "an existing identity (not overwritten)",
            )
        )
    cert_pem, key_bytes, fp = new_identity_pem(name)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert_pem)
    return fp


def new_identity_pem(name: str = "mpcrnn") -> tuple[bytes, bytes, str]:
    """(certificate PEM, private key PEM, fingerprint) of a fresh key pair, in memory only."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key, name)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, fingerprint(der)


def identity_in_memory(cert_pem: bytes, key_pem: bytes) -> Identity:
    """This process's identity from PEM bytes, the key never written to a file system: key and
    certificate live in anonymous memory files (``memfd_create``, closed on exec), named for
    ssl by their ``/proc/self/fd`` paths, gone when the process exits however it exits.

    Raises:
        ConfigError: the key is not the certificate's, or the platform has no memfd.
    """
    if not hasattr(os, "memfd_create"):
        raise ConfigError(
            expected_got("throw-away identities", "Linux memfd_create", "another platform")
        )
    paths = []
    for label, data in (("mpcrnn-key", key_pem), ("mpcrnn-cert", cert_pem)):
        fd = os.memfd_create(label)
        os.write(fd, data)
        paths.append(f"/proc/self/fd/{fd}")
    check_key_matches(Path(paths[0]), Path(paths[1]), cert_pem)
    return Identity(cert_pem, paths[0], paths[1])


def _self_signed(key, name: str):
    """A self-signed CA certificate for ``key`` (10 years), common name ``name``."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64] or "mpcrnn")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
