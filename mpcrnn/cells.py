"""Elman RNN, GRU and LSTM layers: forward and hand-derived backward through time (BPTT).

One small class per cell (:class:`ElmanRNN`, :class:`GRU`, :class:`LSTM`, looked up by name in
:data:`CELLS`), each with its step's forward, the factors of its backward and its step's
backward side by side, in the equations' names.  Written once against :mod:`mpcrnn.backend`,
so the same code runs on plaintext (the mirror) and on secret shares.  Equations and gate order
are torch's (``torch.nn.RNN/GRU/LSTM``); the legend below holds for every cell.

Variable length (a deliberate departure from torch's packed sequences, with the same result):
every batch is padded to the public bound T; each row's length stays secret as a 0/1 mask
``m_t`` (shared at scale 2^f), and the state freezes after the row's end::

    h_t = h_{t-1} + m_t * (h'_t - h_{t-1})        (likewise c_t for the LSTM)

so h_T is the state at the row's last valid step.  Public: T, batch sizes.  Secret: lengths.

Symbols and shapes (torch's names where torch has one):

    T      time steps (the public length bound)    N     rows in the batch
    F      input features (torch's H_in)           H     hidden size (torch's H_out)
    G      gate blocks of the cell (RNN 1, GRU 3, LSTM 4)
    x_t    (N, F) input at step t                  m_t   (N, 1) 0/1 mask of step t
    h_t    (N, H) hidden state, h_0 = 0            c_t   (N, H) LSTM cell state, c_0 = 0
    W_ih   (G*H, F)    W_hh (G*H, H)    b_ih, b_hh (G*H,)
    gi_t = W_ih x_t + b_ih,  gh_t = W_hh h_{t-1} + b_hh     (N, G*H), split into G blocks
    s, tanh: sigmoid and tanh, both the backend's (see Approximations)

Backward.  The gradient of every gate pre-activation at step t is *linear* in the incoming
dh_t (and dc_t): ``da_t = dh_t * Fh_t (+ dc_t * Fc_t)`` with factors Fh_t, Fc_t (N, k*H) that
depend only on forward values.  :func:`backward_factors` computes all factors for all t after
the forward pass in a few batched multiplication levels (tanh' = 1 - tanh^2 and
s' = s (1 - s) of the *approximated* values, as in the plaintext mirror), so each backward step
costs ONE elementwise multiplication round and ONE matmul round.  Weight gradients are one
batched matmul over all t at the end.

Approximations (every one, on shares and in the mirror alike unless ``exact``):

* tanh: an odd Chebyshev polynomial of degree ``ActivationConfig.degree`` (23) on
  [-bound, bound] (8); sigmoid(v) = (1 + tanh(v / 2)) / 2 from the same polynomial on
  [-2 bound, 2 bound].  Max error 0.0069 (tanh) and 0.0035 (sigmoid) at the defaults
  (:mod:`protocols.arithmetic.polynomial`); outside the interval the polynomial is unbounded.
* LSTM: tanh(clamp(c_t, -cell_clip, cell_clip)) (cell_clip 8: error <= 1 - tanh(8) = 2.3e-7);
  the backward uses tanh(c_t) of the clamped value and treats the clamp as the identity.
* Shares: fixed point at scale 2^f (f = 16), each truncation within 2^-f.
"""

from __future__ import annotations

import torch


def _one_minus(B, x):
    return B.add_const(-x, 1.0)


def _blocks(v, k: int, H: int) -> list:
    """The k column blocks (N, H) of v (N, k*H)."""
    return [v[:, j * H : (j + 1) * H] for j in range(k)]


