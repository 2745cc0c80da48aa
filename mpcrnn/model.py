"""A stacked recurrent model with a linear head: parameters, forward + backward, export.

Parameter names and layouts are torch's: ``weight_ih_l{k}`` (G*H, I), ``weight_hh_l{k}``
(G*H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` for ``torch.nn.RNN/GRU/LSTM`` and ``fc.weight``
(C, H), ``fc.bias`` for the head, so :func:`export_state_dicts` loads straight into torch.

Initialization reproduces torch's: every party builds the torch modules under the public seed
(``torch.manual_seed(seed)`` inside ``fork_rng``) and takes their values.
"""

from __future__ import annotations

import torch

from mpcrnn.cells import CELLS, backward_factors, layer_backward, layer_forward
from mpcrnn.config import ModelConfig
from mpcrnn.embedding import EMBEDDING, embed, embed_backward, torch_embedding

TORCH_CELLS = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


class TorchSequenceModel(torch.nn.Module):
    """The exported model in plain torch (exact activations): ``rnn`` + ``fc``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.embedding_dim:  # text: x is one-hot (N, T, V); x @ weight == embedding(ids)
            self.embedding = torch_embedding(cfg.input_size, cfg.embedding_dim)
        self.rnn = TORCH_CELLS[cfg.cell](
            cfg.rnn_input_size, cfg.hidden_size, cfg.num_layers, batch_first=True
        )
        self.fc = torch.nn.Linear(cfg.hidden_size, cfg.head_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (N, T, I), lengths (N,) -> classify: logits (N, C) at each row's last valid step;
        regress: values (N, O) there (scaled units: mpcrnn.regression.unscale_targets);
        regress_steps: (N, T, O); lm: next-token logits (N, T, V) at every step."""
        if self.cfg.embedding_dim:
            x = x.to(self.embedding.weight.dtype) @ self.embedding.weight
        out, _ = self.rnn(x)  # (N, T, H)
        if self.cfg.task in ("regress_steps", "lm"):
            return self.fc(out)
        idx = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, out.shape[-1])
        return self.fc(out.gather(1, idx).squeeze(1))


def init_params(cfg: ModelConfig, seed: int) -> dict[str, torch.Tensor]:
    """torch's initialization under a public seed, as float64, keyed by torch names."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TorchSequenceModel(cfg)
    return {k: v.detach().to(torch.float64).clone() for k, v in _flat_state(model).items()}


def _flat_state(model: TorchSequenceModel) -> dict[str, torch.Tensor]:
    out = {EMBEDDING: model.embedding.weight} if model.cfg.embedding_dim else {}
    out.update(model.rnn.state_dict())
    out.update({f"fc.{k}": v for k, v in model.fc.state_dict().items()})
    return out


def flatten(values: dict[str, torch.Tensor], rows: int | None = None) -> torch.Tensor:
    """Values keyed like the parameters, in their (public) key order -> one vector (D,); with
    ``rows``, per-row values (rows, *shape) -> (rows, D).  Plaintext or shares alike."""
    if rows is None:
        return torch.cat([v.reshape(-1) for v in values.values()])
    return torch.cat([v.reshape(rows, -1) for v in values.values()], 1)


def unflatten(flat: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`flatten`: (D,) -> tensors keyed and shaped like ``like``."""
    out, pos = {}, 0
    for k, v in like.items():
        out[k] = flat[pos : pos + v.numel()].reshape(v.shape)
        pos += v.numel()
    return out


def export_state_dicts(
    cfg: ModelConfig, plain_params: dict[str, torch.Tensor]
) -> TorchSequenceModel:
    """Opened parameters -> a torch model (float32) whose ``rnn``/``fc`` hold them exactly."""
    model = TorchSequenceModel(cfg)
    if cfg.embedding_dim:
        model.embedding.load_state_dict({"weight": plain_params[EMBEDDING].float()})
    model.rnn.load_state_dict(
        {k: v.float() for k, v in plain_params.items() if not k.startswith(("fc.", "embedding."))}
    )
    model.fc.load_state_dict(
        {k[3:]: v.float() for k, v in plain_params.items() if k.startswith("fc.")}
    )
    return model


