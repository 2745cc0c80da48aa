"""Hostile or careless input files outside the data readers (tests/test_data.py has those): the
run file.  Each case: one ConfigError line, expected vs got, no traceback, nothing read past
the bound."""

from __future__ import annotations

import re

import pytest

from launch.runfile import MAX_RUN_FILE_BYTES, read_file
from protocols.errors import ConfigError

CASES = [  # (id, bytes of the run file, pattern)
    ("non-utf8-byte", b"[model]\ncell = \"gru\xff\"\n",
     r"run\.toml: expected UTF-8 TOML text, got undecodable bytes at byte offset 19"),
    ("not-toml", b"[model\ncell = 1\n", r"run\.toml: expected valid TOML, got"),
    ("top-level-value", b"run = 3\n", r"run\.toml: 'run': expected a \[section\] table, got a top-level value"),
    ("unknown-section", b"[nope]\nx = 1\n", r"run\.toml: section: expected one of \[run\]"),
    ("oversized", b"#" * (MAX_RUN_FILE_BYTES + 10),
     rf"run\.toml: size: expected at most {MAX_RUN_FILE_BYTES} bytes \(a run config file\), got more"),
]


@pytest.mark.parametrize("content, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_run_file_is_one_config_error(tmp_path, content, pattern):
    path = tmp_path / "run.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        read_file(str(path))
    msg = str(err.value)
    assert re.search(pattern, msg) and "\n" not in msg, msg
