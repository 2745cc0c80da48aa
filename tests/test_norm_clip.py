"""Row-wise clipping to a norm on shares (protocols.arithmetic.norm_clip) against its plaintext
definition.

Tolerance: every output element within 1e-4 of x_r * min(1, c/||x_r||) (fixed point, f = 16:
the squares are summed before one truncation, the bucket factors are kept at scale 2^24), and
every output norm at most c (1 + 3e-4), tighter than the documented CLIP_RELATIVE_ERROR (1e-3).
Why 3e-4: the last product is truncated once per element, and with 3 parties a truncation errs
by up to 2 units of 2^-16 (each share is divided separately), so a D = 40 row's norm can move by
2 * 2^-16 * sqrt(40) = 1.9e-4 = 2.8e-4 c; measured run to run: up to 1.6e-4 c.
"""

from __future__ import annotations

import pytest
import torch

RATIOS = [0.0, 0.01, 0.3, 0.99, 1.0001, 1.01, 1.4, 2.0, 7.3, 31.0, 100.0, 1000.0, 1100.0, 5000.0]
C = 0.7


def _rows(c: float = C):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(len(RATIOS), 40, generator=g, dtype=torch.float64)
    return (
        x / x.norm(dim=1, keepdim=True) * torch.tensor(RATIOS, dtype=torch.float64).unsqueeze(1) * c
    )


def clip_party(session, K: int = 20, c: float = C):
    rank = session.rank
    from protocols.arithmetic.norm_clip import clip_rows_to_norm
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import share

    s = session
    x = _rows(c)
    xs = share(s, x if rank == 0 else None, src=0, shape=tuple(x.shape))
    before = s.stats.total_rounds
    out = reveal(
        s, clip_rows_to_norm(s, xs, c, K), to=tuple(range(s.world_size)), what="clipped", why="test"
    )
    return {"out": out, "rounds": s.stats.total_rounds - before}


def _check(out, K: int = 20, c: float = C):
    from protocols.arithmetic.norm_clip import CLIP_RELATIVE_ERROR, clip_rows_to_norm_plain

    x = _rows(c)
    ref = clip_rows_to_norm_plain(x, c, K)
    torch.testing.assert_close(out, ref, atol=1e-4 * c / C, rtol=0)
    assert (out.norm(dim=1) <= c * (1 + 3e-4)).all()
    assert 3e-4 <= CLIP_RELATIVE_ERROR
    # the definition itself: unclipped below c, norm c between c and 2^(K/2) c, zero beyond
    r = torch.tensor(RATIOS, dtype=torch.float64)
    top = 2.0 ** (K / 2)
    norms = ref.norm(dim=1) / c
    torch.testing.assert_close(norms[r < 1], r[r < 1])
    torch.testing.assert_close(
        norms[(r >= 1) & (r < top)],
        torch.ones(int(((r >= 1) & (r < top)).sum()), dtype=torch.float64),
    )
    assert (norms[r >= top] == 0).all() and (r >= top).any()


@pytest.mark.parametrize("K", [20, 12])  # the default range (1024 c) and DP-SGD's (64 C)
def test_clip_rows_in_process(K):
    from protocols.network.parties import init_in_process

    session = init_in_process()
    _check(clip_party(session, K)["out"], K)


@pytest.mark.parametrize("K", [20, 12])
def test_clip_rows_three_parties(K, parties):
    outs = parties(clip_party, world_size=3, provider="TTP", args=(K,))
    for out in outs:
        _check(out["out"], K)
    # independent of R and D: 37 openings/gathers (9 in the sign-bit circuit), plus the dealer
    # round trips party 0 makes outside a step plan
    assert outs[1]["rounds"] == 37 and outs[0]["rounds"] <= 62, (
        outs[0]["rounds"],
        outs[1]["rounds"],
    )


@pytest.mark.parametrize(
    "shape,c,msg", [((5,), 1.0, "expected a 2-D"), ((2, 3), 0.0, "clipping norm: expected > 0")]
)
def test_clip_rows_bad_input(shape, c, msg):
    from protocols.arithmetic.norm_clip import clip_rows_to_norm
    from protocols.errors import ConfigError
    from protocols.network.parties import init_in_process

    session = init_in_process()
    with pytest.raises(ConfigError, match=msg):
        clip_rows_to_norm(session, torch.zeros(shape, dtype=torch.int64), c)


@pytest.mark.parametrize("c", [2.0, 32.0])  # k = 2 and 10: the squares divided by 4 and 1024 first
def test_clip_rows_large_norm_bound_three_parties(c, parties):
    """A bound c >= 2 (Adam's scaled gradient is clipped at S C = 32): the squares are truncated
    by 2 floor(log2 c) bits before the sum, the same definition within the same relative error."""
    outs = parties(clip_party, world_size=3, provider="TTP", args=(20, c))
    for out in outs:
        _check(out["out"], 20, c)
