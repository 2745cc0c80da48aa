"""The README's Defaults table states what the code does.

The table has one row per setting: ``| field | run-file key | flag | default |``.  The field is a
dataclass field (``TrainConfig.lr``; ``DataSpec.frame``) or an entry of a module-level mapping in
``mpcrnn.config`` (``DEFAULT_LR["sgd"]``).  The default is the first backticked token of its cell,
written as in the run file (a TOML value: ``0.01``, ``"cosine"``, ``false``, ``[]``) or ``unset``
(the field's default is None).  Each row must name a real field, a run-file key that sets that
field, a flag the CLI has, and the field's actual default.

No processes, no CrypTen: the CLI is only introspected (click objects), never run.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from mpcrnn import config as C
from mpcrnn import config_model, config_modes
from mpcrnn.declaration import DataSpec
from mpcrnn.settings import settings_of

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_LIMIT = 25600  # bytes: a README for users, not a lab notebook (issue 30)

CLASSES = {
    cls.__name__: cls
    for module in (C, config_model, config_modes)
    for cls in vars(module).values()
    if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == module.__name__
}
CLASSES["DataSpec"] = DataSpec


def _default_of(cls, name: str):
    """The dataclass default of ``cls.name`` (a default factory called)."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


SECTIONS = {  # run-file section -> its dataclass (launch/runfile.py reads the same ones)
    "run": C.RunConfig,
    "model": C.ModelConfig,
    "activation": C.ActivationConfig,
    "train": C.TrainConfig,
    "fedavg": C.FedAvgConfig,
    "dp": C.DPConfig,
    "adversarial": C.AdversarialConfig,
    "data": DataSpec,
}
HEADER = ["field", "run-file key", "flag", "default"]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def defaults_table(text: str) -> list[list[str]]:
    """The rows of the table whose header is HEADER (the first such table)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and _cells(line) == HEADER:
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(_cells(row))
            return rows
    raise AssertionError(f"README.md: expected a table with header {HEADER}, found none")


def ticked(cell: str) -> str | None:
    """The first `backticked` token of a cell, or None."""
    m = re.search(r"`([^`]*)`", cell)
    return m.group(1) if m else None


def stated_value(token: str):
    """A default as the README writes it: a TOML value, or ``unset`` for None."""
    if token == "unset":
        return None
    return tomllib.loads(f"v = {token}")["v"]


def code_default(ref: str):
    """The default the code holds for ``Class.field`` or ``MAPPING["key"]``."""
    m = re.fullmatch(r"(\w+)\.(\w+)", ref)
    if m:
        cls_name, name = m.groups()
        assert cls_name in CLASSES, f"{ref}: expected a config dataclass, got {cls_name}"
        names = [f.name for f in dataclasses.fields(CLASSES[cls_name])]
        assert name in names, f"{ref}: expected a field of {cls_name}, got {name}"
        return _default_of(CLASSES[cls_name], name)
    m = re.fullmatch(r'(\w+)\["(\w+)"\]', ref)
    assert m, f'{ref}: expected Class.field or MAPPING["key"]'
    mapping, key = m.groups()
    return getattr(C, mapping)[key]


def same(stated, actual) -> bool:
    if isinstance(actual, tuple):
        return isinstance(stated, (list, tuple)) and tuple(stated) == actual
    if isinstance(actual, str):  # the run file writes provider "ttp" for the code's "TTP"
        return isinstance(stated, str) and stated.lower() == actual.lower()
    if isinstance(actual, bool) or actual is None:
        return stated is actual
    return isinstance(stated, (int, float)) and not isinstance(stated, bool) and stated == actual


ROWS = defaults_table(README.read_text(encoding="utf-8"))


def test_the_table_is_there():
    assert len(ROWS) >= 30, f"expected the README's Defaults table to list the settings, got {ROWS}"
    for row in ROWS:
        assert len(row) == len(HEADER), f"expected {len(HEADER)} cells, got {row}"


@pytest.mark.parametrize("row", ROWS, ids=[r[0].strip("`") for r in ROWS])
def test_stated_default_equals_the_code(row):
    ref, token = ticked(row[0]), ticked(row[3])
    assert ref and token, f"expected `field` and `default` in backticks, got {row}"
    stated, actual = stated_value(token), code_default(ref)
    assert same(stated, actual), f"README says {ref} defaults to {token}; the code says {actual!r}"


def _file_field(ref: str) -> tuple[type, str] | None:
    m = re.fullmatch(r"(\w+)\.(\w+)", ref)
    if m:
        return CLASSES[m.group(1)], m.group(2)
    if ref.startswith("DEFAULT_LR["):
        return C.TrainConfig, "lr"
    return None


@pytest.mark.parametrize("row", ROWS, ids=[r[0].strip("`") for r in ROWS])
def test_run_file_key_sets_that_field(row):
    key = ticked(row[1])
    m = re.fullmatch(r"\[(\w+)\] (\w+)", key or "")
    assert m, f"expected `[section] key` in the run-file column, got {row[1]}"
    section, name = m.groups()
    assert section in SECTIONS, f"expected a run-file section, got [{section}]"
    cls, field = _file_field(ticked(row[0]))
    assert SECTIONS[section] is cls, f"[{section}] sets {SECTIONS[section].__name__}, not {cls}"
    # a run-file key is its field's name (mpcrnn/settings.py); DataSpec's keys are its fields
    keys = (
        {f.name for f in dataclasses.fields(cls)}
        if cls is DataSpec
        else {s.name for s in settings_of(cls)}
    )
    assert name == field and name in keys, (
        f"[{section}] {name}: expected the key of {cls.__name__}.{field}, got {sorted(keys)}"
    )


def _cli_options() -> dict[str, object]:
    """--flag -> its click default, over `mpcrnn train` and `mpcrnn party`."""
    from launch.cli import main

    out: dict[str, object] = {}
    for command in ("party", "train"):  # train last: its defaults are the ones shown
        for param in main.commands[command].params:
            for opt in param.opts:
                out[opt] = param.default
    return out


@pytest.mark.parametrize("row", ROWS, ids=[r[0].strip("`") for r in ROWS])
def test_flag_exists_and_has_that_default(row):
    flag = ticked(row[2])
    if flag is None:  # "-": run file only
        assert row[2] == "-", f"expected a `--flag` or -, got {row[2]}"
        return
    options = _cli_options()
    assert flag in options, f"README names {flag}; mpcrnn train/party have no such option"
    click_default = options[flag]
    plain = (bool, int, float, str, tuple, list)  # else None or click's "no default" sentinel
    if not isinstance(click_default, plain) or ticked(row[0]).startswith("DEFAULT_LR"):
        return  # no default on the flag: the run file's, the dataclass's or the optimizer's
    actual = code_default(ticked(row[0]))
    assert same(click_default, actual), (
        f"{flag} defaults to {click_default!r}, the code to {actual!r}"
    )


def test_readme_is_short_and_the_rest_has_a_home():
    size = README.stat().st_size
    assert size < README_LIMIT, f"README.md: expected under {README_LIMIT} bytes, got {size}"
    assert (ROOT / "CHANGELOG.md").is_file()
    assert any((ROOT / "docs").glob("*.md")), "expected the design notes in docs/"
    assert any((ROOT / "benchmarks" / "results").glob("*.md")), "expected benchmarks/results/"


def test_links_resolve():
    """Relative links in the README, docs/, benchmarks/results/ and the changelog point at files."""
    pages = [README, ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")]
    pages += (ROOT / "benchmarks" / "results").glob("*.md")
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            where = page.relative_to(ROOT)
            assert (page.parent / target).exists(), f"{where} links to {target}: no such file"
