"""Hostile or careless input files outside the data readers (tests/test_data.py has those): the
run file.  Each case: one ConfigError line, expected vs got, no traceback, nothing read past
the bound."""

from __future__ import annotations

import re

import pytest

from launch.runfile import MAX_RUN_FILE_BYTES, read_file
from protocols.errors import ConfigError

CASES = [  # (id, bytes of the run file, pattern)
    (
        "non-utf8-byte",
        b'[model]\ncell = "gru\xff"\n',
        r"run\.toml: expected UTF-8 TOML text, got undecodable bytes at byte offset 19",
    ),
    ("not-toml", b"[model\ncell = 1\n", r"run\.toml: expected valid TOML, got"),
    (
        "top-level-value",
        b"run = 3\n",
        r"run\.toml: 'run': expected a \[section\] table, got a top-level value",
    ),
    ("unknown-section", b"[nope]\nx = 1\n", r"run\.toml: section: expected one of \[run\]"),
    (
        "oversized",
        b"#" * (MAX_RUN_FILE_BYTES + 10),
        rf"run\.toml: size: expected at most {MAX_RUN_FILE_BYTES} bytes "
        r"\(a run config file\), got more",
    ),
]


@pytest.mark.parametrize("content, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_run_file_is_one_config_error(tmp_path, content, pattern):
    path = tmp_path / "run.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        read_file(str(path))
    msg = str(err.value)
    assert re.search(pattern, msg) and "\n" not in msg, msg


ACTIVATION_CASES = [  # (id, [activation] body, pattern)
    ("even-degree", "degree = 16", r"\[activation\] degree: expected odd, 1\.\.31, got 16"),
    ("degree-too-high", "degree = 33", r"\[activation\] degree: expected odd, 1\.\.31, got 33"),
    ("bound", "bound = 6.0", r"\[activation\] bound: expected a power of two in 1\.\.16, got 6"),
    (
        "cell-clip-past-tanh",
        "cell_clip = 9.0",
        r"\[activation\] cell_clip: expected in \[0, 8\] \(0: off\), got 9",
    ),
    ("exact-is-not-a-setting", "exact = true", r"keys of \[activation\]: expected bound, "),
]


@pytest.mark.parametrize(
    "body, pattern", [c[1:] for c in ACTIVATION_CASES], ids=[c[0] for c in ACTIVATION_CASES]
)
def test_bad_activation_section_is_one_config_error(tmp_path, body, pattern):
    from launch.runfile import build

    path = tmp_path / "run.toml"
    path.write_text(f"[activation]\n{body}\n")
    with pytest.raises(ConfigError) as err:
        build(read_file(str(path)), {})
    msg = str(err.value)
    assert re.search(pattern, msg) and "\n" not in msg, msg


def test_activation_section_sets_the_polynomial_and_enters_the_digest(tmp_path):
    from launch.runfile import build

    path = tmp_path / "run.toml"
    path.write_text("[activation]\ndegree = 15\ncell_clip = 4.0\n")
    cfg = build(read_file(str(path)), {})
    assert (cfg.activation.degree, cfg.activation.bound, cfg.activation.cell_clip) == (15, 8.0, 4.0)
    assert cfg.digest() != build({}, {}).digest()  # parties with other polynomials do not agree


# --- through the real CLI: one line, exit 2, no traceback, nothing spawned or written ----------
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

MPCRNN = str(Path(sys.executable).with_name("mpcrnn"))


def _cli(*args, timeout=120):
    """Run the CLI; also assert that no process it started outlives it (children inherit a
    unique marker in their environment, looked for in /proc afterwards)."""
    import os
    import uuid

    mark = uuid.uuid4().hex
    r = subprocess.run(
        [MPCRNN, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "MPCRNN_TEST_MARK": mark},
    )
    assert _marked(mark) == [], "orphan processes"
    return r.returncode, r.stdout, r.stderr


def _marked(mark: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and f"MPCRNN_TEST_MARK={mark}".encode() in (proc / "environ").read_bytes()
            ):
                found.append(int(proc.name))
        except OSError:
            pass
    return found


CLI_CASES = [  # (id, args after `train`, pattern); {tmp} is the test's folder
    (
        "negative-seed",
        ["--seed", "-1"],
        r"\[train\] seed \(--seed\): expected an integer in \[0, 2\^63\), got -1",
    ),
    (
        "one-party",
        ["--parties", "1"],
        r"\[run\] parties \(--parties\): expected >= 2, got 1",
    ),
    ("zero-lr", ["--lr", "0"], r"\[train\] lr \(--lr\): expected in \(0, 10\], got 0"),
    ("non-utf8-run-file", ["--config", "{tmp}/bad.toml"], r"bad\.toml: expected UTF-8 TOML text"),
    (
        "out-not-a-folder",
        ["--out", "{tmp}/file/sub"],
        r"--out .*file/sub: expected a writable folder, got",
    ),
]


@pytest.mark.parametrize("args, pattern", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_train_refuses_bad_settings_before_anything_starts(tmp_path, args, pattern, subprocesses):
    (tmp_path / "bad.toml").write_bytes(b"[train]\nepochs = 1 # \xff\n")
    (tmp_path / "file").write_text("")
    out = tmp_path / "out"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--out" not in args:
        args += ["--out", str(out)]
    code, stdout, stderr = _cli("train", *args, timeout=60)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in stderr, stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert "died" not in stderr and "demo" not in stdout  # refused in the launcher: nothing spawned
    assert not out.exists() or not any(out.iterdir())  # nothing written


def _tiny_run_file(tmp_path, min_rows):
    from mpcrnn import data as D

    parts = D.split_rows(D.japanese_vowels("train"), [1, 12], 0)
    files = []
    for r, part in enumerate(parts):
        files.append(str(tmp_path / f"p{r}.npz"))
        D.write_npz(part, files[-1])
    (tmp_path / "run.toml").write_text(
        f"[run]\nparties = 2\n[model]\nhidden = 4\n[train]\nepochs = 1\nbatch_size = 13\n"
        f"[data]\nn_features = 12\nclasses = {list(D.JAPANESE_VOWELS_SPEC.classes)}\nmax_len = 29\n"
        f'scaling = "bounds"\nfeature_low = {list(D.JAPANESE_VOWELS_SPEC.feature_low)}\n'
        f"feature_high = {list(D.JAPANESE_VOWELS_SPEC.feature_high)}\nmin_rows = {min_rows}\n"
    )
    return files


def test_party_below_min_rows_is_refused_with_strict(tmp_path, subprocesses):
    files = _tiny_run_file(tmp_path, min_rows=5)
    code, _, stderr = _cli(
        "train",
        "--config",
        str(tmp_path / "run.toml"),
        "--data",
        files[0],
        "--data",
        files[1],
        "--out",
        str(tmp_path / "out"),
        "--strict",
        "--timeout",
        "30",
    )
    assert code == 4 and "Traceback" not in stderr, stderr
    assert re.search(r"p0\.npz: rows: expected at least 5 \(\[data\] min_rows\), got 1", stderr), (
        stderr
    )
    assert not list((tmp_path / "out").glob("model-*"))
