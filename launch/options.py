"""The command line's option groups and shared helpers (the commands are in :mod:`launch.cli`).

Run settings: every flag that sets a field of the run configuration is derived from the field's
declaration (:mod:`mpcrnn.settings`): its name, type, choices, help and shown default; none is
written here.  Their click parameter names are those of :data:`launch.runfile.FLAGS`.
"""

from __future__ import annotations

import os
import re
import sys
import types
from pathlib import Path
from typing import Union, get_args, get_origin

import click

from launch.runfile import FLAGS
from mpcrnn.config import AdversarialConfig, DPConfig, RunConfig
from mpcrnn.readers import MAX_FILE_BYTES
from mpcrnn.report import INSECURE_TRANSPORT
from mpcrnn.settings import Setting, settings_of
from protocols.network.parties import TIMEOUT_S


def fail(exc) -> None:
    """One line on stderr, then exit at once: a live gloo process group's threads must not run
    C++ teardown after a peer is gone (it aborts with 'terminate called ...')."""
    if getattr(exc, "template", None):  # e.g. the [data] section a run file lacks
        click.echo(exc.template, err=True)  # the error line stays last
    click.echo(f"error: {with_flags(str(exc))}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(getattr(exc, "exit_code", 2))


def with_flags(message: str) -> str:
    """``message`` with the flag after each setting it names that this command accepts: the
    library says ``[dp] epsilon``, the command line ``[dp] epsilon (--dp-epsilon)``."""
    ctx = click.get_current_context(silent=True)
    accepted = {o for p in ctx.command.params for o in getattr(p, "opts", ())} if ctx else ()
    for s in FLAGS.values():
        if s.flag in accepted:
            message = re.sub(re.escape(s.label) + r"\b(?! \()", f"{s.label} ({s.flag})", message)
    return message


def setting_option(s: Setting, show_default: bool = True):
    """The click option of one setting: no click default (None: not given, so a run file's value
    stands), the dataclass's default shown in the help."""
    kind, kw = s.type, {}
    if get_origin(kind) in (Union, types.UnionType):  # `float | None`
        (kind,) = (a for a in get_args(kind) if a is not type(None))
    if s.choices is not None:
        kw["type"] = click.Choice(s.choices, case_sensitive=s.parse is None)
    elif kind is bool:
        kw["is_flag"] = True
    elif get_origin(kind) is tuple:  # tuple[int, ...]: repeatable
        kw.update(multiple=True, type=get_args(kind)[0])
    else:
        kw["type"] = kind
    shown = s.shown_default() if show_default else None
    help_ = s.help + (f" [default: {shown}]" if shown is not None else "")
    return click.option(s.flag, s.dest, default=None, help=help_, **kw)


def setting_options(*which, show_default: bool = True):
    """The options of run settings: every flagged setting of a config class, or one setting by
    its click parameter name (``"hidden_size"``), in the order given."""
    chosen = []
    for w in which:
        chosen += [s for s in settings_of(w) if s.flag] if isinstance(w, type) else [FLAGS[w]]

    def deco(f):
        for s in reversed(chosen):
            f = setting_option(s, show_default)(f)
        return f

    return deco


dp_options = setting_options(DPConfig)  # --dp-*: DP-SGD inside MPC (mpcrnn.dp)
adversarial_options = setting_options(AdversarialConfig)  # --adversarial, --adv-*


def config_option(help: str):
    """--config FILE: the run file (TOML)."""
    return click.option("--config", "config_file", type=click.Path(), help=help)


def timeout_option(help: str = "Seconds any party waits for a peer."):
    return click.option("--timeout", default=TIMEOUT_S, show_default=True, help=help)


def transport_options(with_key: bool):
    """--insecure-plaintext-transport (every command that runs processes) and --key DIR (one
    process)."""

    def deco(f):
        f = setting_options("insecure_plaintext_transport", show_default=False)(f)
        if with_key:
            f = click.option(
                "--key",
                "key_dir",
                type=click.Path(),
                help="This organization's identity folder (mpcrnn keygen --out DIR); its "
                "fingerprint must be the one [identities] pins for this rank.",
            )(f)
        return f

    return deco


def intake_options(f):
    """--strict / --max-file-bytes: how a party treats its own files, shared by ``train`` and
    ``party``."""
    f = click.option(
        "--max-file-bytes",
        type=click.IntRange(min=1),
        default=MAX_FILE_BYTES,
        show_default=True,
        help="Refuse a data file larger than this, unread (an .npz: its unpacked size).",
    )(f)
    return click.option(
        "--strict",
        is_flag=True,
        help="Refuse, not just warn, a party below the declared [data] min_rows.",
    )(f)


def warn_transport(cfg: RunConfig) -> RunConfig:
    """The run config, after a loud warning if its transport is the insecure one."""
    if cfg.insecure_plaintext_transport:
        click.secho(INSECURE_TRANSPORT, fg="red", err=True)
    return cfg


def writable_dir(out: str) -> Path:
    """``--out``, created if needed and checked writable up front (not after an epoch of MPC)."""
    from protocols.errors import ConfigError, expected_got

    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".mpcrnn-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            expected_got(
                f"--out {out}", "a writable folder", f"{type(exc).__name__} ({exc.strerror})"
            )
        ) from None
    return path


DP_SAFE_MOMENTUM = 0.5
DP_MOMENTUM_WARNING = (
    "WARNING: DP-SGD noise with momentum {} can push gate pre-activations outside the "
    "polynomials' interval, after which training collapses (Japanese Vowels, epsilon <= 3, "
    "momentum 0.9: chance accuracy). Measured safe there: --momentum 0.5 (see docs/dp.md, "
    "Differential privacy)."
)
