"""Local data intake: read, check and scale one party's own sequence data (numpy only).

Public, agreed by all parties before anything is shared: a :class:`DataSpec` (feature count,
class names in order, maximum length, declared per-feature bounds, bound on scaled values).
Every party pads its data to ``(N_party, spec.max_len, spec.n_features)``.

Local, never leaves the party's process in plaintext: the file, its values, labels and sequence
ids.  All checks here run before secret sharing; a :class:`DataError` names the file, the
sequence / line / column and what was expected, never a value taken from the file.

One party's pipeline: ``load_party_file(path, spec)`` (read + validate; raw units, zero-padded),
then ``scale_features(data, spec)`` (declared bounds -> [-1, 1]), then secret sharing (elsewhere).
Demo data: :func:`japanese_vowels`, :data:`JAPANESE_VOWELS_SPEC`.  CSV layout: :func:`read_csv`.
"""

from __future__ import annotations

import csv
import math
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NoReturn

import numpy as np

from protocols.errors import ConfigError, DataError, expected_got

_DATASETS = Path(__file__).resolve().parent / "datasets"


def _fail(where: str, expected: object, got: object, fix: str | None = None) -> NoReturn:
    raise DataError(expected_got(where, expected, got, fix))


@dataclass(frozen=True, eq=False)
class SequenceData:
    """Labelled sequences of one party, zero-padded at the end.

    x: float64 (N, T_max, F), ``x[i, t] == 0`` for ``t >= lengths[i]``; lengths: int64 (N,);
    y: int64 (N,) indices into ``classes``; classes: the declared class names, in order.
    """

    x: np.ndarray
    lengths: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]

    @property
    def n_rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def max_len(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.x.shape[2])

    def mask(self) -> np.ndarray:
        """bool (N, T_max): True at valid (non-padding) time steps."""
        return np.arange(self.max_len)[None, :] < self.lengths[:, None]

    def select(self, rows: np.ndarray) -> SequenceData:
        """Rows ``rows`` (index array or bool mask (N,)) as a new SequenceData."""
        return replace(self, x=self.x[rows], lengths=self.lengths[rows], y=self.y[rows])


@dataclass(frozen=True)
class DataSpec:
    """Public declaration every party agrees on before any data is shared.

    ``scaling="bounds"`` maps feature j linearly from ``[feature_low[j], feature_high[j]]`` to
    [-1, 1]; a value may lie a little outside its bounds, but one whose scaled magnitude exceeds
    ``value_bound`` is rejected (never clipped).  ``"none"``: |x| <= value_bound as given.
    """

    n_features: int
    classes: tuple[str, ...]
    max_len: int  # longest sequence any party may hold; every party pads to it (public shape)
    # Hard limit on |x| after scaling: headroom for values a little outside the declared bounds,
    # yet far from fixed-point overflow (CrypTen encodes with 16 fractional bits in a 64-bit ring).
    value_bound: float = 8.0
    scaling: str = "none"  # "bounds" (the declared per-feature bounds below) or "none"
    feature_low: tuple[float, ...] | None = None  # public per-feature bounds, only for "bounds"
    feature_high: tuple[float, ...] | None = None
    # Public floor on each party's row count.  A released model carries information about every
    # training row, and the fewer rows a party brings, the more of it is about each of them (one
    # row and a one-step schedule: a receiver read that row's label off the weights).  Below it
    # a party is warned, or refused with --strict; DP-SGD (--dp-epsilon) is what bounds the leak.
    min_rows: int = 10

    def __post_init__(self) -> None:
        def bad(what: str, expected: object) -> NoReturn:
            raise ConfigError(expected_got(f"DataSpec.{what}", expected, repr(getattr(self, what))))

        object.__setattr__(self, "classes", tuple(self.classes))
        for what in ("n_features", "max_len", "min_rows"):
            if not isinstance(getattr(self, what), int) or getattr(self, what) < 1:
                bad(what, "an integer >= 1")
        names = self.classes
        if (
            not names
            or len(set(names)) != len(names)
            or any(not isinstance(c, str) or not c or c != c.strip() or "\n" in c for c in names)
        ):
            bad("classes", "distinct non-empty names without surrounding spaces")
        if not (isinstance(self.value_bound, (int, float)) and 0 < self.value_bound < math.inf):
            bad("value_bound", "a finite number > 0")
        given = (self.feature_low, self.feature_high)
        unset = all(v is None for v in given)
        if self.scaling not in ("bounds", "none") or (self.scaling == "none") != unset:
            bad("scaling", "'bounds' with feature_low/feature_high, or 'none' without them")
        if self.scaling == "bounds":
            if any(v is None or len(v) != self.n_features for v in given):
                bad("feature_low", f"{self.n_features} bounds each in feature_low/feature_high")
            lo, hi = (np.asarray(v, dtype=np.float64) for v in given)
            if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
                bad("feature_low", "finite bounds with feature_low < feature_high")
            if self.value_bound < 1:
                bad("value_bound", ">= 1 with scaling='bounds'")
            object.__setattr__(self, "feature_low", tuple(lo.tolist()))
            object.__setattr__(self, "feature_high", tuple(hi.tolist()))


