"""Communication counters kept by this party: rounds and bytes, by kind.

A *round* is one blocking exchange this party waits on (an all-reduce of masked values, a
gather to rank 0, a dealer round trip).  Independent openings batched into one exchange count as
one round.  Bytes are payload bytes this party sends (8 per ring element).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class CommStats:
    rounds: Counter = field(default_factory=Counter)
    bytes_sent: Counter = field(default_factory=Counter)

    def add(self, kind: str, n_bytes: int, rounds: int = 1) -> None:
        self.rounds[kind] += rounds
        self.bytes_sent[kind] += n_bytes

    @property
    def total_rounds(self) -> int:
        return sum(self.rounds.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_sent.values())

    def snapshot(self) -> dict:
        return {
            "rounds": dict(self.rounds),
            "bytes_sent": dict(self.bytes_sent),
            "total_rounds": self.total_rounds,
            "total_bytes": self.total_bytes,
        }

    def reset(self) -> None:
        self.rounds.clear()
        self.bytes_sent.clear()
