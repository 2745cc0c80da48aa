"""Forecasting intake: one party's long series, read and cut into windows in its own process.

With ``[data] window`` set (:func:`mpcrnn.windows.check_forecast`), each party's data file (and
test file) is ONE long series, a CSV:

* line 1: a header of column names (``temperature,load``), one per feature, in the declared
  order (feature j is column j, bounded by ``feature_low[j]`` / ``feature_high[j]``);
* then one row per time step, oldest first, every cell a number; blank lines are skipped;
* ``[data] target_column`` names the column whose next ``horizon`` values are each window's
  targets (it stays an input feature too); with one column, that column.

The party cuts its own series with :func:`mpcrnn.windows.cut` (``window``, ``horizon``,
``stride``), so a window never holds another party's values.  Every row is checked against the
feature bounds, every step that is some window's target against ``[target_low, target_high]``;
an error names the file, the line and the column (counted from 1), never a value.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mpcrnn.declaration import DataSpec, SequenceData, fail, validate
from mpcrnn.readers import MAX_FILE_BYTES, _check_size, _floats, _lines
from mpcrnn.windows import cut, window_starts

WINDOWS_PER_FILE_BYTE = 4  # the windows may take at most this many times --max-file-bytes


def read_series(path: str | Path, spec: DataSpec, max_bytes: int = MAX_FILE_BYTES) -> SequenceData:
    """Read one party's long series (layout: the module's docstring) and cut it into windows:
    raw SequenceData x (N, window, F), y (N, horizon), validated against ``spec``."""
    source = str(path)
    if Path(path).suffix.lower() != ".csv":
        fail(
            f"{source}: file type",
            "a .csv long series (a header of column names, one row per time step) with "
            "[data] window set",
            f"suffix '{Path(path).suffix}'",
        )
    _check_size(path, source, max_bytes)
    series, at, target = _rows(path, spec, source)
    need = spec.window + spec.horizon
    if len(series) < need:
        fail(
            f"{source}: length",
            f"at least window + horizon = {need} time steps ([data] window, horizon)",
            f"{len(series)} rows",
        )
    _check_values(series, at, target, spec, source)
    starts = window_starts(len(series), spec.window, spec.horizon, spec.stride)
    size = len(starts) * spec.window * spec.n_features * 8
    if size > WINDOWS_PER_FILE_BYTE * max_bytes:
        fail(
            f"{source}: windows",
            f"at most {WINDOWS_PER_FILE_BYTE * max_bytes} bytes of windows "
            f"({WINDOWS_PER_FILE_BYTE} x --max-file-bytes)",
            f"{size} bytes",
            "Raise [data] stride or --max-file-bytes",
        )
    data = cut(series, spec.window, spec.horizon, spec.stride, target)
    validate(data, spec, source)
    return data


def naive_sums(path: str | Path, spec: DataSpec, max_bytes: int = MAX_FILE_BYTES) -> dict:
    """A party's own test windows under the naive forecasts, in the target's units: the error
    sums (:func:`mpcrnn.regression.error_sums`) of ``last_value`` (the window's last target
    value for every horizon step) and, with ``[data] season``, ``seasonal_last``.  The report
    pools them like the model's sums; nothing else leaves the party."""
    from mpcrnn.regression import error_sums
    from mpcrnn.windows import last_value, seasonal_last

    data = read_series(path, spec, max_bytes)  # every check, as for the model's rows
    _, _, target = _rows(path, spec, str(path))
    out = {"last_value": error_sums(last_value(data.x, spec.horizon, target), data.y)}
    if spec.season is not None:
        guess = seasonal_last(data.x, spec.horizon, spec.season, target)
        out["seasonal_last"] = error_sums(guess, data.y)
    return out