# Built-in demo.  max_len 29 is the longest utterance of both splits (train alone: 26).  Bounds
# are public constants: declare_bounds_from(japanese_vowels("train")), i.e. per-feature min/max of
# the public UCI train split rounded outward to 1 decimal.  The test split exceeds them by at most
# 0.13 in scaled units, well inside value_bound.  Organizations must declare their own bounds.
JAPANESE_VOWELS_SPEC = DataSpec(
    n_features=12,
    classes=tuple(str(k) for k in range(1, 10)),
    max_len=29,
    scaling="bounds",
    feature_low=(-0.8, -1.9, -0.8, -1.0, -0.7, -0.9, -0.7, -0.6, -0.7, -0.6, -0.5, -0.4),
    feature_high=(2.3, 0.7, 1.2, 0.6, 1.0, 0.3, 0.5, 0.6, 0.4, 0.3, 0.3, 0.5),
)


def validate(data: SequenceData, spec: DataSpec, source: str) -> None:
    """Check raw (unscaled) ``data`` against ``spec``, else DataError naming ``source``.

    >= 1 sequence, feature count, lengths in 1..spec.max_len, declared classes and labels in
    range, finite values, zero padding, scaled ``|x| <= spec.value_bound``.
    """
    x, lengths, y = data.x, data.lengths, data.y
    if not (isinstance(x, np.ndarray) and x.ndim == 3 and x.dtype.kind == "f"):
        _fail(f"{source}: x", "a float array (N, T, F)", "another array")
    n = x.shape[0]
    if n == 0:
        _fail(source, "at least 1 sequence", "0", "The file has no data rows")
    if x.shape[2] != spec.n_features:
        _fail(f"{source}: number of features", spec.n_features, x.shape[2])
    for name, arr in (("lengths", lengths), ("y", y)):
        if not (isinstance(arr, np.ndarray) and arr.shape == (n,) and arr.dtype.kind in "iu"):
            _fail(f"{source}: {name}", f"integers of shape ({n},)", "another array")
    _check_lengths(lengths, spec.max_len, x.shape[1], source)
    if tuple(data.classes) != spec.classes:
        _fail(f"{source}: classes", f"the {len(spec.classes)} declared classes", "another list")
    _check_labels(np.flatnonzero((y < 0) | (y >= len(spec.classes))), len(spec.classes), source)
    valid = data.mask()[:, :, None]
    _first_cell(np.isnan(x) & valid, source, "a finite number", "NaN")
    _first_cell(np.isinf(x) & valid, source, "a finite number", "an infinite value")
    _first_cell((x != 0) & ~valid, source, "0 after the sequence ends", "a non-zero value")
    _scaled(x, valid, spec, source)


def _check_lengths(lengths: np.ndarray, max_len: int, t_axis: int, source: str) -> None:
    for bad, got in (
        (lengths < 1, "fewer than 1"),
        (lengths > max_len, f"more than {max_len}"),
        (lengths > t_axis, f"more than the {t_axis} steps of the time axis"),
    ):
        if bad.any():
            _fail(
                f"{source}: length of sequence {np.flatnonzero(bad)[0]}",
                f"1..{max_len} time steps",
                f"{got} ({bad.sum()} sequence(s) affected)",
            )


def _check_labels(bad_rows: np.ndarray, n_classes: int, source: str, where: str = "") -> None:
    if bad_rows.size:
        _fail(
            f"{source}: label of sequence {bad_rows[0]}",
            f"one of the {n_classes} declared classes{where}",
            f"a label outside them ({bad_rows.size} sequence(s) affected)",
            "Declare every class in the spec, or drop those sequences before intake",
        )


