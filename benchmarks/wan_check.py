"""Check the WAN projection's bandwidth term against a measured run (needs root: ip netns, tc).

Dealer and 2 parties in separate network namespaces (tests/netns.py) train 2 steps of the W1
GRU (batch 20) through `mpcrnn party` / `mpcrnn dealer`, once unthrottled and once with `tc tbf`
capping every host's eth0.  The steady-state step's slowdown is compared with bytes sent / rate.
`tc netem` (added delay) is not available on this kernel, so only bandwidth is checked.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    import netns
    import test_multihost as M

    rate_mbit = 100
    with netns.hosts(3) as (hosts, addrs):
        steps = {}
        for rate in (None, f"{rate_mbit}mbit"):
            netns.limit_bandwidth(hosts, rate)
            tmp = Path(tempfile.mkdtemp())
            files = M._setup_files(tmp)
            (tmp / "run.toml").write_text(M.RUN_TOML.replace("hidden = 4", "hidden = 32"))
            base = {"MASTER_ADDR": addrs[1], "MASTER_PORT": "29519", "WORLD_SIZE": "3", "GLOO_SOCKET_IFNAME": "eth0"}
            envs = [{**base, "RANK": "2"}, {**base, "RANK": "0"}, {**base, "RANK": "1"}]
            res = M._run_hosts(M._commands(tmp, files, [["ip", "netns", "exec", h] for h in hosts]), envs, timeout=900)
            if any(code != 0 for code, _, _ in res):
                raise SystemExit("run failed:\n" + res[1][2][-2000:])
            report = json.loads(res[1][1])
            steps[rate] = report["step_seconds"][-1]  # the steady-state step
            # bytes party 0 sends per step in our openings (2 parties: a gloo all-reduce sends each
            # element once); CrypTen's counter books 2x per all-reduce, and CrypTen's comparison
            # circuits (max, clipping) are not in ours: they are small next to the openings
            sent = report["communication"]["total_bytes"] / len(report["step_seconds"])
    measured = steps[f"{rate_mbit}mbit"] - steps[None]
    projected = sent * 8 / (rate_mbit * 1e6)
    print(f"steady-state step: {steps[None]:.2f} s unthrottled, {steps[f'{rate_mbit}mbit']:.2f} s at {rate_mbit} Mbit/s: "
          f"+{measured:.2f} s measured, +{projected:.2f} s projected from {sent / 1e6:.1f} MB sent per step "
          f"(ratio {measured / projected:.2f})")


if __name__ == "__main__":
    main()
