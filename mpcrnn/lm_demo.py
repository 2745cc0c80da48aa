"""``mpcrnn train --demo shakespeare``: a character language model on shares, its text split
across organizations.

Data (mpcrnn/datasets/tinyshakespeare, see its SOURCE.md): two fixed slices of Karpathy's Tiny
Shakespeare ``input.txt`` (1,115,394 characters), copied unchanged:

* train.txt: characters [0, 15000) (the start of the usual first-90% training part);
* test.txt: characters [1003854, 1006854), the first 3,000 of the usual last-10% validation
  part (1003854 = int(0.9 * 1115394)); none of it is in train.txt.

Each slice is cut into contiguous blocks, one per organization, 50/30/20 for 3 (equal blocks
otherwise), and lowercased (public preprocessing, the same for everyone).  The vocabulary is
public and fixed: vocab_lowercase.txt (newline, space, a-z and ``!',-.:;?``, V = 37 with the
unknown id 0 for any other character), pinned by :data:`VOCAB_SHA256`; nothing is derived
from the text.  Why small: fewer rows of the embedding and the head to learn from 15,000
characters, and a cheaper step (the softmax's row max: V - 1 comparisons per predicted token;
a step at V 37 costs 0.76 W1 steps, at V 256 1.25: benchmarks/results/text_step_cost.md).

Model: Embedding(37, 16) + GRU(32) + Linear(32, 37), windows of 24 tokens, AdamW lr 0.02 with
weight decay 0.1, 2 epochs (82 steps of 16 windows); chosen with the plaintext mirror
(``mpcrnn rehearse``) so that the gates stay inside the polynomials' interval (max 0.77 of it).
"""

from __future__ import annotations

from pathlib import Path

DIR = Path(__file__).resolve().parent / "datasets" / "tinyshakespeare"
VOCAB = DIR / "vocab_lowercase.txt"
VOCAB_SHA256 = "a3a2fe85729898fdde1552b188b389fb40f583779f32d618c476793c13272688"

SETTINGS = {  # the demo's defaults; the run file and the flags override them
    "model": {"embedding_dim": 16, "hidden_size": 32},
    "train": {
        "lr": 0.02,
        "epochs": 2,
        "batch_size": 16,
        "optimizer": "adamw",
        "weight_decay": 0.1,
    },
}


def demo_data() -> dict:
    return {
        "kind": "text-lm",
        "max_len": 24,
        "vocab": str(VOCAB),
        "vocab_sha256": VOCAB_SHA256,
    }


def with_demo_settings(raw: dict) -> dict:
    """The run file's sections with the demo's [data] and defaults where the file sets none."""
    out = {k: dict(v) for k, v in raw.items()}
    out.setdefault("data", demo_data())
    for section, values in SETTINGS.items():
        out.setdefault(section, {})
        for k, v in values.items():
            out[section].setdefault(k, v)
    return out


def blocks(text: str, parties: int) -> list[str]:
    """Contiguous blocks of ``text``, 50/30/20 for 3 parties, equal otherwise."""
    fractions = [0.5, 0.3, 0.2] if parties == 3 else [1.0 / parties] * parties
    ends = [round(sum(fractions[: r + 1]) * len(text)) for r in range(parties)]
    return [text[a:b] for a, b in zip([0, *ends[:-1]], ends)]


def write_party_files(parties: int, out_dir: str | Path):
    """Each organization's lowercased blocks as ``party{r}-{train,test}.txt``; returns (train
    paths, test paths, train characters per party)."""
    paths: dict[str, list[str]] = {"train": [], "test": []}
    counts = []
    for name in ("train", "test"):
        text = (DIR / f"{name}.txt").read_text(encoding="utf-8").lower()
        for r, part in enumerate(blocks(text, parties)):
            path = Path(out_dir) / f"party{r}-{name}.txt"
            path.write_text(part, encoding="utf-8", newline="")
            paths[name].append(str(path))
            if name == "train":
                counts.append(len(part))
    return paths["train"], paths["test"], counts