def _first_cell(bad: np.ndarray, source: str, expected: str, got: str) -> None:
    if bad.any():
        i, t, j = np.argwhere(bad)[0]
        _fail(
            f"{source}: sequence {i}, time step {t}, feature f{j}",
            expected,
            f"{got} ({int(bad.sum())} cell(s) affected)",
        )


def _scaled(x: np.ndarray, valid: np.ndarray, spec: DataSpec, source: str) -> np.ndarray:
    """Scaled copy of ``x`` (padding 0); DataError if a valid cell exceeds ``spec.value_bound``."""
    expected = f"|value| <= {spec.value_bound:g}"
    if spec.scaling == "bounds":
        lo, hi = np.asarray(spec.feature_low), np.asarray(spec.feature_high)
        with np.errstate(invalid="ignore", over="ignore"):
            x = np.where(valid, (x - lo) * (2.0 / (hi - lo)) - 1.0, 0.0)
        expected = f"a value within the declared bounds (scaled |x| <= {spec.value_bound:g})"
    with np.errstate(invalid="ignore"):  # NaN / inf fail this check too
        _first_cell(
            ~(np.abs(x) <= spec.value_bound) & valid,
            source,
            expected,
            "a value outside the declared bounds",
        )
    return np.array(x, dtype=np.float64)


def check_min_rows(data: SequenceData, spec: DataSpec, source: str, strict: bool) -> str | None:
    """The warning for a party below the declared ``min_rows`` (None if it has enough); with
    ``strict`` a DataError instead.  Row counts are public anyway; values are never named."""
    if data.n_rows >= spec.min_rows:
        return None
    msg = expected_got(
        f"{source}: rows",
        f"at least {spec.min_rows} ([data] min_rows)",
        data.n_rows,
        "The released model reveals more about each row the fewer rows a party "
        "brings: add rows, or bound the leak with --dp-epsilon",
    )
    if strict:
        raise DataError(msg)
    return msg


def scale_features(data: SequenceData, spec: DataSpec, source: str = "data") -> SequenceData:
    """x (N, T, F) mapped by the declared bounds to [-1, 1]; padding stays 0; never clipped."""
    return replace(data, x=_scaled(data.x, data.mask()[:, :, None], spec, source))


