"""A language model's data: one party's plain text cut LOCALLY into public-length windows, and
its local evaluation in bits per character.

``[data] kind = "text-lm"``: each party's file is plain UTF-8 text (no labels, newlines are
tokens like any character), tokenized with the public vocabulary of :mod:`mpcrnn.text` (UTF-8
bytes, or a vocabulary file pinned by its SHA-256).  The token stream is cut by its owner into
windows of ``max_len`` tokens that overlap by one token (stride ``max_len - 1``)::

    tokens  a b c d e f g h      max_len = 4
    windows [a b c d] [d e f g] [g h]

so every token but the file's first is predicted exactly once (the model predicts token t + 1
of a window from tokens 0..t of the same window; the context restarts at each window).  The
last window holds the rest (at least 2 tokens; its length stays secret in the mask like every
other).  The number of windows (rows) is public, as every party's row count is.

Evaluation (:func:`evaluate_lm`): the party's own summed cross-entropy in bits and its number
of predicted tokens, in plaintext on the opened model; ``mpcrnn train`` pools the sums of every
party's report (never a party's text).  Bits per character = pooled bits / pooled tokens (per
token: a character with a character vocabulary, a byte with ``vocab = "bytes"``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from mpcrnn.declaration import DataSpec, SequenceData, fail


def windows(ids: list[int], max_len: int) -> list[list[int]]:
    """Consecutive windows of ``max_len`` tokens overlapping by one (see the module docstring)."""
    step = max_len - 1
    return [ids[i : i + max_len] for i in range(0, max(len(ids) - 1, 1), step)]


def read_lm_text(path: str | Path, spec: DataSpec, max_bytes: int | None = None) -> SequenceData:
    """One party's plain text file -> its windows, one-hot x (N, max_len, V), lengths = tokens
    per window; y unused (zeros), classes ().  Errors name the file (and line), never the text."""
    from mpcrnn.readers import MAX_FILE_BYTES, _check_size
    from mpcrnn.text import one_hot, tokenizer_for

    source = str(path)
    _check_size(path, source, max_bytes or MAX_FILE_BYTES)
    if spec.max_len < 2:
        fail("[data] max_len of a language model", "at least 2 tokens per window", spec.max_len)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        fail(source, "a readable file", type(e).__name__)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        fail(f"{source}: line {line}", "UTF-8 text", "undecodable bytes")
    ids = tokenizer_for(spec).encode(text)
    if len(ids) < 2:
        fail(source, "plain text of at least 2 tokens", f"{len(ids)} token(s)")
    rows = windows(ids, spec.max_len)
    return SequenceData(
        x=one_hot(rows, spec.max_len, spec.n_features),
        lengths=np.array([len(r) for r in rows], dtype=np.int64),
        y=np.zeros(len(rows), dtype=np.int64),
        classes=(),
    )


def torch_nll(logits: torch.Tensor, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy in nats (N, T-1) of per-step logits (N, T, V) on one-hot x
    (N, T, V), zero where no token follows (the last step, padding)."""
    valid = torch.arange(1, x.shape[1])[None, :] < lengths[:, None]
    logp = torch.log_softmax(logits[:, :-1], -1)
    return -(logp * x[:, 1:].to(logp.dtype)).sum(-1) * valid


def torch_nll_sum(model, x: np.ndarray, lengths: np.ndarray) -> tuple[float, int]:
    """(summed next-token cross-entropy in nats, predicted tokens) of an exported torch model."""
    xt, ln = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(lengths)
    with torch.no_grad():
        nll = torch_nll(model.double()(xt, ln), xt, ln)
    return float(nll.sum()), int((ln - 1).clamp(min=0).sum())


def evaluate_lm(cfg, params: dict, data: SequenceData, polynomial: bool = True) -> dict:
    """This party's own held-out sums on the opened model: ``bits_exact`` (torch, exact
    activations) and ``bits_polynomial`` (the mirror's polynomials, as trained), ``tokens``
    (predictions made), ``rows`` (windows).  Sums, so that parties' reports pool exactly."""
    from mpcrnn.backend import PlainBackend
    from mpcrnn.language_model import nll_sums
    from mpcrnn.model import export_state_dicts
    from mpcrnn.train import masks

    nats, tokens = torch_nll_sum(export_state_dicts(cfg.model, params), data.x, data.lengths)
    out = {"rows": data.n_rows, "tokens": tokens, "bits_exact": nats / math.log(2)}
    if polynomial:
        xt = torch.as_tensor(data.x, dtype=torch.float64)
        m = masks(torch.as_tensor(data.lengths), xt.shape[1])
        poly, _ = nll_sums(
            PlainBackend(cfg.activation), cfg.model, params, xt.transpose(0, 1), m.transpose(0, 1)
        )
        out["bits_polynomial"] = poly / math.log(2)
    return out


