"""Admission: may this key make this request now?  Model access, then the key's limits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccgate.errors import GatewayError

if TYPE_CHECKING:
    from ccgate.call import Call


class Ticket:
    """What an admitted request holds until it ends; released exactly once."""

    __slots__ = ("_released",)

    def __init__(self) -> None:
        self._released = False

    def headers(self) -> dict[str, str]:
        return {}

    def release(self) -> None:
        self._released = True


class Gate:
    """Applies a key's rules to each request."""

    async def admit(self, call: "Call") -> Ticket:
        key, model = call.key, call.model
        if key.models is not None and model.id not in key.models and not key.models.intersection(model.aliases):
            raise GatewayError(403, f"this key may not use model {model.id}")
        return Ticket()

    def settled(self, call: "Call", cost_micro: int) -> None:
        """The request's real cost is known and committed."""

