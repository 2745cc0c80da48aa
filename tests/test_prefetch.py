"""A training step's triples fetched in one dealer round trip give the same results as fetched
on demand, and the second step of a shape costs one dealer round trip.  The next step's plan is
asked for while a step runs; with batches of two shapes (5, 5, 2) and with a deliberately wrong
next key (every prefetch dropped), the results stay the plaintext ones."""

from __future__ import annotations

import pytest
import torch


def steps_party(session, batch_size=4, mislead=False):
    rank = session.rank
    from mpcrnn.backend import SharedBackend
    from mpcrnn.config import ActivationConfig, ModelConfig, TrainConfig
    from mpcrnn.model import init_params
    from mpcrnn.train import Dataset, masks, train
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import public, share

    s = session
    g = torch.Generator().manual_seed(1)
    x = torch.rand(12, 5, 3, generator=g, dtype=torch.float64) * 2 - 1
    lengths = torch.tensor([5, 3, 1, 5, 4, 2, 5, 5, 1, 2, 3, 4])
    y = torch.nn.functional.one_hot(torch.arange(12) % 3, 3).double()
    own = rank == 1
    sh = lambda v: share(s, v if own else None, src=1, shape=tuple(v.shape))  # noqa: E731
    data = Dataset(sh(x), sh(masks(lengths, 5)), sh(y))
    cfg = ModelConfig(cell="gru", input_size=3, hidden_size=4, num_classes=3)
    params = {k: public(s, v) for k, v in init_params(cfg, 0).items()}
    B = SharedBackend(s, ActivationConfig())
    if mislead:  # announce the other shape as the next one: every prefetch is dropped
        begin = B.begin_step
        other = {(5, 5): (2, 5), (2, 5): (5, 5)}
        B.begin_step = lambda key, next_key=None: begin(key, other.get(next_key, next_key))
    dealer_per_epoch = []

    def count(epoch, p, v):
        dealer_per_epoch.append(s.stats.rounds["dealer"])

    params, _ = train(
        B, cfg, TrainConfig(epochs=3, batch_size=batch_size), data, params, on_epoch_end=count
    )
    opened = {k: reveal(s, v, to=(0, 1, 2), what=k, why="test") for k, v in params.items()}
    return opened, dealer_per_epoch


@pytest.mark.parametrize("batch_size,mislead", [(4, False), (5, False), (5, True)])
def test_prefetched_steps_match_plaintext_training_and_use_one_round_trip(
    batch_size, mislead, parties
):
    from mpcrnn.backend import PlainBackend
    from mpcrnn.config import ActivationConfig, ModelConfig, TrainConfig
    from mpcrnn.model import init_params
    from mpcrnn.train import Dataset, masks, train

    opened, dealer = parties(
        steps_party, world_size=3, provider="TTP", args=(batch_size, mislead), timeout_s=300
    )[0]
    g = torch.Generator().manual_seed(1)
    x = torch.rand(12, 5, 3, generator=g, dtype=torch.float64) * 2 - 1
    lengths = torch.tensor([5, 3, 1, 5, 4, 2, 5, 5, 1, 2, 3, 4])
    y = torch.nn.functional.one_hot(torch.arange(12) % 3, 3).double()
    cfg = ModelConfig(cell="gru", input_size=3, hidden_size=4, num_classes=3)
    want, _ = train(
        PlainBackend(ActivationConfig()),
        cfg,
        TrainConfig(epochs=3, batch_size=batch_size),
        Dataset(x, masks(lengths, 5), y),
        init_params(cfg, 0),
    )
    for k in want:
        torch.testing.assert_close(opened[k], want[k], atol=5e-3, rtol=0, msg=k)
    # epoch 1 records the plan (one dealer trip per batched multiplication); epochs 2 and 3
    # replay it: one trip per step (3 steps) plus CrypTen's own on-demand requests
    first, second, third = dealer[0], dealer[1] - dealer[0], dealer[2] - dealer[1]
    assert second < first / 10 and third < first / 10, dealer
    if not mislead:  # one dealer trip per step (3 steps an epoch)
        assert second == third == 3, dealer
