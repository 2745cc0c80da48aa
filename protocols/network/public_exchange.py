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


RUN_NONCE_BYTES = 16


def agree_run_id(session) -> str:
    """A fresh run identity all data parties contribute to: each sends a random nonce (public,
    over the authenticated links); the run id is the SHA-256 of all of them in rank order, so
    no single party chooses it and no two runs share it.  Checkpoints and the model file carry
    it (a resumed run adopts the id from its checkpoints instead).

    Raises:
        ProtocolError: a contribution that is not a nonce of the expected length.
    """
    import hashlib
    import os

    mine = os.urandom(RUN_NONCE_BYTES).hex()
    everyone = exchange_public(session, mine)
    for r, nonce in enumerate(everyone):
        ok = isinstance(nonce, str) and len(nonce) == 2 * RUN_NONCE_BYTES
        if not ok or any(ch not in "0123456789abcdef" for ch in nonce):
            raise ProtocolError(
                f"party {session.rank}: party {r} sent a run-identity contribution that is not a "
                f"{RUN_NONCE_BYTES}-byte hex nonce (the processes' protocol steps disagree)"
            )
    return hashlib.sha256("|".join(everyone).encode()).hexdigest()[:32]
