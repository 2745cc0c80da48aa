"""Tests of the local data-intake layer (mpcrnn.data): parsing, round trips, splits, bad inputs.

Pure numpy; no CrypTen.  Every bad-input case must raise DataError whose message names the
problem but never contains a value taken from the file.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mpcrnn import data as D
from protocols.errors import ConfigError, DataError

JV = D.JAPANESE_VOWELS_SPEC
PLANT = "123.456"  # a distinctive valid data value planted in every bad file
OUT = "456.789"  # a value outside the declared bounds below (scaled 2.28 > 1.5)
SPEC = D.DataSpec(
    n_features=2,
    classes=("a", "b", "c"),
    max_len=4,
    value_bound=1.5,
    scaling="bounds",
    feature_low=(-200.0, -200.0),
    feature_high=(200.0, 200.0),
)

# ----------------------------------------------------------------------------- shipped data


def test_shipped_files_are_the_uea_copies():
    root = Path(D.__file__).parent / "datasets" / "japanese_vowels"
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.glob("*.ts")}
    assert digests == {
        "JapaneseVowels_TRAIN.ts": (
            "68a430eabd919cc77f40b1f5f3bc0dcafacc1486bca9260785aeb7d262cc78cd"
        ),
        "JapaneseVowels_TEST.ts": (
            "b3d41d6a0ca3bcad3afb9ca7d4365382aa51341e2e58bae2a574babdda5b9462"
        ),
    }
    assert "Kudo" in (root / "README.md").read_text()


@pytest.mark.parametrize(
    "split, n_rows, longest, per_class",
    [
        ("train", 270, 26, [30] * 9),
        ("test", 370, 29, [31, 35, 88, 44, 29, 24, 40, 50, 29]),
    ],
)
def test_japanese_vowels_parses(split, n_rows, longest, per_class):
    d = D.japanese_vowels(split)
    assert d.x.shape == (n_rows, 29, 12) and d.x.dtype == np.float64
    assert (d.n_rows, d.max_len, d.n_features) == (n_rows, 29, 12)
    assert d.lengths.dtype == np.int64 and d.y.dtype == np.int64
    assert d.lengths.min() == 7 and d.lengths.max() == longest
    assert d.classes == tuple("123456789") == JV.classes
    assert np.bincount(d.y, minlength=9).tolist() == per_class
    assert np.all(d.x[~d.mask()] == 0) and np.all(np.isfinite(d.x))
    # first value of the first training utterance, straight from the file
    if split == "train":
        assert d.x[0, 0, 0] == 1.860936 and d.x[0, 0, 1] == -0.207383 and d.y[0] == 0


def test_read_ts_without_spec_uses_the_file_header():
    path = Path(D.__file__).parent / "datasets" / "japanese_vowels" / "JapaneseVowels_TRAIN.ts"
    d = D.read_ts(path)
    assert d.x.shape == (270, 26, 12) and d.classes == tuple("123456789")
    np.testing.assert_array_equal(d.x, D.japanese_vowels("train").x[:, :26])


def test_spec_bounds_are_derived_from_the_public_train_split():
    low, high = D.declare_bounds_from(D.japanese_vowels("train"))
    assert (low, high) == (JV.feature_low, JV.feature_high)
    assert JV.max_len == 29 and JV.n_features == 12 and JV.scaling == "bounds"


def test_scale_features_maps_declared_bounds_to_unit_interval():
    train = D.japanese_vowels("train")
    s = D.scale_features(train, JV)
    valid = s.mask()
    assert s.x.shape == train.x.shape and s.x.dtype == np.float64
    assert np.abs(s.x[valid]).max() <= 1.0 and np.all(s.x[~valid] == 0)
    np.testing.assert_array_equal(s.lengths, train.lengths)
    lo, hi = np.array(JV.feature_low), np.array(JV.feature_high)
    np.testing.assert_allclose((s.x[valid] + 1) / 2 * (hi - lo) + lo, train.x[valid])
    test = D.scale_features(D.japanese_vowels("test"), JV)  # a little outside, within bound
    assert 1.0 < np.abs(test.x[test.mask()]).max() <= JV.value_bound
    x = train.x.copy()
    x[5, 3, 2] = 123.456  # scaled ~123, far beyond value_bound: rejected, never clipped
    with pytest.raises(
        DataError,
        match="mem: sequence 5, time step 3, feature f2: expected a "
        "value within the declared bounds",
    ) as err:
        D.scale_features(D.SequenceData(x, train.lengths, train.y, train.classes), JV, "mem")
    assert PLANT not in str(err.value)


@pytest.mark.parametrize("k", [1, 2, 3, 7, 29])
def test_frames_stack_consecutive_steps_after_scaling(k):
    """frame = k: x'[i, s] = concat(x[i, sk], ..., x[i, sk + k - 1]), zeros past the end,
    lengths ceil(L / k); the public input shape is (ceil(max_len / k), k F)."""
    train = D.japanese_vowels("train")
    spec = replace(JV, frame=k)
    assert spec.input_size == 12 * k and spec.input_len == -(-29 // k)
    plain, framed = D.scale_features(train, JV), D.scale_features(train, spec)
    assert framed.x.shape == (train.n_rows, spec.input_len, spec.input_size)
    np.testing.assert_array_equal(framed.lengths, -(-train.lengths // k))
    for i in (0, 7, train.n_rows - 1):
        for s in range(spec.input_len):
            for j in range(k):
                t = s * k + j
                want = plain.x[i, t] if t < plain.max_len else np.zeros(12)
                np.testing.assert_array_equal(framed.x[i, s, 12 * j : 12 * (j + 1)], want)
    assert np.all(framed.x[~framed.mask()] == 0)  # padding frames stay zero


@pytest.mark.parametrize("module", ["data.py", "declaration.py", "readers.py"])
def test_module_does_not_import_crypten(module):
    tree = ast.parse((Path(D.__file__).parent / module).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in names if m.split(".")[0] == "crypten"]


# ----------------------------------------------------------------------------- round trips


def _tiny() -> D.SequenceData:
    x = np.zeros((3, 4, 2))
    x[0, :2] = [[1 / 3, -2.5e-17], [123.456, 0.1 + 0.2]]
    x[1, :4] = [[1.0, 2.0], [3.0, 4.0], [-5.0, 6.0], [7.0, -8.0]]
    x[2, :1] = [[np.pi, -np.e]]
    return D.SequenceData(
        x=x, lengths=np.array([2, 4, 1]), y=np.array([2, 0, 1]), classes=SPEC.classes
    )


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
@pytest.mark.parametrize("which", ["tiny", "jv"])
def test_write_read_round_trip(tmp_path, suffix, which):
    data, spec = (_tiny(), SPEC) if which == "tiny" else (D.japanese_vowels("test"), JV)
    path = tmp_path / f"party{suffix}"
    (D.write_csv if suffix == ".csv" else D.write_npz)(data, path)
    back = D.load_party_file(path, spec)
    for name in ("x", "lengths", "y"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name))
    assert back.x.dtype == np.float64 and back.y.dtype == back.lengths.dtype == np.int64
    assert back.classes == data.classes


def test_csv_layout(tmp_path):
    path = tmp_path / "p.csv"
    D.write_csv(_tiny(), path)
    lines = path.read_text().splitlines()
    assert lines[0] == "seq_id,t,f0,f1,label"
    assert lines[1] == "0,0,0.3333333333333333,-2.5e-17,c" and len(lines) == 1 + 2 + 4 + 1


def test_npz_accepts_string_labels_and_longer_time_axis(tmp_path):
    x = np.zeros((2, 6, 2))
    x[:, :3] = 1.5
    x[1, 5] = np.nan  # past lengths[1]: ignored
    np.savez(tmp_path / "p.npz", x=x, lengths=np.array([3, 2]), y=np.array(["b", "a"]))
    d = D.read_npz(tmp_path / "p.npz", SPEC)
    assert d.x.shape == (2, 4, 2) and d.y.tolist() == [1, 0]  # padded to spec.max_len
    assert np.all(d.x[~d.mask()] == 0) and np.all(d.x[d.mask()] == 1.5)


# ----------------------------------------------------------------------------- splits


def _numbered(n: int) -> D.SequenceData:
    x = np.zeros((n, 4, 2))
    x[:, 0, 0] = np.arange(n)
    return D.SequenceData(
        x=x, lengths=np.ones(n, np.int64), y=np.arange(n) % 3, classes=SPEC.classes
    )


def test_split_rows_sizes_disjoint_and_deterministic():
    data = _numbered(270)
    parts = D.split_rows(data, (0.5, 0.3, 0.2), seed=0)
    assert [p.n_rows for p in parts] == [135, 81, 54]
    ids = np.concatenate([p.x[:, 0, 0] for p in parts])
    assert sorted(ids.tolist()) == list(range(270))
    assert all(np.all(np.diff(p.x[:, 0, 0]) > 0) for p in parts)  # original order kept
    again = D.split_rows(data, (0.5, 0.3, 0.2), seed=np.random.default_rng(0))
    for p, q in zip(parts, again):
        np.testing.assert_array_equal(p.x, q.x)
        np.testing.assert_array_equal(p.y, q.y)
    other = D.split_rows(data, (0.5, 0.3, 0.2), seed=1)
    assert not np.array_equal(other[0].x, parts[0].x)
    counts = D.split_rows(data, (135, 81, 54), seed=0)
    assert all(np.array_equal(p.x, q.x) for p, q in zip(parts, counts))


@pytest.mark.parametrize(
    "parts, sizes",
    [
        ((1 / 3, 1 / 3, 1 / 3), [4, 3, 3]),
        ((0.5, 0.25), [5, 2]),
        ((4, 3), [4, 3]),
    ],
)
def test_split_rows_rounding(parts, sizes):
    got = [p.n_rows for p in D.split_rows(_numbered(10), parts, seed=3)]
    assert got == sizes


@pytest.mark.parametrize("parts", [(), (0.7, 0.5), (8, 3), (0.5, 0.0), (0.5, -0.1), (0.99, 0.01)])
def test_split_rows_rejects_bad_parts(parts):
    with pytest.raises(ConfigError):
        D.split_rows(_numbered(10), parts, seed=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_features=0),
        dict(max_len=0),
        dict(classes=()),
        dict(classes=("a", "a")),
        dict(classes=(" a",)),
        dict(value_bound=float("inf")),
        dict(scaling="minmax"),
        dict(scaling="bounds"),
        dict(scaling="bounds", feature_low=(0.0,), feature_high=(1.0,)),
        dict(scaling="bounds", feature_low=(1.0, 0.0), feature_high=(1.0, 1.0)),
        dict(feature_low=(0.0, 0.0), feature_high=(1.0, 1.0)),
        dict(frame=0),
        dict(frame=5),
        dict(frame=2.0),
    ],
)
def test_dataspec_rejects_bad_declarations(kwargs):
    base = dict(n_features=2, classes=("a", "b"), max_len=4)
    with pytest.raises(ConfigError):
        D.DataSpec(**{**base, **kwargs})


def test_japanese_vowels_rejects_unknown_split():
    with pytest.raises(ConfigError, match="'train' or 'test'"):
        D.japanese_vowels("validation")


def test_validate_in_memory_data():
    d = _tiny()
    D.validate(d, SPEC, "mem")
    x = d.x.copy()
    x[2, 3, 1] = 123.456  # past lengths[2] == 1
    with pytest.raises(
        DataError,
        match=r"mem: sequence 2, time step 3, feature f1: expected 0 "
        r"after the sequence ends",
    ) as err:
        D.validate(D.SequenceData(x, d.lengths, d.y, d.classes), SPEC, "mem")
    assert PLANT not in str(err.value)
    with pytest.raises(DataError, match="number of features: expected 3, got 2"):
        D.validate(d, D.DataSpec(n_features=3, classes=SPEC.classes, max_len=4), "mem")


# ----------------------------------------------------------------------------- bad inputs

HEADER = "seq_id,t,f0,f1,label"
ROWS = [f"s1,0,{PLANT},0.5,a", "s1,1,1.0,2.0,a", "s2,0,3.0,4.0,b"]
TS_HEAD = "# toy\n@problemName toy\n@dimensions 2\n@equalLength false\n@classLabel true a b c\n"
TS_ROWS = [f"{PLANT},1.0:2.0,3.0:a", "1.0,2.0,3.0:4.0,5.0,6.0:b"]


def _csv(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def _with(rows: list[str], i: int, row: str) -> list[str]:
    return [row if k == i else r for k, r in enumerate(rows)]


def _ts(*rows: str, head: str = TS_HEAD, data: str = "@data\n") -> str:
    return head + data + "\n".join(rows) + "\n"


def _npz(**over):
    x = np.zeros((2, 4, 2))
    x[0, :2] = [[float(PLANT), 1.0], [2.0, 3.0]]
    x[1, :3] = 4.0
    arrays = {"x": x, "lengths": np.array([2, 3]), "y": np.array([0, 2]), **over}

    def write(path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, **{k: v for k, v in arrays.items() if v is not None})

    return write


def _nan_x():
    x = np.zeros((2, 4, 2))
    x[0, 0, 0], x[1, 2, 1] = float(PLANT), np.nan
    return x


# (case id, file name, content: str | bytes | callable(path) | None (absent) | "<dir>", regex,
#  extra strings that must not appear in the message)
BAD = [
    (
        "csv-wrong-feature-count",
        "p.csv",
        _csv(f"s1,0,{PLANT},a", header="seq_id,t,f0,label"),
        r"p\.csv: number of features: expected 2, got 1",
        [],
    ),
    (
        "csv-nan",
        "p.csv",
        _csv(*_with(ROWS, 1, "s1,1,nan,2.0,a")),
        r"sequence 0, time step 1, feature f0: expected a finite number, got NaN",
        [],
    ),
    (
        "csv-plus-inf",
        "p.csv",
        _csv(*_with(ROWS, 2, "s2,0,3.0,inf,b")),
        r"sequence 1, time step 0, feature f1: expected a finite number, got an infinite value",
        [],
    ),
    (
        "csv-minus-inf",
        "p.csv",
        _csv(*_with(ROWS, 2, "s2,0,-Infinity,1.0,b")),
        r"sequence 1, time step 0, feature f0: .*got an infinite value",
        [],
    ),
    (
        "csv-out-of-declared-bounds",
        "p.csv",
        _csv(*_with(ROWS, 1, f"s1,1,{OUT},2.0,a")),
        r"sequence 0, time step 1, feature f0: expected a value within the declared bounds"
        r".*got a value outside",
        [OUT, "456"],
    ),
    (
        "csv-label-outside-classes",
        "p.csv",
        _csv(*ROWS, "s3,0,1.0,1.0,zebra", "s4,0,1.0,1.0,zebra"),
        r"label of sequence 2: expected one of the 3 declared classes, got a label outside them "
        r"\(2 sequence\(s\) affected\)",
        ["zebra"],
    ),
    ("csv-empty-file", "p.csv", "", r"p\.csv: expected a header .*got an empty file", []),
    ("csv-header-only", "p.csv", _csv(), r"expected at least 1 sequence, got 0", []),
    (
        "csv-non-numeric-cell",
        "p.csv",
        _csv(*_with(ROWS, 1, "s1,1,12x3.456,2.0,a")),
        r"line 3 \(sequence 0\), column 'f0': expected a number, got a non-numeric cell",
        ["12x3"],
    ),
    (
        "csv-missing-file",
        "absent.csv",
        None,
        r"absent\.csv: expected a readable file, got FileNotFoundError",
        [],
    ),
    (
        "csv-unreadable-directory",
        "folder.csv",
        "<dir>",
        r"folder\.csv: expected a readable file, got IsADirectoryError",
        [],
    ),
    (
        "csv-undecodable-bytes",
        "p.csv",
        _csv(*ROWS).encode() + b"s9,0,\xff\xfe,1.0,a\n",
        r"expected UTF-8 text, got undecodable bytes",
        ["xff", "\\xff"],
    ),
    (
        "csv-length-over-max-len",
        "p.csv",
        _csv(*ROWS, *(f"s3,{t},1.0,1.0,c" for t in range(5))),
        r"length of sequence 2: expected 1\.\.4 time steps, got more than 4",
        [],
    ),
    (
        "unknown-suffix",
        "p.xlsx",
        _csv(*ROWS),
        r"p\.xlsx: file type: expected a \.ts, \.csv or \.npz file, got suffix '\.xlsx'",
        [],
    ),
    (
        "csv-non-consecutive-t",
        "p.csv",
        _csv(*_with(ROWS, 1, "s1,2,1.0,2.0,a")),
        r"line 3 \(sequence 0\), column 't': expected 1 \(consecutive",
        [],
    ),
    (
        "csv-t-not-integer",
        "p.csv",
        _csv(*_with(ROWS, 1, "s1,1.0,1.0,2.0,a")),
        r"column 't': expected 1 \(consecutive integer time steps",
        [],
    ),
    (
        "csv-label-changes-in-sequence",
        "p.csv",
        _csv(*_with(ROWS, 1, "s1,1,1.0,2.0,b")),
        r"line 3 \(sequence 0\), column 'label': expected the same label on every row",
        [],
    ),
    (
        "csv-sequence-not-contiguous",
        "p.csv",
        _csv(*ROWS, "s1,2,1.0,1.0,a"),
        r"line 5, column 'seq_id': expected contiguous rows per non-empty id, got an id whose "
        r"rows ended earlier",
        [],
    ),
    (
        "csv-ragged-row",
        "p.csv",
        _csv(*_with(ROWS, 1, "s1,1,2.0,a")),
        r"line 3: number of cells: expected 5, got 4",
        [],
    ),
    (
        "csv-no-header",
        "p.csv",
        "\n".join(ROWS) + "\n",
        r"header column 0: expected the layout 'seq_id,t,f0,\.\.\.,f\{F-1\},label'",
        [],
    ),
    (
        "ts-rows-disagree-with-dimensions",
        "p.ts",
        _ts(*TS_ROWS, "1.0:2.0:3.0:a"),
        r"line 9 \(sequence 2\): number of dimensions: expected 2, got 3",
        [],
    ),
    (
        "ts-dimensions-disagree-with-spec",
        "p.ts",
        _ts(*TS_ROWS, head=TS_HEAD.replace("@dimensions 2", "@dimensions 3")),
        r"p\.ts: number of features: expected 2, got 3 \(@dimensions\)",
        [],
    ),
    (
        "ts-malformed-dimensions",
        "p.ts",
        _ts(*TS_ROWS, head=TS_HEAD.replace("@dimensions 2", "@dimensions two")),
        r"@dimensions: expected a positive integer, got a malformed value",
        [],
    ),
    (
        "ts-missing-value",
        "p.ts",
        _ts(*TS_ROWS, "1.0,?:2.0,3.0:c"),
        r"line 9 \(sequence 2\), dimension 0, time step 1: expected a number, got a missing "
        r"value '\?'",
        [],
    ),
    (
        "ts-non-numeric",
        "p.ts",
        _ts(*TS_ROWS, "1.0,2.0:3.0,x4:c"),
        r"dimension 1, time step 1: expected a number, got a non-numeric cell",
        ["x4"],
    ),
    ("ts-no-data-line", "p.ts", _ts(data=""), r"'@data' header lines", []),
    (
        "ts-regression-file",
        "p.ts",
        _ts(*TS_ROWS, head=TS_HEAD.replace("@classLabel true a b c", "@targetLabel true")),
        r"expected @classLabel true, got @targetLabel.*declares classes",
        [],
    ),
    (
        "ts-duplicate-classes",
        "p.ts",
        _ts(*TS_ROWS, head=TS_HEAD.replace("true a b c", "true a b a")),
        r"'@classLabel true <distinct names>'",
        [],
    ),
    (
        "ts-label-not-in-header",
        "p.ts",
        _ts(*TS_ROWS, "1.0:2.0:zebra"),
        r"label of sequence 2: expected one of the 3 declared classes in @classLabel",
        ["zebra"],
    ),
    (
        "ts-header-declares-unknown-class",
        "p.ts",
        _ts(*TS_ROWS, head=TS_HEAD.replace("true a b c", "true a b zebra")),
        r"@classLabel: expected names among the 3 declared classes, got other names",
        ["zebra"],
    ),
    (
        "ts-unequal-dimension-lengths",
        "p.ts",
        _ts(*TS_ROWS, "1.0,2.0:3.0:c"),
        r"line 9 \(sequence 2\): dimension lengths",
        [],
    ),
    (
        "ts-nan",
        "p.ts",
        _ts(*TS_ROWS, "1.0,NaN:2.0,3.0:c"),
        r"sequence 2, time step 1, feature f0: expected a finite number, got NaN",
        [],
    ),
    (
        "ts-empty-file",
        "p.ts",
        "  \n",
        r"p\.ts: expected a \.ts header and @data, got an empty "
        r"file",
        [],
    ),
    (
        "ts-data-before-header",
        "p.ts",
        f"{TS_ROWS[0]}\n" + _ts(*TS_ROWS),
        r"line 1: expected only '@' and '#' lines before @data, got a data line",
        [],
    ),
    (
        "npz-missing-array",
        "p.npz",
        _npz(y=None),
        r"p\.npz: expected arrays x, lengths, y, got arrays \['lengths', 'x'\]",
        [],
    ),
    (
        "npz-nan",
        "p.npz",
        _npz(x=_nan_x()),
        r"sequence 1, time step 2, feature f1: expected a finite number, got NaN",
        [],
    ),
    (
        "npz-wrong-ndim",
        "p.npz",
        _npz(x=np.full((2, 4), float(PLANT))),
        r"p\.npz: x: expected a numeric array \(N, T, F\), got 2-d",
        [],
    ),
    (
        "npz-wrong-feature-count",
        "p.npz",
        _npz(x=np.full((2, 4, 3), float(PLANT))),
        r"number of features: expected 2, got 3",
        [],
    ),
    (
        "npz-zero-length",
        "p.npz",
        _npz(lengths=np.array([2, 0])),
        r"length of sequence 1: expected 1\.\.4 time steps, got fewer than 1",
        [],
    ),
    (
        "npz-length-over-max-len",
        "p.npz",
        _npz(x=np.ones((2, 6, 2)), lengths=np.array([2, 6])),
        r"length of sequence 1: expected 1\.\.4 time steps, got more than 4",
        [],
    ),
    (
        "npz-label-index-out-of-range",
        "p.npz",
        _npz(y=np.array([0, 7])),
        r"label of sequence 1: expected one of the 3 declared classes",
        [],
    ),
    (
        "npz-float-labels",
        "p.npz",
        _npz(y=np.array([0.0, 1.0])),
        r"p\.npz: y: expected class names or integer class indices of shape \(2,\), got shape "
        r"\(2,\) of dtype float64",
        [],
    ),
    (
        "npz-pickled-object-array",
        "p.npz",
        _npz(x=np.array([[[float(PLANT)]]], dtype=object)),
        r"expected a \.npz archive of plain numpy arrays",
        [],
    ),
    (
        "npz-not-an-archive",
        "p.npz",
        f"x,{PLANT}\n",
        r"p\.npz: expected a \.npz archive of plain numpy arrays, got a file numpy cannot",
        [],
    ),
]


@pytest.mark.parametrize(
    "name, content, pattern, secrets", [c[1:] for c in BAD], ids=[c[0] for c in BAD]
)
def test_bad_input_raises_data_error_without_leaking_values(
    tmp_path, name, content, pattern, secrets
):
    path = tmp_path / name
    if content == "<dir>":
        path.mkdir()
    elif isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        content(path)
    with pytest.raises(DataError) as err:
        D.load_party_file(path, SPEC)
    msg = str(err.value)
    assert re.search(pattern, msg), msg
    assert msg.startswith(str(path)), msg
    for secret in [PLANT, *secrets]:  # the path itself is ours, not the party's data
        assert secret not in msg.replace(str(path), "<path>"), msg


def _sparse(size: int):
    """A file of ``size`` bytes that takes no disk (a hole): the reader must refuse it unread."""

    def make(path):
        with open(path, "wb") as f:
            f.truncate(size)

    return make


def _bomb(path):  # 64 KB on disk, 8 MB unpacked
    np.savez_compressed(
        path, x=np.zeros((1024, 1024)), lengths=np.ones(1, np.int64), y=np.zeros(1, np.int64)
    )


LIMIT = 1 << 20  # the tests' --max-file-bytes
OVERSIZED = [  # (id, file name, content, pattern): refused before the content is parsed
    (
        "csv-over-max-bytes",
        "p.csv",
        _sparse(2 << 30),
        r"p\.csv: size: expected at most 1048576 bytes \(--max-file-bytes\), got 2147483648 bytes",
    ),
    (
        "ts-over-max-bytes",
        "p.ts",
        _sparse(LIMIT + 1),
        r"p\.ts: size: expected at most 1048576 bytes \(--max-file-bytes\), got 1048577 bytes",
    ),
    ("npz-over-max-bytes", "p.npz", _sparse(LIMIT + 1), r"p\.npz: size: expected at most"),
    (
        "npz-unpacks-over-max-bytes",
        "p.npz",
        _bomb,
        r"p\.npz: unpacked size: expected at most 1048576 bytes \(--max-file-bytes\), got \d+",
    ),
    (
        "csv-200kb-cell",
        "p.csv",
        _csv(*ROWS, "s3,0," + "1" * 200_000 + ",1.0,c"),
        r"p\.csv: line 5: expected CSV cells of at most 131072 characters and no NUL bytes",
    ),
    (
        "csv-nul-byte",
        "p.csv",
        _csv(*ROWS).encode() + b"s3,0,1.0\x00,1.0,c\n",
        r"p\.csv: line 5 \(sequence 2\), column 'f0': expected a number, got a non-numeric",
    ),
    (
        "ts-undecodable-bytes",
        "p.ts",
        b"@classLabel true a b\n@data\n1,2:3,4:a\n\xff\xfe:1:b\n",
        r"p\.ts: line 4: expected UTF-8 text, got undecodable bytes",
    ),
]


@pytest.mark.parametrize(
    "name, content, pattern", [c[1:] for c in OVERSIZED], ids=[c[0] for c in OVERSIZED]
)
def test_oversized_and_malformed_files_are_refused_with_one_line(tmp_path, name, content, pattern):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        content(path)
    with pytest.raises(DataError) as err:
        D.load_party_file(path, SPEC, max_bytes=LIMIT)
    msg = str(err.value)
    assert re.search(pattern, msg) and "\n" not in msg, msg
    assert "1" * 100 not in msg


def test_default_file_bound_is_stated_and_admits_real_data_sets():
    assert D.MAX_FILE_BYTES == 512 << 20
    path = D._DATASETS / "japanese_vowels" / "JapaneseVowels_TRAIN.ts"
    assert path.stat().st_size < D.MAX_FILE_BYTES
