"""pytest configuration: one torch and one BLAS thread per process (2 shared cores thrash
otherwise: numpy's lstsq in ``fit_tanh`` runs 5x slower with a thread per core on a busy
machine), and the two test tiers.

A test that starts processes requests the fixture that starts them, and that fixture puts the
``processes`` marker on it (``pytest_collection_modifyitems`` below), so ``make test-fast``
(``-m "not processes and not slow"``) leaves it out and ``make test`` runs it:

* ``parties``: :func:`mpc_harness.run_parties` (party processes plus the dealer);
* ``launcher``: :func:`launch.launcher.launch_local` (what ``mpcrnn train`` runs);
* ``kill_resume``: :func:`mpc_harness.run_kill_resume` (three launcher runs);
* ``subprocesses``: the :mod:`subprocess` module, for the ``mpcrnn`` command, benchmark scripts,
  ``mpcrnn party`` / ``dealer`` processes started one by one, ``ip netns``.

A test that starts them through a helper of its module (which may keep importing the function)
or through another fixture requests the fixture too; pytest's ``item.fixturenames`` includes
the fixtures of fixtures, so a module fixture that depends on ``launcher`` marks every test
that uses it.

The guard: while a test without the marker runs (set-up, call, teardown), starting a process
(``subprocess.Popen``, ``multiprocessing`` ``Process.start``, ``os.fork`` / ``os.system`` /
``os.posix_spawn``) raises :class:`ProcessesUnmarked`, and the test fails with a message naming
the fixtures even where the code under test swallows the exception.  The fast tier cannot grow a
slow test unnoticed.
"""

import functools
import multiprocessing.process
import os
import subprocess

import pytest

os.environ.setdefault("MPCRNN_LINK_IFNAME", "lo")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # read when numpy loads its BLAS: before any test imports it

PROCESS_FIXTURES = frozenset({"parties", "launcher", "kill_resume", "subprocesses"})


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)
    _install_guard()


# ---------------------------------------------------------------- the fixtures that start processes


@pytest.fixture(scope="session")
def parties():
    """``run_parties(fn, world_size=3, provider="TTP", ...)``: ``fn`` in party processes."""
    from mpc_harness import run_parties

    return run_parties


@pytest.fixture(scope="session")
def launcher():
    """``launch_local(cfg, files, tests, out, ...)``: a whole run, as ``mpcrnn train``."""
    from launch.launcher import launch_local

    return launch_local


@pytest.fixture(scope="session")
def kill_resume():
    """``run_kill_resume(cfg, files, workdir, ...)``: reference run, killed run, resumed run."""
    from mpc_harness import run_kill_resume

    return run_kill_resume


@pytest.fixture(scope="session")
def subprocesses():
    """The :mod:`subprocess` module: the test runs commands (``mpcrnn ...``, scripts, ``ip``)."""
    return subprocess


def pytest_collection_modifyitems(config, items):
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.processes)


# ---------------------------------------------------------------- the guard


class ProcessesUnmarked(RuntimeError):
    """A test without the ``processes`` marker started a process."""


_running: list = [None]  # the test item whose set-up, call or teardown is running now
_violations: dict[str, str] = {}  # nodeid -> message, reported by pytest_runtest_makereport


def _check_may_start(what: str) -> None:
    item = _running[0]
    if item is None or item.get_closest_marker("processes") is not None:
        return
    message = (
        f"{item.nodeid} starts a process ({what}) but is not marked `processes`: request the "
        f"fixture that starts it ({', '.join(sorted(PROCESS_FIXTURES))}; see tests/conftest.py) "
        "so that `make test-fast` leaves it out"
    )
    _violations.setdefault(item.nodeid, message)
    raise ProcessesUnmarked(message)


def _guard(owner, name: str, what: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def guarded(*args, **kwargs):
        _check_may_start(what)
        return original(*args, **kwargs)

    setattr(owner, name, guarded)


def _install_guard() -> None:
    if getattr(subprocess.Popen._execute_child, "__wrapped__", None) is not None:
        return  # installed once per interpreter
    # Popen's own start (its __init__ cleans up and re-raises), not __init__: a half-built
    # Popen would complain again when it is collected
    _guard(subprocess.Popen, "_execute_child", "subprocess.Popen")
    _guard(multiprocessing.process.BaseProcess, "start", "multiprocessing Process.start")
    for name in ("fork", "system", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            _guard(os, name, f"os.{name}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _running[0] = item
    try:
        return (yield)
    finally:
        _running[0] = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    message = _violations.pop(item.nodeid, None)
    if message is not None and not report.failed:
        report.outcome = "failed"
        report.longrepr = message
    return report
