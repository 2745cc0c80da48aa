"""The command line's option groups and shared helpers (the commands are in :mod:`launch.cli`).

Run settings: every flag that sets a field of the run configuration is declared here once, by
its run-file section and key (:data:`launch.runfile.FLAGS`); its default is read from the
dataclass (:func:`mpcrnn.config.default_of`), never written here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mpcrnn.config import (
    ACCOUNTANTS,
    ADVERSARIAL,
    CELLS,
    MODES,
    OPTIMIZERS,
    SCHEDULES,
    WEIGHTINGS,
    AdversarialConfig,
    DPConfig,
    FedAvgConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    default_of,
)
from mpcrnn.report import INSECURE_TRANSPORT


def fail(exc) -> None:
    """One line on stderr, then exit at once: a live gloo process group's threads must not run
    C++ teardown after a peer is gone (it aborts with 'terminate called ...')."""
    if getattr(exc, "template", None):  # e.g. the [data] section a run file lacks
        click.echo(exc.template, err=True)  # the error line stays last
    click.echo(f"error: {exc}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(getattr(exc, "exit_code", 2))


def _adv(name: str):
    return default_of(AdversarialConfig, name)


def _dp(name: str):
    return default_of(DPConfig, name)


# flag -> (dataclass, field, click settings); the flag's run-file key: launch.runfile.FLAGS
SETTINGS = {
    "parties": (RunConfig, "world_size", dict(help="Data parties (organizations).")),
    "provider": (
        RunConfig,
        "provider",
        dict(
            type=click.Choice(["ttp", "he", "tfp"], case_sensitive=False),
            help="ttp: dealer process (secure). he: the 2 parties make triples with homomorphic "
            "encryption, no dealer. tfp: party 0 makes triples (INSECURE simulation).",
        ),
    ),
    "reveal_to": (
        RunConfig,
        "reveal_to",
        dict(
            multiple=True,
            type=int,
            help="Ranks that receive the final weights (repeatable; default all).",
        ),
    ),
    "reveal_metrics": (
        RunConfig,
        "reveal_metrics",
        dict(is_flag=True, help="Also open the pooled training accuracy (one number, ledgered)."),
    ),
    "mode": (
        RunConfig,
        "mode",
        dict(
            type=click.Choice(MODES),
            help="mpc: train on secret shares, open only the final weights. fedavg: train "
            "locally, average on shares, open every round's average (faster, reveals more).",
        ),
    ),
    "cell": (ModelConfig, "cell", dict(type=click.Choice(CELLS))),
    "hidden": (ModelConfig, "hidden_size", dict(type=int)),
    "layers": (ModelConfig, "num_layers", dict(type=int)),
    "epochs": (TrainConfig, "epochs", dict(type=int)),
    "batch_size": (TrainConfig, "batch_size", dict(type=int)),
    "optimizer": (
        TrainConfig,
        "optimizer",
        dict(
            type=click.Choice(OPTIMIZERS),
            help="Optimizer on shares (adam: the default; sgd: SGD with --momentum).",
        ),
    ),
    "lr": (
        TrainConfig,
        "lr",
        dict(type=float, help="Learning rate (default: adam/adamw 0.01, sgd 0.2)."),
    ),
    "schedule": (
        TrainConfig,
        "schedule",
        dict(type=click.Choice(SCHEDULES), help="Public learning-rate schedule."),
    ),
    "warmup_steps": (
        TrainConfig,
        "warmup_steps",
        dict(type=int, help="Linear warm-up steps (warmup, cosine)."),
    ),
    "momentum": (
        TrainConfig,
        "momentum",
        dict(type=float, help="SGD momentum (with --dp-*: 0.5 is safer, see README)."),
    ),
    "seed": (
        TrainConfig,
        "seed",
        dict(type=int, help="Public seed: initialization and batch schedule."),
    ),
    "rounds": (
        FedAvgConfig,
        "rounds",
        dict(type=int, help="fedavg: rounds (each opens one average); 0: one per epoch."),
    ),
    "local_epochs": (
        FedAvgConfig,
        "local_epochs",
        dict(type=int, help="fedavg: local epochs per round."),
    ),
    "weighting": (
        FedAvgConfig,
        "weighting",
        dict(
            type=click.Choice(WEIGHTINGS),
            help="fedavg: weight each party by its (public) row count, or equally.",
        ),
    ),
    "update_clip": (
        FedAvgConfig,
        "update_clip",
        dict(type=float, help="fedavg: bound each party's update norm on shares (0: off)."),
    ),
}
RUN_FLAGS = ("parties", "provider", "reveal_to", "reveal_metrics", "mode")
MODEL_FLAGS = ("cell", "hidden", "layers")
TRAIN_FLAGS = (
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "schedule",
    "warmup_steps",
    "momentum",
    "seed",
)
FEDAVG_FLAGS = ("rounds", "local_epochs", "weighting", "update_clip")


def setting_options(flags: tuple[str, ...], with_defaults: bool = True):
    """click options for run settings: with the dataclasses' defaults (shown in --help), or
    none (``mpcrnn party``: only what the run file does not say)."""

    def deco(f):
        for flag in reversed(flags):
            cls, name, kw = SETTINGS[flag]
            kw = dict(kw)
            default = default_of(cls, name)
            if flag == "provider":
                default = default.lower()  # click's choice; the config keeps "TTP"
            if with_defaults and not kw.get("multiple"):
                kw.update(default=default, show_default=default is not None)
            elif not with_defaults and "type" not in kw and not kw.get("is_flag"):
                kw["type"] = type(default)
            f = click.option("--" + flag.replace("_", "-"), flag, **kw)(f)
        return f

    return deco


def config_option(help: str):
    """--config FILE: the run file (TOML)."""
    return click.option("--config", "config_file", type=click.Path(), help=help)


def dp_options(f):
    """--dp-* flags (DP-SGD inside MPC, mpcrnn.dp), shared by ``train`` and ``party``."""
    opts = [
        click.option(
            "--dp-epsilon",
            type=float,
            help="DP-SGD: target epsilon; sigma from Opacus's get_noise_multiplier.",
        ),
        click.option(
            "--dp-noise",
            type=float,
            help="DP-SGD: noise multiplier sigma instead; the spent epsilon is reported.",
        ),
        click.option(
            "--dp-delta",
            type=float,
            help=f"DP-SGD: delta (default {_dp('delta'):g}; keep it below 1/rows).",
        ),
        click.option(
            "--dp-clip",
            type=float,
            help=f"DP-SGD: per-example L2 clipping norm C (default {_dp('clip')}).",
        ),
        click.option(
            "--dp-accountant",
            type=click.Choice(ACCOUNTANTS),
            help=f"DP-SGD: Opacus accountant (default {_dp('accountant')}).",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def adversarial_options(f):
    """--adversarial and --adv-* (adversarial training on shares, mpcrnn.adversarial), shared
    by ``train`` and ``party``."""
    opts = [
        click.option(
            "--adversarial",
            type=click.Choice(ADVERSARIAL),
            help="Adversarial training on shares: FGSM or PGD perturbations "
            f"(default {_adv('method')}).",
        ),
        click.option(
            "--adv-eps",
            type=float,
            help=f"Perturbation radius, L-infinity, scaled feature units (default {_adv('eps')}).",
        ),
        click.option("--adv-steps", type=int, help=f"PGD steps (default {_adv('steps')})."),
        click.option("--adv-alpha", type=float, help="PGD step size (default: eps / 4)."),
        click.option(
            "--adv-mix",
            type=float,
            help=f"Share of the loss on perturbed rows (default {_adv('mix')}).",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def transport_options(with_key: bool):
    """--insecure-plaintext-transport (every command that runs processes) and --key DIR (one
    process)."""

    def deco(f):
        f = click.option(
            "--insecure-plaintext-transport",
            "insecure",
            is_flag=True,
            help="INSECURE: plain TCP, no identities, no encryption (tests, demos). Hashed into "
            "the run config.",
        )(f)
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
        default=512 << 20,
        show_default=True,
        help="Refuse a data file larger than this, unread (an .npz: its unpacked size).",
    )(f)
    return click.option(
        "--strict",
        is_flag=True,
        help="Refuse, not just warn, a party below the declared [data] min_rows.",
    )(f)


def with_transport(cfg, insecure: bool):
    """The run config with --insecure-plaintext-transport applied (and loudly flagged)."""
    from dataclasses import replace

    if insecure:
        cfg = replace(cfg, insecure_transport=True)
    if cfg.insecure_transport:
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
    "momentum 0.9: chance accuracy). Measured safe there: --momentum 0.5 (see README, "
    "Differential privacy)."
)