def declare_bounds_from(
    data: SequenceData, decimals: int = 1
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature (low, high) over valid steps, rounded outward to ``decimals``.

    For the BUILT-IN demo only, whose bounds are public constants computed once from the public
    UCI train split.  Bounds computed from private data reveal its extremes: organizations must
    declare their own from domain knowledge.
    """
    vals, scale = data.x[data.mask()], 10.0**decimals  # vals: (sum(lengths), F)
    if vals.size == 0:
        raise ConfigError(expected_got("declare_bounds_from", "at least 1 valid time step", "0"))
    lo = np.floor(vals.min(axis=0) * scale) / scale
    hi = np.maximum(np.ceil(vals.max(axis=0) * scale) / scale, lo + 1.0 / scale)
    return tuple(round(v, decimals) for v in lo.tolist()), tuple(
        round(v, decimals) for v in hi.tolist()
    )


def _io_fail(e: OSError, source: str) -> NoReturn:
    _fail(
        source,
        "a readable file",
        f"{type(e).__name__} ({e.strerror or 'I/O error'})",
        "Check the path and its permissions",
    )


# Largest data file a party reads, by default (``--max-file-bytes`` changes it).  Sized for real
# sequence data sets (the largest UEA/UCR .ts files are a few hundred MB; Japanese Vowels is
# 0.4 MB) while keeping a party's peak memory bounded: files are read line by line, and the
# parsed float64 arrays are at most a few times the file's size.  A larger file is refused
# before a byte of it is read.
MAX_FILE_BYTES = 512 << 20


def _check_size(path: str | Path, source: str, max_bytes: int) -> None:
    try:
        size = Path(path).stat().st_size
    except OSError as e:
        _io_fail(e, source)
    if size > max_bytes:
        _fail(
            f"{source}: size",
            f"at most {max_bytes} bytes (--max-file-bytes)",
            f"{size} bytes",
            "Split the rows across files or raise --max-file-bytes",
        )


def _lines(path: str | Path, source: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its end) of a UTF-8 text file, read line by line
    (decoded one line at a time, so an undecodable byte is reported at its line)."""
    try:
        with open(path, "rb") as f:
            for n, raw in enumerate(f, start=1):
                try:
                    yield n, raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    _fail(f"{source}: line {n}", "UTF-8 text", "undecodable bytes")
    except OSError as e:
        _io_fail(e, source)


def _floats(cells: list[str], where: Callable[[int], str]) -> np.ndarray:
    """Parse cells to float64; ``where(k)`` names cell k in the error, never its content."""
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        pass
    for k, cell in enumerate(cells):
        try:
            float(cell)
        except ValueError:
            if cell.strip() == "?":
                _fail(where(k), "a number", "a missing value '?'", "Impute or drop it first")
            _fail(where(k), "a number", "a non-numeric cell")
    _fail(where(0), "numbers", "unparseable cells")


def _assemble(
    seqs: list[np.ndarray], names: list[str], spec: DataSpec, source: str
) -> SequenceData:
    """Pad (L_i, F) arrays to x (N, max(spec.max_len, L_i), F), encode labels, validate."""
    index = {c: k for k, c in enumerate(spec.classes)}
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    x = np.zeros(
        (
            len(seqs),
            max([spec.max_len, *lengths.tolist()]),
            seqs[0].shape[1] if seqs else spec.n_features,
        )
    )
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
    y = np.array([index.get(name, -1) for name in names], dtype=np.int64)
    data = SequenceData(x=x, lengths=lengths, y=y, classes=spec.classes)
    validate(data, spec, source)
    return data


def read_ts(
    path: str | Path, spec: DataSpec | None = None, max_bytes: int = MAX_FILE_BYTES
) -> SequenceData:
    """Read a UEA/UCR ``.ts`` classification file into raw SequenceData x: (N, T, F).

    Header: ``#`` comments and ``@`` lines (``@dimensions 12``, ``@classLabel true a b``, ...)
    up to ``@data``; then rows ``dim1:dim2:...:label``, each dimension comma-separated values of
    one common length.  ``?`` (missing) and timestamps are unsupported.  With ``spec``: padded
    to spec.max_len and validated; without: shape and classes from the file, no value bound.
    Read line by line; a file over ``max_bytes`` is refused unread.
    """
    source, meta, started, blank = str(path), {}, False, True
    _check_size(path, source, max_bytes)
    lines = _lines(path, source)
    for n, line in lines:
        tok = line.split() or [""]
        blank = blank and not line.strip()
        if tok[0].lower() == "@data":
            started = True
            break
        if tok[0] and not tok[0].startswith(("@", "#")):
            _fail(f"{source}: line {n}", "only '@' and '#' lines before @data", "a data line")
        if tok[0].startswith("@"):
            meta[tok[0].lower()] = [t.lower() for t in tok[1:2]] + tok[2:]
    if blank and not started:
        _fail(source, "a .ts header and @data", "an empty file")
    declared = tuple(meta.get("@classlabel", [""])[1:])
    if (
        not started
        or not declared
        or meta["@classlabel"][0] != "true"
        or len(set(declared)) < len(declared)
    ):
        _fail(
            source,
            "'@classLabel true <distinct names>' and '@data' header lines",
            "others",
            "Only classification .ts files are supported",
        )
    if meta.get("@timestamps") == ["true"]:
        _fail(f"{source}: @timeStamps", "false", "true (unsupported)")
    dims = meta.get("@dimensions")  # absent: the first data row decides
    if dims is not None and (len(dims) != 1 or not dims[0].isdigit() or int(dims[0]) < 1):
        _fail(f"{source}: @dimensions", "a positive integer", "a malformed value")
    dims = int(dims[0]) if dims else None
    if spec is not None and not set(declared) <= set(spec.classes):
        _fail(
            f"{source}: @classLabel",
            f"names among the {len(spec.classes)} declared classes",
            "other names",
        )
    if spec is not None and dims is not None and dims != spec.n_features:
        _fail(f"{source}: number of features", spec.n_features, f"{dims} (@dimensions)")
    longest = spec.max_len if spec is not None else None
    seqs, names = [], []
    for n, line in lines:
        parts = line.strip().split(":")
        if parts == [""]:
            continue
        where = f"{source}: line {n} (sequence {len(seqs)})"
        if dims is None:
            dims = len(parts) - 1
            if spec is not None and dims != spec.n_features:
                _fail(f"{source}: number of features", spec.n_features, dims)
        if len(parts) - 1 != dims:
            _fail(f"{where}: number of dimensions", dims, len(parts) - 1)
        cols = [
            _floats(p.split(","), lambda t, d=d: f"{where}, dimension {d}, time step {t}")
            for d, p in enumerate(parts[:-1])
        ]
        if any(len(c) != len(cols[0]) for c in cols):
            _fail(f"{where}: dimension lengths", "one common length", "different lengths")
        if longest is not None and len(cols[0]) > longest:  # stop early: no need to read on
            _fail(
                f"{source}: length of sequence {len(seqs)}",
                f"1..{longest} time steps",
                f"more than {longest}",
            )
        names.append(parts[-1].strip())
        seqs.append(np.stack(cols, axis=1))
    _check_labels(
        np.flatnonzero([name not in declared for name in names]),
        len(declared),
        source,
        " in @classLabel",
    )
    if spec is None:  # describe the file itself; no magnitude limit
        spec = DataSpec(
            dims or 1,
            declared,
            max((len(s) for s in seqs), default=1),
            value_bound=sys.float_info.max,
        )
    return _assemble(seqs, names, spec, source)


def read_csv(path: str | Path, spec: DataSpec, max_bytes: int = MAX_FILE_BYTES) -> SequenceData:
    """Read the long-format CSV: one row per time step, header ``seq_id,t,f0,...,f{F-1},label``.

    Rows of one sequence are contiguous and share ``seq_id`` (any non-empty string, kept local);
    ``t`` runs 0, 1, ..., len-1 in order; ``label`` (a class name from ``spec.classes``) is the
    same on every row of a sequence.  Sequence index = order of first appearance.  Blank lines
    are skipped.  Returns raw SequenceData x: (N, spec.max_len, F), validated.  Read row by row
    (a cell over ``csv.field_size_limit()`` characters is refused); a file over ``max_bytes`` is
    refused unread.
    """
    source = str(path)
    _check_size(path, source, max_bytes)
    reader = csv.reader(line for _, line in _lines(path, source))
    try:
        seqs, names = _csv_rows(reader, spec, source)
    except csv.Error:
        _fail(
            f"{source}: line {reader.line_num}",
            f"CSV cells of at most {csv.field_size_limit()} characters and no NUL bytes",
            "a malformed or over-long cell",
        )
    return _assemble([np.array(rows) for _, rows in seqs], names, spec, source)


def _csv_rows(reader, spec: DataSpec, source: str) -> tuple[list, list]:
    header = [h.strip() for h in next(reader, [])]
    if not header:
        _fail(source, "a header 'seq_id,t,f0,...,label'", "an empty file")
    want = ["seq_id", "t", *(f"f{j}" for j in range(max(len(header) - 3, 0))), "label"]
    if header != want:
        col = next((k for k, (a, b) in enumerate(zip(header, want)) if a != b), len(header) - 1)
        _fail(
            f"{source}: header column {col}",
            "the layout 'seq_id,t,f0,...,f{F-1},label'",
            "a different name or order",
        )
    if len(header) - 3 != spec.n_features:
        _fail(f"{source}: number of features", spec.n_features, len(header) - 3)
    seqs, names, seen = [], [], set()
    for cells in reader:
        if not "".join(cells).strip():
            continue
        ln, sid, label = reader.line_num, cells[0].strip(), cells[-1].strip()
        if len(cells) != len(want):
            _fail(f"{source}: line {ln}: number of cells", len(want), len(cells))
        if not seqs or sid != seqs[-1][0]:
            if not sid or sid in seen:
                _fail(
                    f"{source}: line {ln}, column 'seq_id'",
                    "contiguous rows per non-empty id",
                    "an id whose rows ended earlier" if sid else "an empty id",
                )
            seen.add(sid)
            seqs.append((sid, []))
            names.append(label)
        where, cur = f"{source}: line {ln} (sequence {len(seqs) - 1})", seqs[-1][1]
        if not cells[1].strip().isdigit() or int(cells[1]) != len(cur):
            _fail(
                f"{where}, column 't'",
                f"{len(cur)} (consecutive integer time steps 0, 1, 2, ... in order)",
                "another value",
            )
        if len(cur) >= spec.max_len:  # stop early: no need to read on
            _fail(
                f"{source}: length of sequence {len(seqs) - 1}",
                f"1..{spec.max_len} time steps",
                f"more than {spec.max_len}",
            )
        if label != names[-1]:
            _fail(
                f"{where}, column 'label'", "the same label on every row of a sequence", "a change"
            )
        cur.append(_floats(cells[2:-1], lambda j: f"{where}, column 'f{j}'"))
    return seqs, names


def read_npz(path: str | Path, spec: DataSpec, max_bytes: int = MAX_FILE_BYTES) -> SequenceData:
    """Read a numpy ``.npz`` with arrays ``x`` (N, T, F) numeric, ``lengths`` (N,) int, ``y`` (N,).

    ``y``: str class names, or int indices into the file's optional ``classes`` array if present,
    else into ``spec.classes``.  Values of ``x`` past ``lengths[i]`` are ignored.  Pickled
    (object) arrays are refused.  Returns raw SequenceData x: (N, spec.max_len, F), validated.
    """
    source = str(path)
    _check_size(path, source, max_bytes)
    _check_unpacked(path, source, max_bytes)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except OSError as e:
        _io_fail(e, source)
    except (ValueError, EOFError, TypeError, AttributeError, zipfile.BadZipFile):
        _fail(source, "a .npz archive of plain numpy arrays", "a file numpy cannot read as one")
    if not {"x", "lengths", "y"} <= arrays.keys():
        _fail(source, "arrays x, lengths, y", f"arrays {sorted(arrays)}")
    x, lengths, y = arrays["x"], arrays["lengths"], arrays["y"]
    if x.ndim != 3 or x.dtype.kind not in "fiu":
        _fail(f"{source}: x", "a numeric array (N, T, F)", f"{x.ndim}-d of kind '{x.dtype.kind}'")
    for name, arr, kinds, want in (
        ("lengths", lengths, "iu", "integers"),
        ("y", y, "iuUS", "class names or integer class indices"),
    ):
        if arr.shape != (x.shape[0],) or arr.dtype.kind not in kinds:
            _fail(
                f"{source}: {name}",
                f"{want} of shape ({x.shape[0]},)",
                f"shape {arr.shape} of dtype {arr.dtype}",
            )
    _check_lengths(lengths, spec.max_len, x.shape[1], source)
    labels = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in y.tolist()]
    if y.dtype.kind in "iu":
        own = [str(c) for c in arrays["classes"].tolist()] if "classes" in arrays else spec.classes
        _check_labels(np.flatnonzero((y < 0) | (y >= len(own))), len(own), source)
        labels = [own[k] for k in labels]
    seqs = [x[i, :n].astype(np.float64) for i, n in enumerate(lengths.tolist())]
    return _assemble(seqs, [str(v).strip() for v in labels], spec, source)


