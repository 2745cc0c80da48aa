"""CrypTen's own operations under ``--provider he`` (e.g. the argmax behind ``--reveal-metrics``)
take their tuples from the run's :class:`protocols.randomness.he_triples.HomomorphicTriples`:
CrypTen 0.4.1's ``HE`` provider entry is a stub that raises NotImplementedError."""

from __future__ import annotations

from protocols.errors import ProtocolError
from protocols.randomness.he_triples import HomomorphicTriples
from protocols.randomness.requests import Op


def install_crypten_provider(triples: HomomorphicTriples) -> None:
    """CrypTen's own operations (``cfg.mpc.provider = "HE"``, e.g. the argmax behind
    ``--reveal-metrics``) take their tuples from ``triples`` (CrypTen's ``HE`` entry is a
    stub that raises NotImplementedError)."""
    import crypten.mpc
    from crypten.mpc.primitives import ArithmeticSharedTensor, BinarySharedTensor
    from crypten.mpc.provider.provider import TupleProvider

    from protocols.randomness.requests import (
        AndRequest,
        BitRequest,
        MaskProductRequest,
        MaskRequest,
        ProductRequest,
    )

    def arith(*xs):
        return tuple(ArithmeticSharedTensor.from_shares(x, precision=0) for x in xs)

    class HomomorphicTuples(TupleProvider):
        NAME = "HE"

        def generate_additive_triple(self, size0, size1, op, device=None, *args, **kwargs):
            if op not in ("mul", "matmul") or args or kwargs:
                raise ProtocolError(f"--provider he makes mul and matmul triples, not {op}")
            ((a, b, c),) = triples.fetch([ProductRequest(Op(op), size0, size1)])
            return arith(a, b, c)

        def square(self, size, device=None):
            (r,), (r2,) = triples.fetch(
                [MaskRequest(size), MaskProductRequest(Op.MUL, size, size, 1, 1)]
            )
            return arith(r, r2)

        def generate_binary_triple(self, size0, size1, device=None):
            ((a, b, c),) = triples.fetch([AndRequest(size0, size1)])
            return tuple(BinarySharedTensor.from_shares(x) for x in (a, b, c))

        def wrap_rng(self, size, device=None):
            raise ProtocolError("internal: wraps requested with --provider he (2 parties)")

        def B2A_rng(self, size, device=None):
            ((r_bin, r_arith),) = triples.fetch([BitRequest(size)])
            return arith(r_arith)[0], BinarySharedTensor.from_shares(r_bin)

    vars(crypten.mpc)["__SUPPORTED_PROVIDERS"]["HE"] = HomomorphicTuples()
