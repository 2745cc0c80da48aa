"""``mpcrnn`` command line: thin click commands over the library.

Every expected failure (bad input, bad config, a dead peer) prints one line ``error: ...`` and
exits non-zero; no traceback unless MPCRNN_DEBUG=1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from launch.local_commands import attack, keygen, predict, rehearse
from launch.options import (
    DP_MOMENTUM_WARNING,
    DP_SAFE_MOMENTUM,
    adversarial_options,
    config_option,
    dp_options,
    fail,
    intake_options,
    setting_options,
    timeout_option,
    transport_options,
    warn_transport,
    writable_dir,
)
from mpcrnn import __version__
from mpcrnn.config import FedAvgConfig, ModelConfig, TrainConfig
from mpcrnn.declaration import DataSpec
from mpcrnn.report import INSECURE_TFP


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mpcrnn")
def main() -> None:
    """Train RNN/GRU/LSTM models on secret-shared data (CrypTen MPC)."""


@main.command()
@setting_options("parties", "provider", ModelConfig, TrainConfig)
@click.option(
    "--data",
    "data_files",
    multiple=True,
    type=click.Path(),
    help="One training file per party (.ts/.csv/.npz), in rank order.",
)
@click.option(
    "--test", "test_files", multiple=True, type=click.Path(), help="Optional test file per party."
)
@click.option("--out", default="runs/latest", show_default=True, type=click.Path())
@timeout_option()
@click.option("--no-baseline", is_flag=True, help="Demo: skip the plaintext baseline.")
@click.option(
    "--demo",
    type=click.Choice(["vowels", "sms", "shakespeare", "tecator"]),
    help="With no --data: vowels (Japanese Vowels, classification; the default), sms (text: SMS "
    "spam, docs/text.md), shakespeare (a character language model, docs/text.md) or tecator "
    "(fat % from spectra, regression: docs/regression.md).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue from the newest epoch every party checkpointed in --out.",
)
@config_option("Run config file (TOML); explicit flags override it.")
@setting_options("reveal_to", "reveal_metrics", "mode", FedAvgConfig)
@setting_options(DataSpec)  # --window, --horizon, --stride, --target-column: forecasting
@dp_options
@transport_options(with_key=False)
@adversarial_options
@intake_options
def train(data_files, test_files, out, timeout, no_baseline, demo, resume, config_file, **settings):
    """Spawn the parties and the dealer on this machine and train.

    With no --data: the built-in demo (Japanese Vowels split 50/30/20 across 3 organizations).
    """
    from launch.launcher import launch_local
    from mpcrnn.report import summarize
    from protocols.errors import MpcrnnError

    strict, max_file_bytes = settings.pop("strict"), settings.pop("max_file_bytes")
    try:
        from launch.runfile import build, read_file, require_data_declaration

        raw = read_file(config_file)
        if demo == "tecator" and not data_files:
            from mpcrnn.tecator import demo_run_file

            raw = demo_run_file(raw)
        for f in data_files:
            require_data_declaration(raw, config_file, f)
        if demo == "sms" and not data_files:
            from mpcrnn.text_demo import with_demo_settings

            raw = with_demo_settings(raw)
        if demo == "shakespeare" and not data_files:
            from mpcrnn import lm_demo

            raw = lm_demo.with_demo_settings(raw)
        cfg = warn_transport(build(raw, settings))  # validated; the flags given override the file
        out_dir = writable_dir(out)
        demo = (demo or "vowels") if not data_files else None
        if demo == "sms":
            data_files, test_files = _sms_demo_files(cfg, out_dir)
        elif demo == "shakespeare":
            data_files, test_files = _shakespeare_demo_files(cfg, out_dir)
        elif demo == "tecator":
            from mpcrnn.tecator import demo_files

            data_files, test_files = demo_files(cfg, out_dir, click.echo)
        elif demo:
            data_files, test_files = _demo_files(cfg, out_dir)
        _check_and_warn(cfg, data_files)
        reports = launch_local(
            cfg,
            list(data_files),
            list(test_files) + [None] * (cfg.parties - len(test_files)),
            str(out_dir),
            timeout_s=timeout,
            resume=resume,
            strict=strict,
            max_file_bytes=max_file_bytes,
        )
        baseline = demo and not no_baseline
        summary = summarize(
            cfg, reports, baseline, list(data_files), echo=click.echo, test_files=list(test_files)
        )
        (out_dir / "report.json").write_text(json.dumps(summary, indent=2))
        click.echo(f"  report: {out_dir / 'report.json'}")
    except MpcrnnError as exc:
        fail(exc)


def _demo_files(cfg, out_dir: Path) -> tuple[list[str], list[str]]:
    """The demo: Japanese Vowels split across the parties, written as their files."""
    from mpcrnn import data as D

    parties = cfg.parties
    plan = (
        f"{cfg.train.epochs} epochs"
        if cfg.mode == "mpc"
        else f"fedavg: {cfg.fedavg_rounds} rounds x {cfg.fedavg.local_epochs} local epochs"
    )
    click.echo(
        f"mpcrnn demo: Japanese Vowels (UCI), {parties} organizations, "
        f"{cfg.model.cell.upper()} H={cfg.model.hidden_size}, {plan}, provider {cfg.provider}"
    )
    fractions = [0.5, 0.3, 0.2] if parties == 3 else [1.0 / parties] * parties
    tr_parts = D.split_rows(D.japanese_vowels("train"), fractions, cfg.train.seed)
    te_parts = D.split_rows(D.japanese_vowels("test"), fractions, cfg.train.seed + 1)
    data_files, test_files = D.write_party_files(tr_parts, te_parts, out_dir)
    _echo_counts("rows", [p.n_rows for p in tr_parts])
    return data_files, test_files


def _sms_demo_files(cfg, out_dir: Path) -> tuple[list[str], list[str]]:
    """The text demo: a fixed SMS spam subsample split across the parties (mpcrnn.text_demo)."""
    from mpcrnn.text_demo import PER_CLASS, write_sms_party_files

    unit = "bytes" if cfg.spec.vocab == "bytes" else "characters"
    click.echo(
        f"mpcrnn demo: SMS spam (UCI, balanced {2 * PER_CLASS} train / {2 * PER_CLASS} test), "
        f"{cfg.parties} organizations, Embedding({cfg.model.input_size}, "
        f"{cfg.model.embedding_dim}) + {cfg.model.cell.upper()} H={cfg.model.hidden_size}, "
        f"texts cut to {cfg.spec.max_len} {unit}, {cfg.train.epochs} epochs, provider "
        f"{cfg.provider}"
    )
    train, test, counts = write_sms_party_files(cfg.parties, cfg.train.seed, out_dir)
    _echo_counts("rows", counts)
    return train, test


def _shakespeare_demo_files(cfg, out_dir: Path) -> tuple[list[str], list[str]]:
    """The language-model demo: fixed Tiny Shakespeare slices in blocks (mpcrnn.lm_demo)."""
    from mpcrnn.lm_demo import write_party_files

    click.echo(
        f"mpcrnn demo: Tiny Shakespeare (15,000 train / 3,000 test characters, lowercased), "
        f"{cfg.parties} organizations, Embedding({cfg.model.input_size}, "
        f"{cfg.model.embedding_dim}) + {cfg.model.cell.upper()} H={cfg.model.hidden_size} + "
        f"Linear over the vocabulary, windows of {cfg.spec.max_len} characters, "
        f"{cfg.train.epochs} epochs, provider {cfg.provider}"
    )
    train, test, counts = write_party_files(cfg.parties, out_dir)
    _echo_counts("characters", counts)
    return train, test


def _echo_counts(what: str, counts) -> None:
    """The demo's public split: how many rows (or characters) each organization holds."""
    click.echo(
        f"  {what} per organization (public): "
        + ", ".join(f"party {r}: {n}" for r, n in enumerate(counts))
    )