def _check_unpacked(path: str | Path, source: str, max_bytes: int) -> None:
    """A .npz is a zip: bound what it unpacks to (a small file may inflate to gigabytes)."""
    try:
        with zipfile.ZipFile(path) as z:
            size = sum(info.file_size for info in z.infolist())
    except OSError as e:
        _io_fail(e, source)
    except (zipfile.BadZipFile, ValueError, EOFError):
        _fail(source, "a .npz archive of plain numpy arrays", "a file numpy cannot read as one")
    if size > max_bytes:
        _fail(
            f"{source}: unpacked size",
            f"at most {max_bytes} bytes (--max-file-bytes)",
            f"{size} bytes",
            "Split the rows across files or raise --max-file-bytes",
        )


_READERS = {".ts": read_ts, ".csv": read_csv, ".npz": read_npz}


def load_party_file(
    path: str | Path, spec: DataSpec, max_bytes: int = MAX_FILE_BYTES
) -> SequenceData:
    """Read + validate one party's own file by suffix (.ts/.csv/.npz): raw x (N, max_len, F).
    A file over ``max_bytes`` (an .npz: unpacked) is refused before it is read.

    Call :func:`scale_features` next, before sharing.
    """
    reader = _READERS.get(Path(path).suffix.lower())
    if reader is None:
        _fail(
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
        w.writerow(["seq_id", "t", *(f"f{j}" for j in range(data.n_features)), "label"])
        for i in range(data.n_rows):
            for t, row in enumerate(data.x[i, : data.lengths[i]].tolist()):
                w.writerow([i, t, *map(repr, row), data.classes[int(data.y[i])]])


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
