"""The public data declaration and the local checks and scaling of one party's rows.

Public, agreed by all parties before anything is shared: a :class:`DataSpec` (feature count,
class names in order, maximum length, declared per-feature bounds, bound on scaled values).
Every party pads its data to ``(N_party, spec.max_len, spec.n_features)``.

Local, never leaves the party's process in plaintext: the values, labels and sequence ids.
All checks here run before secret sharing; a :class:`DataError` names the file, the sequence /
line / column and what was expected, never a value taken from the file.  Reading files:
:mod:`mpcrnn.readers`; both through :mod:`mpcrnn.data`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NoReturn

import numpy as np

from mpcrnn.settings import section, setting
from protocols.errors import ConfigError, DataError, expected_got


def fail(where: str, expected: object, got: object, fix: str | None = None) -> NoReturn:
    raise DataError(expected_got(where, expected, got, fix))


@dataclass(frozen=True, eq=False)
class SequenceData:
    """Labelled sequences of one party, zero-padded at the end.

    x: float64 (N, T_max, F), ``x[i, t] == 0`` for ``t >= lengths[i]``; lengths: int64 (N,);
    y: int64 (N,) indices into ``classes``; classes: the declared class names, in order.
    Regression (the declaration has target bounds): y float64 (N, O) real targets, classes ().
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


KINDS = ("sequence", "text", "text-lm")


