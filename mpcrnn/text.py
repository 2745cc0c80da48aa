"""Text intake: a public tokenizer and the reader of one party's text file.

File format (the SMS Spam Collection's): one example per line, ``label<TAB>text``, UTF-8, no
header; the label is one of ``[data] classes``; the text is everything after the first TAB.

The vocabulary is public and fixed before any data is read; nothing is learned from anyone's
rows, so the tokenizer reveals nothing:

* ``vocab = "bytes"`` (the default): token id = UTF-8 byte value, vocabulary size V = 256.
* ``vocab = "<file>"``: a public vocabulary file, UTF-8, one character per line (a line
  ``\\n``, ``\\t`` or ``\\\\`` stands for that character); its SHA-256 must equal
  ``[data] vocab_sha256``.  Token id 0 is reserved for every character not in the file
  (unknown); the file's k-th line (1-based) is id k, so V = lines + 1.

No padding id: a row is encoded as one-hot vectors (N, max_len, V) and a padding step is the
all-zero vector (the mask, ``lengths``, stays secret like the tokens).  A text longer than
``max_len`` tokens is cut to its first ``max_len`` tokens (``too_long = "cut"``, the default)
or refused (``too_long = "refuse"``).  Errors name the file and line, never the text.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mpcrnn.declaration import DataSpec, SequenceData, fail, validate
from protocols.errors import ConfigError, expected_got

BYTES = "bytes"
TEXT_SUFFIXES = (".tsv", ".txt")
_ESCAPES = {"\\n": "\n", "\\t": "\t", "\\\\": "\\"}


class Tokenizer:
    """Text -> token ids with a public, fixed vocabulary (see the module docstring)."""

    def __init__(self, chars: tuple[str, ...] | None = None) -> None:
        self.chars = chars  # None: UTF-8 bytes
        self.index = {c: k + 1 for k, c in enumerate(chars or ())}

    @property
    def size(self) -> int:
        return 256 if self.chars is None else len(self.chars) + 1

    def encode(self, text: str) -> list[int]:
        if self.chars is None:
            return list(text.encode("utf-8"))
        return [self.index.get(c, 0) for c in text]

    def decode(self, ids) -> str:
        if self.chars is None:
            return bytes(int(i) for i in ids).decode("utf-8", "replace")
        return "".join(self.chars[int(i) - 1] if int(i) > 0 else "\ufffd" for i in ids)


def load_vocab(vocab: str, sha256: str | None, base: str | Path | None = None) -> Tokenizer:
    """The public tokenizer a ``[data]`` declaration names; a file's SHA-256 must match."""
    if vocab == BYTES:
        return Tokenizer()
    path = Path(vocab) if base is None or Path(vocab).is_absolute() else Path(base) / vocab
    raw = _pinned_bytes(str(path), sha256, "vocab")
    chars: list[str] = []
    for n, line in enumerate(raw.split(b"\n"), start=1):
        if not line and n == len(raw.split(b"\n")):
            break  # the final newline
        try:
            c = line.decode("utf-8").removesuffix("\r")
        except UnicodeDecodeError:
            raise ConfigError(expected_got(f"{vocab}: line {n}", "UTF-8", "other bytes")) from None
        c = _ESCAPES.get(c, c)
        if len(c) != 1 or c in chars:
            raise ConfigError(
                expected_got(f"{vocab}: line {n}", "one character not listed before", "another")
            )
        chars.append(c)
    return Tokenizer(tuple(chars))


