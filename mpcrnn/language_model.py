"""A character language model's step: next-token prediction at every valid step, on shares.

The network is the text classifier's (Embedding(V, D) + stacked RNN/GRU/LSTM + Linear(H, V)),
with the head applied at every time step instead of the last::

    x (T, N, V) one-hot tokens (shares), m (T, N, 1) 0/1 masks (shares)
    logits_t = h_t @ fc.weight^T + fc.bias                     (T, N, V)
    target_t = x_{t+1},  valid_t = m_{t+1}   (t = 0..T-2; the last step predicts nothing)
    loss     = sum over valid (t, n) of cross-entropy(logits_t, target_t)
    dlogits  = valid_t (softmax(logits_t) - target_t)

Targets and validity are shifted shares: local.  The softmax on shares
(:func:`protocols.arithmetic.softmax.softmax_rows`) takes an exact row max first, V - 1
comparisons per row (T N rows per step), which dominates a step at V = 256; a smaller public
character vocabulary (``[data] vocab`` file) cuts it in proportion.

Tested against torch (Embedding + GRU/LSTM + Linear, autograd) in tests/test_language_model.py.
Bits per character: the mean loss over valid predictions divided by ln 2 (plaintext, on the
opened model).
"""

from __future__ import annotations

import math

import torch

from mpcrnn.embedding import EMBEDDING, embed
from mpcrnn.model import _rnn_forward, layers_backward


def next_token_targets(B, x, m):
    """(targets (T-1, N, V), valid (T-1, N, 1)): the next token and whether it exists."""
    return x[1:], m[1:]


def lm_logits(B, params: dict, hs):
    """hs (T, N, H) -> logits (T, N, V): one product."""
    T, N, H = hs.shape
    (out,) = B.mul_many([("matmul", hs.reshape(T * N, H), params["fc.weight"].t())])
    return out.reshape(T, N, -1) + params["fc.bias"]


def lm_forward_backward(B, cfg, params: dict, x, m, per_example: bool = False):
    """One batch of the language model: (grads keyed like params, summed over valid steps, or
    with ``per_example`` (DP-SGD) each with a leading row dimension N that sums to them;
    logits (T-1, N, V) of the steps that predict).  Without an embedding (``embedding_dim``
    0) the one-hot rows go straight into the first layer."""
    emb = embed(B, x, params[EMBEDDING]) if cfg.embedding_dim else x
    _, trace = _rnn_forward(B, cfg, params, emb, m, with_backward=True, head=False)
    hs = trace[-1][1][:-1]  # (T-1, N, H): the steps followed by a token
    T1, N, H = hs.shape
    logits = lm_logits(B, params, hs)
    target, valid = next_token_targets(B, x, m)
    probs = B.softmax(logits.reshape(T1 * N, -1)).reshape(logits.shape)
    (dlogits,) = B.mul_many([("mul", valid, probs - target)])  # (T-1, N, V)
    grads, dhf = _head_backward(B, params, dlogits, hs, per_example)
    dh_ext = torch.cat([dhf.reshape(T1, N, H), B.const(0.0, trace[-1][1][-1:])])
    layers_backward(B, cfg, params, trace, m, x, dh_ext, grads, per_example)
    return grads, logits


def _head_backward(B, params: dict, dlogits, hs, per_example: bool):
    """The head at every predicting step from d logits (T-1, N, V): ({fc.weight, fc.bias}
    grads, d hs (T-1 N, H)); per example: (N, V, H) and (N, V)."""
    T1, N, H = hs.shape
    dlf = dlogits.reshape(T1 * N, -1)
    if per_example:  # (N, V, T-1) @ (N, T-1, H)
        dW, dhf = B.mul_many(
            [
                ("matmul", dlogits.permute(1, 2, 0), hs.transpose(0, 1)),
                ("matmul", dlf, params["fc.weight"]),
            ]
        )
        return {"fc.weight": dW, "fc.bias": dlogits.sum(0)}, dhf
    dW, dhf = B.mul_many(
        [("matmul", dlf.t(), hs.reshape(T1 * N, H)), ("matmul", dlf, params["fc.weight"])]
    )
    return {"fc.weight": dW, "fc.bias": dlf.sum(0)}, dhf


def nll_sums(B, cfg, params: dict, x, m) -> tuple[float, int]:
    """(summed next-token cross-entropy in nats, number of valid predictions), plaintext
    backend; x (T, N, V), m (T, N, 1)."""
    emb = embed(B, x, params[EMBEDDING]) if cfg.embedding_dim else x
    _, trace = _rnn_forward(B, cfg, params, emb, m, with_backward=False, head=False)
    logits = lm_logits(B, params, trace[-1][1][:-1])
    target, valid = next_token_targets(B, x, m)
    logp = torch.log_softmax(logits, dim=-1)
    nll = -(logp * target).sum(-1, keepdim=True) * valid
    return float(nll.sum()), int(round(float(valid.sum())))


def bits_per_char(B, cfg, params: dict, x, m) -> float:
    """Mean next-token cross-entropy over valid predictions, in bits (plaintext backend)."""
    nats, count = nll_sums(B, cfg, params, x, m)
    return nats / max(count, 1) / math.log(2)


def train_lm(B, cfg, tcfg, x, m, params: dict, progress=None):
    """The language model's training loop on either backend: the public batch schedule, Adam /
    SGD and clipping of :mod:`mpcrnn.train`, the per-step loss above.  x (N, T, V), m (N, T, 1)
    row-major as :class:`mpcrnn.train.Dataset` holds them.  Returns (params, state)."""
    from mpcrnn.train import init_state, run_schedule, schedule, sgd_step

    plan = {e: schedule(x.shape[0], tcfg, e) for e in range(tcfg.epochs)}
    total = sum(len(b) for b in plan.values())

    def step_fn(idx, params, state, step):
        index = torch.as_tensor(idx)
        xb, mb = x[index].transpose(0, 1), m[index].transpose(0, 1)
        grads, _ = lm_forward_backward(B, cfg, params, xb, mb)
        return sgd_step(B, params, grads, state, tcfg, len(idx), step, total)

    return run_schedule(
        B,
        plan,
        lambda idx: ("lm", len(idx), x.shape[1]),
        step_fn,
        params,
        init_state(B, params, tcfg),
        epochs=tcfg.epochs,
        first_step=0,
        prefetch=True,
        progress=progress,
    )


def generate(
    model, prompt: list[int], n: int, temperature: float = 1.0, seed: int = 0, pick=None
) -> list[int]:
    """Sample n tokens after ``prompt`` from an exported model (``TorchSequenceModel`` with a
    head over the vocabulary, with or without an embedding); temperature 0: greedy.  ``pick``
    (logits (V,) float64 -> token id) replaces the sampling (``predict --dp-epsilon``: a noisy
    max, :func:`mpcrnn.dp_release.noisy_next_token`).  An empty prompt starts from id 0."""
    g = torch.Generator().manual_seed(seed)
    ids, state, out = list(prompt) or [0], None, []
    V = model.fc.out_features
    with torch.no_grad():
        feed = ids
        for _ in range(n):
            x = torch.nn.functional.one_hot(torch.tensor([feed]), V).to(model.fc.weight.dtype)
            if model.cfg.embedding_dim:
                x = x @ model.embedding.weight
            h, state = model.rnn(x, state)
            logits = model.fc(h[0, -1]).double()
            if pick is not None:
                nxt = int(pick(logits))
            elif temperature <= 0:
                nxt = int(logits.argmax())
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                nxt = int(torch.multinomial(probs, 1, generator=g))
            out.append(nxt)
            feed = [nxt]
    return out
