"""The run report of ``mpcrnn train``: the parties' own reports merged, test accuracy pooled
from each party's local evaluation, and (demo only) the plaintext baselines on the pooled rows.

Everything here is computed from what the parties already hold or were entitled to see: their
reports (public values, their own test accuracy), the run configuration, and, for the demo's
baseline, the demo's own files.  ``echo`` prints one line (the CLI passes ``click.echo``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports this module's notes at start-up: keep it light
    from mpcrnn.config import RunConfig

INSECURE_TRANSPORT = (
    "WARNING: --insecure-plaintext-transport: every share, seed and model byte crosses the "
    "network in CLEAR and anyone who reaches the rendezvous can take a rank. Tests and "
    "single-machine demos only; real runs use the default (mutual TLS 1.3 with the run file's "
    "pinned certificates)."
)
INSECURE_TFP = (
    "WARNING: --provider tfp is a SIMULATION: party 0 generates every Beaver triple and "
    "could decrypt every value. Use the default TTP dealer for real data."
)
TTP_NOTE = "TTP dealer: owns no data, must not collude with any party"
HE_NOTE = (
    "HE: the two data parties make every triple themselves (BFV products, OT extension for AND "
    "triples); no dealer"
)
PROVIDER_NOTES = {"TFP": INSECURE_TFP, "TTP": TTP_NOTE, "HE": HE_NOTE}
TLS_NOTE = (
    "mutual TLS 1.3 between every two processes, throw-away identities made and pinned for this run"
)

Echo = Callable[[str], None]


def fedavg_notice(cfg: RunConfig) -> str:
    """What ``--mode fedavg`` reveals beyond ``--mode mpc`` (and the 2-party caveat)."""
    note = (
        f"  --mode fedavg reveals {cfg.fedavg_rounds} intermediate global models (one average "
        "per round) to every party, unlike --mode mpc, which opens only the final weights"
    )
    if cfg.parties == 2:
        note += (
            "\n  WARNING: with 2 data parties the average plus a party's own update gives it "
            "the other party's update: secure aggregation hides an individual update only "
            "among 3 or more parties"
        )
    return note


def _he_prefetch(parties: list[dict], echo: Echo) -> None:
    """``--provider he``: how much of the next steps' HE work ran beside the steps (public)."""
    for p in parties:
        o = p.get("he_prefetch")
        if o and o["prefetched_steps"]:
            echo(
                f"  party {p['rank']}: HE randomness of {o['prefetched_steps']} steps computed "
                f"beside the step before: {o['hidden_s']:.1f} of {o['offline_s']:.1f} s hidden "
                f"({o['hidden_share']:.0%})"
            )


def summarize(
    cfg: RunConfig,
    reports: list[dict],
    baseline: bool,
    train_files: list[str],
    echo: Echo,
    test_files: list[str | None] | None = None,
) -> dict:
    """The run's report.json from every process's report.  ``baseline`` (the demo): also train
    the plaintext mirror and torch on the pooled rows, same seed and schedule (regression: on
    the pooled ``test_files``, with the training mean)."""
    parties = [r for r in reports if r.get("role") == "party"]
    summary = {
        "config": cfg.to_json(),
        "config_sha256": cfg.digest(),
        "provider": cfg.provider,
        "provider_note": PROVIDER_NOTES.get(cfg.provider, TTP_NOTE),
        "transport": INSECURE_TRANSPORT if cfg.insecure_plaintext_transport else TLS_NOTE,
        "parties": parties,
        "dealer": next((r for r in reports if r.get("role") == "dealer"), None),
        "mode": cfg.mode,
    }
    if cfg.mode == "fedavg":
        summary["revealed"] = {
            "intermediate_global_models": cfg.fedavg_rounds,
            "to": "all parties",
            "note": fedavg_notice(cfg).strip(),
        }
    if cfg.model.task == "regress":
        from mpcrnn import regression_report

        regression_report.test_metrics(cfg, parties, summary, echo)
    elif cfg.model.task == "lm":
        from mpcrnn import lm_report

        lm_report.test_metrics(cfg, parties, summary, echo)
    else:
        _test_accuracy(cfg, parties, summary, echo)
    if baseline and cfg.dp.enabled:  # the non-private mirror is no like-for-like baseline
        echo(
            "  (no plaintext baseline in DP mode; benchmarks/dp_rows.py compares with Opacus "
            "DP-SGD)"
        )
    elif baseline and cfg.model.task == "lm":
        from mpcrnn import lm_report

        summary["baseline"] = lm_report.baseline(cfg, summary, train_files, test_files, echo)
    elif baseline and cfg.model.task == "regress":
        summary["baseline"] = _regression_baseline(cfg, summary, train_files, test_files, echo)
    elif baseline:
        summary["baseline"] = _baseline(cfg, summary, train_files, echo, test_files)
    _revealed_and_dp(summary, parties, echo)
    _he_prefetch(parties, echo)
    models = [p["model_file"] for p in parties if "model_file" in p]
    echo("  model written to: " + ", ".join(models))
    return summary


