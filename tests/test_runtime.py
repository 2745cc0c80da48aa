"""The CrypTen door: torch-2.x import shim, snapshot config, version errors, no shadowing."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_crypten_imports_and_config_snapshot_follows_changes():
    from protocols.runtime import fast_config_enabled, load_crypten, use_fast_config

    crypten = load_crypten()
    from crypten.config import cfg

    assert fast_config_enabled()
    assert cfg.encoder.precision_bits == 16 and cfg["mpc.provider"] in ("TFP", "TTP")
    before = cfg.functions.exp_iterations
    with cfg.temp_override({"functions.exp_iterations": before + 3}):
        assert cfg.functions.exp_iterations == before + 3
    assert cfg.functions.exp_iterations == before
    cfg.functions.exp_iterations = before + 1  # write-through from a section
    assert (
        cfg.functions.exp_iterations == before + 1
        and cfg.config.functions.exp_iterations == before + 1
    )
    cfg.functions.exp_iterations = before
    use_fast_config(False)
    assert cfg.functions.exp_iterations == before and not fast_config_enabled()
    use_fast_config(True)
    assert crypten.__version__ == "0.4.1"


def test_results_identical_with_and_without_fast_config():
    import torch

    from protocols.network.parties import init_in_process
    from protocols.runtime import load_crypten, use_fast_config

    crypten = load_crypten()
    init_in_process()
    x = crypten.cryptensor(torch.tensor([[0.5, -1.25], [2.0, 3.5]]))
    outs = []
    for fast in (False, True):
        use_fast_config(fast)
        outs.append((x.matmul(x).sigmoid()).get_plain_text())
    use_fast_config(True)
    assert torch.equal(outs[0], outs[1])


def test_wrong_torch_version_is_a_clear_error(monkeypatch):
    import torch

    from protocols.errors import InstallError
    from protocols.runtime import _check_torch

    monkeypatch.setattr(torch, "__version__", "1.13.0")
    with pytest.raises(
        InstallError, match=r"torch version: expected 2\.13\.x, got 1\.13\.0.*make venv"
    ):
        _check_torch()


def test_our_tests_and_benchmarks_are_never_shadowed():
    """CrypTen's wheel installs top-level `test`, `benchmarks`, `configs`, `examples`.  We never
    import those names: tests/ and benchmarks/ are not packages (no __init__.py), scripts run as
    files, and no file of ours imports the bare names."""
    for d in ("tests", "benchmarks"):
        assert not (ROOT / d / "__init__.py").exists()
    assert not (ROOT / "configs").exists() and not (ROOT / "examples").exists()
    spec = importlib.util.find_spec("benchmarks")
    assert spec is None or "site-packages" in str(spec.origin)  # theirs, never ours
    bad = re.compile(r"^\s*(from|import)\s+(tests|test|benchmarks|configs|examples)(\.|\s|$)", re.M)
    for path in list(ROOT.glob("**/*.py")):
        if ".venv" in path.parts:
            continue
        assert not bad.search(path.read_text()), f"{path} imports a name CrypTen's wheel shadows"


def test_crypten_is_imported_only_where_the_runtime_docstring_says():
    """protocols.runtime's docstring lists every module that imports CrypTen; mpcrnn and launch
    import none, and reach the transport through the session (never ``comm.get()``)."""
    import re
    from pathlib import Path

    import protocols.runtime

    root = Path(protocols.runtime.__file__).resolve().parents[1]
    listed = set(re.findall(r"^\s+(protocols/\S+\.py)\s", protocols.runtime.__doc__, re.M))
    importing = set()
    for package in ("protocols", "mpcrnn", "launch"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text()
            if re.search(r"^\s*(import crypten|from crypten)", text, re.M):
                importing.add(path.relative_to(root).as_posix())
            if package != "protocols":
                assert "comm.get()" not in text, path
    assert importing == listed
