"""``mpcrnn`` command line: thin click commands over the library.

Every expected failure (bad input, bad config, a dead peer) prints one line ``error: ...`` and
exits non-zero; no traceback unless MPCRNN_DEBUG=1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from mpcrnn import __version__
from mpcrnn.report import INSECURE_TFP, INSECURE_TRANSPORT


def _fail(exc) -> None:
    """One line on stderr, then exit at once: a live gloo process group's threads must not run
    C++ teardown after a peer is gone (it aborts with 'terminate called ...')."""
    if getattr(
        exc, "template", None
    ):  # e.g. the [data] section a run file lacks; the error line stays last
        click.echo(exc.template, err=True)
    click.echo(f"error: {exc}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(getattr(exc, "exit_code", 2))


def _dp_options(f):
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
            "--dp-delta", type=float, help="DP-SGD: delta (default 1e-5; keep it below 1/rows)."
        ),
        click.option(
            "--dp-clip", type=float, help="DP-SGD: per-example L2 clipping norm C (default 1.0)."
        ),
        click.option(
            "--dp-accountant",
            type=click.Choice(["rdp", "prv"]),
            help="DP-SGD: Opacus accountant (default rdp).",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _transport_options(with_key: bool):
    """--insecure-plaintext-transport (every command that runs processes) and --key DIR (one process)."""

    def deco(f):
        f = click.option(
            "--insecure-plaintext-transport",
            "insecure",
            is_flag=True,
            help="INSECURE: plain TCP, no identities, no encryption (tests, demos). Hashed into the run config.",
        )(f)
        if with_key:
            f = click.option(
                "--key",
                "key_dir",
                type=click.Path(),
                help="This organization's identity folder (mpcrnn keygen --out DIR); its fingerprint must be "
                "the one [identities] pins for this rank.",
            )(f)
        return f

    return deco


def _with_transport(cfg, insecure: bool):
    """The run config with --insecure-plaintext-transport applied (and loudly flagged)."""
    from dataclasses import replace

    if insecure:
        cfg = replace(cfg, insecure_transport=True)
    if cfg.insecure_transport:
        click.secho(INSECURE_TRANSPORT, fg="red", err=True)
    return cfg


def _intake_options(f):
    """--strict / --max-file-bytes: how a party treats its own files, shared by ``train`` and ``party``."""
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


def _adversarial_options(f):
    """--adversarial and --adv-* (adversarial training on shares, mpcrnn.adversarial), shared by ``train`` and ``party``."""
    opts = [
        click.option(
            "--adversarial",
            type=click.Choice(["none", "fgsm", "pgd"]),
            help="Adversarial training on shares: FGSM or PGD perturbations (default none).",
        ),
        click.option(
            "--adv-eps",
            type=float,
            help="Perturbation radius, L-infinity, scaled feature units (default 0.1).",
        ),
        click.option("--adv-steps", type=int, help="PGD steps (default 10)."),
        click.option("--adv-alpha", type=float, help="PGD step size (default 0.025)."),
        click.option(
            "--adv-mix", type=float, help="Share of the loss on perturbed rows (default 0.5)."
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


ADV_FLAGS = ("adversarial", "adv_eps", "adv_steps", "adv_alpha", "adv_mix")
DP_FLAGS = ("dp_epsilon", "dp_noise", "dp_delta", "dp_clip", "dp_accountant")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mpcrnn")
def main() -> None:
    """Train RNN/GRU/LSTM models on secret-shared data (CrypTen MPC)."""


@main.command()
@click.option("--parties", default=3, show_default=True, help="Data parties (organizations).")
@click.option("--cell", type=click.Choice(["rnn", "gru", "lstm"]), default="gru", show_default=True)
@click.option("--hidden", default=32, show_default=True)
@click.option("--layers", default=1, show_default=True)
@click.option("--epochs", default=12, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option(
    "--optimizer",
    type=click.Choice(["adam", "adamw", "sgd"]),
    default="adam",
    show_default=True,
    help="Optimizer on shares (adam: the default; sgd: SGD with --momentum).",
)
@click.option(
    "--lr", type=float, default=None, help="Learning rate (default: adam/adamw 0.01, sgd 0.2)."
)
@click.option(
    "--schedule",
    type=click.Choice(["constant", "warmup", "cosine"]),
    default="cosine",
    show_default=True,
    help="Public learning-rate schedule.",
)
@click.option(
    "--warmup-steps", default=10, show_default=True, help="Linear warm-up steps (warmup, cosine)."
)
@click.option(
    "--momentum",
    default=0.9,
    show_default=True,
    help="SGD momentum (with --dp-*: 0.5 is safer, see README).",
)
@click.option(
    "--seed", default=0, show_default=True, help="Public seed: initialization and batch schedule."
)
@click.option(
    "--provider",
    type=click.Choice(["ttp", "tfp"], case_sensitive=False),
    default="ttp",
    show_default=True,
    help="ttp: dealer process (secure). tfp: party 0 makes triples (INSECURE simulation).",
)
@click.option(
    "--reveal-to",
    multiple=True,
    type=int,
    help="Ranks that receive the final weights (repeatable; default all).",
)
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
    "--reveal-metrics",
    is_flag=True,
    help="Also open the pooled training accuracy (one number, ledgered).",
)
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
@click.option(
    "--mode",
    type=click.Choice(["mpc", "fedavg"]),
    default="mpc",
    show_default=True,
    help="mpc: train on secret shares, open only the final weights. fedavg: train locally, "
    "average on shares, open every round's average (faster, reveals more).",
)
@click.option(
    "--rounds", default=10, show_default=True, help="fedavg: rounds (each opens one average)."
)
@click.option(
    "--local-epochs", default=2, show_default=True, help="fedavg: local epochs per round."
)
@click.option(
    "--weighting",
    type=click.Choice(["rows", "equal"]),
    default="rows",
    show_default=True,
    help="fedavg: weight each party by its (public) row count, or equally.",
)
@click.option(
    "--update-clip",
    default=0.0,
    show_default=True,
    help="fedavg: bound each party's update norm on shares (0: off).",
)
@_dp_options
@_transport_options(with_key=False)
@_adversarial_options
@_intake_options
@click.pass_context
def train(
    ctx,
    parties,
    cell,
    hidden,
    layers,
    epochs,
    batch_size,
    optimizer,
    lr,
    schedule,
    warmup_steps,
    momentum,
    seed,
    provider,
    reveal_to,
    data_files,
    test_files,
    out,
    timeout,
    no_baseline,
    reveal_metrics,
    resume,
    config_file,
    mode,
    rounds,
    local_epochs,
    weighting,
    update_clip,
    insecure,
    strict,
    max_file_bytes,
    **dp_flags,
):
    """Spawn the parties and the dealer on this machine and train.

    With no --data: the built-in demo (Japanese Vowels split 50/30/20 across 3 organizations).
    """
    from launch.launcher import launch_local
    from mpcrnn import data as D
    from mpcrnn.report import fedavg_notice, summarize
    from protocols.errors import MpcrnnError

    try:
        from launch.runfile import build, read_file, require_data_declaration

        demo = not data_files

        if not demo:
            for f in data_files:
                require_data_declaration(read_file(config_file), config_file, f)
        # with a run file, only the flags given on the command line override it; without, all flags count
        names = (
            "parties",
            "cell",
            "hidden",
            "layers",
            "epochs",
            "batch_size",
            "optimizer",
            "lr",
            "schedule",
            "warmup_steps",
            "momentum",
            "seed",
            "provider",
            "reveal_to",
            "reveal_metrics",
            "mode",
            "rounds",
            "local_epochs",
            "weighting",
            "update_clip",
            *DP_FLAGS,
            *ADV_FLAGS,
        )
        given = {
            name: ctx.params[name]
            for name in names
            if not config_file
            or ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        }
        if "reveal_to" in given:
            given["reveal_to"] = list(given["reveal_to"])
        cfg = _with_transport(
            build(read_file(config_file), given), insecure
        )  # validated: nothing written or spawned yet
        out_dir = _writable_dir(out)
        if demo:
            parties = cfg.world_size
            plan = (
                f"{cfg.train.epochs} epochs"
                if cfg.mode == "mpc"
                else f"fedavg: {cfg.fedavg.rounds} rounds x {cfg.fedavg.local_epochs} local epochs"
            )
            click.echo(
                f"mpcrnn demo: Japanese Vowels (UCI), {parties} organizations, {cfg.model.cell.upper()} H={cfg.model.hidden_size}, "
                f"{plan}, provider {cfg.provider}"
            )
            fractions = [0.5, 0.3, 0.2] if parties == 3 else [1.0 / parties] * parties
            tr_parts = D.split_rows(D.japanese_vowels("train"), fractions, cfg.train.seed)
            te_parts = D.split_rows(D.japanese_vowels("test"), fractions, cfg.train.seed + 1)
            data_files, test_files = D.write_party_files(tr_parts, te_parts, out_dir)
            click.echo(
                "  rows per organization (public): "
                + ", ".join(f"party {r}: {p.n_rows}" for r, p in enumerate(tr_parts))
            )
        if len(data_files) != cfg.world_size:
            raise click.UsageError(
                f"--data: expected one file per party ({cfg.world_size}), got {len(data_files)}"
            )
        tests = list(test_files) + [None] * (cfg.world_size - len(test_files))
        if cfg.provider == "TFP":
            click.secho(INSECURE_TFP, fg="red", err=True)
        if cfg.mode == "fedavg":
            click.echo(fedavg_notice(cfg))
        if (
            cfg.dp.enabled
            and cfg.train.optimizer == "sgd"
            and cfg.train.momentum > DP_SAFE_MOMENTUM
        ):
            click.secho(DP_MOMENTUM_WARNING.format(cfg.train.momentum), fg="yellow", err=True)
        reports = launch_local(
            cfg,
            list(data_files),
            tests,
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
        _fail(exc)


DP_SAFE_MOMENTUM = 0.5
DP_MOMENTUM_WARNING = (
    "WARNING: DP-SGD noise with momentum {} can push gate pre-activations outside the polynomials' "
    "interval, after which training collapses (Japanese Vowels, epsilon <= 3, momentum 0.9: chance "
    "accuracy). Measured safe there: --momentum 0.5 (see README, Differential privacy)."
)


def _writable_dir(out: str) -> Path:
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
@click.option("--provider", type=click.Choice(["ttp", "tfp"], case_sensitive=False))
@click.option("--epochs", type=int)
@click.option("--hidden", type=int)
@click.option("--cell", type=click.Choice(["rnn", "gru", "lstm"]))
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd"]))
@click.option("--lr", type=float)
@click.option("--seed", type=int)
@click.option("--timeout", default=120.0, show_default=True)
@click.option("--resume", is_flag=True)
@_dp_options
@_transport_options(with_key=True)
@_adversarial_options
@_intake_options
def party(
    config_file,
    rank,
    world_size,
    rendezvous,
    data_file,
    test_file,
    out,
    provider,
    epochs,
    hidden,
    cell,
    optimizer,
    lr,
    seed,
    timeout,
    resume,
    insecure,
    key_dir,
    strict,
    max_file_bytes,
    **dp_flags,
):
    """Run one data party on this host (one organization)."""
    from launch.party import PartyJob, run_party
    from launch.runfile import build, from_environment, read_file
    from protocols.errors import MpcrnnError

    try:
        raw = read_file(config_file)
        from launch.runfile import require_data_declaration

        require_data_declaration(raw, config_file, data_file)
        cfg = build(
            raw,
            {
                "parties": world_size,
                "provider": provider,
                "epochs": epochs,
                "hidden": hidden,
                "cell": cell,
                "optimizer": optimizer,
                "lr": lr,
                "seed": seed,
                **dp_flags,
            },
        )
        given = world_size if world_size is not None else raw.get("run", {}).get("parties")
        rank, rendezvous, parties = from_environment(rank, rendezvous, given, cfg.provider)
        from dataclasses import replace

        cfg = _with_transport(replace(cfg, world_size=parties), insecure)
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
        _fail(exc)


@main.command()
@click.option(
    "--config", "config_file", type=click.Path(), help="The run config file (for the party count)."
)
@click.option("--world-size", type=int, help="Data parties (or [run] parties, or WORLD_SIZE - 1).")
@click.option("--rendezvous", help="tcp://host:port (or MASTER_ADDR/MASTER_PORT).")
@click.option("--timeout", default=120.0, show_default=True)
@_transport_options(with_key=True)
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
        cfg = _with_transport(replace(cfg, world_size=parties), insecure)
        click.echo(
            json.dumps(
                run_party(
                    PartyJob(parties, rendezvous, cfg, None, None, ".", timeout, key_dir=key_dir)
                )
            )
        )
    except MpcrnnError as exc:
        _fail(exc)


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
            f"mpcrnn rehearse: {local.n_rows} own rows, {cfg.model.cell.upper()} x{cfg.model.num_layers} "
            f"H={cfg.model.hidden_size}, {cfg.train.optimizer} lr {cfg.train.step_lr:g} ({cfg.train.schedule}), "
            f"{cfg.train.epochs} epochs; plaintext mirror with the run's polynomials, nothing shared"
        )
        if cfg.dp.enabled:
            click.echo(
                "  note: DP noise is not simulated here (the DP run adds noise to these gradients)"
            )
        result = run_rehearsal(cfg, local, test, echo=click.echo)
        click.echo(
            f"  largest |pre-activation| / polynomial bound: {result['max_preactivation_over_bound']:.2f} "
            f"({'inside' if result['max_preactivation_over_bound'] <= 1 else 'OUTSIDE'} the interval)"
        )
        for w in result["warnings"]:
            click.secho(f"WARNING: {w}", fg="yellow", err=True)
        if not result["warnings"]:
            click.echo("  training learns on these rows with this configuration")
        if as_json:
            click.echo(json.dumps(result))
    except MpcrnnError as exc:
        _fail(exc)


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
        _fail(exc)


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
        _fail(exc)
    except OSError as exc:
        _fail(f"cannot write the identity into {out_dir}: {type(exc).__name__}")
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
    """Robust accuracy of a released model under FGSM / PGD on this party's own rows (plain torch)."""
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
        _fail(exc)


if __name__ == "__main__":
    main()
