"""The W1 harness's tables and plots (benchmarks/harness.py): the side-by-side markdown, the
modes table, the sweep plots, and the two projections they print (rounds per time step, the
WAN step).  Formatting only: the measurements are harness.py's."""

from __future__ import annotations

import statistics
from pathlib import Path


def rounds_per_time_step(sweeps: list[dict], parties: int) -> float | None:
    """Marginal rounds of one more time step (forward + backward): the slope of a step's counted
    rounds over T at the W1 shape, from the T sweep (None without two T points)."""
    pts = sorted(
        (p["T"], p["rounds"])
        for p in sweeps
        if p["parties"] == parties
        and p["provider"] == "TTP"
        and (p["B"], p["H"], p["cell"]) == (32, 32, "gru")
    )
    if len(pts) < 2 or pts[0][0] == pts[-1][0]:
        return None
    return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])


# ---------------------------------------------------------------- report


def wan_seconds(compute_s, rounds, nbytes, rtt_s, mbit):
    """Projected WAN step: every counted round costs one ONE-WAY latency (RTT / 2): in an opening
    all parties send at once and each waits for the others' messages, a gather is one hop, and
    the step's single dealer round trip is negligible.  Checked by benchmarks/wan_check.py
    (+10 ms RTT: 5.9 ms measured per counted round)."""
    return compute_s + rounds * rtt_s / 2 + nbytes * 8 / (mbit * 1e6)


