"""``mpcrnn`` command line: thin click commands over the library.

Every expected failure (bad input, bad config, a dead peer) prints one line ``error: ...`` and
exits non-zero; no traceback unless MPCRNN_DEBUG=1.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from launch.options import (
    DP_MOMENTUM_WARNING,
    DP_SAFE_MOMENTUM,
    FEDAVG_FLAGS,
    MODEL_FLAGS,
    RUN_FLAGS,
    TRAIN_FLAGS,
    adversarial_options,
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
@click.option(
    "--config",
    "config_file",
    type=click.Path(),
    help="Run config file (TOML); explicit flags override it.",
)
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
        else f"fedavg: {cfg.fedavg.rounds} rounds x {cfg.fedavg.local_epochs} local epochs"
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
@click.option(
    "--config",
    "config_file",
    type=click.Path(),
    help="Run config file (TOML) shared by all parties.",
)
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
@click.option(
    "--config", "config_file", type=click.Path(), help="The run config file (for the party count)."
)
@click.option("--world-size", type=int, help="Data parties (or [run] parties, or WORLD_SIZE - 1).")
@click.option("--rendezvous", help="tcp://host:port (or MASTER_ADDR/MASTER_PORT).")
@click.option("--timeout", default=120.0, show_default=True)
@transport_options(with_key=True)
def dealer(config_file, world_size, rendezvous, timeout, insecure, key_dir):
    """Run the dealer (trusted third party: owns no data, must not collude)."""
    from dataclasses import replace

    from launch.party import PartyJob, run_party
    from launch.runfile import build, from_environment, read_file
    from protocols.errors import MpcrnnError

    try:
        raw = read_file(config_file)
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


@main.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(),
    help="The run config file (TOML) of the MPC run to rehearse.",
)
@click.option(
    "--data", "data_file", required=True, type=click.Path(), help="This party's own training file."
)
@click.option(
    "--test", "test_file", type=click.Path(), help="Optional: this party's own test file."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Also print the history and warnings as JSON."
)
def rehearse(config_file, data_file, test_file, as_json):
    """Run the run config in plaintext on this party's own rows only (nothing is shared)."""
    from launch.runfile import build, read_file, require_data_declaration
    from mpcrnn import data as D
    from mpcrnn.rehearse import rehearse as run_rehearsal
    from protocols.errors import MpcrnnError

    try:
        raw = read_file(config_file)
        require_data_declaration(raw, config_file, data_file)
        cfg = build(raw, {})
        local = D.scale_features(D.load_party_file(data_file, cfg.spec), cfg.spec, data_file)
        test = (
            D.scale_features(D.load_party_file(test_file, cfg.spec), cfg.spec, test_file)
            if test_file
            else None
        )
        click.echo(
            f"mpcrnn rehearse: {local.n_rows} own rows, {cfg.model.cell.upper()} "
            f"x{cfg.model.num_layers} "
            f"H={cfg.model.hidden_size}, {cfg.train.optimizer} lr {cfg.train.step_lr:g} "
            f"({cfg.train.schedule}), "
            f"{cfg.train.epochs} epochs; plaintext mirror with the run's polynomials, nothing "
            "shared"
        )
        if cfg.dp.enabled:
            click.echo(
                "  note: DP noise is not simulated here (the DP run adds noise to these gradients)"
            )
        result = run_rehearsal(cfg, local, test, echo=click.echo)
        click.echo(
            "  largest |pre-activation| / polynomial bound: "
            f"{result['max_preactivation_over_bound']:.2f} "
            f"({'inside' if result['max_preactivation_over_bound'] <= 1 else 'OUTSIDE'} the "
            "interval)"
        )
        for w in result["warnings"]:
            click.secho(f"WARNING: {w}", fg="yellow", err=True)
        if not result["warnings"]:
            click.echo("  training learns on these rows with this configuration")
        if as_json:
            click.echo(json.dumps(result))
    except MpcrnnError as exc:
        fail(exc)


