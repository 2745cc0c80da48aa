"""The torch yardstick: the one torch training loop the benchmarks compare against."""

from __future__ import annotations

import time


def scheduled_batches(data, train_cfg):
    """``batches(epoch)``: the (x, lengths, y) tensors of the run's public batch schedule (the
    one the mirror and MPC follow), float32, for :func:`torch_loop`."""
    import torch

    from mpcrnn.train import schedule

    x, n = torch.as_tensor(data.x, dtype=torch.float32), torch.as_tensor(data.lengths)
    y = torch.as_tensor(data.y)

    def batches(epoch: int):
        for idx in schedule(len(y), train_cfg, epoch):
            idx = torch.as_tensor(idx)
            yield x[idx], n[idx], y[idx]

    return batches


def torch_loop(model, opt, batches, epochs: int, *, lr=None, clip_value=None):
    """The torch training loop every yardstick uses: per step, cross-entropy on the batch,
    backward (skipped on an empty Poisson batch), an optional value clip, ``opt.step()``.
    ``batches(epoch)`` yields (x, lengths, y); ``lr(step)`` (1-based), if given, sets the
    learning rate of every step (the run's public schedule).  Returns (seconds per step,
    seconds per epoch)."""
    import torch

    steps, epoch_s, n = [], [], 0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        for x, lengths, y in batches(epoch):
            n += 1
            for group in opt.param_groups if lr else ():
                group["lr"] = lr(n)
            ts = time.perf_counter()
            opt.zero_grad()
            if len(y):
                torch.nn.functional.cross_entropy(model(x, lengths), y).backward()
            if clip_value:
                torch.nn.utils.clip_grad_value_(model.parameters(), clip_value)
            opt.step()
            steps.append(time.perf_counter() - ts)
        epoch_s.append(time.perf_counter() - t0)
    return steps, epoch_s


def torch_accuracy(model, data) -> float:
    """Test accuracy of a torch model on scaled rows (float32, exact activations)."""
    import torch

    model.eval()
    with torch.no_grad():
        x = torch.as_tensor(data.x, dtype=torch.float32)
        pred = model(x, torch.as_tensor(data.lengths)).argmax(1).numpy()
    return float((pred == data.y).mean())
