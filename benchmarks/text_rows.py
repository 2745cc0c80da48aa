"""Text on shares over seeds: SMS spam accuracy and F1, and the character language model's bits
per character, for torch (exact activations), the plaintext mirror (the run's polynomials) and
MPC (3 parties + dealer through the launcher), each on the demo's data and schedule
(``--demo sms``, ``--demo shakespeare``).  Writes a markdown table with a header (command,
commit, machine, date).

Run as a file::

    .venv/bin/python benchmarks/text_rows.py --seeds 0 1 2 [--mpc] [--tasks sms lm]

F1 is the spam class's.  MPC's numbers come from the opened model that party 0 wrote (its
torch export with exact activations: F1 needs every prediction, which no party's report holds)
and, for accuracy and bits per character, also from the parties' pooled local reports
(polynomial activations, as trained).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import common
import numpy as np
import torch


def scores(pred: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy and the spam (class 1) F1 of predicted labels."""
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    return {"accuracy": float((pred == y).mean()), "f1": 2 * tp / max(1, 2 * tp + fp + fn)}


def _load(cfg, files):
    from mpcrnn import data as D
    from mpcrnn.secure import concat

    return D.scale_features(concat([D.load_party_file(f, cfg.spec) for f in files]), cfg.spec)


def sms_row(seed: int, mpc: bool) -> dict:
    from launch.runfile import build
    from mpcrnn.backend import PlainBackend
    from mpcrnn.model import export_state_dicts
    from mpcrnn.secure import train_plain_mirror
    from mpcrnn.text_demo import with_demo_settings, write_sms_party_files
    from mpcrnn.train import predict_plain

    cfg = build(with_demo_settings({"run": {"insecure_plaintext_transport": True}}), {"seed": seed})
    work = Path(tempfile.mkdtemp(prefix="mpcrnn-text-"))
    train_files, test_files, _ = write_sms_party_files(cfg.parties, seed, work)
    tr, te = _load(cfg, train_files), _load(cfg, test_files)
    x, lengths = torch.as_tensor(te.x), torch.as_tensor(te.lengths)

    def exact(model) -> dict:
        with torch.no_grad():
            return scores(model(x, lengths).argmax(1).numpy(), te.y)

    out: dict = {"seed": seed, "test_rows": int(len(te.y))}
    t0 = time.perf_counter()
    out["torch"] = exact(export_state_dicts(cfg.model, train_plain_mirror(cfg, tr, True)).double())
    params = train_plain_mirror(cfg, tr, exact=False)
    poly = predict_plain(PlainBackend(cfg.activation), cfg.model, params, te.x, te.lengths)
    out["mirror"] = scores(poly.argmax(1).numpy(), te.y)
    out["plain_seconds"] = time.perf_counter() - t0
    if mpc:
        from launch.launcher import launch_local
        from mpcrnn.model_file import read_model_file

        t0 = time.perf_counter()
        reports = launch_local(cfg, train_files, test_files, str(work), show_progress=False)
        out["mpc_seconds"] = time.perf_counter() - t0
        out["mpc"] = exact(read_model_file(work / "model-party0.pt")[2])
        tests = [r["local_test"] for r in reports if "local_test" in r]
        right = sum(t["accuracy_polynomial"] * t["rows"] for t in tests)
        out["mpc"]["accuracy_polynomial"] = right / sum(t["rows"] for t in tests)
    return out


