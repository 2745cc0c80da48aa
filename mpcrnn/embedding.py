"""A trainable embedding on shares: the lookup and its gradient as products with one-hot rows.

Token ids stay private: each party encodes its own rows as one-hot vectors (its tokens are
known to it in plaintext, :mod:`mpcrnn.text`) and secret-shares them with the rest of its
data; a padding step is the zero vector.  With X the one-hot batch and E the shared table::

    X (T, N, V) one-hot shares,  E (V, D) shares (torch.nn.Embedding's ``weight``)
    forward:   emb = X @ E                         (T, N, D)  -- one Beaver matmul
    backward:  dE  = sum_t X_t^T @ dEmb_t         (V, D)     -- one Beaver matmul
               per example (DP-SGD): dE_n = X_n^T @ dEmb_n  (N, V, D)

Both are exact on the one-hot operand (0/1 at scale 2^f), so on shares the only error is the
one truncation of each product (+-1 unit of 2^-16 per entry, times the number of summed terms
for dE).  Cost per training step, N rows of T steps, vocabulary V, embedding D, elements opened
(each party sends them to the others): forward T N V + V D, backward T N V + T N D, i.e. linear
in V: 2 T N V + V D + T N D; two extra rounds (one per product).  The triples the dealer sends
scale the same way.  A smaller public vocabulary (a character list instead of 256 bytes) cuts
the dominant 2 T N V term proportionally.

:class:`PlainBackend` (the mirror) runs the same products in float64 and matches
``torch.nn.Embedding`` + autograd to 1e-10 (tests/test_text.py).
"""

from __future__ import annotations

import torch

EMBEDDING = "embedding.weight"


def embed(B, x, table):
    """x (T, N, V) one-hot (plaintext or shares), table (V, D) -> (T, N, D)."""
    T, N, V = x.shape
    (out,) = B.mul_many([("matmul", x.reshape(T * N, V), table)])
    return out.reshape(T, N, -1)


def embed_backward(B, x, d_emb, per_example: bool = False):
    """dL/dE from dL/d(emb) (T, N, D): (V, D), or (N, V, D) per example."""
    T, N, V = x.shape
    if per_example:  # (N, V, T) @ (N, T, D)
        (g,) = B.mul_many([("matmul", x.permute(1, 2, 0), d_emb.transpose(0, 1))])
        return g
    (g,) = B.mul_many([("matmul", x.reshape(T * N, V).t(), d_emb.reshape(T * N, -1))])
    return g


def torch_embedding(vocab_size: int, dim: int) -> torch.nn.Embedding:
    """The exported module; initialized as torch does (N(0, 1)) under the caller's seed."""
    return torch.nn.Embedding(vocab_size, dim)
