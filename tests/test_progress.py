"""Rank 0's progress (launch/party.py ``_Progress``): a tqdm bar on a terminal, one plain line
per epoch otherwise, and only public counters in either.  In-process, no party processes."""

from __future__ import annotations

import io

from launch.party import _Progress


class _Stats:
    total_rounds = 1234
    total_bytes = 5.6e6


class _Session:
    stats = _Stats()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:  # a pty that never said its size, as under `script` or in CI
        raise io.UnsupportedOperation("no size")


def _run(stream, epochs=2, steps=3, unit=None, first_epoch=1) -> _Progress:
    p = _Progress(_Session(), stream)
    for e in range(first_epoch, epochs + 1):
        for s in range(1, steps + 1):
            ev = {"epoch": e, "epochs": epochs, "step": s, "steps": steps, "seconds": 0.5}
            p({**ev, "unit": unit} if unit else ev)
    return p


def test_not_a_terminal_one_line_per_epoch_and_no_carriage_return():
    out = io.StringIO()
    p = _run(out)
    assert not p.shown
    p.done()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 3
    assert lines[0] == "  epoch 1/2: 3 steps in 1.5 s (0.50 s/step), rounds 1234, sent 5.6 MB"
    assert lines[1].startswith("  epoch 2/2: ") and lines[2].startswith("  trained in ")


def test_fedavg_rounds_one_line_each():
    out = io.StringIO()
    _run(out, epochs=3, steps=1, unit="round").done()
    assert [x.split(":")[0] for x in out.getvalue().splitlines()[:3]] == [
        "  round 1/3",
        "  round 2/3",
        "  round 3/3",
    ]


def test_terminal_a_bar_that_counts_every_step_and_ends_its_line():
    term = _Terminal()
    p = _run(term, epochs=2, steps=3)
    assert p.shown and p.bar.n == 6 and p.bar.total == 6
    p.done()
    text = term.getvalue()
    assert "\r" in text and "epoch 2/2: 100%" in text and "6/6" in text
    assert "rounds 1234, sent 5.6 MB" in text
    assert text.endswith("\n") and "trained in" in text.splitlines()[-1] and not p.shown


def test_terminal_resumed_run_starts_the_bar_where_it_resumed():
    term = _Terminal()
    p = _run(term, epochs=4, steps=2, first_epoch=3)  # epochs 1-2 came from a checkpoint
    assert p.bar.n == 8 and p.bar.total == 8
    p.close()
    assert not p.shown and term.getvalue().endswith("\n")
