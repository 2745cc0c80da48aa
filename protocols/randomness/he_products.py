"""Two-party exact products over Z_2^64 from BFV: additive shares of ``x_A * y_B`` (elementwise)
and of ``X_A @ Y_B`` where party A holds ``x`` and party B holds ``y``.

One product job, three moves (A's secret key never leaves A)::

    A:  ct_j = Enc_A(x mod t_j)  (symmetric, seed-compressed)  for each CRT prime t_j
    B:  ct_j' = ct_j * (y mod t_j) + (r mod t_j) + Enc_A(0),  mod-switched down, noise flooded
        B's share: -r mod 2^64
    A:  z = CRT(Dec_A(ct_j')) = x*y + r  (exactly: no wrap mod M, he_crt)
        A's share: z mod 2^64

Encodings (both SEAL's, one BFV context per prime; :mod:`protocols.randomness.he_context`):

* :class:`MulJob` (n elements): SIMD slots, ``N`` products per ciphertext per prime.
* :class:`DualJob` (n elements, both cross terms): A encrypts ``u`` and each ``v_q`` in slots;
  B's answer ``Enc(u) v'_q + Enc(v_q) u'`` is two pointwise products in NTT form, one answer.
* :class:`BitJob` (n bits): slots of the FIRST prime only: a product of bits is below 2, so one
  59-bit prime holds ``bit*bit + r`` with ``r < t - 1`` (statistical distance ``2^-58``).
* :class:`MatJob` (``X`` (n, k) @ ``Y`` (k, m), ``k <= k_max``): coefficient packing (Cheetah,
  Huang et al., USENIX Security 2022): a block ``(n_b, k_b, m_b)`` with ``n_b k_b m_b + k_b <=
  N`` is ``x^(X) = sum X[i,c] x^(i k_b m_b + k_b - 1 - c)``, ``y^(Y) = sum Y[c,j] x^(j k_b + c)``,
  and the coefficient ``i k_b m_b + j k_b + k_b - 1`` of their product is ``(X Y)[i, j]``;
  k-blocks are summed under encryption.  Every other coefficient (partial sums of B's ``Y``)
  is masked uniformly modulo ``t_j``.

Circuit privacy (A learns nothing of ``y`` beyond its share): B adds a fresh public-key
encryption of zero (re-randomizing the ciphertext's uniform part), switches down to the answer
level (at the defaults one level down: two 60-bit primes), and floods the noise: it adds
``(e, 0)``, ``e`` uniform in ``[-2^W, 2^W)``, ``W`` the widest flood that keeps decryption
exact.  :mod:`protocols.randomness.he_noise` bounds the noise that depends on ``y``
analytically; parameters whose flood is not ``sigma`` bits above it per coefficient are
refused.  The flood is built from SEAL's own serialization (TenSEAL has no wide-noise
encryption).
"""

from __future__ import annotations

import math
import os

import numpy as np

from protocols.errors import ConfigError, ProtocolError, expected_got
from protocols.randomness.he_context import coeff_plain, from_bytes, noise_ciphertext, to_bytes
from protocols.randomness.he_crt import U64, CrtBasis, uniform_below
from protocols.randomness.he_jobs import (
    DualJob,
    Job,
    MatJob,
    bound,
    ceil_div,
    count,
    mat_blocks,
    out_size,
)
from protocols.randomness.he_noise import flood_bound


