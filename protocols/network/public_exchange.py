"""Public metadata between the data parties: the one primitive for it.

:func:`exchange_public` sends this party's public value (the run configuration's digest, row
counts, checkpoint epochs, a schedule-seed contribution: JSON, never a share) to every other
data party and returns everyone's, in rank order.  It runs over the run's authenticated links
(:mod:`protocols.network.links`), decoded with ``json`` (a peer's bytes are never unpickled).
"""

from __future__ import annotations

import json

from protocols.errors import ProtocolError


def exchange_public(session, obj) -> list:
    """Every data party's ``obj`` (JSON-encodable), in rank order; this party's own included
    (after the same JSON round trip, so every party compares like with like).

    Raises:
        PartyError: a peer is gone or silent for the run's timeout.
        ProtocolError: a peer sent something that is not JSON (the processes are out of step).
    """
    rank, world_size = session.rank, session.world_size
    mine = json.dumps(obj, sort_keys=True).encode()
    if world_size == 1:
        return [json.loads(mine)]
    links = session.links
    others = [r for r in range(world_size) if r != rank]
    for r in others:
        links.send_bytes(r, mine)
    got = {}
    for r in others:
        raw = links.recv_message(r)
        try:
            got[r] = json.loads(bytes(raw))
        except ValueError:
            raise ProtocolError(
                f"party {rank}: party {r} sent public metadata that is not JSON "
                "(the processes' protocol steps disagree)"
            ) from None
    return [json.loads(mine) if r == rank else got[r] for r in range(world_size)]
