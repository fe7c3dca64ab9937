"""The model catalog the gateway serves and prices from, held in memory."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from ccgate.billing.prices import ModelPrice
from ccgate.store import repo


class Catalog:
    """Enabled models, newest first, reachable by id or alias."""

    def __init__(self, models: list[ModelPrice]) -> None:
        self.models = models
        self._by_name: dict[str, ModelPrice] = {}
        for model in models:
            self._by_name[model.id] = model
            for alias in model.aliases:
                self._by_name[alias] = model

    def resolve(self, name: str) -> ModelPrice | None:
        return self._by_name.get(name)

    @classmethod
    async def load(cls, conn: AsyncConnection) -> Catalog:
        models = [ModelPrice.from_row(row, aliases) for row, aliases in await repo.enabled_models(conn)]
        return cls(models)