class Cell:
    """A recurrent cell: ``step`` (forward of one time step), ``factors`` (the backward's
    factors for all steps) and ``step_backward`` (backward of one time step).

    gates: G.  layout: the activation of each gate block ('s' sigmoid, 't' tanh).
    fh_blocks / fc_blocks: the (N, H) blocks of Fh_t / Fc_t (0: the cell has no Fc).
    """

    name = ""
    gates = 0
    layout = ""
    fh_blocks = 0
    fc_blocks = 0

    @property
    def has_cell_state(self) -> bool:
        return self.fc_blocks > 0

    def step(self, B, gi_t, gh_t, h, c, m_t, H: int):
        """One step forward: (h_t, c_t or None, {name: (N, H) value the backward needs})."""
        raise NotImplementedError

    def factors(self, B, s: dict, m):
        """A generator: yields each level's list of products (all steps at once, (T, N, H)),
        receives their results, returns (Fh, Fc or None) as (T, N, k*H) stacks."""
        raise NotImplementedError

    def step_backward(self, B, dh, dc, Fh_t, Fc_t, H: int):
        """One step backward from dh_t (N, H) (and dc_t): returns (da_ih (N, G*H), the gradient
        of gi_t; da_hh (N, G*H), of gh_t; dh_direct, the part of dh_{t-1} that does not pass
        through W_hh; dc_{t-1} or None).  One multiplication round."""
        raise NotImplementedError


class ElmanRNN(Cell):
    """Elman RNN, torch's ``nn.RNN`` with tanh::

        h'_t = tanh(gi_t + gh_t)                      (N, H)
        h_t  = h_{t-1} + m_t (h'_t - h_{t-1})

    Backward (``h_cand`` = h'_t)::

        Fh_t = [m_t (1 - h'_t^2) | 1 - m_t]            da_t = dh_t Fh_t[0]
        dh_{t-1} = dh_t (1 - m_t) + da_t W_hh          (2 multiplication levels for Fh)
    """

    name, gates, layout, fh_blocks = "rnn", 1, "t", 2

    def step(self, B, gi_t, gh_t, h, c, m_t, H):
        (h_cand,) = B.act_many([(gi_t + gh_t, "t", H)])
        (dh,) = B.mul_many([("mul", m_t, h_cand - h)])
        return h + dh, None, {"h_cand": h_cand}

    def factors(self, B, s, m):
        h_cand = s["h_cand"]
        (h_cand2,) = yield [("mul", h_cand, h_cand)]
        (da,) = yield [("mul", m, _one_minus(B, h_cand2))]
        direct = _one_minus(B, m.expand_as(da))
        return torch.cat([da, direct], -1), None

    def step_backward(self, B, dh, dc, Fh_t, Fc_t, H):
        N = dh.shape[0]
        (ph,) = B.mul_many([("mul", dh.unsqueeze(1), Fh_t.reshape(N, 2, H))])
        ph = ph.reshape(N, 2 * H)
        return ph[:, :H], ph[:, :H], ph[:, H:], None


class GRU(Cell):
    """GRU, torch's ``nn.GRU`` (gate order r, z, n)::

        r_t = s(gi_r + gh_r)                          (N, H)  reset gate
        z_t = s(gi_z + gh_z)                          (N, H)  update gate
        n_t = tanh(gi_n + r_t * gh_n)                 (N, H)  candidate; gh_n = W_hn h + b_hn
        h'_t = (1 - z_t) n_t + z_t h_{t-1}
        h_t  = h_{t-1} + w_t (n_t - h_{t-1})          with w_t = m_t (1 - z_t)

    Backward (all stacks (T, N, H); 3 multiplication levels for Fh)::

        da_n = dh w (1 - n^2)                         da_z = -dh m (n - h_{t-1}) z (1 - z)
        da_r = da_n gh_n r (1 - r)                    d gh_n = da_n r
        dh_{t-1} = dh (1 - w) + [da_r, da_z, d gh_n] W_hh
        Fh_t = [F_r | F_z | F_n | F_hn | 1 - w]       da_* = dh F_*
    """

    name, gates, layout, fh_blocks = "gru", 3, "sst", 5

    def step(self, B, gi_t, gh_t, h, c, m_t, H):
        (rz_t,) = B.act_many([(gi_t[:, : 2 * H] + gh_t[:, : 2 * H], "ss", H)])
        r_t, z_t = rz_t[:, :H], rz_t[:, H:]
        gh_n = gh_t[:, 2 * H :]
        r_gh_n, w_t = B.mul_many([("mul", r_t, gh_n), ("mul", m_t, _one_minus(B, z_t))])
        (n_t,) = B.act_many([(gi_t[:, 2 * H :] + r_gh_n, "t", H)])
        (dh,) = B.mul_many([("mul", w_t, n_t - h)])
        return h + dh, None, {"r": r_t, "z": z_t, "n": n_t, "gh_n": gh_n, "w": w_t}

    def factors(self, B, s, m):
        r, z, n, w = s["r"], s["z"], s["n"], s["w"]
        n2, z2, r2, m_n_h = yield [
            ("mul", n, n),
            ("mul", z, z),
            ("mul", r, r),
            ("mul", m, n - s["h_prev"]),
        ]
        F_n, minus_F_z, gh_n_dr = yield [
            ("mul", w, _one_minus(B, n2)),  # w (1 - n^2)
            ("mul", m_n_h, z - z2),  # m (n - h_{t-1}) z (1 - z)
            ("mul", s["gh_n"], r - r2),  # gh_n r (1 - r)
        ]
        F_r, F_hn = yield [("mul", F_n, gh_n_dr), ("mul", F_n, r)]
        return torch.cat([F_r, -minus_F_z, F_n, F_hn, _one_minus(B, w)], -1), None

    def step_backward(self, B, dh, dc, Fh_t, Fc_t, H):
        N = dh.shape[0]
        (ph,) = B.mul_many([("mul", dh.unsqueeze(1), Fh_t.reshape(N, 5, H))])
        da_r, da_z, da_n, dgh_n, direct = _blocks(ph.reshape(N, 5 * H), 5, H)
        return torch.cat([da_r, da_z, da_n], -1), torch.cat([da_r, da_z, dgh_n], -1), direct, None


