"""The dealer (trusted third party) process: owns no data, answers randomness requests.

It serves CrypTen's own TTP requests (used by CrypTen ops we call, e.g. comparisons for
gradient clipping and softmax) and mpcrnn's bulk requests (:mod:`protocols.triples`): one
message with a list of requests, answered by one tensor holding party 0's share of every ``c``
(or ``theta_r``) in order.

Every wait has the run's timeout: if party 0 stops talking for ``timeout_s`` or any party
dies, :func:`serve` raises :class:`PartyError` instead of waiting forever.  Its seeds, the
requests and the answers travel only on its authenticated links (:mod:`protocols.channels`).
"""

from __future__ import annotations

import torch

from protocols.errors import PartyError
from protocols.triples import (
    BULK_FUNCTION,
    MASK_PRODUCTS,
    mask_product,
    mask_references,
    output_size,
    plan_stream,
)
from protocols.truncation import count_wraps


def serve() -> int:
    """Run the dealer loop until party 0 sends ``terminate``; returns the number of requests."""
    import crypten.communicator as comm
    from crypten.mpc.provider.ttp_provider import TTPServer

    from protocols.triples import send_dealer_seeds

    server = TTPServer.__new__(
        TTPServer
    )  # CrypTen's request handlers, without its torch.distributed set-up
    server.ttp_group = comm.get().ttp_group
    server.comm_group = comm.get().ttp_comm_group
    server.device = "cpu"
    server.generators, bulk_streams, seeds = send_dealer_seeds(comm.get().get_world_size())
    server.generators_cuda = [None] * len(server.generators)
    links = comm.get().links
    ttp_rank = comm.get().get_ttp_rank()
    served = 0
    while True:
        try:
            message = comm.get().recv_obj(0, server.ttp_group)
        except RuntimeError as exc:
            raise PartyError(f"dealer: lost contact with party 0 ({_first_line(exc)})") from None
        if message == "terminate":
            return served
        served += 1
        if message["function"] == BULK_FUNCTION:
            plan = message["kwargs"].get("plan")
            bulk = bulk_streams if plan is None else [plan_stream(seed, plan) for seed in seeds]
            mask_references(message["args"][0])
            parts, masks = [], {}  # masks: position in this request list -> the summed mask
            for pos, req in enumerate(message["args"][0]):
                if req[0] == "mask":
                    masks[pos] = _sum_draws(req[1], bulk)
                    parts.append(torch.empty(0, dtype=torch.long))
                elif req[0] in MASK_PRODUCTS:
                    c = mask_product(req, masks[pos - req[3]], masks[pos - req[4]])
                    parts.append((c - _sum_draws(output_size(req), bulk[1:])).reshape(-1))
                elif req[0] == "wraps":
                    r = [g.draw(req[1]) for g in bulk]
                    theta = count_wraps(r)
                    parts.append((theta - _sum_draws(req[1], bulk[1:])).reshape(-1))
                elif (
                    req[0] == "bit"
                ):  # every party draws its XOR share bit, then (rank > 0) its arithmetic share
                    r = _xor_draws(req[1], bulk, mask=1)
                    parts.append((r - _sum_draws(req[1], bulk[1:])).reshape(-1))
                elif req[0] == "and":
                    a = _xor_draws(req[1], bulk)
                    b = _xor_draws(req[2], bulk)
                    parts.append(((a & b) ^ _xor_draws(output_size(req), bulk[1:])).reshape(-1))
                else:
                    a = _sum_draws(req[1], bulk)
                    b = _sum_draws(req[2], bulk)
                    c = getattr(torch, req[0])(a, b)
                    c0 = c - _sum_draws(output_size(req), bulk[1:])
                    parts.append(c0.reshape(-1))
            result = torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)
            links.send_bytes(
                0, result.contiguous().numpy().tobytes()
            )  # PartyError names party 0 if it is gone
            continue
        # CrypTen's own request format (TTPServer loop body)
        server.device = message["device"]
        result = getattr(server, message["function"])(*message["args"], **message["kwargs"])
        try:
            comm.get().send_obj(result.size(), 0, server.ttp_group)
            comm.get().broadcast(result, ttp_rank, server.comm_group)
        except RuntimeError as exc:
            raise PartyError(f"dealer: lost contact with party 0 ({_first_line(exc)})") from None


def stop_dealer() -> None:
    """Called by party 0 at the end of a run: tell the dealer to exit."""
    import crypten.communicator as comm
    from crypten.mpc.provider.ttp_provider import TTPClient

    if comm.get().get_rank() == 0:
        comm.get().send_obj("terminate", comm.get().get_ttp_rank(), TTPClient.get().ttp_group)


def _sum_draws(size, streams) -> torch.Tensor:
    """Sum over the given parties' streams of their next draw of ``size`` (in party order)."""
    out = None
    for g in streams:
        d = g.draw(size)
        out = d if out is None else out + d
    return out


def _xor_draws(size, streams, mask: int = -1) -> torch.Tensor:
    """XOR over the given parties' streams of their next draw of ``size`` (``& mask``)."""
    out = None
    for g in streams:
        d = g.draw(size) & mask
        out = d if out is None else out ^ d
    return out


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
