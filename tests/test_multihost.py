"""One party per host: `mpcrnn party` / `mpcrnn dealer` with a shared run-config file and the
torchrun-style environment (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE), as the README's
walkthrough: every host runs `mpcrnn keygen`, the fingerprints go into the shared run file's
[identities], and each process gets its own `--key`.

The multi-host test puts the dealer and each party in its own network namespace (``ip netns``
+ veth pairs on a bridge in a fourth namespace; addresses 10.231.x.0/24 exist only inside these
namespaces), with MPCRNN_LINK_IFNAME naming each host's interface.  It skips, saying why,
where namespaces cannot be made (not root, no CAP_SYS_ADMIN).  The loopback variant runs the
same commands on one host everywhere.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from launch.netns import host_commands as _commands
from launch.netns import host_files
from launch.netns import run_hosts as _run_hosts


def _setup_files(tmp: Path) -> list[str]:
    files = host_files(tmp)  # each host's identity, the shared run file, two parties' rows
    assert (tmp / "key-party0" / "key.pem").stat().st_mode & 0o777 == 0o600
    return files


def _assert_trained(results, tmp: Path):
    for code, _out, err in results:
        assert code == 0, err[-3000:]
    reports = [json.loads(results[i][1]) for i in (1, 2)]
    assert [r["rank"] for r in reports] == [0, 1] and all(r["received_model"] for r in reports)
    assert all(
        r["transport"]["secure"] and not r["transport"]["refused_connections"] for r in reports
    )
    assert (tmp / "out0" / "model-party0.pt").exists() and (
        tmp / "out1" / "model-party1.pt"
    ).exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_config_file_and_environment_rendezvous_on_loopback(tmp_path, subprocesses):
    files = _setup_files(tmp_path)
    port = str(_free_port())
    base = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": port,
        "WORLD_SIZE": "3",
        "MPCRNN_LINK_IFNAME": "lo",
    }
    envs = [{**base, "RANK": "2"}, {**base, "RANK": "0"}, {**base, "RANK": "1"}]
    _assert_trained(_run_hosts(_commands(tmp_path, files, [[], [], []]), envs), tmp_path)


@pytest.fixture
def three_hosts(subprocesses):
    import netns

    try:
        with netns.hosts(3) as made:
            yield made
    except netns.NetnsUnavailable as exc:
        pytest.skip(str(exc))


def test_parties_in_separate_network_namespaces(tmp_path, three_hosts, subprocesses):
    hosts, addrs = three_hosts
    files = _setup_files(tmp_path)
    # party 0 hosts the rendezvous on its own address; every process listens for links on its eth0
    base = {
        "MASTER_ADDR": addrs[1],
        "MASTER_PORT": "29517",
        "WORLD_SIZE": "3",
        "MPCRNN_LINK_IFNAME": "eth0",
    }
    envs = [{**base, "RANK": "2"}, {**base, "RANK": "0"}, {**base, "RANK": "1"}]
    prefix = [
        ["ip", "netns", "exec", hosts[0]],
        ["ip", "netns", "exec", hosts[1]],
        ["ip", "netns", "exec", hosts[2]],
    ]
    _assert_trained(_run_hosts(_commands(tmp_path, files, prefix), envs), tmp_path)
