"""The regression side of :mod:`mpcrnn.readers`: real targets in .ts/.csv label cells and in
.npz ``y``, and the error for a file of the other task.  Imported by the readers when the
declaration has target bounds (:mod:`mpcrnn.regression` checks and scales the values)."""

from __future__ import annotations

import sys
from typing import NoReturn

import numpy as np

from mpcrnn.declaration import DataSpec, SequenceData, check_lengths, fail
from mpcrnn.readers import _assemble, _floats


def targets(names, spec: DataSpec, source: str, lines: list[int] | None) -> np.ndarray:
    """Target cells (a string per sequence, or numbers) -> float64 (N, spec.n_targets)."""
    if len(names) and not isinstance(names[0], str):
        return np.asarray(names, dtype=np.float64).reshape(len(names), -1)

    def where(i: int) -> str:
        return f"{source}: line {lines[i]} (sequence {i}), target" if lines else f"{source}: {i}"

    return _floats(list(names), where).reshape(len(names), 1)


def unbounded(seqs: list, dims: int | None) -> DataSpec:
    """A declaration describing a regression .ts file itself (its shapes; no bounds)."""
    big = sys.float_info.max
    longest = max((len(s) for s in seqs), default=1)
    return DataSpec(dims or 1, (), longest, big, target_low=-big, target_high=big)


def task_mismatch(source: str, spec: DataSpec) -> NoReturn:
    fail(
        f"{source}: header",
        "@targetLabel true (regression)" if spec.is_regression else "@classLabel true",
        "@classLabel" if spec.is_regression else "@targetLabel",
        "The run file's [data] declares "
        + ("target bounds (regression)" if spec.is_regression else "classes"),
    )


def npz_targets(x, lengths, y, spec: DataSpec, source: str) -> SequenceData:
    n = x.shape[0]
    if lengths.shape != (n,) or lengths.dtype.kind not in "iu":
        fail(f"{source}: lengths", f"integers of shape ({n},)", f"shape {lengths.shape}")
    if y.dtype.kind not in "fiu" or y.reshape(n, -1).shape != (n, spec.n_targets):
        fail(
            f"{source}: y",
            f"real targets of shape ({n},) or ({n}, {spec.n_targets})",
            f"shape {y.shape} of dtype {y.dtype}",
        )
    check_lengths(lengths, spec.max_len, x.shape[1], source)
    seqs = [x[i, :k].astype(np.float64) for i, k in enumerate(lengths.tolist())]
    return _assemble(seqs, y.astype(np.float64).reshape(n, -1), spec, source)
