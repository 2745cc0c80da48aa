"""Typed errors for mpcrnn.

Every error a user can cause (bad input, bad configuration, a peer that died) is one of these, so
the CLI can print one clear line and exit non-zero instead of a traceback.  Messages say what was
expected, what was got, and how to fix it.  They never contain a party's plaintext data: name the
file, the row index or the column, never the value.

Hierarchy::

    MpcrnnError
    ├── InstallError        CrypTen / torch missing or the wrong version
    ├── ConfigError         a run configuration that cannot work (incl. fixed-point overflow risk)
    │   └── PrecisionError  fixed-point ring too small for the values the run would produce
    ├── DataError           a party's own input file fails local validation
    ├── AgreementError      parties disagree on public metadata before sharing
    ├── PartyError          a peer (party or dealer) died, timed out or could not be reached
    ├── ProtocolError       a broken internal invariant: a bug, or processes whose protocol
    │                       steps disagree (never a lost peer, never the user's input)
    └── SecurityError       an operation would reveal something the run did not authorize
        └── IntegrityError  bytes on a link failed TLS authentication (tampered in transit)
"""

from __future__ import annotations


class MpcrnnError(Exception):
    """Base class of every error mpcrnn raises on purpose."""

    exit_code = 2


class InstallError(MpcrnnError):
    """CrypTen or torch is missing or at a version mpcrnn does not support."""

    exit_code = 3


class ConfigError(MpcrnnError):
    """A run configuration that cannot work."""


class PrecisionError(ConfigError):
    """Intermediate fixed-point values could leave the ring's safe range."""


class DataError(MpcrnnError):
    """A party's own input data failed local validation (nothing was shared)."""


class AgreementError(MpcrnnError):
    """Parties' public metadata differs; nothing was shared."""


class PartyError(MpcrnnError):
    """A peer process died, timed out or could not be reached."""

    exit_code = 4


class ProtocolError(MpcrnnError):
    """A broken internal invariant of a protocol: a bug in mpcrnn, or processes whose protocol
    steps disagree (a message of the wrong length, a randomness request list that does not
    match the recorded step plan).  Not a connection failure: that is :class:`PartyError`."""

    exit_code = 7


class SecurityError(MpcrnnError):
    """An opening or output that the run's reveal policy does not allow."""

    exit_code = 5


class IntegrityError(SecurityError):
    """A record on a link failed TLS authentication: someone changed bytes in transit.  The
    run stops; nothing received on that link afterwards is used."""

    exit_code = 6


def expected_got(what: str, expected: object, got: object, fix: str | None = None) -> str:
    """Format the standard message: ``<what>: expected <expected>, got <got>. <fix>``."""
    msg = f"{what}: expected {expected}, got {got}"
    return f"{msg}. {fix}" if fix else msg
