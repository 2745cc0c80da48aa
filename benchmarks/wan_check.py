"""Check the WAN projection's two terms against measured runs (needs root: ip netns, tc, TUN).

The harness projects a WAN step as ``compute + rounds x RTT + bytes / rate``.  Here the dealer
and 2 parties run in separate network namespaces (:mod:`launch.netns`) and train 2 steps of the W1
GRU (batch 20) through `mpcrnn party` / `mpcrnn dealer`:

* bandwidth: once unthrottled and once with `tc tbf` capping every host's eth0 at 100 Mbit/s;
  the steady-state step's slowdown is compared with bytes sent / rate;
* delay: `tc netem` is not in this kernel, so the hosts are linked through a user-space relay
  (:class:`launch.netns.DelayRelay`, TUN devices) that holds every packet for d/2; once with
  d = 0 and once with d = 10 ms added round trip; the steady-state step's slowdown is compared with
  (CrypTen rounds of that step, on party 0, dealer round trips included) x d/2: an opening
  costs one one-way latency (every party sends at once), a gather one hop.

    .venv/bin/python benchmarks/wan_check.py [--only bandwidth|delay]

Writes ``wan_check.md`` and .json (``common.write_results``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import common

from launch import netns


def _train(hosts, addrs, ifname: str, port: int) -> dict:
    tmp = Path(tempfile.mkdtemp())
    files = netns.host_files(tmp, hidden=32)  # every host's pinned identity, in run.toml
    base = {
        "MASTER_ADDR": addrs[1],
        "MASTER_PORT": str(port),
        "WORLD_SIZE": "3",
        "MPCRNN_LINK_IFNAME": ifname,
    }
    envs = [{**base, "RANK": "2"}, {**base, "RANK": "0"}, {**base, "RANK": "1"}]
    res = netns.run_hosts(
        netns.host_commands(tmp, files, [["ip", "netns", "exec", h] for h in hosts]),
        envs,
        timeout=900,
    )
    if any(code != 0 for code, _, _ in res):
        raise SystemExit("run failed:\n" + res[1][2][-2000:])
    return json.loads(res[1][1])


def bandwidth(rate_mbit: int = 100) -> dict:
    steps, sent = {}, 0.0
    with netns.hosts(3) as (hosts, addrs):
        for rate in (None, f"{rate_mbit}mbit"):
            netns.limit_bandwidth(hosts, rate)
            report = _train(hosts, addrs, "eth0", 29519)
            steps[rate] = report["step_seconds"][-1]  # the steady-state step
            # bytes party 0 sends per step in our openings (2 parties: a gloo all-reduce sends each
            # element once); CrypTen's counter books 2x per all-reduce, and CrypTen's comparison
            # circuits (max, clipping) are not in ours: they are small next to the openings
            sent = report["communication"]["total_bytes"] / len(report["step_seconds"])
    measured = steps[f"{rate_mbit}mbit"] - steps[None]
    projected = sent * 8 / (rate_mbit * 1e6)
    print(
        f"bandwidth: steady-state step {steps[None]:.2f} s unthrottled, "
        f"{steps[f'{rate_mbit}mbit']:.2f} s at {rate_mbit} Mbit/s: "
        f"+{measured:.2f} s measured, +{projected:.2f} s projected from "
        f"{sent / 1e6:.1f} MB sent per step "
        f"(ratio {measured / projected:.2f})"
    )
    return {
        "rate_mbit": rate_mbit,
        "measured_s": measured,
        "projected_s": projected,
        "ratio": measured / projected,
    }


def delay(rtt_ms: float = 10.0) -> dict:
    steps, rounds = {}, 0
    for d in (0.0, rtt_ms):
        with netns.delayed_hosts(3, d / 2e3) as (hosts, addrs, _relay):
            report = _train(hosts, addrs, "tun0", 29521)
        steps[d] = report["step_seconds"][-1]
        rounds = report["step_rounds"][-1]
    measured = steps[rtt_ms] - steps[0.0]
    projected = (
        rounds * rtt_ms / 2 / 1e3
    )  # the harness's model: one one-way latency per counted round
    print(
        f"delay: steady-state step {steps[0.0]:.2f} s through the relay, "
        f"{steps[rtt_ms]:.2f} s with +{rtt_ms:g} ms round trip: "
        f"+{measured:.2f} s measured, +{projected:.2f} s projected from "
        f"{rounds} rounds x {rtt_ms / 2:g} ms (RTT/2) "
        f"(ratio {measured / projected:.2f}: {measured / rounds * 1e3:.1f} ms per counted round)"
    )
    return {
        "rtt_ms": rtt_ms,
        "rounds": rounds,
        "measured_s": measured,
        "projected_s": projected,
        "ratio": measured / projected,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(smoke=False)]
    )
    ap.add_argument("--only", choices=["bandwidth", "delay"])
    args = common.parse(ap)  # --quick changes nothing here: 2 training steps per run already
    out = {}
    if args.only in (None, "bandwidth"):
        out["bandwidth"] = bandwidth()
    if args.only in (None, "delay"):
        out["delay"] = delay()
    print(json.dumps(out))
    lines = ["| check | measured s | projected s | measured / projected |", "|---|---:|---:|---:|"]
    for name, r in out.items():
        what = f"+{r['rtt_ms']:g} ms RTT" if name == "delay" else f"{r['rate_mbit']} Mbit/s"
        lines.append(
            f"| {name} ({what}) | {r['measured_s']:.2f} | {r['projected_s']:.2f} "
            f"| {r['ratio']:.2f} |"
        )
    common.write_results(
        "wan_check", "\n".join(lines), out, args, title="The WAN projection against measured runs"
    )


if __name__ == "__main__":
    main()
