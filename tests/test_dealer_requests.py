"""Issue 26 #2: the dealer answers only the request kinds and sizes it allows.

A scripted (hostile) party 0 sends the dealer one message; the dealer must stop with one
ProtocolError line naming party 0 as the sender, before allocating anything of the asked size.
No processes: the dealer's transport is a stand-in that replays party 0's messages."""

from __future__ import annotations

import re
import resource

import pytest

from protocols.errors import ProtocolError
from protocols.randomness.dealer import serve
from protocols.randomness.triples import BULK_FUNCTION
from protocols.session import MpcSession


class _Links:
    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes]] = []

    def send_bytes(self, dst: int, payload: bytes) -> None:
        self.sent.append((dst, bytes(payload)))


class _Transport:
    """The dealer's side of a 2-party run; party 0's messages come from ``script``."""

    ttp_group = comm_group = ttp_comm_group = None

    def __init__(self, script: list) -> None:
        self.script = list(script)
        self.links = _Links()
        self.answers: list = []

    def get_world_size(self) -> int:
        return 2

    def get_ttp_rank(self) -> int:
        return 2

    def recv_obj(self, src, group=None):
        return self.script.pop(0)

    def send_obj(self, obj, dst, group=None):
        self.answers.append(obj)

    def broadcast(self, tensor, src, group=None, batched=False):
        self.answers.append(tensor)


def _serve(*script) -> int:
    transport = _Transport([*script, "terminate"])
    return serve(MpcSession(rank=2, world_size=2, transport=transport, triples=None))


def _crypten(function, *args, device=None, **kwargs) -> dict:
    return {"function": function, "device": device, "args": args, "kwargs": kwargs}


def _bulk(items, **kwargs) -> dict:
    return {"function": BULK_FUNCTION, "device": None, "args": (items,), "kwargs": kwargs}


@pytest.fixture(scope="module", autouse=True)
def _crypten_loaded():
    from protocols.runtime import load_crypten

    load_crypten()


HUGE = (1 << 20, 1 << 20)  # 2^40 elements: 8 TiB of int64

HOSTILE = [  # (id, party 0's message, pattern after "dealer: party 0 sent ")
    ("unknown-function", _crypten("__init__"), r"an unknown request"),
    ("dunder-function", _crypten("__class__"), r"an unknown request"),
    ("torch-op-by-name", _crypten("additive", (2,), (2,), "save"), r"additive"),
    ("huge-crypten", _crypten("square", HUGE), r"size"),
    ("huge-product", _crypten("additive", (1 << 20, 1), (1, 1 << 20), "matmul"), r"size"),
    ("huge-bulk", _bulk([("mul", HUGE, HUGE)]), r"size"),
    ("huge-bulk-output", _bulk([("matmul", (1 << 20, 1), (1, 1 << 20))]), r"size"),
    ("negative-size", _bulk([("wraps", (-5,))]), r"size"),
    ("string-size", _bulk([("wraps", ("7",))]), r"size"),
    ("float-size", _crypten("wraps", (2.5,)), r"size"),
    ("not-a-dict", ["additive"], r"a message"),
    ("missing-keys", {"function": "square"}, r"a message"),
    ("args-not-a-tuple", {**_crypten("square"), "args": "xy"}, r"square"),
    ("extra-kwargs", _crypten("square", (2,), evil=1), r"square"),
    ("cuda-device", _crypten("square", (2,), device="cuda"), r"device"),
    ("bulk-not-a-list", _bulk("abc"), r"request list"),
    ("bulk-unknown-kind", _bulk([("evil", (2,))]), r"request"),
    ("bulk-plan-string", _bulk([], plan="x"), r"plan"),
    ("bulk-extra-kwargs", _bulk([], other=1), r"plan"),
    ("unhashable-kind", _bulk([[["x"], (2,)]]), r"request"),
    ("bad-mask-reference", _bulk([("maskmul", (2,), (2,), 5, 5)]), r"mask product"),
    ("too-many-dims", _crypten("wraps", (1,) * 40), r"size"),
]


@pytest.mark.parametrize("message, pattern", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_request_is_one_line_naming_party_0(message, pattern):
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (16 << 30, hard))  # an 8 TiB try fails loudly
    try:
        with pytest.raises(ProtocolError) as err:
            _serve(message)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    text = str(err.value)
    assert "\n" not in text, text
    assert text.startswith("dealer: party 0 sent "), text
    assert re.search(pattern, text), text


def test_allowed_requests_are_answered():
    served = _serve(
        _crypten("additive", (2, 3), (3, 4), "matmul"),
        _crypten("square", (5,)),
        _crypten("binary", (4,), (4,)),
        _crypten("wraps", (3,)),
        _crypten("B2A", (3,)),
        _bulk([("mul", (2, 3), (3,)), ("wraps", (4,)), ("and", (2,), (2,))]),
        _bulk([("bit", (2,))], plan=3),
    )
    assert served == 7


def _crypten_ops(session) -> list:
    """CrypTen's own operations whose randomness comes from the dealer's table."""
    import crypten
    import torch

    x = crypten.cryptensor(torch.tensor([[0.5, -1.0], [2.0, 3.0]]))
    y = crypten.cryptensor(torch.tensor([[1.5, 2.0], [-1.0, 0.25]]))
    out = [x * y, x.matmul(y), x.square(), x > 0, x.argmax(dim=1)]
    return [tuple(t.size()) for t in out]


def test_crypten_requests_through_the_table_in_processes(parties):
    sizes = parties(_crypten_ops, world_size=2, provider="TTP", timeout_s=120)
    assert sizes[0] == sizes[1] == [(2, 2), (2, 2), (2, 2), (2, 2), (2, 2)]
