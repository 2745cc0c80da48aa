"""The commands one organization runs alone, on its own files, with no MPC: ``rehearse``,
``predict``, ``keygen``, ``attack`` (registered on ``mpcrnn`` by :mod:`launch.cli`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from launch.options import config_option, fail

ATTACK_EPS = (0.05, 0.1, 0.2)  # `mpcrnn attack`'s perturbation radii when --eps is not given


@click.command()
@config_option("The run config file (TOML) of the MPC run to rehearse.")
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


@click.command()
@click.option("--model", "model_file", required=True, type=click.Path())
@click.option("--data", "data_file", type=click.Path(), help="This party's own rows.")
@click.option(
    "--dp-epsilon",
    type=float,
    help="Release Laplace-noised class probabilities (scale 2/epsilon, "
    "epsilon-DP PER QUERY row; n rows compose to n x epsilon) and predictions from them; "
    "regression: values clamped to the target bounds, scale (high - low)/epsilon; "
    "--generate: each token a Gumbel noisy max (docs/dp.md).",
)
@click.option(
    "--raw-text",
    is_flag=True,
    help="Text models: every line of --data is one text, unlabelled (no accuracy).",
)
@click.option(
    "--generate", "generate_n", type=click.IntRange(1, 100000), help="Language model: N tokens."
)
@click.option("--prompt", default="\n", show_default=True, help="--generate: the text to continue.")
@click.option("--temperature", default=1.0, show_default=True, help="--generate: 0 is greedy.")
@click.option("--seed", default=0, show_default=True, help="--generate: sampling seed.")
def predict(model_file, data_file, dp_epsilon, raw_text, generate_n, prompt, temperature, seed):
    """Run a trained model on this party's own data, in plaintext (torch, exact activations).
    A language model: bits per character on --data (plain text) and/or --generate N tokens."""
    from mpcrnn import data as D
    from protocols.errors import ConfigError, MpcrnnError, expected_got

    try:
        if dp_epsilon is not None:
            from mpcrnn.dp_release import check_predict_epsilon

            check_predict_epsilon(dp_epsilon)
        from mpcrnn.model_file import read_model_file

        _, spec, model = read_model_file(model_file)
        if spec.is_lm:  # mpcrnn.text_lm
            from mpcrnn.text_lm import predict_lm

            if raw_text:
                raise ConfigError(
                    expected_got("--raw-text", "a text classifier", "a language model")
                )

            args = (generate_n, prompt, temperature, seed, dp_epsilon)
            click.echo(json.dumps(predict_lm(model, spec, data_file, *args)))
            return
        if generate_n is not None or data_file is None:
            raise ConfigError(
                expected_got("predict", "--data FILE (--generate: a language model)", "another")
            )
        if raw_text:
            from mpcrnn.text import read_unlabelled

            data = read_unlabelled(data_file, spec)
        else:
            data = D.scale_features(D.load_party_file(data_file, spec), spec, data_file)
        if spec.is_regression:  # values in the target's units (mpcrnn.regression)
            from mpcrnn.regression import predict_report

            click.echo(json.dumps(predict_report(model, spec, data, dp_epsilon)))
            return
        click.echo(json.dumps(_classify(model, spec, data, dp_epsilon, raw_text)))
    except MpcrnnError as exc:
        fail(exc)


def _classify(model, spec, data, dp_epsilon, raw_text) -> dict:
    """A classifier's answer: predictions (and accuracy on labelled rows); with ``dp_epsilon``
    from Laplace-noised probabilities (the predictions are post-processing of the noise)."""
    import torch

    with torch.no_grad():
        logits = model(torch.as_tensor(data.x, dtype=torch.float64), torch.as_tensor(data.lengths))
    extra = {}
    if dp_epsilon is not None:
        from mpcrnn.dp_release import laplace_scores, predict_dp_note

        logits = laplace_scores(torch.softmax(logits, 1), dp_epsilon)
        extra = {"scores": logits.tolist(), "dp": predict_dp_note(dp_epsilon, len(logits))}
    pred = logits.argmax(1).numpy()
    acc = None if raw_text else float((pred == data.y).mean())
    return {
        "rows": int(len(pred)),
        "accuracy": acc,
        "predictions": [spec.classes[i] for i in pred],
        **extra,
    }


@click.command()
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
    from protocols.network.identity import keygen as make

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


@click.command()
@click.option("--model", "model_file", required=True, type=click.Path())
@click.option(
    "--data", "data_file", required=True, type=click.Path(), help="This party's own labelled rows."
)
@click.option(
    "--eps",
    "eps_list",
    multiple=True,
    type=float,
    help="Perturbation radii, scaled feature units (repeatable; default "
    + " ".join(f"{e:g}" for e in ATTACK_EPS)
    + ").",
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
        if spec.is_regression or spec.is_lm:
            raise ConfigError(
                expected_got(
                    "mpcrnn attack's model",
                    "a classifier (robust accuracy under FGSM/PGD on the cross-entropy)",
                    "a language model" if spec.is_lm else "a regression model",
                )
            )
        data = D.scale_features(D.load_party_file(data_file, spec), spec, data_file)
        out = {
            "rows": data.n_rows,
            "clean": robust_accuracy(
                model, data.x, data.lengths, data.y, "none", 0.0, spec.value_bound
            ),
        }
        for method in methods or ("fgsm", "pgd"):
            for eps in eps_list or ATTACK_EPS:
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
