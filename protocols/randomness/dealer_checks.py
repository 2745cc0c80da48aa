"""What the dealer accepts from party 0: an explicit table of request kinds, sizes bounded
before anything is allocated.

Party 0 is pinned but not trusted with the dealer's memory or code: every message is checked
here, and anything else stops the dealer with one :class:`ProtocolError` line naming party 0
as the sender (never its bytes).  The bounds are generous fixed caps, far above any run this
project makes (a W1 step's largest tensor has about 10^4 elements; a batch of a few thousand
rows of hundreds of steps still fits):

* every tensor of a request (each operand and the result): at most ``MAX_ELEMENTS`` (2^27,
  1 GiB of int64) and ``MAX_DIMS`` dimensions, each a non-negative ``int``;
* one message: at most ``MAX_REQUESTS`` requests and ``MAX_MESSAGE_ELEMENTS`` (2^29) elements
  in all, the streams' draws counted.

CrypTen's own TTP requests are looked up in :data:`CRYPTEN_FUNCTIONS` (never ``getattr`` on a
peer's string), with the products restricted to :data:`protocols.randomness.requests.BILINEAR`.
"""

from __future__ import annotations

import math

from protocols.errors import ProtocolError, expected_got
from protocols.randomness.requests import (
    Op,
    Request,
    check_mask_references,
    from_wire,
    product_size,
)

MAX_ELEMENTS = 1 << 27
MAX_MESSAGE_ELEMENTS = 1 << 29
MAX_REQUESTS = 1 << 20
MAX_DIMS = 8
MAX_PLAN = 1 << 40
KEYS = {"function", "device", "args", "kwargs"}
ONE_SIZE = {"mask", "wraps", "bit"}
BULK_KINDS = ONE_SIZE | {"mul", "matmul", "maskmul", "maskmatmul", "and"}
# CrypTen's TTP request name -> the number of size arguments it takes
CRYPTEN_FUNCTIONS = {"additive": 2, "square": 1, "binary": 2, "wraps": 1, "B2A": 1}


def refuse(what: str, expected: str, got: str) -> ProtocolError:
    return ProtocolError(expected_got(f"dealer: party 0 sent {what}", expected, got))


def _kind(value) -> str:
    return type(value).__name__


def check_size(size, what: str) -> tuple[int, ...]:
    """A tensor size from party 0: a tuple/list of at most ``MAX_DIMS`` non-negative ints
    with at most ``MAX_ELEMENTS`` elements (nothing converted: a string or float is refused)."""
    if not isinstance(size, (tuple, list)) or len(size) > MAX_DIMS:
        got = f"{len(size)} dimensions" if isinstance(size, (tuple, list)) else _kind(size)
        raise refuse(f"{what} size", f"a tuple of at most {MAX_DIMS} dimensions", got)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in size):
        raise refuse(f"{what} size", "non-negative integer dimensions", "another value")
    n = math.prod(size)
    if n > MAX_ELEMENTS:
        raise refuse(f"{what} size", f"at most {MAX_ELEMENTS} elements", f"{n}")
    return tuple(size)


def check_message(message) -> dict:
    """The envelope: a dict of exactly function, device, args, kwargs; device cpu."""
    if not isinstance(message, dict) or set(message) != KEYS:
        got = sorted(map(str, message))[:6] if isinstance(message, dict) else _kind(message)
        raise refuse("a message", f"a dict of {', '.join(sorted(KEYS))}", f"{got}")
    if message["device"] not in (None, "cpu"):
        raise refuse("a request for a device", "cpu", "another device")
    if not isinstance(message["args"], (tuple, list)) or not isinstance(message["kwargs"], dict):
        raise refuse(f"{_name(message)} arguments", "a tuple and a dict", "other values")
    return message


def _name(message) -> str:
    f = message.get("function") if isinstance(message, dict) else None
    return f if isinstance(f, str) and f in CRYPTEN_FUNCTIONS else "a request's"


def check_crypten(message: dict) -> tuple[str, tuple]:
    """(function name from the table, its checked arguments) for CrypTen's own request."""
    name = message["function"]
    if not isinstance(name, str) or name not in CRYPTEN_FUNCTIONS:
        raise refuse("an unknown request", f"one of {', '.join(CRYPTEN_FUNCTIONS)}", "another")
    args, n = message["args"], CRYPTEN_FUNCTIONS[name]
    want = n + 1 if name == "additive" else n
    if len(args) != want or message["kwargs"]:
        raise refuse(f"{name} arguments", f"{want} positional, no keywords", f"{len(args)}")
    sizes = tuple(check_size(s, name) for s in args[:n])
    if name == "additive":
        if not isinstance(args[2], str) or args[2] not in {op.value for op in Op}:
            raise refuse("additive's product", "mul or matmul", "another operation")
        try:
            out = product_size(Op(args[2]), *sizes)
        except (ProtocolError, RuntimeError):
            raise refuse("additive sizes", "shapes the product accepts", "others") from None
        check_size(out, name)
        return name, (*sizes, args[2])
    if name == "binary" and sizes[0] != sizes[1]:
        raise refuse("binary sizes", "equal shapes", "different ones")
    return name, sizes


def check_bulk(message: dict, world_size: int) -> tuple[list[Request], int | None]:
    """(the requests, the plan index or None) of mpcrnn's bulk request, every size bounded."""
    kwargs = message["kwargs"]
    plan = kwargs.get("plan")
    if set(kwargs) - {"plan"} or not (plan is None or _is_index(plan)):
        raise refuse("a bulk request's plan", f"no keywords but plan (0..{MAX_PLAN})", "others")
    args = message["args"]
    items = args[0] if len(args) == 1 else None
    if not isinstance(items, (list, tuple)) or len(items) > MAX_REQUESTS:
        got = f"{len(items)} items" if isinstance(items, (list, tuple)) else _kind(items)
        raise refuse("a request list", f"a list of at most {MAX_REQUESTS} requests", got)
    total, requests = 0, []
    for item in items:
        if not isinstance(item, (tuple, list)) or not item or not _known(item[0]):
            raise refuse(
                "a request", f"a ({', '.join(sorted(BULK_KINDS))}, sizes) tuple", "another"
            )
        n_sizes = 1 if item[0] in ONE_SIZE else 2
        sizes = [check_size(s, f"a {item[0]} request's") for s in item[1 : 1 + n_sizes]]
        try:
            req = from_wire(tuple(item))
            out = req.output_size()
        except (ProtocolError, RuntimeError):
            raise refuse("a request", "a known kind with sizes that fit", item[0][:16]) from None
        total += (math.prod(check_size(out, "a request's result")) + sum(map(math.prod, sizes))) * (
            world_size + 1
        )
        if total > MAX_MESSAGE_ELEMENTS:
            raise refuse(
                "a bulk request's size", f"at most {MAX_MESSAGE_ELEMENTS} elements", "more"
            )
        requests.append(req)
    try:
        check_mask_references(requests)
    except (ProtocolError, IndexError):
        raise refuse(
            "a mask product", "references to earlier masks of its sizes", "others"
        ) from None
    return requests, plan


def _known(kind) -> bool:
    return isinstance(kind, str) and kind in BULK_KINDS


def _is_index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_PLAN
