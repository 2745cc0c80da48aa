"""The released model file: written once (mpcrnn.model_file), read back by `mpcrnn predict`.
Hostile or foreign files give one DataError line naming the file; nothing runs on load."""

from __future__ import annotations

import pickle
import re
import sys
from pathlib import Path

import pytest
import torch

from mpcrnn.config import ActivationConfig, ModelConfig
from mpcrnn.data import JAPANESE_VOWELS_SPEC
from mpcrnn.model import TorchSequenceModel
from mpcrnn.model_file import read_model_file, write_model_file
from protocols.errors import DataError

MPCRNN = str(Path(sys.executable).with_name("mpcrnn"))
CFG = ModelConfig(cell="lstm", hidden_size=4)


def _params(cfg=CFG):
    m = TorchSequenceModel(cfg)
    out = dict(m.rnn.state_dict())
    out.update({f"fc.{k}": v for k, v in m.fc.state_dict().items()})
    return out


def test_round_trip_loads_into_torch(tmp_path):
    params = _params()
    write_model_file(tmp_path / "m.pt", CFG, ActivationConfig(), JAPANESE_VOWELS_SPEC, params)
    cfg, spec, model = read_model_file(tmp_path / "m.pt")
    assert cfg == CFG and spec == JAPANESE_VOWELS_SPEC
    assert torch.equal(model.rnn.weight_hh_l0, params["weight_hh_l0"].double())
    assert not list(tmp_path.glob("*.tmp"))


def test_the_model_file_names_its_run(tmp_path):
    """Issue 26 #1: the model file carries the identity of the run that trained it."""
    args = (CFG, ActivationConfig(), JAPANESE_VOWELS_SPEC, _params())
    write_model_file(tmp_path / "m.pt", *args, run_id="ab" * 16)
    assert torch.load(tmp_path / "m.pt", weights_only=True)["run_id"] == "ab" * 16
    read_model_file(tmp_path / "m.pt")


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/mpcrnn-evil-ran"),))


def _blob(**changes):
    blob = {
        "model_config": vars(CFG).copy(),
        "activation": vars(ActivationConfig()).copy(),
        "spec": {
            "n_features": 12,
            "classes": ["1", "2", "3", "4", "5", "6", "7", "8", "9"],
            "max_len": 29,
        },
        "state_dict": _params(),
    }
    blob.update(changes)
    return blob


def _save(obj):
    return lambda path: torch.save(obj, path)


CASES = [  # (id, writer, pattern)
    (
        "random-bytes",
        lambda p: p.write_bytes(bytes(range(256)) * 40),
        r"expected an mpcrnn model file \(torch\.save of a dict\), got a file torch cannot load",
    ),
    ("empty", lambda p: p.write_bytes(b""), r"got a file torch cannot load"),
    (
        "code-on-load",
        lambda p: p.write_bytes(pickle.dumps(_Evil())),
        r"got a file torch cannot load",
    ),
    (
        "a-list",
        _save([1, 2]),
        r"expected a dict of model_config, activation, spec, state_dict, got list",
    ),
    (
        "no-spec",
        _save({k: v for k, v in _blob().items() if k != "spec"}),
        r"expected a dict of model_config, activation, spec, state_dict, got \['activation'",
    ),
    ("bad-cell", _save(_blob(model_config={**vars(CFG), "cell": "tcn"})), r"model_config: .*cell"),
    (
        "bad-spec",
        _save(_blob(spec={"n_features": 0, "classes": ["a", "b"], "max_len": 3})),
        r"spec: .*n_features",
    ),
    (
        "wrong-shapes",
        _save(_blob(state_dict={**_params(), "weight_hh_l0": torch.zeros(3, 3)})),
        r"state_dict: expected torch's tensors of this lstm with their shapes, "
        r"got differences at weight_hh_l0",
    ),
    (
        "gru-weights-for-lstm",
        _save(_blob(state_dict=_params(ModelConfig(cell="gru", hidden_size=4)))),
        r"state_dict: expected torch's tensors of this lstm",
    ),
    (
        "nan-weights",
        _save(_blob(state_dict={**_params(), "fc.bias": torch.full((9,), float("nan"))})),
        r"expected finite weights, got NaN or inf",
    ),
    ("missing-file", None, r"expected a readable model file, got FileNotFoundError"),
]


@pytest.mark.parametrize("writer, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_foreign_model_files_are_one_data_error(tmp_path, writer, pattern):
    path = tmp_path / "model.pt"
    if writer:
        writer(path)
    with pytest.raises(DataError) as err:
        read_model_file(path)
    msg = str(err.value)
    assert re.search(pattern, msg) and "\n" not in msg and msg.startswith(str(path)), msg
    assert not Path("/tmp/mpcrnn-evil-ran").exists()


def test_predict_on_random_bytes_is_one_line_exit_2(tmp_path, subprocesses):
    (tmp_path / "model.pt").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "x.csv").write_text("seq_id,t,f0,label\n")
    r = subprocesses.run(
        [
            MPCRNN,
            "predict",
            "--model",
            str(tmp_path / "model.pt"),
            "--data",
            str(tmp_path / "x.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "cannot load" in lines[0], (
        r.stderr
    )
