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
        models = []
        for row, aliases in await repo.enabled_models(conn):
            models.append(ModelPrice(
                id=row["id"], display_name=row["display_name"], created_at=row["created_at"],
                max_input_tokens=row["max_input_tokens"], max_tokens=row["max_tokens"],
                input_price=row["input_price"], output_price=row["output_price"],
                cache_write_5m_price=row["cache_write_5m_price"],
                cache_write_1h_price=row["cache_write_1h_price"],
                cache_read_price=row["cache_read_price"], markup_bp=row["markup_bp"], aliases=tuple(aliases),
            ))
        return cls(models)
