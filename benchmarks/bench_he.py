"""TTP vs HE randomness for one W1 training step (GRU H=32, batch 32, T=29), 2 parties, in ONE run
on one machine: elements per request kind, bytes per party (offline: the dealer's answers or
the HE ciphertexts; online: the openings), seconds and CPU seconds per step with the next
step's randomness prefetched beside it (the dealer's, or the HE prefetch thread's), how much of
the HE work that hid, and a projection at 1 Gbit/s and 100 Mbit/s (bytes / bandwidth added to
the step).

Run: ``.venv/bin/python benchmarks/bench_he.py [--repeats N]``; writes ``bench_he.md`` and .json
through ``common.write_results`` (a header naming command, commit, date, machine and load).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import common


def plan_elements(plan) -> Counter:
    """Elements of each request kind in a recorded step plan (outputs; AND: 64-bit words)."""
    import torch

    from protocols.randomness.requests import AndRequest, MaskProductRequest, ProductRequest

    out = Counter()
    for group in plan:
        for r in group:
            kind = type(r).__name__.replace("Request", "").lower()
            if isinstance(r, (ProductRequest, MaskProductRequest)):
                kind += ":" + r.op.value
                n = torch.Size(r.output_size()).numel()
            elif isinstance(r, AndRequest):
                n = torch.Size(r.size_a).numel()
            else:
                n = torch.Size(r.size).numel()
            out[kind] += int(n)
    return out


def dealer_bytes(plan) -> int:
    """Bytes the dealer sends party 0 for a plan (8 per answer element)."""
    import torch

    return 8 * sum(torch.Size(r.output_size()).numel() for g in plan for r in g)


def step_party(session, repeats, prefetch=None):
    """One provider's W1 steps; ``prefetch`` (HE): force the next step's plan on a thread on or
    off at both parties (default: the provider's own rule)."""
    t = session.triples
    if prefetch is not None:
        t.prefetch = prefetch
    waits, cpus, overlap = [], [], []
    begin = t.begin

    def timed_begin(key, next_key=None):
        if hasattr(t, "overlap"):  # HE: the prefetch totals before this begin's wait
            o = t.overlap
            overlap.append((o.offline_s, o.waited_s, o.offline_cpu_s))
        w, c = time.perf_counter(), time.process_time()
        begin(key, next_key)
        waits.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)

    t.begin = timed_begin
    res = common.mpcrnn_step(session, 32, 29, 32, repeats)
    plan = next(iter(t._plans.values()))
    res["elements"] = dict(plan_elements(plan))
    res["dealer_bytes"] = dealer_bytes(plan)
    res["begin_wait"] = sum(waits[2 : 2 + repeats]) / repeats  # the measured steps' begins
    # offline CPU: inside begin (the dealer's answers, or HE computed there), or the thread's
    res["offline_cpu"] = sum(cpus[2 : 2 + repeats]) / repeats
    if overlap and prefetch is not False:  # the prefetches the measured steps' begins took
        (o0, w0, c0), (o1, w1, c1) = overlap[2], overlap[2 + repeats]
        res["prefetch_s"] = (o1 - o0) / repeats
        res["hidden_s"] = (o1 - o0 - (w1 - w0)) / repeats
        res["offline_cpu"] = (c1 - c0) / repeats
    return res


def row(provider, outs, repeats) -> dict:
    p0 = outs[0]
    mine = p0["mine"]["bytes_sent"]
    # the step function's byte counters hold the LAST step (reset at every step)
    he = sum(v for k, v in mine.items() if k.startswith("he_"))
    ot = mine.get("he_ot", 0)
    offline = he if provider == "HE" else p0["dealer_bytes"]
    online = p0["bytes"]
    step = sum(p0["times"]) / len(p0["times"])
    cpu = sum(sum(o["cpu"]) / len(o["cpu"]) for o in outs) / len(outs)
    return {
        "provider": provider,
        "elements": p0["elements"],
        "offline_bytes": offline,
        "ot_bytes": ot if provider == "HE" else 0,
        "online_bytes": online,
        "begin_wait": sum(o["begin_wait"] for o in outs) / len(outs),
        "offline_cpu": sum(o["offline_cpu"] for o in outs) / len(outs),
        "prefetch_s": sum(o.get("prefetch_s", 0.0) for o in outs) / len(outs),
        "hidden_s": sum(o.get("hidden_s", 0.0) for o in outs) / len(outs),
        "step_s": step,
        "step_cpu": cpu,
        "gbit": step + 8 * (offline + online) / 1e9,
        "mbit100": step + 8 * (offline + online) / 1e8,
    }