class HeProducts:
    """Encrypt (A), evaluate (B) and decrypt (A) product jobs with one :class:`HeKeys`."""

    def __init__(self, keys) -> None:
        self.keys = keys
        self.save = to_bytes  # in a worker process: to_file (the party reads the file)
        self.flood = True  # False only in the test that shows what flooding hides
        self.degree = keys.params.poly_degree
        self.basis = CrtBasis(keys.primes, keys.params.sigma)
        self.bit_basis = CrtBasis(keys.primes[:1], keys.params.sigma)
        self.k_max = self._k_max()
        levels = [self._answer_level(j) for j in range(len(keys.primes))]
        self.answer_levels = [level for level, _ in levels]
        self.floods = [flood for _, flood in levels]
        self.flood_bits = [f.width for f in self.floods]

    def _answer_level(self, j: int) -> tuple:
        """Prime ``j``'s answer level (SEAL context data) and flood
        (:mod:`protocols.randomness.he_noise`) at the largest sum of products a job makes
        (``k_max``): of the levels below the top one, the one whose flood is the most bits
        above the operand's noise (ties: the smaller modulus).  At the defaults: two 60-bit
        primes, W = 59 (decryption stays exact) against an operand-dependent noise below
        2^18.1 at ``k_max`` = 256 (2^10.7 for one product): >= 41.9 bits per coefficient.

        Raises:
            ConfigError: no level's flood is ``sigma`` bits above that noise."""
        first = self.keys.contexts[j].first_context_data()

        def modulus(level) -> int:
            return math.prod(m.value() for m in level.parms().coeff_modulus())

        best, level = None, first.next_context_data()
        while level is not None:
            bound = flood_bound(
                self.degree, self.keys.primes[j], modulus(first), modulus(level), self.k_max
            )
            if best is None or bound.coefficient_bits >= best[1].coefficient_bits:
                best = (level, bound)
            level = level.next_context_data()
        if best is None or best[1].coefficient_bits < self.keys.params.sigma:
            got = "no lower level" if best is None else f"{best[1].coefficient_bits:.1f} bits"
            raise ConfigError(
                expected_got(
                    "[he] parameters' noise flooding",
                    f">= sigma = {self.keys.params.sigma} bits above the noise bound "
                    "(a larger q, or smaller plaintext primes)",
                    got,
                )
            )
        return best

    def _flood(self, j: int):
        """A fresh ``(e, 0)`` at the answers' level, ``e`` uniform in ``[-2^W, 2^W)``."""
        e = np.frombuffer(os.urandom(8 * self.degree), dtype=np.int64) >> np.int64(
            63 - self.flood_bits[j]
        )
        return noise_ciphertext(self.keys.contexts[j], self.answer_levels[j], e)

    def _k_max(self) -> int:
        k = 1
        while k < 4096 and self._fits((2 * k) << 128):
            k *= 2
        return k

    def _fits(self, bound: int) -> bool:
        try:
            self.basis.mask_span(bound)
        except Exception:  # noqa: BLE001 - ConfigError: too large
            return False
        return True

    def primes_of(self, job: Job) -> range:
        return range(1 if job.one_prime else len(self.keys.primes))

    def count(self, job: Job, side: str) -> int:
        """Ciphertexts per prime for ``job``: ``side`` "in" (A's) or "out" (B's)."""
        return count(job, side, self.degree)

    def total(self, jobs: list[Job], side: str) -> int:
        return sum(self.count(j, side) * len(self.primes_of(j)) for j in jobs)

    # ---- encodings -------------------------------------------------------------------------
    def _coeff_plain(self, coeffs: np.ndarray, j: int):
        """A plaintext for prime ``j`` with the given coefficients (each below ``t_j``)."""
        return coeff_plain(self.keys.contexts[j], coeffs)

    def _slot_plain(self, j: int, values: np.ndarray):
        pt = self.keys.seal.Plaintext()
        self.keys.encoders[j].encode(values.tolist(), pt)
        return pt

    def _left_plains(self, job: Job, x: np.ndarray, j: int) -> list:
        t = U64(self.keys.primes[j])
        if isinstance(job, DualJob):  # block-major, then column (u first)
            v = x.reshape(job.n, 1 + job.reps).view(U64) % t
            return [
                self._slot_plain(j, v[s : s + self.degree, c])
                for s in range(0, job.n, self.degree)
                for c in range(1 + job.reps)
            ]
        if not isinstance(job, MatJob):
            v = x.reshape(-1).view(U64) % t
            return [
                self._slot_plain(j, v[s : s + self.degree]) for s in range(0, job.n, self.degree)
            ]
        nb, kb, mb = mat_blocks(job.n, job.k, job.m, self.degree)
        X = x.reshape(job.n, job.k).view(U64) % t
        out = []
        for i0 in range(0, job.n, nb):
            for c0 in range(0, job.k, kb):
                blk = X[i0 : i0 + nb, c0 : c0 + kb]
                coeffs = np.zeros(self.degree, dtype=U64)
                i, c = np.indices(blk.shape)
                coeffs[i * kb * mb + kb - 1 - c] = blk
                out.append(self._coeff_plain(coeffs, j))
        return out

    def encrypt(self, jobs: list[Job], lefts: list[np.ndarray]) -> list[bytes]:
        """A's ciphertexts of its operands (int64 arrays, ring elements), in job/prime/block
        order."""
        out = []
        for job, x in zip(jobs, lefts):
            for j in self.primes_of(job):
                for pt in self._left_plains(job, x, j):
                    out.append(self.save(self.keys.encryptors[j].encrypt_symmetric(pt)))
        return out

    # ---- B: evaluate -----------------------------------------------------------------------
    def _load(self, blob, j: int, level: int, what: str):
        """A peer's ciphertext for prime ``j`` at ``level`` (0: fresh, 1: the answer level).

        Raises:
            PeerMessageError: not a valid 2-part ciphertext of the run's parameters there."""
        from protocols.randomness.he_context import PeerMessageError

        seal = self.keys.seal
        ct = from_bytes(seal.Ciphertext(), self.keys.contexts[j], blob, what)
        want = self.keys.top_ids[j] if level == 0 else list(self.answer_levels[j].parms_id())
        if ct.size() != 2 or list(ct.parms_id()) != want or ct.is_ntt_form():
            raise PeerMessageError(
                f"{what}: expected a fresh 2-part BFV ciphertext at level "
                f"{level}, got another size or level"
            )
        return ct

    def _finish(self, ct, mask_pt, j: int) -> bytes:
        """Add the mask and a fresh encryption of zero under the peer's key, switch down, and
        flood the noise (:meth:`_answer_level`, :meth:`_flood`)."""
        seal, ev = self.keys.seal, self.keys.evaluators[j]
        ev.add_plain_inplace(ct, mask_pt)
        zero = seal.Ciphertext()
        self.keys.peer_encryptors[j].encrypt_zero(zero)
        ev.add_inplace(ct, zero)
        ev.mod_switch_to_inplace(ct, self.answer_levels[j].parms_id())
        if self.flood:
            ev.add_inplace(ct, self._flood(j))
        return self.save(ct)

    def _eval_slots(self, job, y, j, cts, mask) -> list[bytes]:
        """Answers in block-major, then right-operand order (block ``s``: ``reps`` answers)."""
        t, ev, out = U64(self.keys.primes[j]), self.keys.evaluators[j], []
        v = y.reshape(job.n, job.reps).view(U64) % t
        masks = mask.reshape(job.n, job.reps)
        for ct, s in zip(cts, range(0, job.n, self.degree)):
            for q in range(job.reps):
                pt = self._slot_plain(j, v[s : s + self.degree, q])
                if pt.is_zero():
                    prod = self._zero(j)
                else:
                    prod = self.keys.seal.Ciphertext()
                    ev.multiply_plain(ct, pt, prod)
                out.append(
                    self._finish(prod, self._slot_plain(j, masks[s : s + self.degree, q]), j)
                )
        return out

    def _eval_dual(self, job, y, j, cts, mask) -> list[bytes]:
        """:class:`DualJob` answers ``Enc(u) v'_q + Enc(v_q) u'`` (block-major, then ``q``):
        every ciphertext and plaintext in NTT form once, each answer two pointwise products."""
        t, ev, out = U64(self.keys.primes[j]), self.keys.evaluators[j], []
        v = y.reshape(job.n, 1 + job.reps).view(U64) % t
        masks = mask.reshape(job.n, job.reps)
        level0 = self.keys.top_ids[j]
        for ct in cts:
            ev.transform_to_ntt_inplace(ct)
        for b, s in enumerate(range(0, job.n, self.degree)):
            row = cts[b * (1 + job.reps) : (b + 1) * (1 + job.reps)]
            plains = []
            for c in range(1 + job.reps):
                pt = self._slot_plain(j, v[s : s + self.degree, c])
                plains.append(None if pt.is_zero() else pt)  # skipped (see _zero)
                if plains[-1] is not None:
                    ev.transform_to_ntt_inplace(pt, level0)
            for q in range(1, 1 + job.reps):
                acc = None
                for ct, pt in ((row[0], plains[q]), (row[q], plains[0])):
                    if pt is None:
                        continue
                    prod = self.keys.seal.Ciphertext()
                    ev.multiply_plain(ct, pt, prod)
                    acc = prod if acc is None else (ev.add_inplace(acc, prod) or acc)
                if acc is None:
                    acc = self._zero(j)
                else:
                    ev.transform_from_ntt_inplace(acc)
                mask_pt = self._slot_plain(j, masks[s : s + self.degree, q - 1])
                out.append(self._finish(acc, mask_pt, j))
        return out

    def _zero(self, j: int):
        """A fresh encryption of 0 under the peer's key: the product by an all-zero operand,
        which SEAL refuses to compute (its result would be "transparent": no key part)."""
        ct = self.keys.seal.Ciphertext()
        self.keys.peer_encryptors[j].encrypt_zero(ct)
        return ct

    def _eval_mat(self, job, y, j, cts, mask) -> list[bytes]:
        nb, kb, mb = mat_blocks(job.n, job.k, job.m, self.degree)
        t, ev, out = self.keys.primes[j], self.keys.evaluators[j], []
        Y = y.reshape(job.k, job.m).view(U64) % U64(t)
        M = mask.reshape(job.n, job.m)
        n_kb = ceil_div(job.k, kb)
        level0 = self.keys.top_ids[j]
        for ct in cts:  # NTT form once: each product below is then a pointwise one
            ev.transform_to_ntt_inplace(ct)
        y_plains = {}
        for c0 in range(0, job.k, kb):
            for j0 in range(0, job.m, mb):
                blk = Y[c0 : c0 + kb, j0 : j0 + mb]
                coeffs = np.zeros(kb * mb, dtype=U64)  # the rest are 0: a shorter plaintext
                c, jj = np.indices(blk.shape)
                coeffs[jj * kb + c] = blk
                pt = self._coeff_plain(coeffs, j)
                y_plains[c0, j0] = None if pt.is_zero() else pt  # skipped (see _zero)
                if y_plains[c0, j0] is not None:
                    ev.transform_to_ntt_inplace(pt, level0)
        for row, i0 in enumerate(range(0, job.n, nb)):
            for j0 in range(0, job.m, mb):
                acc = None
                for q, c0 in enumerate(range(0, job.k, kb)):
                    if y_plains[c0, j0] is None:
                        continue
                    prod = self.keys.seal.Ciphertext()
                    ev.multiply_plain(cts[row * n_kb + q], y_plains[c0, j0], prod)
                    acc = prod if acc is None else (ev.add_inplace(acc, prod) or acc)
                if acc is None:
                    acc = self._zero(j)
                else:
                    ev.transform_from_ntt_inplace(acc)
                coeffs = uniform_below(t, self.degree)
                blk = M[i0 : i0 + nb, j0 : j0 + mb]
                i, jj = np.indices(blk.shape)
                coeffs[i * kb * mb + jj * kb + kb - 1] = blk
                out.append(self._finish(acc, self._coeff_plain(coeffs, j), j))
        return out

    bound = staticmethod(bound)
    out_size = staticmethod(out_size)

    def evaluate(self, jobs: list[Job], rights: list[np.ndarray], blobs, peer: str):
        """B: multiply A's ciphertexts ``blobs`` by its operands, mask, re-randomize.

        Returns ``(ciphertexts for A, B's shares)``; B's share of each job's product is
        ``-r mod 2^64`` (int64, shape (n,) or (n*m,))."""
        it, out, shares = iter(blobs), [], []
        for job, y in zip(jobs, rights):
            basis = self.bit_basis if job.one_prime else self.basis
            residues, share = basis.draw_mask(self.bound(job), self.out_size(job))
            for j in self.primes_of(job):
                what = f"{peer}'s product ciphertext"
                cts = [self._load(next(it), j, 0, what) for _ in range(self.count(job, "in"))]
                ev = {MatJob: self._eval_mat, DualJob: self._eval_dual}.get(
                    type(job), self._eval_slots
                )
                out.extend(ev(job, y, j, cts, residues[j]))
            shares.append(share.view(np.int64))
        return out, shares

    # ---- A: decrypt ------------------------------------------------------------------------
    def _read(self, job: Job, j: int, cts) -> np.ndarray:
        seal, dec = self.keys.seal, self.keys.decryptors[j]
        pts = []
        for ct in cts:
            pt = seal.Plaintext()
            dec.decrypt(ct, pt)
            pts.append(pt)
        if not isinstance(job, MatJob):
            enc = self.keys.encoders[j]
            vals = [np.array(enc.decode_uint64(pt), dtype=U64) for pt in pts]
            blocks = np.stack(vals).reshape(-1, job.reps, self.degree)  # (block, rep, slot)
            return blocks.transpose(0, 2, 1).reshape(-1, job.reps)[: job.n].reshape(-1)
        nb, kb, mb = mat_blocks(job.n, job.k, job.m, self.degree)
        out = np.zeros((job.n, job.m), dtype=U64)
        pts_it = iter(pts)
        for i0 in range(0, job.n, nb):
            for j0 in range(0, job.m, mb):
                pt = next(pts_it)
                rows, cols = min(nb, job.n - i0), min(mb, job.m - j0)
                for i in range(rows):
                    base = i * kb * mb + kb - 1
                    out[i0 + i, j0 : j0 + cols] = [pt.data(base + jj * kb) for jj in range(cols)]
        return out.reshape(-1)

    def decrypt(self, jobs: list[Job], blobs, peer: str) -> list[np.ndarray]:
        """A: its shares (int64) of each job's product from B's ciphertexts ``blobs``."""
        it, shares = iter(blobs), []
        for job in jobs:
            basis = self.bit_basis if job.one_prime else self.basis
            residues = []
            for j in self.primes_of(job):
                what = f"{peer}'s product answer"
                cts = [self._load(next(it), j, 1, what) for _ in range(self.count(job, "out"))]
                residues.append(self._read(job, j, cts))
            shares.append(basis.to_ring(residues).view(np.int64))
        if next(it, None) is not None:
            raise ProtocolError("internal: more HE answers than jobs")
        return shares
