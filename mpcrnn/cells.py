"""Elman RNN, GRU and LSTM layers: forward and hand-derived backward through time (BPTT).

Written once against :mod:`mpcrnn.backend`, so the same code runs on plaintext (the mirror) and
on secret shares.  Equations and gate order are torch's (``torch.nn.RNN/GRU/LSTM``)::

    RNN :  h'_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    GRU :  r_t = s(W_ir x + b_ir + W_hr h + b_hr)        z_t = s(W_iz x + b_iz + W_hz h + b_hz)
           n_t = tanh(W_in x + b_in + r_t * (W_hn h + b_hn))
           h'_t = (1 - z_t) * n_t + z_t * h_{t-1}
    LSTM:  i, f, g, o = s(.), s(.), tanh(.), s(.) of  W_ih x + b_ih + W_hh h + b_hh
           c'_t = f * c_{t-1} + i * g        h'_t = o * tanh(c'_t)

Variable length (a deliberate departure from torch's packed sequences, with the same result):
every batch is padded to the public bound T; each row's length stays secret as a 0/1 mask
``m_t`` (shared at scale 2^f), and the state freezes after the row's end::

    h_t = h_{t-1} + m_t * (h'_t - h_{t-1})        (likewise c_t for the LSTM)

so h_T is the state at the row's last valid step.  Public: T, batch sizes.  Secret: lengths.

Shapes: T time steps, N rows in the batch, I inputs, H hidden, G gate blocks (1/3/4).
x (T, N, I); m (T, N, 1); W_ih (G*H, I); W_hh (G*H, H); b_* (G*H,).

Backward.  The gradients of every gate pre-activation at step t are *linear* in the incoming
dh_t (and dc_t): ``da_t = dh_t * A_t (+ dc_t * B_t)`` with factors A_t, B_t that depend only on
forward values.  We compute all factors for all t after the forward pass in a few batched
multiplication levels (tanh' = 1 - tanh^2 and s' = s (1 - s) of the *approximated* values, as in
the plaintext mirror), so each backward step costs ONE elementwise multiplication round and ONE
matmul round.  Weight gradients are one batched matmul over all t at the end.
"""

from __future__ import annotations

import torch

LAYOUT = {"rnn": "t", "gru": "sst", "lstm": "ssts"}


def _one_minus(B, x):
    return B.add_const(-x, 1.0)


def layer_forward(B, cell: str, p: dict, x, m, H: int, with_backward: bool = False):
    """Run one layer over T steps.  Returns (hs (T, N, H), saved dict of (T, N, H) stacks).

    W_hh is the right operand of T-1 matmuls here and (``with_backward``) T-1 more in
    :func:`layer_backward`: it is opened once for all of them (``B.fixed_operand``), and
    ``saved["W_hh_fixed"]`` carries it to the backward pass."""
    T, N, I = x.shape
    W_ih, W_hh, b_ih, b_hh = p["W_ih"], p["W_hh"], p["b_ih"], p["b_hh"]
    G = W_hh.shape[0]  # gates x H
    uses = [((N, H), True)] * (T - 1) + ([((N, G), False)] * (T - 1) if with_backward else [])
    W_fixed = B.fixed_operand(W_hh, uses) if uses else None
    (gi,) = B.mul_many([("matmul", x.reshape(T * N, I), W_ih.t())])
    gi = gi.reshape(T, N, -1) + b_ih  # (T, N, G*H)
    h = B.const(0.0, gi[0, :, :H])
    c = B.const(0.0, h) if cell == "lstm" else None
    hs, saved = [], {k: [] for k in ("h_prev", "c_prev", "a", "b", "c2", "d", "e", "w")}
    for t in range(T):
        if t == 0:
            gh = B.const(0.0, gi[0]) + b_hh  # h_0 = 0: no matmul needed
        else:
            gh = B.matmul_fixed(h, W_fixed, transpose=True) + b_hh
        saved["h_prev"].append(h)
        if cell == "rnn":
            (hh,) = B.act_many([(gi[t] + gh, "t", H)])
            (d,) = B.mul_many([("mul", m[t], hh - h)])
            saved["a"].append(hh)
            h = h + d
        elif cell == "gru":
            (rz,) = B.act_many([(gi[t][:, : 2 * H] + gh[:, : 2 * H], "ss", H)])
            r, z = rz[:, :H], rz[:, H:]
            gh_n = gh[:, 2 * H :]
            rg, w = B.mul_many([("mul", r, gh_n), ("mul", m[t], _one_minus(B, z))])
            (n,) = B.act_many([(gi[t][:, 2 * H :] + rg, "t", H)])
            (d,) = B.mul_many([("mul", w, n - h)])
            for k, v in zip(("a", "b", "c2", "d", "w"), (r, z, n, gh_n, w)):
                saved[k].append(v)
            h = h + d
        else:  # lstm
            (g4,) = B.act_many([(gi[t] + gh, "ssts", H)])
            i, f, g, o = (g4[:, k * H : (k + 1) * H] for k in range(4))
            fc, ig = B.mul_many([("mul", f, c), ("mul", i, g)])
            c_new = fc + ig
            clip = B.acts.cfg.cell_clip  # |c_t| <= t: clamp it into the polynomial's interval
            (tc,) = B.act_many([(B.clip_value(c_new, clip) if clip else c_new, "t", H)])
            (hn,) = B.mul_many([("mul", o, tc)])
            dc, dh = B.mul_many([("mul", m[t], c_new - c), ("mul", m[t], hn - h)])
            saved["c_prev"].append(c)
            for k, v in zip(("a", "b", "c2", "d", "e"), (i, f, g, o, tc)):
                saved[k].append(v)
            c, h = c + dc, h + dh
        hs.append(h)
    saved = {k: torch.stack(v) for k, v in saved.items() if v}
    if with_backward:
        saved["W_hh_fixed"] = W_fixed
    return torch.stack(hs), saved