def _test_accuracy(cfg: RunConfig, parties: list[dict], summary: dict, echo: Echo) -> None:
    """Pool the parties' own test accuracies, weighted by their (public) test row counts."""
    tests = [p["local_test"] for p in parties if "local_test" in p]
    if not tests:
        return
    n = sum(t["rows"] for t in tests)
    acc_exact = sum(t["accuracy_exact"] * t["rows"] for t in tests) / n
    pooled = f"({n} rows, pooled from each party's local evaluation)"
    if cfg.mode == "fedavg":
        summary["test_accuracy"] = {"fedavg_model": acc_exact}
        echo(
            f"  FedAvg model test accuracy {pooled}: {100 * acc_exact:.1f}% "
            "(torch, exact activations)"
        )
        return
    acc_poly = sum(t["accuracy_polynomial"] * t["rows"] for t in tests) / n
    summary["test_accuracy"] = {
        "mpc_model_exact_activations": acc_exact,
        "mpc_model_polynomial": acc_poly,
    }
    echo(
        f"  MPC model test accuracy {pooled}: {100 * acc_exact:.1f}% (torch, exact "
        f"activations), {100 * acc_poly:.1f}% (polynomial)"
    )


def _baseline(
    cfg: RunConfig, summary: dict, train_files: list[str], echo: Echo, test_files=None
) -> dict:
    """The demo's plaintext baselines on the parties' rows pooled in rank order: exactly the
    rows and schedule the MPC run used; tested on the Japanese Vowels test set.  Keys name the
    cell: ``plaintext_exact_<cell>`` (torch, exact activations)."""
    from mpcrnn import data as D
    from mpcrnn.secure import concat, evaluate_local, train_plain_mirror

    cell = cfg.model.cell
    train_all = D.scale_features(
        concat([D.load_party_file(f, cfg.spec) for f in train_files]), cfg.spec
    )
    tests = [f for f in test_files or () if f]
    test_all = D.scale_features(  # the demo's test files (the text demo), or Japanese Vowels'
        concat([D.load_party_file(f, cfg.spec) for f in tests])
        if tests and cfg.spec.kind == "text"
        else D.japanese_vowels("test"),
        cfg.spec,
    )
    if cfg.mode == "fedavg":
        exact_params = train_plain_mirror(cfg, train_all, exact=True)
        exact = evaluate_local(cfg, exact_params, test_all, polynomial=False)
        out = {"centralized_plaintext_exact": exact["accuracy_exact"]}
        if "test_accuracy" in summary:
            out["gap_points"] = 100 * (
                exact["accuracy_exact"] - summary["test_accuracy"]["fedavg_model"]
            )
        echo(
            f"  centralized plaintext (all rows pooled, torch-exact {cell.upper()}, "
            f"{cfg.train.epochs} epochs): {100 * exact['accuracy_exact']:.1f}%"
        )
        return out
    mirror = evaluate_local(cfg, train_plain_mirror(cfg, train_all, exact=False), test_all)
    exact = evaluate_local(cfg, train_plain_mirror(cfg, train_all, exact=True), test_all)
    echo(
        f"  plaintext, same seed and schedule: {100 * mirror['accuracy_polynomial']:.1f}% "
        f"(mirror, polynomial), {100 * exact['accuracy_exact']:.1f}% (torch {cell.upper()}, "
        "exact)"
    )
    return {
        "plaintext_mirror_polynomial": mirror["accuracy_polynomial"],
        f"plaintext_exact_{cell}": exact["accuracy_exact"],
    }


def _regression_baseline(cfg, summary, train_files, test_files, echo: Echo) -> dict:
    from mpcrnn import data as D
    from mpcrnn.regression_report import baseline
    from mpcrnn.secure import concat

    pooled = [
        D.scale_features(concat([D.load_party_file(f, cfg.spec) for f in files]), cfg.spec)
        for files in (train_files, [f for f in test_files or () if f])
    ]
    return baseline(cfg, summary, *pooled, echo)


def _revealed_and_dp(summary: dict, parties: list[dict], echo: Echo) -> None:
    revealed = [p["train_accuracy_revealed"] for p in parties if "train_accuracy_revealed" in p]
    if revealed:
        summary["train_accuracy_revealed"] = revealed[0]
        echo(
            "  training accuracy (revealed with --reveal-metrics, in the ledger): "
            f"{100 * revealed[0]:.1f}%"
        )
    dp = next((p["dp"] for p in parties if "dp" in p), None)
    if not dp:
        return
    summary["dp"] = dp
    eps = "inf (no noise)" if dp["epsilon"] is None else f"{dp['epsilon']:.3g}"
    aware = dp["epsilon_vs_schedule_aware_party"]["epsilon"]
    sampling = dp["sampling"]
    echo(
        f"  DP-SGD: epsilon {eps} at delta {dp['delta']:g} ({dp['accountant']}, sigma "
        f"{dp['noise_multiplier']:.3g}, C {dp['clip_norm']:g}, Poisson q "
        f"{sampling['sample_rate']:.3g}, {sampling['steps']} steps) against observers of the "
        "weights; against a data party (knows the schedule): "
        f"{'inf' if aware is None else f'{aware:.3g}'}"
    )