def _check_and_warn(cfg, data_files) -> None:
    """One file per party; the loud warnings of insecure or risky settings."""
    from mpcrnn.report import fedavg_notice

    if len(data_files) != cfg.parties:
        raise click.UsageError(
            f"--data: expected one file per party ({cfg.parties}), got {len(data_files)}"
        )
    if cfg.provider == "TFP":
        click.secho(INSECURE_TFP, fg="red", err=True)
    if cfg.mode == "fedavg":
        click.echo(fedavg_notice(cfg))
    if cfg.dp.enabled and cfg.train.optimizer == "sgd" and cfg.train.momentum > DP_SAFE_MOMENTUM:
        click.secho(DP_MOMENTUM_WARNING.format(cfg.train.momentum), fg="yellow", err=True)


class HeWorkerCount(click.ParamType):
    """``--he-workers``: an integer 1..256, or ``auto``: the cores this process may run on (its
    CPU affinity) less one for the party's own process, at least 1."""

    name = "1..256|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        if str(value).strip().lower() == "auto":
            return max(1, min(256, len(os.sched_getaffinity(0)) - 1))
        try:
            count = int(value)
        except ValueError:
            count = None
        if count is None or not 1 <= count <= 256:
            self.fail(f"expected an integer 1..256 or auto, got {value!r}", param, ctx)
        return count


