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


@pytest.mark.parametrize("wrap", [-(1 << 48), 1 << 48])
def test_a_failed_truncation_of_the_squared_norm_drops_the_row_never_passes_it(wrap, monkeypatch):
    """The attack on the sensitivity bound: with more than two parties CrypTen's truncation
    ignores one wrap, and fails with probability ~|value| 2^-63 by adding -/+ 2^64 / 2^f. The
    squared norm of a large row (5000 c: ~2^55.5 at scale 2^2f) fails ~1 time in 180, seen in
    the full suite: the row's ||x||^2 / c^2 came out negative and the row passed UNCLIPPED,
    norm 5000 c (a DP-SGD sensitivity of 5000 C).  Injected here into the sum of squares of a
    row to clip (7.3 c): whatever the sign, the row must come out as zero (a valid clip), every
    other row as defined."""
    import protocols.arithmetic.truncation as truncation
    from protocols.network.parties import init_in_process

    real, calls, row = truncation.truncate_many, [], RATIOS.index(7.3)

    def failing_once(session, xs, wraps=None, bits=None):
        out = real(session, xs, wraps, bits)
        if not calls:  # the first truncation in clip_rows_to_norm: the row sums of squares
            calls.append(row)
            out[0][row] += wrap
        return out

    monkeypatch.setattr(truncation, "truncate_many", failing_once)
    session = init_in_process()
    out = clip_party(session, 20)["out"]
    assert calls == [row]
    from protocols.arithmetic.norm_clip import clip_rows_to_norm_plain

    ref = clip_rows_to_norm_plain(_rows(), C, 20)
    ref[row] = 0.0
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    assert (out.norm(dim=1) <= C * (1 + 3e-4)).all()
