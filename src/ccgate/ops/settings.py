"""The operator's dashboard settings: the sign-up policy, and the caps on keys users make themselves."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ccgate.ops.common import OperationError, usd_to_micro
from ccgate.ops.keys import KeyLimits, KeyOperations, NewKey
from ccgate.store import repo

SIGNUP_MODES = ("open", "invite", "closed")
CAPS = ("max_rpm", "max_concurrency", "max_token_budget")  # of the limits of keys users make themselves
MAX_KEY_NAME_CHARS = 100


@dataclass(frozen=True)
class WebSettings:
    """The operator's sign-up policy, and the caps on limits of the keys users create themselves."""

    signup_mode: str = "open"
    invite_code: str | None = None
    starting_credit_micro: int = 0
    max_rpm: int | None = None
    max_concurrency: int | None = None
    max_token_budget: int | None = None

    def validate(self) -> None:
        if self.signup_mode not in SIGNUP_MODES:
            raise OperationError(f"sign-up is one of {', '.join(SIGNUP_MODES)}")
        if self.signup_mode == "invite" and len((self.invite_code or "").strip()) < 6:
            raise OperationError("sign-up by invite needs an invite code of 6 characters or more")
        if self.starting_credit_micro < 0:
            raise OperationError("starting credit cannot be negative")
        if any(cap is not None and cap < 1 for cap in (self.max_rpm, self.max_concurrency, self.max_token_budget)):
            raise OperationError("a cap is a whole number of 1 or more (leave it empty for none)")

    def cap(self, limits: KeyLimits) -> KeyLimits:
        """`limits` within the caps: a limit left empty or unlimited (0) becomes the cap; one above it is refused."""
        capped: dict[str, Any] = {}
        for name, cap in (("rpm", self.max_rpm), ("concurrency", self.max_concurrency),
                          ("token_budget", self.max_token_budget)):
            asked = getattr(limits, name)
            if cap is None:
                continue
            if asked is not None and asked > cap:
                raise OperationError(f"{name.replace('_', ' ')} may be at most {cap}")
            if not asked:
                capped[name] = cap
        return replace(limits, **capped)


class SettingsOperations(KeyOperations):
    async def web_settings(self) -> WebSettings:
        async with self.engine.connect() as conn:
            return WebSettings(**await repo.operator_settings_row(conn))

    async def change_web_settings(self, *, starting_credit_usd: float | None = None, **changes: Any) -> WebSettings:
        """The settings with these changed (a cap of 0 clears it), validated and saved; for the CLI and
        the admin API, which change some settings and leave the others."""
        unknown = set(changes) - set(WebSettings.__dataclass_fields__)
        if unknown:
            raise OperationError(f"no such setting: {', '.join(sorted(unknown))}")
        if starting_credit_usd is not None:
            changes["starting_credit_micro"] = usd_to_micro(starting_credit_usd)
        changes |= {cap: None for cap in CAPS if changes.get(cap) == 0}
        settings = replace(await self.web_settings(), **changes)
        await self.update_web_settings(settings)
        return settings

    async def update_web_settings(self, settings: WebSettings) -> None:
        settings.validate()
        async with self._changing() as conn:
            await repo.update_operator_settings(conn, asdict(settings))

    async def create_user_key(self, email: str, *, name: str, limits: KeyLimits) -> NewKey:
        """A key a user makes for themselves: its limits within the operator's caps."""
        name = name.strip()
        if len(name) > MAX_KEY_NAME_CHARS:
            raise OperationError(f"a key name has at most {MAX_KEY_NAME_CHARS} characters")
        settings = await self.web_settings()
        return await self.create_key(email, name=name, limits=settings.cap(limits))
