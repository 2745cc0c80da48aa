"""Reading one party's own data file (.ts, .csv, .npz) into :class:`SequenceData`, validated
against the public :class:`DataSpec` (:func:`mpcrnn.declaration.validate`).

Files are read line by line and refused unread above ``max_bytes``; every error names the file,
the line or sequence and what was expected, never a value from the file.  CSV layout:
:func:`read_csv`.
"""

from __future__ import annotations

import csv
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import numpy as np

from mpcrnn.declaration import DataSpec, SequenceData, check_labels, check_lengths, fail, validate


def _io_fail(e: OSError, source: str) -> NoReturn:
    fail(
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
        fail(
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
                    fail(f"{source}: line {n}", "UTF-8 text", "undecodable bytes")
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
                fail(where(k), "a number", "a missing value '?'", "Impute or drop it first")
            fail(where(k), "a number", "a non-numeric cell")
    fail(where(0), "numbers", "unparseable cells")


def _assemble(seqs: list, names: list, spec: DataSpec, source: str, lines=None) -> SequenceData:
    """Pad (L_i, F) arrays to x (N, max(spec.max_len, L_i), F), encode labels (regression: parse
    the targets; ``lines[i]``: the file line of sequence i, for errors), validate."""
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
    if spec.is_regression:
        y = _rt().targets(names, spec, source, lines)
    else:
        y = np.array([index.get(name, -1) for name in names], dtype=np.int64)
    data = SequenceData(x=x, lengths=lengths, y=y, classes=spec.classes)
    validate(data, spec, source, lines)
    return data


def read_ts(
    path: str | Path, spec: DataSpec | None = None, max_bytes: int = MAX_FILE_BYTES
) -> SequenceData:
    """Read a UEA/UCR ``.ts`` file into raw SequenceData x: (N, T, F).

    Header: ``#`` comments and ``@`` lines (``@dimensions 12``, ``@classLabel true a b``, ...)
    up to ``@data`` (``@targetLabel true``, UEA/Monash regression: each row's label is one real
    target, checked against the declared bounds).  Rows ``dim1:dim2:...:label``, each dimension
    comma-separated values of one common length.  ``?`` (missing) and timestamps are
    unsupported.  With ``spec``: padded to spec.max_len and validated; without: shape and
    classes from the file, no value bound.  A file over ``max_bytes`` is refused unread.
    """
    source = str(path)
    _check_size(path, source, max_bytes)
    lines = _lines(path, source)
    declared, dims = _ts_header(lines, source)
    regression = declared is None
    if spec is not None and regression != spec.is_regression:
        _rt().task_mismatch(source, spec)
    if spec is not None and not regression and not set(declared) <= set(spec.classes):
        fail(
            f"{source}: @classLabel",
            f"names among the {len(spec.classes)} declared classes",
            "other names",
        )
    if spec is not None and dims is not None and dims != spec.n_features:
        fail(f"{source}: number of features", spec.n_features, f"{dims} (@dimensions)")
    seqs, names, dims, rows_at = _ts_rows(lines, source, dims, spec)
    if regression:  # without spec: the file itself, targets unbounded
        return _assemble(seqs, names, spec or _rt().unbounded(seqs, dims), source, rows_at)
    check_labels(
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


def _rt():
    """The regression readers (:mod:`mpcrnn.readers_targets`, which imports this module)."""
    from mpcrnn import readers_targets

    return readers_targets


def _ts_header(lines, source: str) -> tuple[tuple[str, ...], int | None]:
    """Read a .ts header up to ``@data`` from ``lines``: (the declared class names, the
    declared number of dimensions or None)."""
    meta, started, blank = {}, False, True
    for n, line in lines:
        tok = line.split() or [""]
        blank = blank and not line.strip()
        if tok[0].lower() == "@data":
            started = True
            break
        if tok[0] and not tok[0].startswith(("@", "#")):
            fail(f"{source}: line {n}", "only '@' and '#' lines before @data", "a data line")
        if tok[0].startswith("@"):
            meta[tok[0].lower()] = [t.lower() for t in tok[1:2]] + tok[2:]
    if blank and not started:
        fail(source, "a .ts header and @data", "an empty file")
    if started and meta.get("@targetlabel") == ["true"] and "@classlabel" not in meta:
        declared = None  # regression: one real target per sequence
    else:
        declared = _class_header(meta, source, started)
    if meta.get("@timestamps") == ["true"]:
        fail(f"{source}: @timeStamps", "false", "true (unsupported)")
    dims = meta.get("@dimensions")  # absent: the first data row decides
    if dims is not None and (len(dims) != 1 or not dims[0].isdigit() or int(dims[0]) < 1):
        fail(f"{source}: @dimensions", "a positive integer", "a malformed value")
    return declared, int(dims[0]) if dims else None


def _class_header(meta: dict, source: str, started: bool) -> tuple[str, ...]:
    declared = tuple(meta.get("@classlabel", [""])[1:])
    if (
        not started
        or not declared
        or meta["@classlabel"][0] != "true"
        or len(set(declared)) < len(declared)
    ):
        fail(
            source,
            "'@classLabel true <distinct names>' (classification) or '@targetLabel true' "
            "(regression) and '@data' header lines",
            "others",
        )
    return declared


def _ts_rows(lines, source: str, dims: int | None, spec: DataSpec | None):
    """The .ts data rows after ``@data``: (sequences (T_i, F), label names, dims, the line of
    each sequence)."""
    longest = spec.max_len if spec is not None else None
    seqs, names, rows_at = [], [], []
    for n, line in lines:
        parts = line.strip().split(":")
        if parts == [""]:
            continue
        where = f"{source}: line {n} (sequence {len(seqs)})"
        if dims is None:
            dims = len(parts) - 1
            if spec is not None and dims != spec.n_features:
                fail(f"{source}: number of features", spec.n_features, dims)
        if len(parts) - 1 != dims:
            fail(f"{where}: number of dimensions", dims, len(parts) - 1)
        cols = [
            _floats(p.split(","), lambda t, d=d, w=where: f"{w}, dimension {d}, time step {t}")
            for d, p in enumerate(parts[:-1])
        ]
        if any(len(c) != len(cols[0]) for c in cols):
            fail(f"{where}: dimension lengths", "one common length", "different lengths")
        if longest is not None and len(cols[0]) > longest:  # stop early: no need to read on
            fail(
                f"{source}: length of sequence {len(seqs)}",
                f"1..{longest} time steps",
                f"more than {longest}",
            )
        names.append(parts[-1].strip())
        rows_at.append(n)
        seqs.append(np.stack(cols, axis=1))
    return seqs, names, dims, rows_at


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
        seqs, names, rows_at = _csv_rows(reader, spec, source)
    except csv.Error:
        fail(
            f"{source}: line {reader.line_num}",
            f"CSV cells of at most {csv.field_size_limit()} characters and no NUL bytes",
            "a malformed or over-long cell",
        )
    return _assemble([np.array(rows) for _, rows in seqs], names, spec, source, rows_at)


def _csv_rows(reader, spec: DataSpec, source: str) -> tuple[list, list]:
    header = [h.strip() for h in next(reader, [])]
    last = "target" if spec.is_regression else "label"  # regression: a real target per sequence
    if not header:
        fail(source, f"a header 'seq_id,t,f0,...,{last}'", "an empty file")
    want = ["seq_id", "t", *(f"f{j}" for j in range(max(len(header) - 3, 0))), last]
    if header != want:
        col = next((k for k, (a, b) in enumerate(zip(header, want)) if a != b), len(header) - 1)
        fail(
            f"{source}: header column {col}",
            f"the layout 'seq_id,t,f0,...,f{{F-1}},{last}'",
            "a different name or order",
        )
    if len(header) - 3 != spec.n_features:
        fail(f"{source}: number of features", spec.n_features, len(header) - 3)
    seqs, names, seen, rows_at = [], [], set(), []
    for cells in reader:
        if not "".join(cells).strip():
            continue
        ln, sid, label = reader.line_num, cells[0].strip(), cells[-1].strip()
        if len(cells) != len(want):
            fail(f"{source}: line {ln}: number of cells", len(want), len(cells))
        if not seqs or sid != seqs[-1][0]:
            if not sid or sid in seen:
                fail(
                    f"{source}: line {ln}, column 'seq_id'",
                    "contiguous rows per non-empty id",
                    "an id whose rows ended earlier" if sid else "an empty id",
                )
            seen.add(sid)
            seqs.append((sid, []))
            names.append(label)
            rows_at.append(ln)
        where, cur = f"{source}: line {ln} (sequence {len(seqs) - 1})", seqs[-1][1]
        if not cells[1].strip().isdigit() or int(cells[1]) != len(cur):
            fail(
                f"{where}, column 't'",
                f"{len(cur)} (consecutive integer time steps 0, 1, 2, ... in order)",
                "another value",
            )
        if len(cur) >= spec.max_len:  # stop early: no need to read on
            fail(
                f"{source}: length of sequence {len(seqs) - 1}",
                f"1..{spec.max_len} time steps",
                f"more than {spec.max_len}",
            )
        if label != names[-1]:
            fail(
                f"{where}, column '{last}'",
                f"the same {last} on every row of a sequence",
                "a change",
            )
        cur.append(_floats(cells[2:-1], lambda j, w=where: f"{w}, column 'f{j}'"))
    return seqs, names, rows_at


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
        fail(source, "a .npz archive of plain numpy arrays", "a file numpy cannot read as one")
    if not {"x", "lengths", "y"} <= arrays.keys():
        fail(source, "arrays x, lengths, y", f"arrays {sorted(arrays)}")
    x, lengths, y = arrays["x"], arrays["lengths"], arrays["y"]
    if x.ndim != 3 or x.dtype.kind not in "fiu":
        fail(f"{source}: x", "a numeric array (N, T, F)", f"{x.ndim}-d of kind '{x.dtype.kind}'")
    if spec.is_regression:  # y: real targets (N,) or (N, n_targets)
        return _rt().npz_targets(x, lengths, y, spec, source)
    for name, arr, kinds, want in (
        ("lengths", lengths, "iu", "integers"),
        ("y", y, "iuUS", "class names or integer class indices"),
    ):
        if arr.shape != (x.shape[0],) or arr.dtype.kind not in kinds:
            fail(
                f"{source}: {name}",
                f"{want} of shape ({x.shape[0]},)",
                f"shape {arr.shape} of dtype {arr.dtype}",
            )
    check_lengths(lengths, spec.max_len, x.shape[1], source)
    labels = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in y.tolist()]
    if y.dtype.kind in "iu":
        own = [str(c) for c in arrays["classes"].tolist()] if "classes" in arrays else spec.classes
        check_labels(np.flatnonzero((y < 0) | (y >= len(own))), len(own), source)
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
        fail(source, "a .npz archive of plain numpy arrays", "a file numpy cannot read as one")
    if size > max_bytes:
        fail(
            f"{source}: unpacked size",
            f"at most {max_bytes} bytes (--max-file-bytes)",
            f"{size} bytes",
            "Split the rows across files or raise --max-file-bytes",
        )
