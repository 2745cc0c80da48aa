"""Text: the public tokenizer, the text reader's refusals, and the embedding on shares.

Tolerances: mirror (exact activations) vs torch.nn.Embedding + GRU/LSTM + autograd: 1e-10
(float64 both); shares (in-process, f = 16) vs the mirror with the same polynomials: 2e-2, as
tests/test_cells.py (the embedding adds one truncation per product).
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from mpcrnn.backend import PlainBackend, SharedBackend
from mpcrnn.config import ActivationConfig, ModelConfig
from mpcrnn.declaration import DataSpec
from mpcrnn.model import export_state_dicts, forward_backward, init_params
from mpcrnn.text import encode_texts, load_vocab, one_hot, read_text
from mpcrnn.train import masks
from protocols.errors import ConfigError, DataError

V = 11


def _text_batch(cell="gru", layers=1):
    g = torch.Generator().manual_seed(3)
    cfg = ModelConfig(
        cell=cell, input_size=V, hidden_size=4, num_layers=layers, num_classes=3, embedding_dim=5
    )
    lengths = torch.tensor([6, 3, 1, 5, 6])
    ids = torch.randint(0, V, (5, 6), generator=g)
    x = torch.as_tensor(one_hot([ids[i, :n].tolist() for i, n in enumerate(lengths)], 6, V))
    y = torch.tensor([0, 2, 1, 1, 0])
    return cfg, ids, x, lengths, y


def _mirror(cfg, x, lengths, y, exact, per_example=False):
    B = PlainBackend(ActivationConfig(exact=exact))
    onehot = torch.nn.functional.one_hot(y, cfg.num_classes).double()
    m = masks(lengths, x.shape[1]).transpose(0, 1)
    params = init_params(cfg, 1)
    return forward_backward(B, cfg, params, x.transpose(0, 1), m, onehot, per_example)


@pytest.mark.parametrize("cell,layers", [("rnn", 1), ("gru", 2), ("lstm", 1)])
def test_embedding_mirror_matches_torch_embedding_autograd(cell, layers):
    cfg, ids, x, lengths, y = _text_batch(cell, layers)
    grads, logits = _mirror(cfg, x, lengths, y, exact=True)
    model = export_state_dicts(cfg, init_params(cfg, 1)).double()
    assert isinstance(model.embedding, torch.nn.Embedding)
    out, _ = model.rnn(model.embedding(ids))  # torch's own lookup by token id
    last = out[torch.arange(5), lengths - 1]
    ref = model.fc(last)
    torch.nn.functional.cross_entropy(ref, y, reduction="sum").backward()
    torch.testing.assert_close(logits, ref.detach(), atol=1e-10, rtol=0)
    torch.testing.assert_close(model(x, lengths), ref, atol=1e-10, rtol=0)  # one-hot path
    emb_grad = model.embedding.weight.grad
    torch.testing.assert_close(grads["embedding.weight"], emb_grad, atol=1e-10, rtol=0)
    torch.testing.assert_close(
        grads["weight_ih_l0"], model.rnn.weight_ih_l0.grad, atol=1e-10, rtol=0
    )
    assert list(grads)[-1] == "embedding.weight" and list(init_params(cfg, 1))[0] == (
        "embedding.weight"
    )


def test_embedding_per_example_gradients_sum_to_the_batch():
    cfg, _, x, lengths, y = _text_batch("lstm", 1)
    grads, _ = _mirror(cfg, x, lengths, y, exact=True)
    rows, _ = _mirror(cfg, x, lengths, y, exact=True, per_example=True)
    assert rows["embedding.weight"].shape == (5, V, 5)
    torch.testing.assert_close(
        rows["embedding.weight"].sum(0), grads["embedding.weight"], atol=1e-10, rtol=0
    )


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_embedding_on_shares_matches_mirror_in_process(cell):
    from protocols.arithmetic.sharing import public, share
    from protocols.network.parties import init_in_process

    s = init_in_process()
    cfg, _, x, lengths, y = _text_batch(cell, 1)
    B = SharedBackend(s, ActivationConfig())
    m = masks(lengths, x.shape[1])
    onehot = torch.nn.functional.one_hot(y, cfg.num_classes).double()
    sh = lambda v: share(s, v, src=0, shape=tuple(v.shape))  # noqa: E731
    params = {k: public(s, v) for k, v in init_params(cfg, 1).items()}
    grads, logits = forward_backward(
        B, cfg, params, sh(x).transpose(0, 1), sh(m).transpose(0, 1), sh(onehot)
    )
    ref_grads, ref_logits = _mirror(cfg, x, lengths, y, exact=False)
    torch.testing.assert_close(s.fp.decode(logits), ref_logits, atol=2e-2, rtol=0)
    for k in ref_grads:
        torch.testing.assert_close(s.fp.decode(grads[k]), ref_grads[k], atol=2e-2, rtol=0, msg=k)


def _spec(**kw):
    body = dict(n_features=256, classes=("ham", "spam"), max_len=8, kind="text")
    body.update(kw)
    return DataSpec(**body)


def test_bytes_tokenizer_is_fixed_and_reads_label_tab_text(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_text("ham\tOk lar\nspam\tWIN a prize now!!\nham\tné\n", encoding="utf-8")
    data = read_text(p, _spec())
    assert data.x.shape == (3, 8, 256) and data.lengths.tolist() == [6, 8, 3]  # cut at 8
    assert data.y.tolist() == [0, 1, 0]
    assert data.x[2, :3].argmax(1).tolist() == list("né".encode())
    assert data.x[0, 6:].sum() == 0  # padding: zero vectors, no padding id
    x, lengths = encode_texts(["Ok lar"], _spec())
    assert (x[0] == data.x[0]).all() and lengths.tolist() == [6]


@pytest.mark.parametrize(
    "body,where",
    [
        (b"ham\tfine\n\nspam\tsecret words\n", "line 2"),  # empty line
        (b"ham\tfine\nspam\tsecret \xff words\n", "line 2"),  # not UTF-8
        (b"ham\tfine\neggs\tsecret words\n", "line 2: label"),  # undeclared class
        (b"ham\tfine\nspam secret words\n", "line 2"),  # no TAB
        (b"ham\tfine\nspam\tsecret words here\n", "line 2: text length"),  # refused
    ],
)
def test_bad_text_input_names_file_and_line_never_the_text(tmp_path, body, where):
    p = tmp_path / "bad.tsv"
    p.write_bytes(body)
    with pytest.raises(DataError) as e:
        read_text(p, _spec(too_long="refuse"))
    msg = str(e.value)
    assert f"{p}: {where}" in msg and "\n" not in msg
    for word in ("secret", "words", "eggs"):
        assert word not in msg


def test_vocabulary_file_needs_its_hash(tmp_path):
    p = tmp_path / "chars.txt"
    p.write_text("a\nb\n\\n\n", encoding="utf-8")
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    tok = load_vocab(str(p), digest)
    assert tok.size == 4 and tok.encode("ab\nz") == [1, 2, 3, 0]  # 0: unknown
    with pytest.raises(ConfigError, match="SHA-256"):
        load_vocab(str(p), "0" * 64)
    with pytest.raises(ConfigError, match="SHA-256"):
        load_vocab(str(p), None)


def test_run_file_text_declaration_holds_no_vocabulary_from_data(tmp_path):
    from launch.runfile import build

    raw = {"data": {"kind": "text", "classes": ["ham", "spam"], "max_len": 16}}
    cfg = build(raw, {"embedding_dim": 8})
    assert cfg.spec.n_features == 256 and cfg.model.input_size == 256
    body = str(cfg.to_json())
    assert "'vocab': 'bytes'" in body  # the public tokenizer is named, nothing learned
    with pytest.raises(ConfigError):
        DataSpec(n_features=256, classes=("a", "b"), max_len=4, kind="text", frame=2)


def test_frozen_public_embedding_is_applied_locally_before_sharing(tmp_path):
    import numpy as np

    from launch.runfile import build

    table = np.random.default_rng(0).uniform(-1, 1, (256, 3))
    path = tmp_path / "emb.npy"
    np.save(path, table)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    body = {"kind": "text", "classes": ["ham", "spam"], "max_len": 8}
    body.update(embedding_file=str(path), embedding_sha256=digest)
    cfg = build({"data": body}, {})
    assert cfg.spec.n_features == 3 and cfg.model.embedding_dim == 0
    p = tmp_path / "a.tsv"
    p.write_text("ham\tOk lar\n", encoding="utf-8")
    data = read_text(p, cfg.spec)
    assert data.x.shape == (1, 8, 3)
    np.testing.assert_allclose(data.x[0, :6], table[list(b"Ok lar")], atol=0)
    assert (data.x[0, 6:] == 0).all()
    with pytest.raises(ConfigError, match="SHA-256"):
        build({"data": {**body, "embedding_sha256": "0" * 64}}, {})