@section("data")
@dataclass(frozen=True)
class DataSpec:
    """Public declaration every party agrees on before any data is shared.

    ``scaling="bounds"`` maps feature j linearly from ``[feature_low[j], feature_high[j]]`` to
    [-1, 1]; a value may lie a little outside its bounds, but one whose scaled magnitude exceeds
    ``value_bound`` is rejected (never clipped).  ``"none"``: |x| <= value_bound as given.

    ``frame = k`` stacks every k consecutive time steps into one model input after scaling
    (:func:`frame_steps`): the network reads ``input_len = ceil(max_len / k)`` steps of
    ``input_size = k n_features`` values.  A long series of few features (GunPoint: 150 x 1) is
    hard for a recurrent model to learn step by step (its gradient fades over 150 steps; torch's
    Adam learns GunPoint at k = 10, not at k = 1); framing shortens the recurrence k-fold, which
    also divides the sequential rounds of an MPC step by about k.  Local, public preprocessing:
    every party frames its own rows the same way before sharing.
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
    frame: int = 1  # time steps stacked into one model input (1: none); see the docstring
    # the model reads these orders of differences along time of every scaled feature (0: the
    # values), each times its public gain, before framing (mpcrnn.differences)
    differences: tuple[int, ...] = (0,)
    difference_gains: tuple[float, ...] | None = None  # one per order; default 1.0 each
    # text (mpcrnn.text): rows are label<TAB>text lines, tokenized with a public vocabulary
    # ("bytes": UTF-8 bytes, V = 256; or a vocabulary file whose SHA-256 is vocab_sha256) and
    # one-hot encoded, so n_features = V; too_long: "cut" to max_len tokens or "refuse".
    # "text-lm": plain text cut into windows of max_len tokens, a next-token model (mpcrnn.text_lm)
    kind: str = "sequence"  # "sequence" (numeric features), "text" or "text-lm"
    vocab: str = "bytes"
    vocab_sha256: str | None = None
    too_long: str = "cut"
    # a frozen public embedding (V, D) .npy applied by each party to its own tokens before sharing
    # (n_features = D); pinned by its SHA-256
    embedding_file: str | None = None
    embedding_sha256: str | None = None
    # Regression: PUBLIC bounds of the real target (one value per sequence); declaring them makes
    # the task regression (then classes = []).  Targets are scaled from [target_low, target_high]
    # to [-1, 1] like features; a target outside them is refused (mpcrnn.regression).
    target_low: float | None = None
    target_high: float | None = None
    n_targets: int = 1  # targets per sequence (regression; a forecast horizon: mpcrnn.windows)
    # Forecasting from files (docs/regression.md): with ``window`` set, each party's data file is
    # ONE long series, a CSV of numeric columns (mpcrnn.readers_series), that the party cuts into
    # windows locally (mpcrnn.windows.cut); max_len is then the window and n_targets the horizon
    # (both may be left out).  These five are settings: run-file keys with a flag each.
    window: int | None = setting(
        None,
        help="Forecasting: input steps W of each window cut from a party's long series (a CSV); "
        "setting it makes every data file one series. max_len = W.",
    )
    horizon: int | None = setting(
        None, help="Forecasting: values h predicted after each window (n_targets = h); default 1."
    )
    stride: int | None = setting(
        None, help="Forecasting: steps between the starts of two windows; default 1."
    )
    target_column: str | None = setting(
        None,
        help="Forecasting: the series' column (CSV header name) whose next values are the "
        "targets; required with more than one column.",
    )
    season: int | None = setting(
        None,
        help="Forecasting: the series' seasonal period in steps (at most the window), for the "
        "seasonal-naive baseline in the report.",
    )

    @property
    def is_regression(self) -> bool:
        return self.target_low is not None or self.target_high is not None

    @property
    def is_lm(self) -> bool:
        """A next-token language model on plain text ([data] kind = "text-lm")."""
        return self.kind == "text-lm"

    @property
    def input_size(self) -> int:
        """Values per model input step: ``frame * n_features * len(differences)``."""
        return self.frame * self.n_features * len(self.differences)

    @property
    def input_len(self) -> int:
        """Model input steps: ``ceil(max_len / frame)``."""
        return -(-self.max_len // self.frame)

    def __post_init__(self) -> None:
        def bad(what: str, expected: object) -> NoReturn:
            raise ConfigError(expected_got(f"DataSpec.{what}", expected, repr(getattr(self, what))))

        object.__setattr__(self, "classes", tuple(self.classes))
        for what in ("n_features", "max_len", "min_rows", "frame", "n_targets"):
            if not isinstance(getattr(self, what), int) or getattr(self, what) < 1:
                bad(what, "an integer >= 1")
        if self.frame > self.max_len:
            bad("frame", f"at most max_len = {self.max_len} time steps")
        names = self.classes
        if self.is_regression:
            from mpcrnn.regression import check_target_bounds

            check_target_bounds(self)
        elif self.kind == "text-lm":
            if names:
                bad("classes", "none for a language model ([data] kind text-lm)")
        elif (
            not names
            or len(set(names)) != len(names)
            or any(not isinstance(c, str) or not c or c != c.strip() or "\n" in c for c in names)
        ):
            bad("classes", "distinct non-empty names without surrounding spaces")
        if not (isinstance(self.value_bound, (int, float)) and 0 < self.value_bound < math.inf):
            bad("value_bound", "a finite number > 0")
        if self.kind not in KINDS or self.too_long not in ("cut", "refuse"):
            bad("kind", "'sequence', 'text' or 'text-lm', with too_long 'cut' or 'refuse'")
        if self.kind != "sequence" and (self.scaling != "none" or self.frame != 1):
            bad("scaling", "'none' with frame 1 for text (one-hot tokens)")
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
        from mpcrnn.differences import check_differences
        from mpcrnn.windows import check_forecast  # mpcrnn.windows imports this module

        check_forecast(self)
        check_differences(self)


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


def validate(
    data: SequenceData, spec: DataSpec, source: str, lines: list[int] | None = None
) -> None:
    """Check raw (unscaled) ``data`` against ``spec``, else DataError naming ``source``.

    >= 1 sequence, feature count, lengths in 1..spec.max_len, declared classes and labels in
    range (regression: targets within the declared bounds, named by ``lines[i]``, the file line
    of sequence i, when given), finite values, zero padding, scaled ``|x| <= spec.value_bound``.
    """
    x, lengths, y = data.x, data.lengths, data.y
    if not (isinstance(x, np.ndarray) and x.ndim == 3 and x.dtype.kind == "f"):
        fail(f"{source}: x", "a float array (N, T, F)", "another array")
    n = x.shape[0]
    if n == 0:
        fail(source, "at least 1 sequence", "0", "The file has no data rows")
    if x.shape[2] != spec.n_features:
        fail(f"{source}: number of features", spec.n_features, x.shape[2])
    for name, arr in (("lengths", lengths), ("y", y))[: 1 if spec.is_regression else 2]:
        if not (isinstance(arr, np.ndarray) and arr.shape == (n,) and arr.dtype.kind in "iu"):
            fail(f"{source}: {name}", f"integers of shape ({n},)", "another array")
    check_lengths(lengths, spec.max_len, x.shape[1], source)
    if tuple(data.classes) != spec.classes:
        fail(f"{source}: classes", f"the {len(spec.classes)} declared classes", "another list")
    if spec.is_regression:
        from mpcrnn.regression import check_targets

        check_targets(y, spec, source, lines)
    else:
        check_labels(np.flatnonzero((y < 0) | (y >= len(spec.classes))), len(spec.classes), source)
    valid = data.mask()[:, :, None]
    _first_cell(np.isnan(x) & valid, source, "a finite number", "NaN")
    _first_cell(np.isinf(x) & valid, source, "a finite number", "an infinite value")
    _first_cell((x != 0) & ~valid, source, "0 after the sequence ends", "a non-zero value")
    _scaled(x, valid, spec, source)


def check_lengths(lengths: np.ndarray, max_len: int, t_axis: int, source: str) -> None:
    for bad, got in (
        (lengths < 1, "fewer than 1"),
        (lengths > max_len, f"more than {max_len}"),
        (lengths > t_axis, f"more than the {t_axis} steps of the time axis"),
    ):
        if bad.any():
            fail(
                f"{source}: length of sequence {np.flatnonzero(bad)[0]}",
                f"1..{max_len} time steps",
                f"{got} ({bad.sum()} sequence(s) affected)",
            )


def check_labels(bad_rows: np.ndarray, n_classes: int, source: str, where: str = "") -> None:
    if bad_rows.size:
        fail(
            f"{source}: label of sequence {bad_rows[0]}",
            f"one of the {n_classes} declared classes{where}",
            f"a label outside them ({bad_rows.size} sequence(s) affected)",
            "Declare every class in the spec, or drop those sequences before intake",
        )


def _first_cell(bad: np.ndarray, source: str, expected: str, got: str) -> None:
    if bad.any():
        i, t, j = np.argwhere(bad)[0]
        fail(
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
    """The model's input: x (N, T, F) mapped by the declared bounds to [-1, 1] (padding stays
    0; never clipped), its declared differences (:mod:`mpcrnn.differences`), then framed by
    ``spec.frame`` (:func:`frame_steps`)."""
    from mpcrnn.differences import with_differences

    x = _scaled(data.x, data.mask()[:, :, None], spec, source)
    scaled = replace(data, x=with_differences(x, data.lengths, spec, source))
    if spec.is_regression:  # the targets too, by their declared bounds
        from mpcrnn.regression import scale_targets

        scaled = replace(scaled, y=scale_targets(data.y, spec))
    return frame_steps(scaled, spec.frame)


LONG_SERIES = 50  # more steps than this: a frame is worth rehearsing (template and rehearse say so)


def suggested_frame(max_len: int) -> int:
    """The frame that leaves about 16 model steps: ``ceil(max_len / 16)`` (GunPoint 150 -> 10)."""
    return -(-max_len // 16)


def frame_steps(data: SequenceData, k: int) -> SequenceData:
    """Stack every ``k`` consecutive steps into one: x (N, T, F) -> (N, ceil(T/k), k F) with
    ``x'[i, s] = concat(x[i, s k], ..., x[i, s k + k - 1])`` (zeros past the end), lengths
    -> ceil(lengths / k).  A sequence whose length is not a multiple of k ends with a frame
    padded by zeros, as every sequence is padded after its end.  ``k = 1``: ``data`` itself."""
    if k == 1:
        return data
    n, t, f = data.x.shape
    steps = -(-t // k)
    x = np.zeros((n, steps * k, f), dtype=data.x.dtype)
    x[:, :t] = data.x
    return replace(data, x=x.reshape(n, steps, k * f), lengths=-(-data.lengths // k))


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
