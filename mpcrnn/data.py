"""Local data intake: read, check and scale one party's own sequence data (numpy only).

One party's pipeline: ``load_party_file(path, spec)`` (read + validate; raw units, zero-padded),
then ``scale_features(data, spec)`` (declared bounds -> [-1, 1], then ``[data] frame``), then secret
sharing (elsewhere).

This module is the one name to import: the declaration and its checks live in
:mod:`mpcrnn.declaration`, the file readers in :mod:`mpcrnn.readers`; the demo data
(:func:`japanese_vowels`, :data:`JAPANESE_VOWELS_SPEC`) and the demo's party files are here.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mpcrnn.declaration import (  # noqa: F401 - the data API, re-exported
    JAPANESE_VOWELS_SPEC,
    DataSpec,
    SequenceData,
    check_min_rows,
    declare_bounds_from,
    fail,
    scale_features,
    validate,
)
from mpcrnn.readers import (  # noqa: F401 - the data API, re-exported
    MAX_FILE_BYTES,
    read_csv,
    read_npz,
    read_ts,
)
from protocols.errors import ConfigError, expected_got

_DATASETS = Path(__file__).resolve().parent / "datasets"


_READERS = {".ts": read_ts, ".csv": read_csv, ".npz": read_npz}


def load_party_file(
    path: str | Path, spec: DataSpec, max_bytes: int = MAX_FILE_BYTES
) -> SequenceData:
    """Read + validate one party's own file by suffix (.ts/.csv/.npz): raw x (N, max_len, F).
    With ``[data] window`` (forecasting): a long-series .csv cut into windows
    (:func:`mpcrnn.readers_series.read_series`).
    A file over ``max_bytes`` (an .npz: unpacked) is refused before it is read.

    Call :func:`scale_features` next, before sharing.
    """
    reader = _READERS.get(Path(path).suffix.lower())
    if spec.kind == "text":  # label<TAB>text lines, any suffix (mpcrnn.text)
        from mpcrnn.text import read_text

        reader = read_text
    elif spec.kind == "text-lm":  # plain text cut into windows (mpcrnn.text_lm)
        from mpcrnn.text_lm import read_lm_text

        reader = read_lm_text
    if spec.window is not None:  # forecasting: one long series, cut into windows here
        from mpcrnn.readers_series import read_series

        reader = read_series
    if reader is None:
        fail(
            f"{path}: file type",
            "a .ts, .csv or .npz file",
            f"suffix '{Path(path).suffix}' (unknown)",
        )
    return reader(path, spec, max_bytes)


def japanese_vowels(split: str) -> SequenceData:
    """Shipped UCI Japanese Vowels split, raw, validated against JAPANESE_VOWELS_SPEC.

    'train': 270 rows, 'test': 370; x: (N, 29, 12), y: (N,) speaker indices into "1".."9".
    """
    if split not in ("train", "test"):
        raise ConfigError(expected_got("japanese_vowels split", "'train' or 'test'", repr(split)))
    path = _DATASETS / "japanese_vowels" / f"JapaneseVowels_{split.upper()}.ts"
    return read_ts(path, JAPANESE_VOWELS_SPEC)


def split_rows(
    data: SequenceData, parts: Sequence[float] | Sequence[int], seed: int | np.random.Generator
) -> list[SequenceData]:
    """Split rows into disjoint per-party parts, shuffled by an explicitly seeded Generator.

    ``parts``: fractions (e.g. ``(0.5, 0.3, 0.2)``, sum <= 1) or row counts (ints, sum <= N).
    Rounding gives leftover rows to the largest remainders; each part keeps the original order.
    """
    n, size = data.n_rows, np.asarray(parts, dtype=np.float64)
    if all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in parts):
        size = size / max(n, 1)  # counts as fractions of n
    if size.size == 0 or not np.all(size > 0) or not size.sum() <= 1 + 1e-9:
        raise ConfigError(
            expected_got(
                "split_rows parts",
                f"positive fractions summing to <= 1 or counts summing to <= {n}",
                tuple(parts),
            )
        )
    raw = size * n
    counts = np.floor(raw + 1e-9).astype(np.int64)
    extra = int(math.floor(raw.sum() + 1e-9)) - int(counts.sum())
    counts[np.argsort(-(raw - counts), kind="stable")[:extra]] += 1
    if np.any(counts < 1):
        raise ConfigError(
            expected_got(
                "split_rows", "at least 1 row per part", f"counts {counts.tolist()} of {n} rows"
            )
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    perm, ends = rng.permutation(n), np.cumsum(counts)
    return [data.select(np.sort(perm[e - c : e])) for c, e in zip(counts, ends)]


def write_npz(data: SequenceData, path: str | Path) -> None:
    """Write ``data`` as .npz (x, lengths, y indices, classes); :func:`read_npz` reads it back."""
    with open(path, "wb") as f:
        np.savez(
            f, x=data.x, lengths=data.lengths, y=data.y, classes=np.array(data.classes, dtype=str)
        )


def write_csv(data: SequenceData, path: str | Path) -> None:
    """Write ``data`` in the :func:`read_csv` layout (seq_id = row index, exact float repr)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        last = "label" if data.classes else "target"  # regression: no classes, one target
        w.writerow(["seq_id", "t", *(f"f{j}" for j in range(data.n_features)), last])
        for i in range(data.n_rows):
            label = data.classes[int(data.y[i])] if data.classes else repr(float(data.y[i, 0]))
            for t, row in enumerate(data.x[i, : data.lengths[i]].tolist()):
                w.writerow([i, t, *map(repr, row), label])


def write_party_files(
    train_parts: Sequence[SequenceData], test_parts: Sequence[SequenceData], directory: str | Path
) -> tuple[list[str], list[str]]:
    """Write each party's train and test rows to ``party{r}-train.npz`` / ``party{r}-test.npz``
    (the demo and the benchmark hand every party its own file this way); returns the paths."""
    directory = Path(directory)
    train_paths, test_paths = [], []
    for r, (tr, te) in enumerate(zip(train_parts, test_parts)):
        for part, name, paths in ((tr, "train", train_paths), (te, "test", test_paths)):
            path = directory / f"party{r}-{name}.npz"
            write_npz(part, path)
            paths.append(str(path))
    return train_paths, test_paths
