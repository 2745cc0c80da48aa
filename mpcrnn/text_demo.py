"""``mpcrnn train --demo sms``: SMS spam classification on shares, split across organizations.

Data: the SMS Spam Collection v.1 (mpcrnn/datasets/sms_spam, see its SOURCE.md), 4,827 ham
and 747 spam.  The full set is too slow for a demo on shares (each step is T sequential
recurrent steps of Beaver rounds), so the demo uses a fixed, balanced subsample:

* a permutation of all 5,574 lines under ``numpy.random.default_rng(0)``;
* train: the first 250 spam and the first 250 ham in that order (500 rows);
* test: the next 250 spam and the next 250 ham (500 rows, none in train);
* each set in file order, split across the organizations by :func:`mpcrnn.data.split_rows`
  (50/30/20 for 3) under the run's seed, as the time-series demo does.

Balanced, so the majority class scores 50%.  The vocabulary is public and fixed: printable
ASCII (``vocab_ascii.txt``, the 95 characters 0x20-0x7E, V = 96 with the unknown id 0 for any
other character, e.g. a newline or a pound sign), pinned by :data:`VOCAB_SHA256`.  Texts are cut
to ``max_len`` = 40 characters (public); the model is Embedding(96, 16) + GRU(H=32) + Linear,
Adam lr 0.05, 6 epochs (96 steps of 32 rows).  Chosen with torch alone over seeds 0-2
(docs/text.md): 79-80% test accuracy, against 61-70% for the earlier UTF-8 bytes, 300 rows,
lr 0.03 and 8 epochs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DIR = Path(__file__).resolve().parent / "datasets" / "sms_spam"
SMS_FILE = DIR / "SMSSpamCollection.tsv"
VOCAB = DIR / "vocab_ascii.txt"
VOCAB_SHA256 = "0c11519ae31133f9e3e24dafa10fc274a70752838ea53c344d4a748ae4b363c4"
PER_CLASS = 250  # train and test rows per class

SMS_DATA = {
    "kind": "text",
    "vocab": str(VOCAB),
    "vocab_sha256": VOCAB_SHA256,
    "classes": ["ham", "spam"],
    "max_len": 40,
}
SMS_SETTINGS = {  # the demo's defaults; the run file and the flags override them
    "model": {"embedding_dim": 16, "hidden_size": 32},
    "train": {"lr": 0.05, "epochs": 6},
}


def sms_lines() -> list[tuple[str, str]]:
    """(label, text) of every line of the shipped collection, in file order."""
    with open(SMS_FILE, encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("\t", 1)) for line in f]


def sms_split() -> tuple[list[int], list[int]]:
    """The demo's fixed train and test line indices (see the module docstring)."""
    lines = sms_lines()
    perm = np.random.default_rng(0).permutation(len(lines)).tolist()
    by = {c: [i for i in perm if lines[i][0] == c] for c in ("ham", "spam")}
    train = sorted(i for c in by for i in by[c][:PER_CLASS])
    test = sorted(i for c in by for i in by[c][PER_CLASS : 2 * PER_CLASS])
    return train, test


def with_demo_settings(raw: dict) -> dict:
    """The run file's sections with the demo's [data] and defaults where the file sets none."""
    out = {k: dict(v) for k, v in raw.items()}
    out.setdefault("data", dict(SMS_DATA))
    for section, values in SMS_SETTINGS.items():
        out.setdefault(section, {})
        for k, v in values.items():
            out[section].setdefault(k, v)
    return out


def write_sms_party_files(parties: int, seed: int, out_dir: str | Path):
    """Each organization's train and test rows as ``party{r}-{train,test}.tsv``; returns
    (train paths, test paths, train rows per party)."""
    from mpcrnn.data import split_rows
    from mpcrnn.text import write_text

    lines = sms_lines()
    fractions = [0.5, 0.3, 0.2] if parties == 3 else [1.0 / parties] * parties
    paths: dict[str, list[str]] = {"train": [], "test": []}
    counts = []
    for name, rows, s in zip(("train", "test"), sms_split(), (seed, seed + 1)):
        for r, part in enumerate(_split(rows, fractions, s, split_rows)):
            path = Path(out_dir) / f"party{r}-{name}.tsv"
            write_text(path, [lines[i][0] for i in part], [lines[i][1] for i in part])
            paths[name].append(str(path))
            if name == "train":
                counts.append(len(part))
    return paths["train"], paths["test"], counts


def _split(rows: list[int], fractions, seed: int, split_rows) -> list[list[int]]:
    """The same per-party split as the numeric demo, applied to line indices."""
    from mpcrnn.declaration import SequenceData

    idx = np.array(rows)
    holder = SequenceData(
        np.zeros((len(rows), 1, 1)), np.ones(len(rows), dtype=np.int64), idx, ("x",)
    )
    return [p.y.tolist() for p in split_rows(holder, fractions, seed)]
