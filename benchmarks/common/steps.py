"""Party functions of one training step on shares, for :func:`launch.local_parties.run_parties`:
mpcrnn's step and the same GRU written naively on CrypTen autograd."""

from __future__ import annotations

import statistics
import time


def _data(B, T, F, C, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, T, F, generator=g, dtype=torch.float64) * 2 - 1
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    y = torch.randint(0, C, (B,), generator=g)
    return x, lengths, y


def shared_batch(session, B, T):
    """A random batch of ``B`` sequences of ``T`` steps (12 features, 9 classes), shared by
    party 0: (x, masks, one-hot labels), time-major."""
    import torch

    from mpcrnn.train import masks
    from protocols.arithmetic.sharing import share

    s, own = session, session.rank == 0
    x, lengths, y = _data(B, T, 12, 9)
    xs = share(s, x if own else None, src=0, shape=(B, T, 12)).transpose(0, 1)
    ms = share(s, masks(lengths, T) if own else None, src=0, shape=(B, T, 1)).transpose(0, 1)
    ys = share(s, torch.nn.functional.one_hot(y, 9).double() if own else None, src=0, shape=(B, 9))
    return xs, ms, ys


def mpcrnn_step(session, B, T, H, repeats, cell="gru"):
    """A party function: ``repeats`` steady-state mpcrnn training steps (after one that records
    the triple plan and one warm-up); seconds (wall and this party's CPU), CrypTen-counted
    rounds and bytes of the last, our own counters, and the forward pass's rounds."""
    from mpcrnn.backend import SharedBackend
    from mpcrnn.config import ActivationConfig, ModelConfig, TrainConfig
    from mpcrnn.model import forward, forward_backward, init_params
    from mpcrnn.train import init_state, sgd_step
    from protocols.arithmetic.sharing import public

    s = session
    s.enable_traffic_counting()
    mc = ModelConfig(cell=cell, hidden_size=H)
    xs, ms, ys = shared_batch(s, B, T)
    params = {k: public(s, v) for k, v in init_params(mc, 0).items()}
    Bk = SharedBackend(s, ActivationConfig())
    tcfg = TrainConfig()
    vel = init_state(Bk, params, tcfg)
    times, cpu = [], []
    # step 0 records the triple plan, step 1 warms up; every measured step names the next one
    # (a provider's prefetch runs beside it), and one more step takes the last prefetch
    for i in range(repeats + 3):
        s.reset_traffic()
        s.stats.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        Bk.begin_step((B, T), (B, T) if i < repeats + 2 else None)
        grads, _ = forward_backward(Bk, mc, params, xs, ms, ys)
        params, vel = sgd_step(Bk, params, grads, vel, tcfg, B, i + 1, repeats + 3)
        Bk.end_step()
        if i == repeats + 1:  # the last measured step's own counters
            st = s.transport
            out = {"mine": s.stats.snapshot(), "rounds": st.comm_rounds, "bytes": st.comm_bytes}
        if 1 < i < repeats + 2:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)  # less sensitive to a busy machine
    out.update(times=times, cpu=cpu)
    s.stats.reset()  # forward alone, outside a prefetched step: count openings + truncations only
    forward(Bk, mc, params, xs, ms)
    out["forward_rounds"] = s.stats.rounds["beaver"] + s.stats.rounds["truncate"]
    return out


def text_step(session, B, T, H, V, D, repeats, lm=False, pairwise_max=False):
    """A party function: ``repeats`` steady-state text steps (after one that records the triple
    plan and one warm-up) on random one-hot tokens of a vocabulary of ``V``, shared by party 0:
    Embedding(V, D) + GRU(H) + Linear, a 2-class classifier or (``lm``) the next-token model;
    Adam as the demos.  ``pairwise_max``: the softmax's row max pairwise at every V (as before
    the tournament).  Returns what :func:`mpcrnn_step` returns (no forward rounds)."""
    import torch

    from protocols.arithmetic import comparison

    if pairwise_max:
        comparison.PAIRWISE_MAX_UP_TO = 1 << 30

    from mpcrnn.backend import SharedBackend
    from mpcrnn.config import ActivationConfig, ModelConfig, TrainConfig
    from mpcrnn.language_model import lm_forward_backward
    from mpcrnn.model import forward_backward, init_params
    from mpcrnn.train import init_state, masks, sgd_step
    from protocols.arithmetic.sharing import public, share

    s, own = session, session.rank == 0
    s.enable_traffic_counting()
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, V, (B, T), generator=g)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    m = masks(lengths, T)
    x = torch.nn.functional.one_hot(tokens, V).double() * m
    y = torch.nn.functional.one_hot(torch.randint(0, 2, (B,), generator=g), 2).double()
    xs = share(s, x if own else None, src=0, shape=(B, T, V)).transpose(0, 1)
    ms = share(s, m if own else None, src=0, shape=(B, T, 1)).transpose(0, 1)
    ys = share(s, y if own else None, src=0, shape=(B, 2))
    mc = ModelConfig(
        hidden_size=H,
        input_size=V,
        embedding_dim=D,
        **({"task": "lm", "num_classes": 0, "output_size": V} if lm else {"num_classes": 2}),
    )
    params = {k: public(s, v) for k, v in init_params(mc, 0).items()}
    Bk = SharedBackend(s, ActivationConfig())
    tcfg = TrainConfig()
    vel = init_state(Bk, params, tcfg)
    key = ("lm" if lm else "text", B, T)
    times, cpu = [], []
    for i in range(repeats + 2):  # step 0 records the triple plan, step 1 warms up
        s.reset_traffic()
        t0, c0 = time.perf_counter(), time.process_time()
        Bk.begin_step(key, key if i < repeats + 1 else None)
        if lm:
            grads, _ = lm_forward_backward(Bk, mc, params, xs, ms)
        else:
            grads, _ = forward_backward(Bk, mc, params, xs, ms, ys)
        params, vel = sgd_step(Bk, params, grads, vel, tcfg, B, i + 1, repeats + 2)
        Bk.end_step()
        if i > 1:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    st = s.transport
    return {"times": times, "cpu": cpu, "rounds": st.comm_rounds, "bytes": st.comm_bytes}