def backward_factors(B, items):
    """Factors for every layer at once.  ``items``: list of (cell, saved, m).  Returns a list of
    (Fh, Fc) per layer: (T, N, kH) stacks with ``da = dh*Fh[...] + dc*Fc[...]``.

    GRU (w = m (1 - z)):  G_n = w (1 - n^2);  G_z = -m (n - h_prev) z (1 - z);
                          G_r = G_n * gh_n * r (1 - r);  G_hn = G_n * r;  direct = 1 - w
    RNN:                  G = m (1 - h'^2);  direct = 1 - m
    LSTM (P = o (1 - tc^2)):  A_i = m P g i(1-i), A_f = m P c_prev f(1-f), A_g = m P i (1-g^2),
                          A_o = m tc o(1-o), A_cf = m P f;  B_* = m * (same without P);
                          dc_prev = dc ((1-m) + m f) + dh A_cf;  dh direct = 1 - m
    Rounds: 2 levels (RNN), 3 (GRU), 4 (LSTM), batched across layers.
    """
    levels: list[list] = [[], [], [], []]
    out = []
    for cell, s, m in items:
        if cell == "rnn":
            hh = s["a"]
            levels[0].append(("mul", hh, hh))
        elif cell == "gru":
            r, z, n = s["a"], s["b"], s["c2"]
            levels[0] += [("mul", n, n), ("mul", z, z), ("mul", r, r), ("mul", m, n - s["h_prev"])]
        else:
            i, f, g, o, tc = s["a"], s["b"], s["c2"], s["d"], s["e"]
            levels[0] += [
                ("mul", i, i),
                ("mul", f, f),
                ("mul", o, o),
                ("mul", g, g),
                ("mul", tc, tc),
                ("mul", m, f),
            ]
    res0 = iter(B.mul_many(levels[0]))
    stage = []
    for cell, s, m in items:
        if cell == "rnn":
            hh2 = next(res0)
            levels[1].append(("mul", m, _one_minus(B, hh2)))
            stage.append(None)
        elif cell == "gru":
            n2, z2, r2, D = (next(res0) for _ in range(4))
            levels[1] += [
                ("mul", s["w"], _one_minus(B, n2)),
                ("mul", D, s["b"] - z2),
                ("mul", s["d"], s["a"] - r2),
            ]
            stage.append(None)
        else:
            i2, f2, o2, g2, tc2, mf = (next(res0) for _ in range(6))
            i, f, g, o, tc = s["a"], s["b"], s["c2"], s["d"], s["e"]
            levels[1] += [
                ("mul", o, _one_minus(B, tc2)),
                ("mul", g, i - i2),
                ("mul", s["c_prev"], f - f2),
                ("mul", i, _one_minus(B, g2)),
                ("mul", tc, o - o2),
            ]
            stage.append(mf)
    res1 = iter(B.mul_many(levels[1]))
    keep = []
    for (cell, s, m), mf in zip(items, stage):
        if cell == "rnn":
            G = next(res1)
            direct = _one_minus(B, m.expand_as(G))
            out.append((torch.cat([G, direct], -1), None))
            keep.append(None)
        elif cell == "gru":
            G_n, Dz, E = (next(res1) for _ in range(3))
            levels[2] += [("mul", G_n, E), ("mul", G_n, s["a"])]
            keep.append((G_n, -Dz))
        else:
            P, Gi, Gf, Gg, Fo = (next(res1) for _ in range(5))
            levels[2] += [
                ("mul", m, P),
                ("mul", m, Gi),
                ("mul", m, Gf),
                ("mul", m, Gg),
                ("mul", m, Fo),
            ]
            keep.append((Gi, Gf, Gg, mf))
    res2 = iter(B.mul_many(levels[2]))
    pending = []
    for k, (cell, s, m) in enumerate(items):
        if cell == "gru":
            G_r, G_hn = next(res2), next(res2)
            G_n, G_z = keep[k]
            out.append((torch.cat([G_r, G_z, G_n, G_hn, _one_minus(B, s["w"])], -1), None))
        elif cell == "lstm":
            mP, B_i, B_f, B_g, A_o = (next(res2) for _ in range(5))
            Gi, Gf, Gg, mf = keep[k]
            levels[3] += [("mul", mP, Gi), ("mul", mP, Gf), ("mul", mP, Gg), ("mul", mP, s["b"])]
            pending.append((k, B_i, B_f, B_g, A_o, mf, m))
            out.append(None)
    res3 = iter(B.mul_many(levels[3]))
    for k, B_i, B_f, B_g, A_o, mf, m in pending:
        A_i, A_f, A_g, A_cf = (next(res3) for _ in range(4))
        one_m = _one_minus(B, m.expand_as(A_i))
        out[k] = (
            torch.cat([A_i, A_f, A_g, A_o, A_cf, one_m], -1),
            torch.cat([B_i, B_f, B_g, one_m + mf], -1),
        )
    return out