def _rows(path, spec: DataSpec, source: str) -> tuple[np.ndarray, list[int], int]:
    """(series (L, F), the file line of each row, the target column's index)."""
    reader = csv.reader(line for _, line in _lines(path, source))
    try:
        header = [h.strip() for h in next(reader, [])]
        target = _header(header, spec, source)
        rows, at, n = [], [], len(header)
        for cells in reader:
            if not "".join(cells).strip():
                continue
            ln = reader.line_num
            if len(cells) != n:
                fail(f"{source}: line {ln}: number of cells", n, len(cells))
            rows.append(
                _floats(cells, lambda k, ln=ln: f"{source}: line {ln}, column {k + 1} of {n}")
            )
            at.append(ln)
    except csv.Error:
        fail(
            f"{source}: line {reader.line_num}",
            f"CSV cells of at most {csv.field_size_limit()} characters and no NUL bytes",
            "a malformed or over-long cell",
        )
    series = np.array(rows, dtype=np.float64).reshape(len(rows), len(header))
    return series, at, target


def _header(header: list[str], spec: DataSpec, source: str) -> int:
    """Check the header line; the target column's index."""
    if not any(header):
        fail(source, "a header line of column names, then one row per time step", "an empty file")
    if all(_is_number(h) for h in header):
        fail(f"{source}: line 1", "a header of column names", "numbers (a data row?)")
    if len(header) != spec.n_features:
        fail(f"{source}: number of columns", f"{spec.n_features} ([data] n_features)", len(header))
    if not all(header) or len(set(header)) < len(header):
        fail(f"{source}: header", "distinct non-empty column names", "an empty or repeated name")
    if spec.target_column is None:
        return 0  # one column: it is the target
    if spec.target_column not in header:
        fail(
            f"{source}: header",
            f"a column named '{spec.target_column}' ([data] target_column)",
            "no such column",
        )
    return header.index(spec.target_column)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _check_values(series: np.ndarray, at: list[int], target: int, spec: DataSpec, source: str):
    """Finite cells within the feature bounds; every window's targets within the target bounds:
    else one DataError naming the first bad line and column."""
    n_cols = series.shape[1]

    def first(bad: np.ndarray, expected: str, got: str) -> None:
        if bad.any():
            i, k = np.argwhere(bad)[0]
            fail(
                f"{source}: line {at[i]}, column {k + 1} of {n_cols}",
                expected,
                f"{got} ({int(bad.sum())} cell(s) affected)",
            )

    first(np.isnan(series), "a number", "NaN")
    first(np.isinf(series), "a finite number", "an infinite value")
    scaled = series
    expected = f"|value| <= {spec.value_bound:g}"
    if spec.scaling == "bounds":
        lo, hi = np.asarray(spec.feature_low), np.asarray(spec.feature_high)
        scaled = (series - lo) * (2.0 / (hi - lo)) - 1.0
        expected = f"a value within the declared bounds (scaled |x| <= {spec.value_bound:g})"
    first(np.abs(scaled) > spec.value_bound, expected, "a value outside the declared bounds")
    starts = window_starts(len(series), spec.window, spec.horizon, spec.stride)
    cover = np.zeros(len(series) + 1, dtype=np.int64)  # how many windows target each step
    np.add.at(cover, starts + spec.window, 1)
    np.add.at(cover, starts + spec.window + spec.horizon, -1)
    y = series[:, target]
    bad = np.zeros(series.shape, dtype=bool)
    bad[:, target] = (np.cumsum(cover)[:-1] > 0) & ((y < spec.target_low) | (y > spec.target_high))
    first(
        bad,
        f"a target within the declared [data] target_low {spec.target_low:g} .. "
        f"target_high {spec.target_high:g}",
        "a value outside them",
    )


def write_series(series: np.ndarray, path: str | Path, columns: list[str] | tuple[str, ...]):
    """Write a long series (L,) or (L, F) in the :func:`read_series` layout (exact floats)."""
    s = np.asarray(series, dtype=np.float64)
    s = s[:, None] if s.ndim == 1 else s
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        w.writerows([repr(v) for v in row] for row in s.tolist())
