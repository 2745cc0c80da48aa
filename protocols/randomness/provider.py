"""Who answers randomness requests: one interface, one method per kind, one dispatch.

Three implementations (compare CrypTen's ``crypten/mpc/provider/provider.py``):

* :class:`protocols.randomness.triples.PartyShares`: a data party's own shares, drawn from the
stream it
  shares with the dealer (party 0's share of each ``c`` is left for the dealer to send);
* :class:`protocols.randomness.dealer.DealerAnswers`: the dealer's side, party 0's share of each
``c``
  (or ``theta_r``) rebuilt from every party's stream;
* :class:`protocols.randomness.triples.FirstPartyTriples`: CrypTen's trusted first party
(simulation).

:meth:`RandomnessProvider.answer` is the only switch over request kinds: every implementation
checks the mask references first and walks the list in order, so the dealer and the parties
draw the same values in the same order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from protocols.randomness.requests import (
    AndRequest,
    BitRequest,
    MaskProductRequest,
    MaskRequest,
    ProductRequest,
    Request,
    WrapsRequest,
    check_mask_references,
)


class RandomnessProvider(ABC):
    """Answers a list of requests; what an answer is (a party's shares, the dealer's message
    part) is the implementation's."""

    @abstractmethod
    def mask(self, req: MaskRequest) -> tuple[object, object]:
        """``(answer, mask)``: the answer, and what later mask products of the list use."""

    @abstractmethod
    def mask_product(self, req: MaskProductRequest, a: object, b: object) -> object:
        """``c = op(a, b)`` for the masks ``a``, ``b`` the request references."""

    @abstractmethod
    def product(self, req: ProductRequest) -> object: ...

    @abstractmethod
    def and_triple(self, req: AndRequest) -> object: ...

    @abstractmethod
    def wraps(self, req: WrapsRequest) -> object: ...

    @abstractmethod
    def bit(self, req: BitRequest) -> object: ...

    def answer(self, requests: Sequence[Request]) -> list:
        """Every request's answer, in order (mask references checked before anything is drawn).

        Raises:
            ProtocolError: a mask product without its masks, or an unknown request.
        """
        check_mask_references(requests)
        out, masks = [], {}
        for pos, req in enumerate(requests):
            match req:
                case MaskRequest():
                    item, masks[pos] = self.mask(req)
                case MaskProductRequest():
                    item = self.mask_product(req, masks[pos - req.back_a], masks[pos - req.back_b])
                case ProductRequest():
                    item = self.product(req)
                case AndRequest():
                    item = self.and_triple(req)
                case WrapsRequest():
                    item = self.wraps(req)
                case BitRequest():
                    item = self.bit(req)
                case _:
                    from protocols.errors import ProtocolError

                    raise ProtocolError(f"unknown randomness request {req!r}")
            out.append(item)
        return out