@main.command()
@click.option("--model", "model_file", required=True, type=click.Path())
@click.option("--data", "data_file", required=True, type=click.Path())
@click.option(
    "--dp-epsilon",
    type=float,
    help="Release Laplace-noised class probabilities (scale 2/epsilon, "
    "epsilon-DP PER QUERY row; n rows compose to n x epsilon) and predictions from them.",
)
def predict(model_file, data_file, dp_epsilon):
    """Run a trained model on this party's own data, in plaintext (torch, exact activations)."""
    import torch

    from mpcrnn import data as D
    from protocols.errors import MpcrnnError

    try:
        if dp_epsilon is not None:
            from mpcrnn.dp import check_predict_epsilon

            check_predict_epsilon(dp_epsilon)
        from mpcrnn.model_file import read_model_file

        _, spec, model = read_model_file(model_file)
        data = D.scale_features(D.load_party_file(data_file, spec), spec, data_file)
        with torch.no_grad():
            logits = model(
                torch.as_tensor(data.x, dtype=torch.float64), torch.as_tensor(data.lengths)
            )
        extra = {}
        if (
            dp_epsilon is not None
        ):  # noisy release: scores and predictions are post-processing of the noise
            from mpcrnn.dp import laplace_scores, predict_dp_note

            scores = laplace_scores(torch.softmax(logits, 1), dp_epsilon)
            logits = scores
            extra = {"scores": scores.tolist(), "dp": predict_dp_note(dp_epsilon, len(scores))}
        pred = logits.argmax(1).numpy()
        acc = float((pred == data.y).mean())
        click.echo(
            json.dumps(
                {
                    "rows": int(len(pred)),
                    "accuracy": acc,
                    "predictions": [spec.classes[i] for i in pred],
                    **extra,
                }
            )
        )
    except MpcrnnError as exc:
        fail(exc)


@main.command()
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(),
    help="Folder for key.pem (0600, stays on this host) and cert.pem.",
)
@click.option(
    "--name",
    default="mpcrnn",
    show_default=True,
    help="Common name written into the certificate (informational).",
)
def keygen(out_dir, name):
    """Make this organization's identity: a key pair and self-signed certificate.

    Prints the certificate's fingerprint: send it (and only it, or cert.pem) to the other
    organizations; the shared run file pins it under [identities]."""
    from protocols.errors import MpcrnnError
    from protocols.identity import keygen as make

    try:
        fp = make(out_dir, name)
    except MpcrnnError as exc:
        fail(exc)
    except OSError as exc:
        fail(f"cannot write the identity into {out_dir}: {type(exc).__name__}")
    click.echo(fp)
    click.echo(
        f"  wrote {Path(out_dir) / 'key.pem'} (private, 0600: never copy it off this host) and "
        f"{Path(out_dir) / 'cert.pem'} (public)",
        err=True,
    )


@main.command()
@click.option("--model", "model_file", required=True, type=click.Path())
@click.option(
    "--data", "data_file", required=True, type=click.Path(), help="This party's own labelled rows."
)
@click.option(
    "--eps",
    "eps_list",
    multiple=True,
    type=float,
    help="Perturbation radii, scaled feature units (repeatable; default 0.05 0.1 0.2).",
)
@click.option(
    "--method",
    "methods",
    multiple=True,
    type=click.Choice(["fgsm", "pgd"]),
    help="Attacks (repeatable; default both).",
)
@click.option("--pgd-steps", default=10, show_default=True, type=click.IntRange(1, 1000))
def attack(model_file, data_file, eps_list, methods, pgd_steps):
    """Robust accuracy of a released model under FGSM / PGD on this party's own rows (plain
    torch)."""
    from mpcrnn import data as D
    from mpcrnn.attacks import robust_accuracy
    from mpcrnn.model_file import read_model_file
    from protocols.errors import ConfigError, MpcrnnError, expected_got

    try:
        for eps in eps_list:
            if not 0 < eps <= 1:
                raise ConfigError(expected_got("--eps", "in (0, 1] (scaled feature units)", eps))
        _, spec, model = read_model_file(model_file)
        data = D.scale_features(D.load_party_file(data_file, spec), spec, data_file)
        out = {
            "rows": data.n_rows,
            "clean": robust_accuracy(
                model, data.x, data.lengths, data.y, "none", 0.0, spec.value_bound
            ),
        }
        for method in methods or ("fgsm", "pgd"):
            for eps in eps_list or (0.05, 0.1, 0.2):
                out[f"{method} {eps:g}"] = robust_accuracy(
                    model,
                    data.x,
                    data.lengths,
                    data.y,
                    method,
                    eps,
                    spec.value_bound,
                    steps=pgd_steps,
                )
        click.echo(json.dumps(out))
    except MpcrnnError as exc:
        fail(exc)


if __name__ == "__main__":
    main()