def markdown(rows, args) -> str:
    lines = [
        f"- steady-state steps averaged: {args.repeats} (plan recorded and warmed first)",
        "- offline bytes: sent by party 0 (HE ciphertexts) or received from the dealer (TTP)",
        "- step CPU s: each party's process CPU per step (TTP: the dealer's CPU not included), "
        "the mean over the 2 parties",
        "- step CPU s counts the process's threads: with HE, the next step's plan computed "
        "beside this one (a step's CPU is one plan's)",
        "- begin wait s: a step's wait at its start for its randomness (TTP: the dealer's "
        "prefetched answer; HE: the prefetch thread)",
        "- offline CPU s: a party's CPU for one step's randomness (TTP: receiving the dealer's "
        "answers; HE without prefetch: inside begin; with it: the prefetch thread's own CPU)",
        "- HE prefetch s: the thread's wall seconds for one plan; hidden s: of those, the ones "
        "that ran beside the step before (prefetch minus begin wait)",
        "- projections: step seconds + (offline + online bytes) x 8 / bandwidth",
        "",
        "| provider | offline MB | online MB | offline CPU s | step CPU s | step s | "
        "begin wait s | HE prefetch s | hidden s | @1 Gbit/s s | @100 Mbit/s s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ahead = "- | -"
        if r["prefetch_s"]:
            share = r["hidden_s"] / r["prefetch_s"]
            ahead = f"{r['prefetch_s']:.2f} | {r['hidden_s']:.2f} ({share:.1%})"
        name = r["provider"] + {None: "", False: ", no prefetch", True: ", prefetch"}[r["prefetch"]]
        lines.append(
            f"| {name} | {r['offline_bytes'] / 1e6:.1f} | {r['online_bytes'] / 1e6:.1f} | "
            f"{r['offline_cpu']:.2f} | {r['step_cpu']:.2f} | {r['step_s']:.2f} | "
            f"{r['begin_wait']:.2f} | {ahead} | "
            f"{r['gbit']:.2f} | {r['mbit100']:.2f} |"
        )
    best = min(rows[1:], key=lambda r: r["step_s"])
    ratio = best["step_s"] / rows[0]["step_s"]
    cpu_ratio = best["step_cpu"] / rows[0]["step_cpu"]
    with_p = rows[2]["step_s"] / rows[1]["step_s"]
    lines += [
        "",
        f"HE step / TTP step (the faster HE row): {ratio:.1f}x wall, {cpu_ratio:.1f}x CPU per "
        "party (target <= 10x)",
        f"- HE with the prefetch thread / without: {with_p:.3f}x the step's wall seconds (one "
        "core per party here: the thread and the online step share it and Python's GIL)",
        f"- HE offline bytes: {(rows[1]['offline_bytes'] - rows[1]['ot_bytes']) / 1e6:.1f} MB of "
        f"ciphertexts (products, B2A bits), {rows[1]['ot_bytes'] / 1e6:.1f} MB of OT extension "
        "(AND triples)",
        "",
    ]
    lines += ["| kind | elements per step |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(rows[0]["elements"].items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(smoke=False)]
    )
    ap.add_argument("--repeats", type=int, default=1)
    args = common.parse(ap)
    from launch.local_parties import run_parties

    rows = []
    for provider, prefetch in (("TTP", None), ("HE", False), ("HE", True)):
        outs = run_parties(step_party, 2, provider, (args.repeats, prefetch), timeout_s=3000)
        rows.append(row(provider, outs, args.repeats))
        rows[-1]["prefetch"] = prefetch
        print(rows[-1], flush=True)
    title = "TTP vs HE randomness, W1 step (GRU H=32, batch 32, T=29), 2 parties"
    path = common.write_results("bench_he", markdown(rows, args), {"rows": rows}, args, title)
    print(path.read_text())


if __name__ == "__main__":
    main()
