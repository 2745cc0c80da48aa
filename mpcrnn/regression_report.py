"""The regression lines of ``mpcrnn train``'s report (:mod:`mpcrnn.report`): test RMSE, MAE and
R^2 pooled from each party's own evaluation (its sums, in the target's units), and (demo only)
the plaintext baselines: the mirror, torch and the training mean, same rows and schedule."""

from __future__ import annotations

from mpcrnn.regression import mean_baseline, pooled


def test_metrics(cfg, parties: list[dict], summary: dict, echo) -> None:
    """Pool the parties' ``local_test`` sums (:func:`mpcrnn.regression.evaluate_values`)."""
    tests = [p["local_test"] for p in parties if "local_test" in p]
    if not tests:
        return
    kinds = ("exact",) if cfg.mode == "fedavg" else ("exact", "polynomial")
    out = {k: pooled([t[k] for t in tests]) for k in kinds}
    who = "FedAvg" if cfg.mode == "fedavg" else "MPC"
    summary["test_regression"] = {f"{who.lower()}_model_{k}": v for k, v in out.items()}
    ex = out["exact"]
    line = (
        f"  {who} model test RMSE ({ex['rows']} rows, pooled from each party's local "
        f"evaluation, target units): {ex['rmse']:.3f} (torch, exact activations)"
    )
    if "polynomial" in out:
        line += f", {out['polynomial']['rmse']:.3f} (polynomial)"
    echo(line + f"; MAE {ex['mae']:.3f}, R^2 {ex['r2']:.3f}")
    naive = [p["local_naive"] for p in parties if "local_naive" in p]
    if naive:  # forecasting: the naive forecasts on the same windows, pooled the same way
        got = {k: pooled([n[k] for n in naive]) for k in naive[0]}
        summary["test_regression"].update({f"naive_{k}": v for k, v in got.items()})
        names = {"last_value": "last value", "seasonal_last": f"seasonal last ({cfg.spec.season})"}
        echo(
            "  naive forecasts, same test windows: "
            + ", ".join(f"{names[k]} RMSE {v['rmse']:.3f}" for k, v in got.items())
        )


def baseline(cfg, summary: dict, train_all, test_all, echo) -> dict:
    """The demo's plaintext baselines on the pooled rows (scaled SequenceData): the mirror
    (polynomials), torch (exact) and the training mean, on the pooled test rows."""
    from mpcrnn.regression import unscale_targets
    from mpcrnn.secure import evaluate_local, train_plain_mirror

    cell = cfg.model.cell.upper()
    exact = evaluate_local(cfg, train_plain_mirror(cfg, train_all, exact=True), test_all, False)
    y_tr, y_te = (unscale_targets(d.y, cfg.spec) for d in (train_all, test_all))
    mean = mean_baseline(y_tr, y_te)
    out = {f"torch_exact_{cfg.model.cell}": exact["exact"], "training_mean": mean}
    if cfg.mode == "fedavg":
        echo(
            f"  centralized plaintext (torch-exact {cell}): test RMSE "
            f"{exact['exact']['rmse']:.3f}; training mean: {mean['rmse']:.3f}"
        )
        return out
    mirror = evaluate_local(cfg, train_plain_mirror(cfg, train_all, exact=False), test_all)
    out["mirror_polynomial"] = mirror["polynomial"]
    echo(
        f"  plaintext, same seed and schedule: test RMSE {mirror['polynomial']['rmse']:.3f} "
        f"(mirror, polynomial), {exact['exact']['rmse']:.3f} (torch {cell}, exact); "
        f"training mean: {mean['rmse']:.3f}"
    )
    mpc = summary.get("test_regression", {}).get("mpc_model_polynomial")
    if mpc:
        out["mpc_over_mirror_rmse"] = mpc["rmse"] / mirror["polynomial"]["rmse"]
    return out
