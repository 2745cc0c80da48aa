"""One name per setting: every flag and every run-file key is derived from exactly one field of
the run configuration's dataclasses, and each default is written once (no processes started)."""

from __future__ import annotations

import inspect
import tomllib
from dataclasses import fields

import click
import pytest
from click.testing import CliRunner

from launch import cli
from launch.runfile import CONFIGS, FLAGS, KEYS, build, read_file, reference
from mpcrnn.config import SECTIONS
from mpcrnn.declaration import DataSpec
from mpcrnn.settings import coerce, section_of, settings_of
from protocols.errors import ConfigError

# [data]'s forecasting keys (window, horizon, stride, target_column) are settings with flags too
SETTINGS = [s for cls in (*SECTIONS, DataSpec) for s in settings_of(cls)]
OWNERS = {**CONFIGS, "data": DataSpec}  # [section] -> the dataclass whose fields it sets


def _field_names(cls) -> set[str]:
    return {f.name for f in fields(cls)}


def test_every_run_file_key_is_one_field_and_back():
    assert list(CONFIGS) == ["run", "model", "activation", "train", "fedavg", "dp", "adversarial"]
    for section, keys in KEYS.items():
        cls = CONFIGS[section]
        assert set(keys) <= _field_names(cls), section  # the key is the field's own name
        assert [s.name for s in settings_of(cls)] == list(keys)
    pairs = [(s.section, s.name) for s in SETTINGS]
    assert len(pairs) == len(set(pairs))  # no key names two fields


def test_every_flag_is_one_field_and_back():
    flagged = [s for s in SETTINGS if s.flag]
    assert len({s.flag for s in flagged}) == len(flagged) == len(FLAGS)
    for dest, s in FLAGS.items():
        assert s.dest == dest and s.flag == "--" + dest.replace("_", "-")
        assert s.name in _field_names(OWNERS[s.section])
    # `train` offers every flagged setting, under that flag, and nothing else by those names
    params = {p.name: p for p in cli.train.params}
    for s in flagged:
        assert params[s.dest].opts == [s.flag], s.label
    for command in (cli.party, cli.dealer):
        for p in command.params:
            if p.name in FLAGS:
                assert p.opts == [FLAGS[p.name].flag]


def test_a_flag_and_its_run_file_key_set_the_same_field():
    """Each flag is an override of its own key: a value given either way builds one config."""
    values = {
        "parties": 2,
        "provider": "tfp",
        "reveal_to": (1,),
        "hidden_size": 5,
        "num_layers": 2,
        "epochs": 3,
        "lr": 0.05,
        "dp_epsilon": 2.0,
        "adv_steps": 4,
        "weighting": "equal",
    }
    for dest, value in values.items():
        s = FLAGS[dest]
        in_file = list(value) if isinstance(value, tuple) else value  # TOML has lists
        from_file = build({s.section: {s.name: in_file}}, {})
        assert build({}, {dest: value}) == from_file, dest
        assert build({}, {dest: value}) != build({}, {}), dest


def test_every_default_coerces_to_itself():
    """The coercion of a run-file value follows the field's annotation: the default passes."""
    for s in SETTINGS:
        assert coerce(s, s.default) == s.default, s.label


@pytest.mark.parametrize(
    "section, pattern",
    [
        ({"model": {"hidden_size": 3.5}}, r"\[model\] hidden_size: expected an integer, got float"),
        ({"train": {"epochs": "3"}}, r"\[train\] epochs: expected an integer, got str"),
        ({"dp": {"epsilon": "3"}}, r"\[dp\] epsilon: expected a number, got str"),
        ({"run": {"reveal_metrics": 1}}, r"\[run\] reveal_metrics: expected true or false"),
        ({"run": {"reveal_to": [0.5]}}, r"\[run\] reveal_to: expected a list of integers"),
    ],
)
def test_a_value_of_the_wrong_type_names_its_setting(section, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build(section, {})


def test_help_shows_each_default_from_the_dataclass():
    out = " ".join(CliRunner().invoke(cli.main, ["train", "--help"]).output.split())
    ctx = click.Context(cli.train)
    records = {p.name: p.get_help_record(ctx) for p in cli.train.params}
    shown = 0
    for cls in SECTIONS:
        instance = cls()
        for s in settings_of(cls):
            default = getattr(instance, s.name)
            if not s.flag or default is None or default is False or default == ():
                continue
            opts, text = records[s.dest]
            assert f"[default: {default}]" in text, s.label
            assert " ".join(f"{opts} {text}".split()) in out, s.label
            shown += 1
    # every flagged setting but lr, epsilon, noise, alpha, reveal_*, insecure (embedding_dim: 25)
    assert shown == 25


def test_the_run_file_reference_lists_every_key_with_its_default():
    text = reference()
    body = "\n".join(line for line in text.splitlines() if "..." not in line)
    raw = tomllib.loads(body)
    for cls in SECTIONS:
        section = raw[section_of(cls)]
        for s in settings_of(cls):
            assert f"{s.name} =" in text
            if s.default is not None:
                assert coerce(s, section[s.name]) == s.default, s.label
    assert raw["data"] == {
        "value_bound": 8.0,
        "scaling": "none",
        "min_rows": 10,
        "frame": 1,
        "differences": [0],  # mpcrnn.differences
        **{"kind": "sequence", "vocab": "bytes", "too_long": "cut"},  # text: mpcrnn.text
        "n_targets": 1,
    }


def test_renamed_run_file_keys_still_read(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[model]\nhidden = 4\nlayers = 2\n")
    cfg = build(read_file(str(path)), {})
    assert (cfg.model.hidden_size, cfg.model.num_layers) == (4, 2)
    path.write_text("[model]\nhidden = 4\nhidden_size = 8\n")
    with pytest.raises(ConfigError, match=r"\[model\] hidden_size: expected set once"):
        read_file(str(path))


def test_library_errors_name_the_setting_and_the_command_line_adds_its_flag():
    from launch.options import with_flags

    msg = "[train] lr: expected in (0, 10], got 0; [train] eps with optimizer adam"
    with click.Context(cli.train):
        assert with_flags(msg) == (
            "[train] lr (--lr): expected in (0, 10], got 0; [train] eps with optimizer adam"
        )
    with click.Context(cli.party):  # `party` has no --schedule: nothing to add
        assert with_flags("[train] schedule: expected") == "[train] schedule: expected"
    assert with_flags("[run] parties: expected >= 2") == "[run] parties: expected >= 2"


def test_each_default_is_written_once():
    """--timeout and --max-file-bytes: the library's constants, wherever a default is given."""
    from launch.launcher import launch_local
    from launch.party import PartyJob
    from mpcrnn.readers import MAX_FILE_BYTES
    from protocols.network.parties import TIMEOUT_S, PartySpec

    def default(fn, name):
        return inspect.signature(fn).parameters[name].default

    for command in (cli.train, cli.party, cli.dealer):
        (timeout,) = (p for p in command.params if p.name == "timeout")
        assert timeout.default == TIMEOUT_S
    for command in (cli.train, cli.party):
        (limit,) = (p for p in command.params if p.name == "max_file_bytes")
        assert limit.default == MAX_FILE_BYTES
    assert default(launch_local, "timeout_s") == default(PartyJob, "timeout_s") == TIMEOUT_S
    assert default(PartySpec, "timeout_s") == TIMEOUT_S
    assert default(launch_local, "max_file_bytes") == default(PartyJob, "max_file_bytes")
    assert default(PartyJob, "max_file_bytes") == MAX_FILE_BYTES