def layer_backward(
    B,
    cell: str,
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
    Returns (grads dict W_ih/W_hh/b_ih/b_hh, dx (T, N, I) or None).

    per_example: weight gradients per row (DP-SGD) instead of summed over the batch:
    W_ih (N, G*H, I) = (N, G*H, T) @ (N, T, I), W_hh (N, G*H, H), b_* (N, G*H), in the same
    one batched multiplication round (the triples carry the batch dimension N)."""
    T, N, I = x.shape
    Fh, Fc = factors
    nh = Fh.shape[-1] // H
    dh = B.const(0.0, dh_ext[0])
    dc = B.const(0.0, dh) if cell == "lstm" else None
    dgi, dgh = [None] * T, [None] * T
    for t in reversed(range(T)):
        dh = dh + dh_ext[t]
        # dh (N, 1, H) against the factor blocks (N, k, H): broadcasting, so dh is opened once,
        # not once per block as dh.repeat(1, k) would be (GRU: 6 H instead of 10 H per row)
        if cell == "lstm":
            ph, pc = B.mul_many(
                [
                    ("mul", dh.unsqueeze(1), Fh[t].reshape(N, nh, H)),
                    ("mul", dc.unsqueeze(1), Fc[t].reshape(N, 4, H)),
                ]
            )
            ph, pc = ph.reshape(N, nh * H), pc.reshape(N, 4 * H)
            hk = [ph[:, k * H : (k + 1) * H] for k in range(6)]
            ck = [pc[:, k * H : (k + 1) * H] for k in range(4)]
            da = torch.cat([hk[0] + ck[0], hk[1] + ck[1], hk[2] + ck[2], hk[3]], -1)
            dgi[t] = dgh[t] = da
            dc = ck[3] + hk[4]
            direct = hk[5]
        else:
            (ph,) = B.mul_many([("mul", dh.unsqueeze(1), Fh[t].reshape(N, nh, H))])
            ph = ph.reshape(N, nh * H)
            if cell == "rnn":
                dgi[t] = dgh[t] = ph[:, :H]
                direct = ph[:, H:]
            else:
                da_r, da_z, da_n, dgh_n, direct = (ph[:, k * H : (k + 1) * H] for k in range(5))
                dgi[t] = torch.cat([da_r, da_z, da_n], -1)
                dgh[t] = torch.cat([da_r, da_z, dgh_n], -1)
        if t > 0:
            dh = direct + B.matmul_fixed(dgh[t], saved["W_hh_fixed"], transpose=False)
    dgi_all = torch.stack(dgi).reshape(T * N, -1)
    dgh_all = torch.stack(dgh).reshape(T * N, -1)
    h_prev = saved["h_prev"].reshape(T * N, H)
    if per_example:
        dgi_rows = torch.stack(dgi).permute(1, 2, 0)  # (N, G*H, T)
        dgh_rows = torch.stack(dgh).permute(1, 2, 0)  # (N, G*H, T)
        pairs = [
            ("matmul", dgi_rows, x.transpose(0, 1)),
            ("matmul", dgh_rows, saved["h_prev"].transpose(0, 1)),
        ]
    else:
        pairs = [("matmul", dgi_all.t(), x.reshape(T * N, I)), ("matmul", dgh_all.t(), h_prev)]
    if need_dx:
        pairs.append(("matmul", dgi_all, p["W_ih"]))
    res = B.mul_many(pairs)
    if per_example:
        grads = {"W_ih": res[0], "W_hh": res[1], "b_ih": dgi_rows.sum(2), "b_hh": dgh_rows.sum(2)}
    else:
        grads = {"W_ih": res[0], "W_hh": res[1], "b_ih": dgi_all.sum(0), "b_hh": dgh_all.sum(0)}
    dx = res[2].reshape(T, N, I) if need_dx else None
    return grads, dx