class LSTM(Cell):
    """LSTM, torch's ``nn.LSTM`` (gate order i, f, g, o)::

        i_t = s(gi_i + gh_i)     f_t = s(gi_f + gh_f)     g_t = tanh(gi_g + gh_g)
        o_t = s(gi_o + gh_o)                                   (each (N, H))
        c'_t = f_t c_{t-1} + i_t g_t                 h'_t = o_t tanh(c'_t)
        c_t  = c_{t-1} + m_t (c'_t - c_{t-1})        h_t  = h_{t-1} + m_t (h'_t - h_{t-1})

    tanh(c'_t) is of the clamped cell state (``ActivationConfig.cell_clip``, see the module
    docstring).  Backward, with P = o (1 - tanh(c)^2) (stacks (T, N, H); 4 levels)::

        dc' = dh m P + dc m                           (the new cell state's total gradient)
        da_i = dc' g i (1 - i)      da_f = dc' c_{t-1} f (1 - f)      da_g = dc' i (1 - g^2)
        da_o = dh m tanh(c) o (1 - o)
        dc_{t-1} = dc ((1 - m) + m f) + dh m P f      dh_{t-1} = dh (1 - m) + da W_hh
        Fh_t = [m P g i(1-i) | m P c f(1-f) | m P i(1-g^2) | m tanh(c) o(1-o) | m P f | 1 - m]
        Fc_t = [m g i(1-i)   | m c f(1-f)   | m i(1-g^2)   | (1 - m) + m f]
    """

    name, gates, layout, fh_blocks, fc_blocks = "lstm", 4, "ssts", 6, 4

    def step(self, B, gi_t, gh_t, h, c, m_t, H):
        (gates,) = B.act_many([(gi_t + gh_t, "ssts", H)])
        i_t, f_t, g_t, o_t = _blocks(gates, 4, H)
        f_c, i_g = B.mul_many([("mul", f_t, c), ("mul", i_t, g_t)])
        c_cand = f_c + i_g  # c'_t
        clip = B.acts.cfg.cell_clip  # |c_t| <= t: clamp it into the polynomial's interval
        (tanh_c,) = B.act_many([(B.clip_value(c_cand, clip) if clip else c_cand, "t", H)])
        (h_cand,) = B.mul_many([("mul", o_t, tanh_c)])
        dc, dh = B.mul_many([("mul", m_t, c_cand - c), ("mul", m_t, h_cand - h)])
        saved = {"c_prev": c, "i": i_t, "f": f_t, "g": g_t, "o": o_t, "tanh_c": tanh_c}
        return h + dh, c + dc, saved

    def factors(self, B, s, m):
        i, f, g, o, tanh_c = s["i"], s["f"], s["g"], s["o"], s["tanh_c"]
        i2, f2, o2, g2, tanh_c2, m_f = yield [
            ("mul", i, i),
            ("mul", f, f),
            ("mul", o, o),
            ("mul", g, g),
            ("mul", tanh_c, tanh_c),
            ("mul", m, f),
        ]
        P, g_di, c_df, i_dg, tanh_c_do = yield [
            ("mul", o, _one_minus(B, tanh_c2)),  # o (1 - tanh(c)^2)
            ("mul", g, i - i2),  # g i (1 - i)
            ("mul", s["c_prev"], f - f2),  # c_{t-1} f (1 - f)
            ("mul", i, _one_minus(B, g2)),  # i (1 - g^2)
            ("mul", tanh_c, o - o2),  # tanh(c) o (1 - o)
        ]
        m_P, Fc_i, Fc_f, Fc_g, Fh_o = yield [
            ("mul", m, P),
            ("mul", m, g_di),
            ("mul", m, c_df),
            ("mul", m, i_dg),
            ("mul", m, tanh_c_do),
        ]
        Fh_i, Fh_f, Fh_g, Fh_c = yield [
            ("mul", m_P, g_di),
            ("mul", m_P, c_df),
            ("mul", m_P, i_dg),
            ("mul", m_P, f),
        ]
        one_minus_m = _one_minus(B, m.expand_as(Fh_i))
        return (
            torch.cat([Fh_i, Fh_f, Fh_g, Fh_o, Fh_c, one_minus_m], -1),
            torch.cat([Fc_i, Fc_f, Fc_g, one_minus_m + m_f], -1),
        )

    def step_backward(self, B, dh, dc, Fh_t, Fc_t, H):
        # dh (N, 1, H) against the factor blocks (N, k, H): broadcasting, so dh is opened once,
        # not once per block as dh.repeat(1, k) would be
        N = dh.shape[0]
        ph, pc = B.mul_many(
            [
                ("mul", dh.unsqueeze(1), Fh_t.reshape(N, 6, H)),
                ("mul", dc.unsqueeze(1), Fc_t.reshape(N, 4, H)),
            ]
        )
        h_i, h_f, h_g, h_o, h_c, direct = _blocks(ph.reshape(N, 6 * H), 6, H)
        c_i, c_f, c_g, c_c = _blocks(pc.reshape(N, 4 * H), 4, H)
        da = torch.cat([h_i + c_i, h_f + c_f, h_g + c_g, h_o], -1)
        return da, da, direct, c_c + h_c