def lm_row(seed: int, mpc: bool) -> dict:
    from launch.runfile import build
    from mpcrnn.lm_demo import with_demo_settings, write_party_files
    from mpcrnn.secure import evaluate_local, train_plain_mirror
    from mpcrnn.text_lm import pooled_bpc

    cfg = build(with_demo_settings({"run": {"insecure_plaintext_transport": True}}), {"seed": seed})
    work = Path(tempfile.mkdtemp(prefix="mpcrnn-lm-"))
    train_files, test_files, _ = write_party_files(cfg.parties, work)
    tr, te = _load(cfg, train_files), _load(cfg, test_files)
    out: dict = {"seed": seed}
    t0 = time.perf_counter()
    ex = evaluate_local(cfg, train_plain_mirror(cfg, tr, True), te, polynomial=False)
    out["torch"] = pooled_bpc([ex], "bits_exact")
    out["mirror"] = pooled_bpc(
        [evaluate_local(cfg, train_plain_mirror(cfg, tr, False), te)], "bits_polynomial"
    )
    out["tokens"] = ex["tokens"]
    out["plain_seconds"] = time.perf_counter() - t0
    if mpc:
        from launch.launcher import launch_local

        t0 = time.perf_counter()
        reports = launch_local(cfg, train_files, test_files, str(work), show_progress=False)
        out["mpc_seconds"] = time.perf_counter() - t0
        tests = [r["local_test"] for r in reports if "local_test" in r]
        out["mpc"] = pooled_bpc(tests, "bits_polynomial")
        out["mpc_exact"] = pooled_bpc(tests, "bits_exact")
    return out


def _f(x, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown(results: dict) -> str:
    lines = []
    if results.get("sms"):
        lines += [
            "SMS spam (`--demo sms`: 500 train / 500 test rows, balanced, 3 organizations, "
            "printable-ASCII vocabulary V = 96, max_len 40, Embedding 16 + GRU 32, Adam lr 0.05, "
            "6 epochs).  Accuracy and spam F1 on the 500 test rows; MPC: the opened model (exact "
            "activations), and in brackets the parties' pooled reports (polynomials).",
            "",
            "| seed | torch acc | mirror acc | MPC acc | torch F1 | mirror F1 | MPC F1 | "
            "mirror - torch (points) | MPC - mirror (points) | MPC s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results["sms"]:
            m = r.get("mpc")
            lines.append(
                _row(
                    [
                        str(r["seed"]),
                        _f(r["torch"]["accuracy"]),
                        _f(r["mirror"]["accuracy"]),
                        f"{m['accuracy']:.3f} ({m['accuracy_polynomial']:.3f})" if m else "-",
                        _f(r["torch"]["f1"]),
                        _f(r["mirror"]["f1"]),
                        _f(m["f1"]) if m else "-",
                        f"{100 * (r['mirror']['accuracy'] - r['torch']['accuracy']):+.1f}",
                        f"{100 * (m['accuracy'] - r['mirror']['accuracy']):+.1f}" if m else "-",
                        _f(r.get("mpc_seconds"), ".0f"),
                    ]
                )
            )
        lines.append("")
    if results.get("lm"):
        lines += [
            "Character LM (`--demo shakespeare`: 15,000 training characters, 3 organizations, "
            "V = 37, windows of 24, Embedding 16 + GRU 32, AdamW lr 0.02, 2 epochs = 82 steps). "
            "Held-out bits per character (2,997 predicted tokens); MPC: the parties' pooled "
            "reports (polynomials; exact activations in brackets).",
            "",
            "| seed | torch | mirror | MPC | MPC - mirror | MPC s |",
            "|---|---|---|---|---|---|",
        ]
        for r in results["lm"]:
            mpc = r.get("mpc")
            lines.append(
                _row(
                    [
                        str(r["seed"]),
                        _f(r["torch"]),
                        _f(r["mirror"]),
                        f"{mpc:.3f} ({r['mpc_exact']:.3f})" if mpc is not None else "-",
                        f"{mpc - r['mirror']:+.3f}" if mpc is not None else "-",
                        _f(r.get("mpc_seconds"), ".0f"),
                    ]
                )
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(smoke=False, seeds=(0, 1, 2))]
    )
    ap.add_argument("--mpc", action="store_true", help="also the MPC runs (minutes per seed)")
    ap.add_argument("--tasks", nargs="+", choices=("sms", "lm"), default=["sms", "lm"])
    args = common.parse(ap)
    results: dict = {task: [] for task in args.tasks}
    title = "Text on shares: SMS spam and the character language model"
    for task in args.tasks:
        for seed in args.seeds:
            results[task].append((sms_row if task == "sms" else lm_row)(seed, args.mpc))
            print(results[task][-1], flush=True)
            path = common.write_results("text_rows", markdown(results), results, args, title)
    print(path.read_text())


if __name__ == "__main__":
    main()