def _naive_gru(crypten, torch, xe, me, W_ih, W_hh, b_ih, b_hh, B, T, H):
    """torch's GRU equations on CrypTen autograd with CrypTen's sigmoid/tanh; masked freeze."""
    h = crypten.cryptensor(torch.zeros(B, H))
    for t in range(T):
        gi = xe[t].matmul(W_ih.t()) + b_ih
        gh = h.matmul(W_hh.t()) + b_hh
        r = (gi[:, :H] + gh[:, :H]).sigmoid()
        z = (gi[:, H : 2 * H] + gh[:, H : 2 * H]).sigmoid()
        n = (gi[:, 2 * H :] + r * gh[:, 2 * H :]).tanh()
        h = h + me[t] * ((1 - z) * n + z * h - h)
    return h


def naive_step(session, B, T, H, repeats):
    """A party function: the same GRU step written naively on CrypTen autograd (CrypTen's own
    sigmoid, tanh and cross-entropy); seconds, CrypTen-counted rounds and bytes, forward
    rounds."""
    import crypten
    import torch
    from crypten import communicator as comm
    from crypten.config import cfg as ccfg

    ccfg.communicator.verbose = True
    x, lengths, y = _data(B, T, 12, 9)
    torch.manual_seed(0)
    ref = torch.nn.GRU(12, H, batch_first=True)
    fc = torch.nn.Linear(H, 9)
    enc = lambda v, rg=True: crypten.cryptensor(v.detach().float(), src=0, requires_grad=rg)  # noqa: E731
    W_ih, W_hh = enc(ref.weight_ih_l0), enc(ref.weight_hh_l0)
    b_ih, b_hh = enc(ref.bias_ih_l0), enc(ref.bias_hh_l0)
    W, b = enc(fc.weight), enc(fc.bias)
    xe = enc(x.transpose(0, 1), False)
    me = enc(((torch.arange(T)[None, :] < lengths[:, None]).float().T.unsqueeze(-1)), False)
    ye = enc(torch.nn.functional.one_hot(y, 9), False)
    gru = lambda: _naive_gru(crypten, torch, xe, me, W_ih, W_hh, b_ih, b_hh, B, T, H)  # noqa: E731
    times = []
    for i in range(repeats + 1):
        comm.get().reset_communication_stats()
        t0 = time.perf_counter()
        (gru().matmul(W.t()) + b).cross_entropy(ye).backward()
        if i:
            times.append(time.perf_counter() - t0)
    st = comm.get()
    total = {"times": times, "rounds": st.comm_rounds, "bytes": st.comm_bytes}
    comm.get().reset_communication_stats()
    gru().matmul(W.t())
    total["forward_rounds"] = comm.get().comm_rounds
    return total


def pingpong(session, sizes, repeats):
    """Per message size: the median time of the step's two exchange primitives between the party
    processes (:mod:`protocols.arithmetic.reveal`): ``open`` (every party sends its share to every
    other
    one: a Beaver/AND opening) and ``gather`` (shares to party 0: a truncation), the latter
    timed as (gather + an 8-byte open) - (the 8-byte open): alone, the senders would run ahead
    and party 0 would time a queue, not a latency."""
    import torch

    from protocols.arithmetic.reveal import gather_masked, open_masked

    s = session
    out = {}
    for n in sizes:
        t = torch.zeros(n, dtype=torch.long)
        one = torch.zeros(1, dtype=torch.long)
        for name, fn in (
            ("open", lambda t=t: open_masked(s, [t], "pingpong")),
            (
                "gather",
                lambda t=t, one=one: (
                    gather_masked(s, t, "pingpong"),
                    open_masked(s, [one], "pingpong"),
                ),
            ),
        ):
            for _ in range(3):
                fn()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            out[(name, n)] = statistics.median(times)
    return out
