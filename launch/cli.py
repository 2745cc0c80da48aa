"""``mpcrnn`` command line: thin click commands over the library.

Every expected failure (bad input, bad config, a dead peer) prints one line ``error: ...`` and
exits non-zero; no traceback unless MPCRNN_DEBUG=1.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from launch.local_commands import attack, keygen, predict, rehearse
from launch.options import (
    DP_MOMENTUM_WARNING,
    DP_SAFE_MOMENTUM,
    FEDAVG_FLAGS,
    MODEL_FLAGS,
    RUN_FLAGS,
    TRAIN_FLAGS,
    adversarial_options,
    config_option,
    dp_options,
    fail,
    intake_options,
    setting_options,
    transport_options,
    with_transport,
    writable_dir,
)
from mpcrnn import __version__
from mpcrnn.report import INSECURE_TFP


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mpcrnn")
def main() -> None:
    """Train RNN/GRU/LSTM models on secret-shared data (CrypTen MPC)."""


@main.command()
@setting_options(RUN_FLAGS[:2] + MODEL_FLAGS + TRAIN_FLAGS)
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
@click.option(
    "--timeout", default=120.0, show_default=True, help="Seconds any party waits for a peer."
)
@click.option("--no-baseline", is_flag=True, help="Demo: skip the plaintext baseline.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue from the newest epoch every party checkpointed in --out.",
)
@config_option("Run config file (TOML); explicit flags override it.")
@setting_options(RUN_FLAGS[2:] + FEDAVG_FLAGS)
@dp_options
@transport_options(with_key=False)
@adversarial_options
@intake_options
@click.pass_context
def train(ctx, data_files, test_files, out, timeout, no_baseline, resume, config_file, **opts):
    """Spawn the parties and the dealer on this machine and train.

    With no --data: the built-in demo (Japanese Vowels split 50/30/20 across 3 organizations).
    """
    from launch.launcher import launch_local
    from mpcrnn.report import summarize
    from protocols.errors import MpcrnnError

    insecure, strict, max_file_bytes = (
        opts.pop(k) for k in ("insecure", "strict", "max_file_bytes")
    )
    try:
        from launch.runfile import build, read_file, require_data_declaration

        for f in data_files:
            require_data_declaration(read_file(config_file), config_file, f)
        # with a run file, only the flags given on the command line override it; without, all
        source = click.core.ParameterSource.COMMANDLINE
        given = {
            name: value
            for name, value in opts.items()
            if not config_file or ctx.get_parameter_source(name) == source
        }
        cfg = with_transport(build(read_file(config_file), given), insecure)  # validated
        out_dir = writable_dir(out)
        demo = not data_files
        if demo:
            data_files, test_files = _demo_files(cfg, out_dir)
        _check_and_warn(cfg, data_files)
        reports = launch_local(
            cfg,
            list(data_files),
            list(test_files) + [None] * (cfg.world_size - len(test_files)),
            str(out_dir),
            timeout_s=timeout,
            resume=resume,
            strict=strict,
            max_file_bytes=max_file_bytes,
        )
        baseline = demo and not no_baseline
        summary = summarize(cfg, reports, baseline, list(data_files), echo=click.echo)
        (out_dir / "report.json").write_text(json.dumps(summary, indent=2))
        click.echo(f"  report: {out_dir / 'report.json'}")
    except MpcrnnError as exc:
        fail(exc)


def _demo_files(cfg, out_dir: Path) -> tuple[list[str], list[str]]:
    """The demo: Japanese Vowels split across the parties, written as their files."""
    from mpcrnn import data as D

    parties = cfg.world_size
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
    click.echo(
        "  rows per organization (public): "
        + ", ".join(f"party {r}: {p.n_rows}" for r, p in enumerate(tr_parts))
    )
    return data_files, test_files


def _check_and_warn(cfg, data_files) -> None:
    """One file per party; the loud warnings of insecure or risky settings."""
    from mpcrnn.report import fedavg_notice

    if len(data_files) != cfg.world_size:
        raise click.UsageError(
            f"--data: expected one file per party ({cfg.world_size}), got {len(data_files)}"
        )
    if cfg.provider == "TFP":
        click.secho(INSECURE_TFP, fg="red", err=True)
    if cfg.mode == "fedavg":
        click.echo(fedavg_notice(cfg))
    if cfg.dp.enabled and cfg.train.optimizer == "sgd" and cfg.train.momentum > DP_SAFE_MOMENTUM:
        click.secho(DP_MOMENTUM_WARNING.format(cfg.train.momentum), fg="yellow", err=True)


@main.command()
@config_option("Run config file (TOML) shared by all parties.")
@click.option("--rank", type=int, help="This party's rank (or RANK).")
@click.option(
    "--world-size",
    type=int,
    help="Data parties, dealer not counted (or [run] parties, or WORLD_SIZE).",
)
@click.option(
    "--rendezvous", help="tcp://host:port, the same for all (or MASTER_ADDR/MASTER_PORT)."
)
@click.option("--data", "data_file", required=True, type=click.Path())
@click.option("--test", "test_file", type=click.Path())
@click.option("--out", default="runs/party", type=click.Path())
@setting_options(("provider", "epochs", "hidden", "cell", "optimizer", "lr", "seed"), False)
@click.option("--timeout", default=120.0, show_default=True)
@click.option("--resume", is_flag=True)
@dp_options
@transport_options(with_key=True)
@adversarial_options
@intake_options
def party(
    config_file,
    rank,
    world_size,
    rendezvous,
    data_file,
    test_file,
    out,
    timeout,
    resume,
    insecure,
    key_dir,
    strict,
    max_file_bytes,
    **settings,
):
    """Run one data party on this host (one organization)."""
    from launch.party import PartyJob, run_party
    from launch.runfile import build, from_environment, read_file
    from protocols.errors import MpcrnnError

    try:
        raw = read_file(config_file)
        from launch.runfile import require_data_declaration

        require_data_declaration(raw, config_file, data_file)
        cfg = build(raw, {"parties": world_size, **settings})
        given = world_size if world_size is not None else raw.get("run", {}).get("parties")
        rank, rendezvous, parties = from_environment(rank, rendezvous, given, cfg.provider)
        from dataclasses import replace

        cfg = with_transport(replace(cfg, world_size=parties), insecure)
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
                strict=strict,
                max_file_bytes=max_file_bytes,
            )
        )
        click.echo(json.dumps({k: v for k, v in report.items() if k != "ledger"}, indent=2))
    except MpcrnnError as exc:
        fail(exc)


@main.command()
@config_option("The run config file (for the party count).")
@click.option("--world-size", type=int, help="Data parties (or [run] parties, or WORLD_SIZE - 1).")
@click.option("--rendezvous", help="tcp://host:port (or MASTER_ADDR/MASTER_PORT).")
@click.option("--timeout", default=120.0, show_default=True)
@transport_options(with_key=True)
def dealer(config_file, world_size, rendezvous, timeout, insecure, key_dir):
    """Run the dealer (trusted third party: owns no data, must not collude)."""
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
        cfg = build(raw, {"provider": "ttp"})
        parties = world_size if world_size is not None else raw.get("run", {}).get("parties")
        _, rendezvous, parties = from_environment(-1, rendezvous, parties, "ttp")
        cfg = with_transport(replace(cfg, world_size=parties), insecure)
        click.echo(
            json.dumps(
                run_party(
                    PartyJob(parties, rendezvous, cfg, None, None, ".", timeout, key_dir=key_dir)
                )
            )
        )
    except MpcrnnError as exc:
        fail(exc)


for _command in (rehearse, predict, keygen, attack):
    main.add_command(_command)


if __name__ == "__main__":
    main()