def markdown(res) -> str:
    w1 = res["w1"]
    base1, base3 = (
        w1["torch GRU (exact, float32)"]["step_s"][0],
        w1["naive CrypTen autograd"]["step_s"][0],
    )
    lines = [
        f"{res['workload']}, {res['machine']}; {res['epochs']} epochs, median (min-max). "
        f"mpcrnn rounds/bytes per step: {res['mpcrnn_counts_from']}",
        "",
        "| row | s/step | s/epoch | x torch | x naive | rounds/step | MB/step (party 0) "
        "| peak RSS/party MB | test acc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in w1.items():
        med, lo, hi = r["step_s"]
        ep = r.get("epoch_s")
        ep_s = f"{ep[0]:.2f}" if ep else "-"
        rounds = f"{r['rounds_per_step']:.0f}" if "rounds_per_step" in r else "-"
        mb = f"{r['bytes_per_step'] / 1e6:.1f}" if "bytes_per_step" in r else "-"
        rss = f"{max(r['peak_rss_mb_per_party']):.0f}" if "peak_rss_mb_per_party" in r else "-"
        acc = (
            f"{100 * r['test_accuracy']:.1f}%"
            if "test_accuracy" in r
            else r.get("accuracy_note", "-")
        )
        if "test_accuracy_polynomial" in r:
            acc += f" ({100 * r['test_accuracy_polynomial']:.1f}%)"
        lines.append(
            f"| {name} | {med:.4f} ({lo:.4f}-{hi:.4f}) | {ep_s} | {med / base1:.0f}x "
            f"| {base3 / med:.1f}x | {rounds} | {mb} | {rss} | {acc} |"
        )
    lines += [
        "",
        "Test accuracy: the model evaluated with exact sigmoid/tanh "
        "(torch.nn.GRU, as `mpcrnn predict` does); "
        "in parentheses, with the polynomials it was trained with.",
    ]
    if res.get("seeds"):
        sd = res["seeds"]
        mean = lambda k: 100 * statistics.mean(x[k] for x in sd)  # noqa: E731
        lines += [
            "",
            "Rows 1 and 2 over training seeds (initial weights and batch order); "
            "exact evaluation (polynomial):",
            "",
            "| seed | torch GRU | mirror |",
            "|---:|---:|---:|",
        ]
        lines += [
            f"| {x['seed']} | {100 * x['torch']:.1f}% | {100 * x['mirror']:.1f}% "
            f"({100 * x['mirror_polynomial']:.1f}%) |"
            for x in sd
        ]
        lines.append(
            f"| mean | {mean('torch'):.1f}% | {mean('mirror'):.1f}% "
            f"({mean('mirror_polynomial'):.1f}%) |"
        )
    f = res["floor"]
    per_t = res.get("rounds_per_time_step", {})
    lines += [
        "",
        "Rounds per time step (GRU forward + backward; the slope of a step's counted rounds "
        "over T, party 0, dealer included): "
        + ", ".join(f"{p} parties {v:.1f}" for p, v in per_t.items() if v is not None)
        + (
            "; all-in (a whole W1 step / 29, softmax, clipping and the update included): "
            f"{res['rounds_all_in_per_time_step']:.1f}."
            if res.get("rounds_all_in_per_time_step")
            else "."
        ),
    ]
    lines += [
        "",
        "Round trip (the step's opening: every party sends 8 bytes to every other, 3 parties): "
        f"{1e3 * f['rtt_s']:.2f} ms; "
        f"truncation gather (8 bytes to party 0): {1e3 * f['gather_s']:.2f} ms; "
        f"bandwidth {f['bandwidth_MBps']:.0f} MB/s. "
        "mpcrnn step floor = openings x RTT + gathers x gather time + bytes / bandwidth = "
        f"{f['floor_s']:.2f} s; "
        f"wall / floor = {f['wall_over_floor']:.2f}.",
        "",
        "WAN projection for one mpcrnn step "
        "(compute = wall - local floor, plus rounds x RTT/2 + bytes / 100 Mbit/s):",
        "",
        "| RTT | projected s/step | x torch |",
        "|---:|---:|---:|",
    ]
    for rtt, secs in res["wan"].items():
        lines.append(f"| {rtt} ms | {secs:.2f} | {secs / base1:.0f}x |")
    if "modes" in res:
        lines += ["", mode_table(res["modes"])]
    lines += [
        "",
        "Sweeps (mpcrnn, one training step, CrypTen-counted rounds on party 0):",
        "",
        "| parties | provider | B | T | H | cell | s/step | rounds | fwd rounds / T | MB |",
        "|---:|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for p in res["sweeps"]:
        lines.append(
            f"| {p['parties']} | {p['provider']} | {p['B']} | {p['T']} | {p['H']} | {p['cell']} "
            f"| {p['step_s']:.2f} | {p['rounds']} | "
            f"{p['forward_rounds'] / p['T']:.1f} | {p['bytes'] / 1e6:.1f} |"
        )
    return "\n".join(lines)


def mode_table(modes: dict) -> str:
    t, m, f = modes["torch"], modes["mpc"], modes["fedavg"]
    target = f["target"]
    lines = [
        f"Training modes, time to reach the W1 accuracy ({100 * target:.1f}%, torch's, row 1). "
        "Communication "
        "is CrypTen's counter on party 0; seconds are training time (no process start-up).",
        "",
        "| mode | opened to the parties | schedule | train s | test acc | reached "
        "| comm. rounds | MB sent |",
        "|---|---|---|---:|---:|---|---:|---:|",
    ]
    lines.append(
        f"| plaintext torch (pooled rows: no privacy) | all data | {modes['epochs']} epochs "
        f"| {t['train_s']:.1f} | "
        f"{100 * t['test_accuracy']:.1f}% | by definition | - | - |"
    )
    lines.append(
        f"| mpc | final weights only | {modes['epochs']} epochs | {m['train_s']:.1f} "
        f"| {100 * m['test_accuracy']:.1f}% | "
        f"{'yes' if m['test_accuracy'] >= target else 'no'} (end of schedule) "
        f"| {m['total_rounds']} | {m['total_bytes'] / 1e6:.1f} |"
    )
    if f["round_reaching_target"] is not None:
        reach = (
            f"round {f['round_reaching_target']} of {f['rounds']}, "
            f"after {f['time_to_target_s']:.1f} s"
        )
        comm = f"{f['comm_rounds_to_target']:.0f} | {f['bytes_to_target'] / 1e6:.1f}"
    else:
        reach, comm = (
            f"not in {f['rounds']} rounds",
            f"{f['total_rounds']} | {f['total_bytes'] / 1e6:.1f}",
        )
    lines.append(
        f"| fedavg | {f['revealed_models']} global models (one per round) "
        f"| {f['rounds']} rounds x {f['local_epochs']} "
        f"local epochs | {f['train_s']:.1f} | {100 * f['test_accuracy']:.1f}% | {reach} | {comm} |"
    )
    return "\n".join(lines)


def plots(res, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    for key, label in (
        ("T", "sequence length T"),
        ("B", "batch size B"),
        ("parties", "data parties"),
    ):
        base = (3, "TTP", 32, 29, 32, "gru")
        pts = [
            p
            for p in res["sweeps"]
            if p.get("axis") == key
            or (p["parties"], p["provider"], p["B"], p["T"], p["H"], p["cell"]) == base
        ]
        if len(pts) < 2:
            continue
        pts.sort(key=lambda p: p[key])
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ax.plot([p[key] for p in pts], [p["step_s"] for p in pts], "o-")
        ax.set_xlabel(label)
        ax.set_ylabel("s / training step")
        ax.set_title(f"mpcrnn GRU step vs {key}")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out / f"harness-sweep_{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(str(path))
    return made


def summary(w1: dict, res: dict, files: list[Path]) -> None:
    mp, torch_row = w1["mpcrnn"], w1["torch GRU (exact, float32)"]
    print(
        f"\nSummary: mpcrnn {w1['naive CrypTen autograd']['step_s'][0] / mp['step_s'][0]:.1f}x "
        "faster than naive CrypTen per step, "
        f"{mp['step_s'][0] / torch_row['step_s'][0]:.0f}x slower than torch; test accuracy "
        f"{100 * mp['test_accuracy']:.1f}% vs "
        f"{100 * torch_row['test_accuracy']:.1f}% (torch, exact); "
        f"peak RSS {max(mp['peak_rss_mb_per_party']):.0f} MB per party; "
        f"harness ran {res['seconds']:.0f} s. Files: " + ", ".join(str(f) for f in files)
    )
    mirror = w1["mirror, polynomials (float64)"]
    # same seed, schedule and math
    if abs(mp["test_accuracy_polynomial"] - mirror["test_accuracy_polynomial"]) > 0.01:
        print(
            f"WARNING: mpcrnn ({100 * mp['test_accuracy_polynomial']:.1f}%) "
            "and the plaintext mirror "
            f"({100 * mirror['test_accuracy_polynomial']:.1f}%) differ by more than 1 point "
            "with the same polynomials: "
            "check that both rows train on the same (once-scaled) data"
        )