@main.command()
@config_option("Run config file (TOML) shared by all parties.")
@click.option("--rank", type=int, help="This party's rank (or RANK).")
@setting_options("parties", show_default=False)
@click.option(
    "--rendezvous", help="tcp://host:port, the same for all (or MASTER_ADDR/MASTER_PORT)."
)
@click.option("--data", "data_file", required=True, type=click.Path())
@click.option("--test", "test_file", type=click.Path())
@click.option("--out", default="runs/party", type=click.Path())
@setting_options(
    "provider", "epochs", "hidden_size", "cell", "optimizer", "lr", "seed", show_default=False
)
@timeout_option()
@click.option("--resume", is_flag=True)
@click.option(
    "--he-workers",
    type=HeWorkerCount(),
    default="auto",
    show_default=True,
    help="With provider he: local processes computing this party's HE products, 1..256, or "
    "auto: this host's cores less one (the party's own process), at least 1. The secret keys "
    "go only to them.",
)
@dp_options
@transport_options(with_key=True)
@adversarial_options
@intake_options
def party(
    config_file,
    rank,
    rendezvous,
    data_file,
    test_file,
    out,
    timeout,
    resume,
    he_workers,
    key_dir,
    strict,
    max_file_bytes,
    **settings,
):
    """Run one data party on this host (one organization).

    The number of data parties: --parties, or [run] parties, or WORLD_SIZE (which counts the
    dealer too)."""
    from dataclasses import replace

    from launch.party import PartyJob, run_party
    from launch.runfile import build, from_environment, read_file, require_data_declaration
    from protocols.errors import MpcrnnError

    try:
        raw = read_file(config_file)
        require_data_declaration(raw, config_file, data_file)
        cfg = build(raw, settings)
        parties = settings["parties"]
        given = parties if parties is not None else raw.get("run", {}).get("parties")
        rank, rendezvous, parties = from_environment(rank, rendezvous, given, cfg.provider)
        cfg = warn_transport(replace(cfg, parties=parties))
        if cfg.provider == "TFP":
            click.secho(INSECURE_TFP, fg="red", err=True)
        report = run_party(
            PartyJob(
                rank,
                rendezvous,
                cfg,
                data_file,
                test_file,
                out,
                timeout,
                show_progress=rank == 0,
                resume=resume,
                key_dir=key_dir,
                run_file=config_file,
                strict=strict,
                max_file_bytes=max_file_bytes,
                he_workers=he_workers,
            )
        )
        click.echo(json.dumps({k: v for k, v in report.items() if k != "ledger"}, indent=2))
    except MpcrnnError as exc:
        fail(exc)


@main.command()
@config_option("The run config file (for the party count).")
@setting_options("parties", show_default=False)
@click.option("--rendezvous", help="tcp://host:port (or MASTER_ADDR/MASTER_PORT).")
@timeout_option()
@transport_options(with_key=True)
def dealer(config_file, parties, rendezvous, timeout, insecure_plaintext_transport, key_dir):
    """Run the dealer (trusted third party: owns no data, must not collude).

    The number of data parties: --parties, or [run] parties, or WORLD_SIZE - 1."""
    from dataclasses import replace

    from launch.party import PartyJob, run_party
    from launch.runfile import build, from_environment, read_file
    from protocols.errors import ConfigError, MpcrnnError, expected_got

    try:
        raw = read_file(config_file)
        if str(raw.get("run", {}).get("provider", "ttp")).lower() == "he":
            raise ConfigError(
                expected_got("[run] provider for a dealer", "ttp", "he", "he runs no dealer")
            )
        insecure = insecure_plaintext_transport
        cfg = build(raw, {"provider": "ttp", "insecure_plaintext_transport": insecure})
        if parties is None:
            parties = raw.get("run", {}).get("parties")
        _, rendezvous, parties = from_environment(-1, rendezvous, parties, "ttp")
        cfg = warn_transport(replace(cfg, parties=parties))
        click.echo(
            json.dumps(
                run_party(
                    PartyJob(
                        parties,
                        rendezvous,
                        cfg,
                        None,
                        None,
                        ".",
                        timeout,
                        key_dir=key_dir,
                        run_file=config_file,
                    )
                )
            )
        )
    except MpcrnnError as exc:
        fail(exc)


for _command in (rehearse, predict, keygen, attack):
    main.add_command(_command)


if __name__ == "__main__":
    main()
