"""Flags every script shares, and the one results writer (with who made each result)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"  # full runs
SCRATCH = ROOT / "bench-out"  # --quick and --smoke runs (git ignores it)
# when this script started (importing this module is among the first things a script does);
# the commit is added by parse(), not here: party processes import this module too
_START: dict = {"time": time.time(), "load": os.getloadavg()}

# ---------------------------------------------------------------- flags


def parent(*, smoke: bool = True, seeds: tuple[int, ...] | None = None) -> argparse.ArgumentParser:
    """The flags every script shares, for ``ArgumentParser(parents=[common.parent()])``:
    ``--quick``, ``--out``, and ``--smoke`` (unless ``smoke=False``), ``--seeds`` (when given
    a default)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--quick", action="store_true", help="a shorter run (make bench-quick)")
    if smoke:
        p.add_argument(
            "--smoke", action="store_true", help="seconds-scale: for the test that runs it"
        )
    p.add_argument(
        "--out",
        type=Path,
        help="folder for <name>.md and <name>.json (default: benchmarks/results/ for a full "
        "run, bench-out/ for --quick or --smoke)",
    )
    if seeds is not None:
        p.add_argument("--seeds", nargs="+", type=int, default=list(seeds), help="training seeds")
    return p


def parse(ap: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``ap.parse_args`` with ``--out`` resolved (see :func:`parent`), the commit recorded, and
    the parties' links on loopback unless the environment says otherwise."""
    args = ap.parse_args(argv)
    short = getattr(args, "quick", False) or getattr(args, "smoke", False)
    if getattr(args, "out", None) is None:
        args.out = SCRATCH if short else RESULTS
    _START["commit"] = git_commit()
    os.environ.setdefault("MPCRNN_LINK_IFNAME", "lo")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    return args


# ---------------------------------------------------------------- results


def git_commit() -> str:
    """``git rev-parse --short HEAD``, plus ``+dirty`` when files differ from it (outside
    benchmarks/results/, which the scripts themselves write)."""

    def git(*a):
        return subprocess.run(
            ["git", "-C", str(ROOT), *a], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", ".", ":(exclude)benchmarks/results")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + ("+dirty" if dirty else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def provenance() -> dict:
    """Who made a result: command line, commit, start and end (UTC), machine, load averages."""
    argv = list(sys.argv)
    try:
        argv[0] = str(Path(argv[0]).resolve().relative_to(ROOT))
    except ValueError:
        pass
    end = time.time()
    iso = lambda t: datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")  # noqa: E731
    return {
        "command": shlex.join(["python", *argv]),
        "commit": _START.get("commit") or git_commit(),
        "started": iso(_START["time"]),
        "finished": iso(end),
        "seconds": round(end - _START["time"], 1),
        "machine": {"node": platform.node(), "cpu": _cpu_model(), "cpus": os.cpu_count()},
        "load_start": [round(x, 2) for x in _START["load"]],
        "load_end": [round(x, 2) for x in os.getloadavg()],
        "versions": {
            "python": platform.python_version(),
            **{p: _version(p) for p in ("torch", "crypten", "numpy")},
        },
    }


def header(title: str, prov: dict) -> str:
    m, v = prov["machine"], prov["versions"]
    load = lambda xs: " ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    return "\n".join(
        [
            f"# {title}",
            "",
            "> Written by the command below; rerun it to reproduce.",
            ">",
            f"> - Command: `{prov['command']}`",
            f"> - Commit: `{prov['commit']}`",
            f"> - Date: {prov['started']} to {prov['finished']} ({prov['seconds']:.0f} s)",
            f"> - Machine: `{m['node']}`, {m['cpu']}, {m['cpus']} logical CPUs; "
            + ", ".join(f"{k} {x}" for k, x in v.items()),
            f"> - Load average (1, 5, 15 min): {load(prov['load_start'])} at start, "
            f"{load(prov['load_end'])} at end",
        ]
    )


def _jsonable(o):
    if hasattr(o, "tolist"):  # numpy and torch values
        return o.tolist()
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    return str(o)


def _first_sentence(doc: str) -> str:
    words = " ".join(doc.strip().split("\n\n")[0].split())
    return re.split(r"(?<=[.?!])\s", words, maxsplit=1)[0].rstrip(".")


def write_results(
    name: str, markdown_table: str, data, args: argparse.Namespace, title: str | None = None
) -> Path:
    """Write ``<args.out>/<name>.md`` (:func:`header`, then ``markdown_table``) and
    ``<args.out>/<name>.json`` (``{"provenance": ..., "data": data}``); returns the .md path.
    ``title``: the page's heading (default: the first sentence of the running script's
    docstring).  Call it again to replace a partial result of a long run."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance()
    title = title or _first_sentence(getattr(sys.modules.get("__main__"), "__doc__", None) or name)
    md = out / f"{name}.md"
    md.write_text(header(title, prov) + "\n\n" + markdown_table.rstrip() + "\n")
    payload = {"provenance": prov, "data": data}
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    return md


def read_results(path: Path):
    """The ``data`` of a file :func:`write_results` wrote (a JSON file written before it
    existed, without provenance, is returned as it is)."""
    got = json.loads(Path(path).read_text())
    return got["data"] if isinstance(got, dict) and set(got) == {"provenance", "data"} else got
