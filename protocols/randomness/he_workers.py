"""The homomorphic products of one party spread over local worker processes (``--he-workers``).

SEAL's calls through TenSEAL hold Python's GIL (two threads ran slower than one), so the
parallel unit is a process.  Each worker builds the party's BFV machinery from the party's own
secret keys, which travel only over the pipe to this party's own child processes on its own
host (keys stay home), and the peer's public keys.

Ciphertexts pass between the party and its workers as private files of this host (SEAL reads
and writes paths anyway), not as pickled bytes.  The work is cut the same way whatever the
worker count, so two parties with different counts
exchange the same ciphertext sequence: every slot job (:class:`MulJob`, :class:`BitJob`) longer
than ``PIECE`` ciphertexts is cut into pieces (products are elementwise, and each piece draws
its own masks from the same distribution), then contiguous runs of jobs go to the workers,
balanced by ciphertext count, and the results are joined in order.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

import numpy as np

from protocols.errors import ConfigError, ProtocolError, expected_got
from protocols.randomness.he_context import Spooled, spool, to_file, unspool
from protocols.randomness.he_jobs import MatJob
from protocols.randomness.he_products import HeProducts

PIECE = 16  # ciphertexts per prime in one piece of a slot job
MAX_WORKERS = 256

_LOCAL: dict = {}  # in a worker process: its HeProducts


def split(jobs, lefts, rights, degree: int):
    """Slot jobs cut into pieces of at most ``PIECE * degree`` elements.

    Returns ``(jobs, lefts, rights, owner)``: ``owner[i]`` is the index of the input job that
    piece ``i`` came from (pieces of one job are consecutive)."""
    size = PIECE * degree
    out = ([], [], [], [])
    for i, (job, x, y) in enumerate(zip(jobs, lefts, rights)):
        cuts = [0] if isinstance(job, MatJob) else range(0, max(job.n, 1), size)
        for s in cuts:
            if isinstance(job, MatJob):
                piece, px, py = job, x, y
            else:
                e = min(job.n, s + size)
                piece, px, py = replace(job, n=e - s), x[s:e], y[s:e]
            for col, v in zip(out, (piece, px, py, i)):
                col.append(v)
    return out


def join(shares: list[np.ndarray], owner: list[int], n_jobs: int) -> list[np.ndarray]:
    """Each input job's share: its pieces' shares concatenated in order."""
    parts: list[list[np.ndarray]] = [[] for _ in range(n_jobs)]
    for share, i in zip(shares, owner):
        parts[i].append(share)
    return [np.concatenate(p) if len(p) > 1 else p[0] for p in parts]


def _runs(weights: list[int], k: int) -> list[range]:
    """``weights`` cut into at most ``k`` contiguous runs of near-equal total weight."""
    total, runs, start, acc = sum(weights), [], 0, 0
    for i, w in enumerate(weights):
        acc += w
        if len(runs) < k - 1 and acc * k >= total * (len(runs) + 1) and i + 1 < len(weights):
            runs.append(range(start, i + 1))
            start = i + 1
    runs.append(range(start, len(weights)))
    return [r for r in runs if len(r)]


def _init(params, secret: list[bytes], peer_public: bytes, peer_name: str) -> None:
    from protocols.randomness.he_context import HeKeys

    keys = HeKeys(params, secret=secret)
    keys.set_peer(peer_public, peer_name)
    products = HeProducts(keys)
    products.save = to_file  # ciphertexts come back as files of this host, not pickled bytes
    _LOCAL["products"] = products


def _call(method: str, *args):
    return getattr(_LOCAL["products"], method)(*args)


def _read(blob) -> bytes:
    """A ciphertext from a worker (a spooled file) or from this process (bytes)."""
    return unspool(blob) if isinstance(blob, Spooled) else blob


class HeWorkers:
    """``encrypt`` / ``evaluate`` / ``decrypt`` of :class:`HeProducts`, on ``workers`` local
    processes (1: in this process), with the wait for each bounded by ``timeout_s``.

    Raises:
        ConfigError: ``workers`` outside ``1..256``.
    """

    def __init__(self, products: HeProducts, workers: int, timeout_s: float):
        if not 1 <= int(workers) <= MAX_WORKERS:
            raise ConfigError(expected_got("--he-workers", f"1..{MAX_WORKERS}", workers))
        self.products, self.workers, self.timeout_s = products, int(workers), timeout_s
        self.pool = None
        if self.workers > 1:
            import multiprocessing

            keys = products.keys
            self.pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init,
                initargs=(keys.params, keys.secret_bytes(), keys.peer_public, keys.peer_name),
            )

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None

    def _map(self, method: str, jobs, weights: list[int], arrays, blobs=None, peer=None):
        """``method`` over contiguous runs of ``jobs`` of near-equal ``weights``; ``blobs``:
        ``(the peer's items, each job's count of them)``; results in job order."""
        items, cut = blobs if blobs is not None else (None, None)
        if self.pool is None:
            args = (jobs,) if arrays is None else (jobs, arrays)
            args += () if items is None else (list(items), peer)
            return [getattr(self.products, method)(*args)]
        starts = np.concatenate([[0], np.cumsum(cut)]).astype(int) if cut else None
        futures = []
        for run in _runs(weights, self.workers):
            args = ([jobs[i] for i in run],)
            if arrays is not None:
                args += ([arrays[i] for i in run],)
            if items is not None:
                args += ([spool(b) for b in items[starts[run.start] : starts[run.stop]]], peer)
            futures.append(self.pool.submit(_call, method, *args))
        return self._results(futures)

    def starmap(self, fn, arglists: list[tuple]) -> list:
        """``[fn(*args) for args in arglists]``, on the workers when there are several (``fn``
        a module-level function: the OT extension's pieces)."""
        if self.pool is None:
            return [fn(*args) for args in arglists]
        return self._results([self.pool.submit(fn, *args) for args in arglists])

    def _results(self, futures) -> list:
        try:
            return [f.result(timeout=self.timeout_s) for f in futures]
        except BrokenProcessPool:
            raise ProtocolError("an HE worker process of this party stopped") from None
        except FutureTimeout:
            raise ProtocolError(
                f"an HE worker process gave no result within {self.timeout_s:g} s"
            ) from None

    def _counts(self, jobs, side: str) -> list[int]:
        prod = self.products
        return [prod.count(j, side) * len(prod.primes_of(j)) for j in jobs]

    def _weights(self, jobs) -> list[int]:
        """A job's cost, roughly: its ciphertexts in and out."""
        return [a + b for a, b in zip(self._counts(jobs, "in"), self._counts(jobs, "out"))]

    def encrypt(self, jobs, lefts) -> list[bytes]:
        parts = self._map("encrypt", jobs, self._weights(jobs), lefts)
        return [_read(blob) for part in parts for blob in part]

    def evaluate(self, jobs, rights, blobs, peer: str):
        cut = self._counts(jobs, "in")
        parts = self._map("evaluate", jobs, self._weights(jobs), rights, (blobs, cut), peer)
        return [_read(b) for p in parts for b in p[0]], [s for p in parts for s in p[1]]

    def decrypt(self, jobs, blobs, peer: str) -> list[np.ndarray]:
        cut = self._counts(jobs, "out")
        parts = self._map("decrypt", jobs, self._weights(jobs), None, (blobs, cut), peer)
        return [s for p in parts for s in p]