LAYER_KEYS = ("W_ih", "W_hh", "b_ih", "b_hh")  # the cells' names for torch's below


def _layer_names(k: int) -> tuple[str, ...]:
    return (f"weight_ih_l{k}", f"weight_hh_l{k}", f"bias_ih_l{k}", f"bias_hh_l{k}")


def _layer(params: dict, k: int) -> dict:
    """Layer k's parameters under the cells' names (W_ih, W_hh, b_ih, b_hh)."""
    return {key: params[name] for key, name in zip(LAYER_KEYS, _layer_names(k))}


def forward(B, cfg: ModelConfig, params: dict, x, m, with_backward: bool = False):
    """x (T, N, I), m (T, N, 1) -> (head output, per-layer (inputs, hs, saved)).
    Head output: logits (N, C) or values (N, O) (regress) from the last layer's h_T (the state
    is held past each row's end: h_T is its last valid step's), or (T, N, O) (regress_steps).
    ``with_backward``: the randomness of :func:`forward_backward`'s backward products with
    W_hh is prepared with the forward's (see :func:`mpcrnn.cells.layer_forward`).
    With an embedding, x is one-hot (T, N, V) and is embedded first (:mod:`mpcrnn.embedding`)."""
    if cfg.embedding_dim:
        x = embed(B, x, params[EMBEDDING])
    return _rnn_forward(B, cfg, params, x, m, with_backward)


def _rnn_forward(B, cfg: ModelConfig, params: dict, x, m, with_backward: bool, head=True):
    """The recurrent layers, then (``head``) the head; without: (None, trace)."""
    cell = CELLS[cfg.cell]
    inp, trace = x, []
    for k in range(cfg.num_layers):
        hs, saved = layer_forward(
            B, cell, _layer(params, k), inp, m, cfg.hidden_size, with_backward
        )
        trace.append((inp, hs, saved))
        inp = hs
    hs = trace[-1][1]
    T, N, H = hs.shape
    if not head:
        return None, trace
    if cfg.task != "regress_steps":
        (out,) = B.mul_many([("matmul", hs[-1], params["fc.weight"].t())])
        return out + params["fc.bias"], trace
    (out,) = B.mul_many([("matmul", hs.reshape(T * N, H), params["fc.weight"].t())])
    return out.reshape(T, N, -1) + params["fc.bias"], trace


def forward_backward(
    B,
    cfg: ModelConfig,
    params: dict,
    x,
    m,
    target,
    per_example: bool = False,
    input_grad: bool = False,
):
    """One batch: returns (grads keyed like params, summed over the batch; head output), and with
    ``input_grad`` also dL/dx (T, N, I), the loss's gradient with respect to the input (zero at
    padding steps; its product ``da @ W_ih`` rides in the weight gradients' round).

    per_example: each gradient gets a leading row dimension N instead (for DP-SGD): grads[k]
    has shape (N, *params[k].shape) and sums over rows to the batch gradient.

    classify: target (N, C) one-hot; loss = sum_rows cross-entropy; d logits = softmax - target.
    regress:  target (N, O); loss = sum_rows ||y - target||^2 / 2 at each row's last valid step;
              d y = y - target (no extra round: the head's products are classify's).
    regress_steps: target (T, N, O); loss = sum over valid steps of ||y - target||^2 / 2;
              d y_t = m_t (y_t - target_t).
    lm: target unused (the next tokens are x shifted): :mod:`mpcrnn.language_model`.
    """
    if cfg.task == "lm":
        from mpcrnn.language_model import lm_forward_backward

        return lm_forward_backward(B, cfg, params, x, m, per_example)
    emb = embed(B, x, params[EMBEDDING]) if cfg.embedding_dim else x
    out, trace = _rnn_forward(B, cfg, params, emb, m, with_backward=True)
    if cfg.task == "regress_steps":
        grads, dh_ext = _regress_backward(B, params, out, trace[-1][1], m, target, per_example)
    else:
        dout = B.softmax(out) - target if cfg.task == "classify" else out - target
        grads, dh_ext = _last_step_backward(B, params, dout, trace[-1][1], per_example)
    dh_ext = layers_backward(B, cfg, params, trace, m, x, dh_ext, grads, per_example, input_grad)
    return (grads, out, dh_ext) if input_grad else (grads, out)


