"""The next step's HE randomness, computed on a thread while this step runs (``--provider he``).

Step plans are public and fixed after a key's first step, so at ``begin(key, next_key)`` the
provider starts computing ``next_key``'s whole plan (its HE exchanges and OT extension) on a
:class:`Prefetch` thread.  That thread talks to the peer over the HE provider's OWN links (a
second set of authenticated connections, opened with the heartbeat's: ``Links.offline``), so
the online protocol on the data links never interleaves with it.  Both parties start and join
their prefetches at the same calls (public keys, same code), so the offline links carry the
same sequence of messages at both ends.

What is hidden is measured, not assumed: the thread's wall time (``offline_s``) against the
time the next ``begin`` then waits for it (``waited_s``); ``hidden_s = offline_s - waited_s``
ran beside the online step.

Waits: the thread's every wait on the peer has the run's timeout (its :class:`Links`), so
:meth:`Prefetch.wait` is bounded too; an error on the thread (a peer that stopped or sent bad
bytes) is raised, with its own type and message, by the :meth:`Prefetch.wait` that collects it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from protocols.stats import CommStats


@dataclass
class Overlap:
    """Seconds of prefetched HE work and of waiting for it, summed over a run (public)."""

    steps: int = 0
    offline_s: float = 0.0
    offline_cpu_s: float = 0.0  # the thread's own CPU seconds
    waited_s: float = 0.0

    @property
    def hidden_s(self) -> float:
        return max(self.offline_s - self.waited_s, 0.0)

    def to_json(self) -> dict:
        share = self.hidden_s / self.offline_s if self.offline_s else 0.0
        return {
            "prefetched_steps": self.steps,
            "offline_s": round(self.offline_s, 3),
            "offline_cpu_s": round(self.offline_cpu_s, 3),
            "waited_s": round(self.waited_s, 3),
            "hidden_s": round(self.hidden_s, 3),
            "hidden_share": round(share, 4),
        }


class Prefetch:
    """``compute()`` (one step plan's answers) on a daemon thread, for the step ``key``; its
    traffic is to be counted in ``stats`` (its own :class:`CommStats`, which the caller points
    its counting at BEFORE this starts the thread, and merges after :meth:`wait`)."""

    def __init__(self, key, compute: Callable[[], list], stats: CommStats) -> None:
        self.key, self.stats = key, stats
        self._result: list | None = None
        self._error: BaseException | None = None
        self._seconds = self._cpu = 0.0
        self._thread = threading.Thread(target=self._main, args=(compute,), daemon=True)
        self._thread.name = "he-prefetch"
        self._thread.start()

    def _main(self, compute: Callable[[], list]) -> None:
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            self._result = compute()
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits
            self._error = exc
        finally:
            self._seconds = time.perf_counter() - t0
            self._cpu = time.thread_time() - c0

    def wait(self, overlap: Overlap) -> list:
        """The answers, once the thread is done (its time added to ``overlap``).

        Raises:
            whatever the computation raised (PeerMessageError, PartyError, ...).
        """
        t0 = time.perf_counter()
        self._thread.join()
        overlap.steps += 1
        overlap.offline_s += self._seconds
        overlap.offline_cpu_s += self._cpu
        overlap.waited_s += time.perf_counter() - t0
        if self._error is not None:
            raise self._error
        return self._result