def pooled_bpc(tests: list[dict], key: str) -> float:
    """Bits per character of pooled local evaluations: sum of bits / sum of tokens."""
    return sum(t[key] for t in tests) / max(1, sum(t["tokens"] for t in tests))


def lm_loss_and_bpc(B, cfg, params: dict, data: SequenceData) -> tuple[float, float]:
    """(mean cross-entropy in nats, bits per character) on ``data`` with backend ``B``
    (``mpcrnn rehearse``'s history)."""
    from mpcrnn.language_model import nll_sums
    from mpcrnn.train import masks

    xt = torch.as_tensor(data.x, dtype=torch.float64)
    m = masks(torch.as_tensor(data.lengths), xt.shape[1])
    nats, tokens = nll_sums(B, cfg.model, params, xt.transpose(0, 1), m.transpose(0, 1))
    mean = nats / max(tokens, 1)
    return mean, mean / math.log(2)


LEARN_MARGIN_BITS = 0.05  # rehearse: the model must beat the unigram entropy by this much


def unigram_warning(data: SequenceData, bpc: float) -> tuple[float, list[str]]:
    """(the unigram entropy of the predicted tokens in bits: what character frequencies alone
    achieve, the warning when the rehearsed model does no better)."""
    target = data.x[:, 1:] * data.mask()[:, 1:, None]
    counts = target.sum((0, 1))
    p = counts[counts > 0] / counts.sum()
    naive = float(-(p * np.log2(p)).sum())
    if bpc < naive - LEARN_MARGIN_BITS:
        return naive, []
    return naive, [
        f"training does not learn: final {bpc:.3f} bits per character is within "
        f"{LEARN_MARGIN_BITS} of the {naive:.3f} that character frequencies alone give; try "
        "more epochs, a different lr or a larger hidden_size"
    ]


def predict_lm(model, spec: DataSpec, data_file, generate_n, prompt, temperature, seed, eps):
    """``mpcrnn predict`` on a language model: bits per character on ``data_file`` (plain text,
    cut as in training) and/or ``generate_n`` tokens after ``prompt``; with ``eps`` each token
    is a noisy max (:func:`mpcrnn.dp_release.noisy_next_token`).  Returns the JSON answer."""
    from mpcrnn.declaration import fail as refuse
    from mpcrnn.language_model import generate
    from mpcrnn.text import tokenizer_for

    if eps is not None and (generate_n is None or data_file is not None):
        refuse(
            "--dp-epsilon on a language model",
            "--generate N without --data (it noises the generated tokens only)",
            "--data" if data_file else "no --generate",
        )
    if generate_n is None and data_file is None:
        refuse("mpcrnn predict on a language model", "--data FILE or --generate N", "neither")
    if not 0 <= temperature <= 100 or (eps is not None and temperature <= 0):
        refuse("--temperature", "in (0, 100] with --dp-epsilon, else [0, 100]", temperature)
    out: dict = {}
    if data_file is not None:
        data = read_lm_text(data_file, spec)
        nats, tokens = torch_nll_sum(model, data.x, data.lengths)
        out.update(
            rows=data.n_rows, tokens=tokens, bits_per_char=nats / max(tokens, 1) / math.log(2)
        )
    if generate_n is not None:
        tok = tokenizer_for(spec)
        pick = None
        if eps is not None:
            from mpcrnn.dp_release import generate_dp_note, noisy_next_token

            pick = lambda logits: noisy_next_token(logits, eps, temperature)  # noqa: E731
            out["dp"] = generate_dp_note(eps, generate_n)
        ids = generate(model, tok.encode(prompt), generate_n, temperature, seed, pick=pick)
        out.update(prompt=prompt, temperature=temperature, generated=tok.decode(ids))
    return out