def _pinned_bytes(path: str, sha256: str | None, what: str) -> bytes:
    """A public file's bytes, refused unless its SHA-256 is the run file's."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(
            expected_got(f"[data] {what} {path}", "a readable file", type(e).__name__)
        ) from None
    digest = hashlib.sha256(raw).hexdigest()
    if sha256 is None or digest != sha256.lower().removeprefix("sha256:"):
        raise ConfigError(
            expected_got(
                f"{path}: SHA-256",
                f"[data] {what}_sha256" + (f" = {sha256[:16]}..." if sha256 else " (not given)"),
                f"{digest[:16]}...",
                "every party must hold the same public file",
            )
        )
    return raw


def frozen_table(file: str | None, sha256: str | None, vocab_size: int) -> np.ndarray | None:
    """The frozen public embedding (V, D) of ``[data] embedding_file``, or None."""
    if file is None:
        return None
    import io

    try:
        table = np.load(io.BytesIO(_pinned_bytes(file, sha256, "embedding")), allow_pickle=False)
    except ValueError:
        table = None
    if not isinstance(table, np.ndarray) or table.ndim != 2 or table.shape[0] != vocab_size:
        raise ConfigError(expected_got(f"{file}", f"a .npy array ({vocab_size}, D)", "another"))
    if table.dtype.kind not in "fiu" or not np.isfinite(table).all():
        raise ConfigError(expected_got(f"{file}", "finite numbers", "other values"))
    return table.astype(np.float64)


def declared_features(body: dict) -> int:
    """n_features a text [data] section implies: D of a frozen embedding, else V."""
    tok = load_vocab(body.get("vocab", BYTES), body.get("vocab_sha256"))
    table = frozen_table(body.get("embedding_file"), body.get("embedding_sha256"), tok.size)
    return tok.size if table is None else table.shape[1]


def tokenizer_for(spec: DataSpec) -> Tokenizer:
    tok = load_vocab(spec.vocab, spec.vocab_sha256)
    want = declared_features(asdict(spec))
    if want != spec.n_features:
        raise ConfigError(
            expected_got(
                "[data] n_features (text: V, or D of the frozen embedding)", want, spec.n_features
            )
        )
    return tok


def encode(rows: list[list[int]], spec: DataSpec) -> np.ndarray:
    """Token id lists -> the shared input: one-hot (N, max_len, V), or with a frozen public
    embedding its rows (N, max_len, D), computed locally by the owner; padding stays 0."""
    tok = load_vocab(spec.vocab, spec.vocab_sha256)
    x = one_hot(rows, spec.max_len, tok.size)
    table = frozen_table(spec.embedding_file, spec.embedding_sha256, tok.size)
    return x if table is None else x @ table


def one_hot(rows: list[list[int]], max_len: int, vocab_size: int) -> np.ndarray:
    """Token id lists -> float64 one-hot (N, max_len, V); zero rows after each text ends."""
    x = np.zeros((len(rows), max_len, vocab_size))
    for i, ids in enumerate(rows):
        x[i, np.arange(len(ids)), ids] = 1.0
    return x


def read_text_rows(path: str | Path, spec: DataSpec, labelled: bool = True):
    """(token id lists, label names) of a ``label<TAB>text`` file (``labelled=False``: every line
    is a text), cut or refused at ``spec.max_len``; every check names file and line only."""
    from mpcrnn.readers import _lines

    tok, source = tokenizer_for(spec), str(path)
    rows, names = [], []
    for n, line in _lines(path, source):
        where = f"{source}: line {n}"
        if not line.strip():
            fail(where, "label<TAB>text" if labelled else "a text", "an empty line")
        label, sep, text = line.partition("\t") if labelled else ("", "\t", line)
        if labelled and not sep:
            fail(where, "label<TAB>text", "no TAB")
        if labelled and label.strip() not in spec.classes:
            fail(f"{where}: label", f"one of the {len(spec.classes)} declared classes", "another")
        ids = tok.encode(text)
        if not ids:
            fail(f"{where}: text", "at least 1 token", "an empty text")
        if len(ids) > spec.max_len:
            if spec.too_long == "refuse":
                fail(
                    f"{where}: text length",
                    f"at most {spec.max_len} tokens ([data] too_long = refuse)",
                    f"{len(ids)} tokens",
                )
            ids = ids[: spec.max_len]
        rows.append(ids)
        names.append(label.strip())
    if not rows:
        fail(source, "at least 1 line", "an empty file")
    return rows, names


def read_text(path: str | Path, spec: DataSpec, max_bytes: int | None = None) -> SequenceData:
    """One party's text file -> one-hot SequenceData x (N, max_len, V), lengths = tokens kept."""
    from mpcrnn.readers import MAX_FILE_BYTES, _check_size

    _check_size(path, str(path), max_bytes or MAX_FILE_BYTES)
    rows, names = read_text_rows(path, spec)
    index = {c: k for k, c in enumerate(spec.classes)}
    data = SequenceData(
        x=encode(rows, spec),
        lengths=np.array([len(r) for r in rows], dtype=np.int64),
        y=np.array([index[c] for c in names], dtype=np.int64),
        classes=spec.classes,
    )
    validate(data, spec, str(path))
    return data


def read_unlabelled(path: str | Path, spec: DataSpec) -> SequenceData:
    """``predict --raw-text``: every line one text (no label); y is all zeros, unused."""
    from mpcrnn.readers import MAX_FILE_BYTES, _check_size

    if spec.kind != "text":
        raise ConfigError(expected_got("--raw-text", "a text model ([data] kind text)", spec.kind))
    _check_size(path, str(path), MAX_FILE_BYTES)
    rows, _ = read_text_rows(path, spec, labelled=False)
    return SequenceData(
        x=encode(rows, spec),
        lengths=np.array([len(r) for r in rows], dtype=np.int64),
        y=np.zeros(len(rows), dtype=np.int64),
        classes=spec.classes,
    )


def encode_texts(texts: list[str], spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    """Raw texts (``predict``) -> (one-hot x (N, max_len, V), lengths), cut at max_len."""
    tok = tokenizer_for(spec)
    rows = [tok.encode(t)[: spec.max_len] or [0] for t in texts]
    return encode(rows, spec), np.array([len(r) for r in rows])


def write_text(path: str | Path, labels: list[str], texts: list[str]) -> None:
    """A ``label<TAB>text`` file (the demo writes each party's rows this way)."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for label, text in zip(labels, texts):
            f.write(f"{label}\t{text}\n")