def layers_backward(
    B, cfg, params: dict, trace, m, x, dh_ext, grads: dict, per_example: bool, input_grad=False
):
    """BPTT through every layer from ``dh_ext`` (T, N, H), the head's gradient on the top
    layer's outputs: adds each layer's weight gradients (and the embedding's) to ``grads``;
    returns the gradient on the first layer's input, d(emb) (T, N, I)."""
    cell = CELLS[cfg.cell]
    factors = backward_factors(B, [(cell, saved, m) for _, _, saved in trace])
    for k in reversed(range(cfg.num_layers)):
        inp, _, saved = trace[k]
        g, dx = layer_backward(
            B,
            cell,
            _layer(params, k),
            saved,
            factors[k],
            inp,
            dh_ext,
            cfg.hidden_size,
            need_dx=k > 0 or input_grad or bool(cfg.embedding_dim),
            per_example=per_example,
        )
        grads.update({name: g[key] for key, name in zip(LAYER_KEYS, _layer_names(k))})
        dh_ext = dx
    if cfg.embedding_dim:  # the table's gradient; the input gradient stays d(emb)
        grads[EMBEDDING] = embed_backward(B, x, dh_ext, per_example)
    return dh_ext


def _last_step_backward(B, params, dlogits, hs, per_example: bool):
    """The head on h_T, from d out (N, C) (softmax - one-hot, or y - target): ({fc.weight,
    fc.bias} grads, dh_ext (T, N, H), nonzero at T)."""
    T = hs.shape[0]
    if per_example:  # (N, C, 1) @ (N, 1, H) -> (N, C, H)
        dW, dh_T = B.mul_many(
            [
                ("matmul", dlogits.unsqueeze(2), hs[-1].unsqueeze(1)),
                ("matmul", dlogits, params["fc.weight"]),
            ]
        )
        db = dlogits
    else:
        dW, dh_T = B.mul_many(
            [("matmul", dlogits.t(), hs[-1]), ("matmul", dlogits, params["fc.weight"])]
        )
        db = dlogits.sum(0)
    dh_ext = torch.cat([B.const(0.0, hs[:-1]), dh_T.unsqueeze(0)]) if T > 1 else dh_T.unsqueeze(0)
    return {"fc.weight": dW, "fc.bias": db}, dh_ext


def _regress_backward(B, params, y, hs, m, target, per_example: bool):
    """Per-step squared error head: ({fc.weight, fc.bias} grads, dh_ext (T, N, H))."""
    T, N, H = hs.shape
    (dy,) = B.mul_many([("mul", m, y - target)])  # (T, N, O)
    dyf = dy.reshape(T * N, -1)
    if per_example:  # (N, O, T) @ (N, T, H) -> (N, O, H)
        dW, dhf = B.mul_many(
            [
                ("matmul", dy.permute(1, 2, 0), hs.transpose(0, 1)),
                ("matmul", dyf, params["fc.weight"]),
            ]
        )
        db = dy.sum(0)  # (N, O)
    else:
        dW, dhf = B.mul_many(
            [("matmul", dyf.t(), hs.reshape(T * N, H)), ("matmul", dyf, params["fc.weight"])]
        )
        db = dyf.sum(0)
    return {"fc.weight": dW, "fc.bias": db}, dhf.reshape(T, N, H)