CELLS: dict[str, Cell] = {c.name: c for c in (ElmanRNN(), GRU(), LSTM())}


def layer_forward(B, cell: Cell, p: dict, x, m, H: int, with_backward: bool = False):
    """Run one layer over T steps: x (T, N, F), m (T, N, 1) -> (hs (T, N, H), saved), saved a
    dict of (T, N, H) stacks: ``h_prev`` (h_{t-1}) and the cell's own values.

    W_hh is the right operand of T-1 matmuls here and (``with_backward``) T-1 more in
    :func:`layer_backward`: it is opened once for all of them (``B.fixed_operand``), and
    ``saved["W_hh_fixed"]`` carries it to the backward pass."""
    T, N, F = x.shape
    W_ih, W_hh, b_ih, b_hh = p["W_ih"], p["W_hh"], p["b_ih"], p["b_hh"]
    G = W_hh.shape[0]  # gates x H
    uses = [((N, H), True)] * (T - 1) + ([((N, G), False)] * (T - 1) if with_backward else [])
    W_fixed = B.fixed_operand(W_hh, uses) if uses else None
    (gi,) = B.mul_many([("matmul", x.reshape(T * N, F), W_ih.t())])
    gi = gi.reshape(T, N, -1) + b_ih  # (T, N, G*H)
    h = B.const(0.0, gi[0, :, :H])
    c = B.const(0.0, h) if cell.has_cell_state else None
    hs, saved = [], {"h_prev": []}
    for t in range(T):
        if t == 0:
            gh = B.const(0.0, gi[0]) + b_hh  # h_0 = 0: no matmul needed
        else:
            gh = B.matmul_fixed(h, W_fixed, transpose=True) + b_hh  # (N, G*H)
        saved["h_prev"].append(h)
        h, c, values = cell.step(B, gi[t], gh, h, c, m[t], H)
        for k, v in values.items():
            saved.setdefault(k, []).append(v)
        hs.append(h)
    saved = {k: torch.stack(v) for k, v in saved.items()}
    if with_backward:
        saved["W_hh_fixed"] = W_fixed
    return torch.stack(hs), saved


