"""Upstream accounts as the router sees them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from ccgate.crypto import SecretBox
from ccgate.store import repo
from ccgate.store.rows import split_list


@dataclass(frozen=True, slots=True)
class Account:
    """An upstream Anthropic account with its decrypted credential."""

    id: int
    name: str
    api_key: str
    base_url: str
    models: frozenset[str] | None
    priority: int
    weight: int
    rpm: int | None
    concurrency: int | None

    def serves(self, model_id: str, aliases: tuple[str, ...]) -> bool:
        return self.models is None or model_id in self.models or any(a in self.models for a in aliases)


class AccountPool:
    """The enabled accounts, best priority first."""

    def __init__(self, accounts: list[Account]) -> None:
        self.accounts = sorted(accounts, key=lambda account: (-account.priority, account.id))

    def candidates(self, model_id: str, aliases: tuple[str, ...] = ()) -> list[Account]:
        return [account for account in self.accounts if account.serves(model_id, aliases)]

    @classmethod
    async def load(cls, conn: AsyncConnection, box: SecretBox) -> AccountPool:
        return cls([
            Account(
                id=row["id"], name=row["name"], api_key=box.decrypt(row["api_key_enc"]),
                base_url=row["base_url"].rstrip("/"), models=split_list(row["models"]),
                priority=row["priority"], weight=row["weight"], rpm=row["rpm"], concurrency=row["concurrency"],
            )
            for row in await repo.all_accounts(conn) if row["enabled"]
        ])