def backward_factors(B, items):
    """Factors for every layer at once.  ``items``: list of (cell, saved, m).  Returns a list
    of (Fh, Fc or None) per layer: (T, N, kH) stacks with ``da = dh*Fh[...] + dc*Fc[...]``.

    Each level's products of every layer go in one ``B.mul_many`` (one round); rounds: 2
    levels (RNN), 3 (GRU), 4 (LSTM)."""
    levels = [cell.factors(B, s, m) for cell, s, m in items]
    out: list = [None] * len(levels)
    asked = {k: next(gen) for k, gen in enumerate(levels)}
    while asked:
        flat = [pair for k in asked for pair in asked[k]]
        results = iter(B.mul_many(flat))
        for k in list(asked):
            got = [next(results) for _ in asked[k]]
            try:
                asked[k] = levels[k].send(got)
            except StopIteration as done:
                out[k] = done.value
                del asked[k]
    return out


def layer_backward(
    B,
    cell: Cell,
    p: dict,
    saved: dict,
    factors,
    x,
    dh_ext,
    H: int,
    need_dx: bool,
    per_example: bool = False,
):
    """BPTT for one layer.  dh_ext (T, N, H): gradient arriving at each h_t from above.
    Returns (grads dict W_ih/W_hh/b_ih/b_hh, dx (T, N, F) or None).

    per_example: weight gradients per row (DP-SGD) instead of summed over the batch:
    W_ih (N, G*H, F) = (N, G*H, T) @ (N, T, F), W_hh (N, G*H, H), b_* (N, G*H), in the same
    one batched multiplication round (the triples carry the batch dimension N)."""
    T = x.shape[0]
    Fh, Fc = factors
    dh = B.const(0.0, dh_ext[0])
    dc = B.const(0.0, dh) if cell.has_cell_state else None
    da_ih, da_hh = [None] * T, [None] * T
    for t in reversed(range(T)):
        dh = dh + dh_ext[t]
        da_ih[t], da_hh[t], direct, dc = cell.step_backward(
            B, dh, dc, Fh[t], None if Fc is None else Fc[t], H
        )
        if t > 0:
            dh = direct + B.matmul_fixed(da_hh[t], saved["W_hh_fixed"], transpose=False)
    return _weight_grads(
        B, p, saved, x, torch.stack(da_ih), torch.stack(da_hh), need_dx, per_example
    )


def _weight_grads(B, p, saved, x, da_ih, da_hh, need_dx: bool, per_example: bool):
    """dW_ih = sum_t da_ih_t^T x_t, dW_hh = sum_t da_hh_t^T h_{t-1}, the biases, and
    dx_t = da_ih_t W_ih: one batched multiplication round.  da_* (T, N, G*H)."""
    T, N, F = x.shape
    H = saved["h_prev"].shape[-1]
    da_ih_all = da_ih.reshape(T * N, -1)  # (T*N, G*H)
    da_hh_all = da_hh.reshape(T * N, -1)
    if per_example:
        da_ih_rows = da_ih.permute(1, 2, 0)  # (N, G*H, T)
        da_hh_rows = da_hh.permute(1, 2, 0)  # (N, G*H, T)
        pairs = [
            ("matmul", da_ih_rows, x.transpose(0, 1)),
            ("matmul", da_hh_rows, saved["h_prev"].transpose(0, 1)),
        ]
    else:
        h_prev = saved["h_prev"].reshape(T * N, H)
        pairs = [
            ("matmul", da_ih_all.t(), x.reshape(T * N, F)),
            ("matmul", da_hh_all.t(), h_prev),
        ]
    if need_dx:
        pairs.append(("matmul", da_ih_all, p["W_ih"]))
    res = B.mul_many(pairs)
    if per_example:
        b_ih, b_hh = da_ih_rows.sum(2), da_hh_rows.sum(2)
    else:
        b_ih, b_hh = da_ih_all.sum(0), da_hh_all.sum(0)
    grads = {"W_ih": res[0], "W_hh": res[1], "b_ih": b_ih, "b_hh": b_hh}
    dx = res[2].reshape(T, N, F) if need_dx else None
    return grads, dx
