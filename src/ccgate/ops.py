"""Administrative operations: the one implementation behind the CLI, the admin API and the console.

Each change bumps the configuration version in the same transaction, so every running server
reloads it within its reload interval; with Redis, the change is also announced, and every
server reloads at once.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccgate.config import Settings
from ccgate.crypto import SecretBox, mask_key, new_api_key
from ccgate.gate.durations import parse_duration
from ccgate.ids import random_base62
from ccgate.store import repo

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
DEFAULT_BASE_URL = "https://api.anthropic.com"
STATUS_FRESH_MS = 15_000  # a process silent this long is gone; its report no longer counts
SIGNUP_MODES = ("open", "invite", "closed")
CAPS = ("max_rpm", "max_concurrency", "max_token_budget")  # of the limits of keys users make themselves
PASSWORD_CHARS = range(8, 1025)
SESSION_MS = 14 * 86_400_000
MAX_KEY_NAME_CHARS = 100
PRICE_COLUMNS = ("input_price", "output_price", "cache_write_5m_price", "cache_write_1h_price", "cache_read_price")


class OperationError(Exception):
    """An operation refused, with a message for the operator; nothing was changed."""


@dataclass(frozen=True)
class KeyLimits:
    """Limits given for a key; None leaves a field as it is (on update) or to the operator default."""

    rpm: int | None = None
    concurrency: int | None = None
    token_budget: int | None = None
    window: str | None = None
    models: list[str] | None = None
    expires: str | None = None
    cache: bool | None = None  # the response cache for this key's requests

    def columns(self, known_models: set[str]) -> dict:
        """The api_keys columns these limits set, validated; raises OperationError."""
        values: dict = {}
        for name in ("rpm", "concurrency", "token_budget"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise OperationError(f"{name.replace('_', '-')} must be a whole number, 0 or more (0 is unlimited)")
                values[name] = value
        if self.window is not None:
            try:
                values["window_seconds"] = parse_duration(self.window)
            except ValueError as error:
                raise OperationError(f"window: {error}") from None
        if self.models is not None:
            unknown = [model for model in self.models if model not in known_models]
            if unknown:
                raise OperationError(f"unknown model: {', '.join(unknown)}")
            values["models"] = ",".join(self.models) or None
        if self.expires is not None:
            values["expires_ms"] = parse_expiry(self.expires) if self.expires else None
        if self.cache is not None:
            values["cache_enabled"] = self.cache
        return values


def parse_expiry(text: str) -> int:
    """Epoch ms of an ISO date (midnight UTC) or date-time, which must lie in the future."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise OperationError(f"expires: not a date: {text!r} (use e.g. 2027-01-31 or 2027-01-31T12:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    expires_ms = int(moment.timestamp() * 1000)
    if expires_ms <= repo.now_ms():
        raise OperationError(f"expires: {text} is in the past")
    return expires_ms


@dataclass(frozen=True)
class NewKey:
    """A key just created: its record, and the plaintext shown this one time."""

    id: str
    display: str
    plaintext: str


def usd_to_micro(usd: float) -> int:
    return round(usd * 1_000_000)


def check_password(password: str) -> None:
    if len(password) not in PASSWORD_CHARS:
        raise OperationError(f"a password has {PASSWORD_CHARS.start} to {PASSWORD_CHARS.stop - 1} characters")


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
        capped = {}
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


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its user (without the password hash) and the token its forms carry."""

    user: dict
    csrf: str


@dataclass(frozen=True)
class Overview:
    """Traffic, errors and spend of the last hour and day, for the operator console."""

    per_minute: list[dict]
    errors: list[dict]
    spend_today_micro: int
    spend_24h_micro: int
    top_users: list[dict]


class Operations:
    def __init__(self, engine: AsyncEngine, box: SecretBox, settings: Settings,
                 announce: Callable[[], Awaitable[None]] | None = None) -> None:
        self.engine = engine
        self.box = box
        self.settings = settings
        self.hasher = PasswordHasher()
        self._announce = announce  # tells every server at once that the configuration changed

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A transaction; if it changed the configuration, every server is told once it is committed."""
        async with self.engine.begin() as conn:
            try:
                yield conn
                changed = repo.version_bumped(conn)
            finally:
                repo.forget_bump(conn)
        if changed and self._announce is not None:
            await self._announce()

    # -- users -----------------------------------------------------------------------------------

    async def add_user(self, email: str, *, password: str | None = None, admin: bool = False,
                       credit_usd: float | None = None) -> int:
        email = email.strip().lower()
        if not EMAIL.match(email):
            raise OperationError(f"not an email address: {email!r}")
        if credit_usd is not None and credit_usd < 0:
            raise OperationError("credit cannot be negative")
        password_hash = await asyncio.to_thread(self.hasher.hash, password) if password else None
        balance = usd_to_micro(credit_usd) if credit_usd is not None else None
        try:
            async with self._writing() as conn:
                user_id = await repo.insert_user(conn, email, password_hash, admin, balance)
                if balance:
                    await repo.insert_ledger(conn, user_id, "grant", balance, "starting credit")
                await repo.bump_version(conn)
        except IntegrityError:
            raise OperationError(f"a user {email} exists already") from None
        return user_id

    async def user(self, email: str) -> dict:
        async with self.engine.connect() as conn:
            found = await repo.user_by_email(conn, email.strip().lower())
        if found is None:
            raise OperationError(f"no user {email}")
        return found

    async def users(self) -> list[dict]:
        async with self.engine.connect() as conn:
            return [{k: v for k, v in row.items() if k != "password_hash"} for row in await repo.all_users(conn)]

    async def set_user_disabled(self, email: str, disabled: bool) -> None:
        user = await self.user(email)
        async with self._writing() as conn:
            await repo.update_user(conn, user["id"], {"disabled": disabled})
            await repo.bump_version(conn)

    # -- credit ----------------------------------------------------------------------------------

    async def grant_credit(self, email: str, usd: float, note: str | None = None) -> int:
        """Add (or, negative, take back) credit; returns the new balance in micro-dollars."""
        user = await self.user(email)
        amount = usd_to_micro(usd)
        if amount == 0:
            raise OperationError("a grant of $0 changes nothing")
        async with self._writing() as conn:
            balance = await repo.change_balance(conn, user["id"], amount)
            if balance is None:
                raise OperationError(f"a correction of ${usd} would take {email} below zero")
            await repo.insert_ledger(conn, user["id"], "grant" if amount > 0 else "correction", amount, note)
            await repo.bump_version(conn)
        return balance

    async def create_codes(self, usd: float, count: int = 1, note: str | None = None) -> list[str]:
        """New redemption codes worth `usd` each, shown this once."""
        if usd <= 0 or not 1 <= count <= 1000:
            raise OperationError("a code is worth more than $0, and 1 to 1000 are made at a time")
        codes = ["CC-" + "-".join(random_base62(5).upper() for _ in range(4)) for _ in range(count)]
        async with self._writing() as conn:
            await repo.insert_codes(conn, [
                {"id": "code_" + random_base62(12), "code_hash": self.box.hash_key(code),
                 "amount_micro": usd_to_micro(usd), "note": note} for code in codes])
        return codes

    async def redeem_code(self, user_id: int, code: str) -> int:
        """Credit a user with an unredeemed code; returns the new balance."""
        async with self._writing() as conn:
            amount = await repo.claim_code(conn, self.box.hash_key(code.strip().upper()), user_id)
            if amount is None:
                raise OperationError("no such code, or it was redeemed already")
            balance = await repo.change_balance(conn, user_id, amount)
            await repo.insert_ledger(conn, user_id, "redeem", amount, "redemption code")
            await repo.bump_version(conn)
        return balance

    async def ledger(self, email: str) -> list[dict]:
        user = await self.user(email)
        async with self.engine.connect() as conn:
            return await repo.ledger_of(conn, user["id"])

    async def codes(self) -> list[dict]:
        async with self.engine.connect() as conn:
            return await repo.all_codes(conn)

    async def usage_summary(self, **filters) -> list[dict]:
        async with self.engine.connect() as conn:
            return await repo.usage_summary(conn, **filters)

    # -- keys ------------------------------------------------------------------------------------

    async def _known_models(self) -> set[str]:
        async with self.engine.connect() as conn:
            return {name for row, aliases in await repo.enabled_models(conn) for name in (row["id"], *aliases)}

    async def create_key(self, email: str, *, name: str = "", limits: KeyLimits | None = None) -> NewKey:
        columns = (limits or KeyLimits()).columns(await self._known_models())
        user = await self.user(email)
        plaintext = new_api_key(self.settings.key_prefix)
        key_id = "key_" + random_base62(16)
        display = mask_key(plaintext, self.settings.key_prefix)
        async with self._writing() as conn:
            await repo.insert_key(conn, {
                "id": key_id, "user_id": user["id"], "name": name, "key_hash": self.box.hash_key(plaintext),
                "display": display, **columns,
            })
            await repo.bump_version(conn)
        return NewKey(key_id, display, plaintext)

    async def list_keys(self, email: str) -> list[dict]:
        user = await self.user(email)
        async with self.engine.connect() as conn:
            return await repo.keys_of_user(conn, user["id"])

    async def update_key(self, key_id: str, limits: KeyLimits, *, name: str | None = None) -> None:
        columns = limits.columns(await self._known_models())
        if name is not None:
            columns["name"] = name
        async with self._writing() as conn:
            if await repo.key_by_id(conn, key_id) is None:
                raise OperationError(f"no key {key_id}")
            if columns:
                await repo.update_key(conn, key_id, columns)
                await repo.bump_version(conn)

    async def key_owned_by(self, key_id: str, user_id: int) -> dict:
        """A key of this user; any other key is reported as absent."""
        async with self.engine.connect() as conn:
            key = await repo.key_by_id(conn, key_id)
        if key is None or key["user_id"] != user_id:
            raise OperationError(f"no key {key_id}")
        return key

    async def revoke_key(self, key_id: str) -> None:
        async with self._writing() as conn:
            key = await repo.key_by_id(conn, key_id)
            if key is None:
                raise OperationError(f"no key {key_id}")
            if key["revoked_ms"] is None:
                await repo.update_key(conn, key_id, {"revoked_ms": repo.now_ms()})
                await repo.bump_version(conn)

    # -- upstream accounts -----------------------------------------------------------------------

    async def add_account(self, name: str, api_key: str, *, base_url: str = DEFAULT_BASE_URL,
                          models: list[str] | None = None, priority: int = 0, weight: int = 1,
                          rpm: int | None = None, concurrency: int | None = None) -> int:
        if not name.strip() or not api_key.strip():
            raise OperationError("an account needs a name and an API key")
        if not base_url.startswith(("http://", "https://")):
            raise OperationError(f"base URL must start with http:// or https://: {base_url!r}")
        if weight < 1 or priority < 0 or (rpm is not None and rpm < 0) or (concurrency is not None and concurrency < 0):
            raise OperationError("weight must be at least 1; priority, rpm and concurrency not negative")
        try:
            async with self._writing() as conn:
                account_id = await repo.insert_account(conn, {
                    "name": name.strip(), "api_key_enc": self.box.encrypt(api_key.strip()),
                    "base_url": base_url.rstrip("/"), "models": ",".join(models) if models else None,
                    "priority": priority, "weight": weight, "rpm": rpm or None,
                    "concurrency": concurrency or None, "enabled": True,
                })
                await repo.bump_version(conn)
        except IntegrityError:
            raise OperationError(f"an account named {name} exists already") from None
        return account_id

    async def list_accounts(self) -> list[dict]:
        """Accounts without their credentials, with their health summed over the live server processes:
        the longest cooldown and its cause, the newest error, requests in flight and in the last minute."""
        async with self.engine.connect() as conn:
            rows = await repo.all_accounts(conn)
            reports = await repo.account_status_rows(conn, repo.now_ms() - STATUS_FRESH_MS)
        accounts = []
        for row in rows:
            mine = [report for report in reports if report["account_id"] == row["id"]]
            cooling = max(mine, key=lambda r: r["cooldown_until_ms"] or 0, default=None)
            erring = max(mine, key=lambda r: r["last_error_ms"] or 0, default=None)
            account = {k: v for k, v in row.items() if k != "api_key_enc"}
            account.update(
                cooldown_until_ms=cooling["cooldown_until_ms"] if cooling else None,
                cause=cooling["cause"] if cooling and cooling["cooldown_until_ms"] else None,
                last_error=erring["last_error"] if erring else None,
                last_error_ms=erring["last_error_ms"] if erring else None,
                in_flight=sum(r["in_flight"] for r in mine),
                requests_last_minute=sum(r["requests_last_minute"] for r in mine),
            )
            accounts.append(account)
        return accounts

    async def update_account(self, name: str, **values) -> None:
        if "api_key" in values:
            values["api_key_enc"] = self.box.encrypt(values.pop("api_key"))
        async with self._writing() as conn:
            if not await repo.update_account(conn, name, values):
                raise OperationError(f"no account {name}")
            await repo.bump_version(conn)

    async def set_account_enabled(self, name: str, enabled: bool, reason: str | None = None) -> None:
        await self.update_account(name, enabled=enabled, disabled_reason=None if enabled else reason)

    # -- web accounts and sessions ---------------------------------------------------------------

    async def sign_up(self, email: str, password: str, invite_code: str = "") -> int:
        """A user signing themselves up, under the operator's policy, prepaid with the starting credit."""
        settings = await self.web_settings()
        if settings.signup_mode == "closed":
            raise OperationError("sign-up is closed; ask the operator for an account")
        if settings.signup_mode == "invite" and not hmac.compare_digest(
                invite_code.strip().encode(), (settings.invite_code or "").strip().encode()):
            raise OperationError("that invite code is not valid")
        check_password(password)
        return await self.add_user(email, password=password, credit_usd=settings.starting_credit_micro / 1_000_000)

    @cached_property
    def _decoy_hash(self) -> str:
        """A hash to check passwords of unknown emails against, so they take as long as known ones."""
        return self.hasher.hash(secrets.token_urlsafe(16))

    def _password_matches(self, password_hash: str | None, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash or self._decoy_hash, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    async def verify_password(self, email: str, password: str) -> dict | None:
        """The user (without the password hash) if this is their password, else None."""
        async with self.engine.connect() as conn:
            user = await repo.user_by_email(conn, email.strip().lower())
        stored = user["password_hash"] if user else None
        if not await asyncio.to_thread(self._password_matches, stored, password):
            return None
        return {k: v for k, v in user.items() if k != "password_hash"}

    async def change_password(self, email: str, current: str, new: str) -> None:
        """Replace a password once the current one is proven; every session of the user ends."""
        user = await self.verify_password(email, current)
        if user is None:
            raise OperationError("the current password is not right")
        check_password(new)
        password_hash = await asyncio.to_thread(self.hasher.hash, new)
        async with self._writing() as conn:
            await repo.update_user(conn, user["id"], {"password_hash": password_hash})
            await repo.delete_sessions_of(conn, user["id"])

    async def open_session(self, user_id: int) -> str:
        """A new browser session; returns its cookie value, which is stored only as an HMAC."""
        token = secrets.token_urlsafe(32)
        async with self._writing() as conn:
            await repo.delete_expired_sessions(conn)
            await repo.insert_session(conn, self.box.hash_key(token), user_id, secrets.token_urlsafe(32),
                                      repo.now_ms() + SESSION_MS)
        return token

    async def session(self, token: str) -> Session | None:
        """The live session of this cookie value; None once it expired, ended or its user was disabled."""
        async with self.engine.connect() as conn:
            found = await repo.live_session(conn, self.box.hash_key(token))
        if found is None or found[1]["disabled"]:
            return None
        csrf, user = found
        return Session(user, csrf)

    async def close_session(self, token: str) -> None:
        async with self._writing() as conn:
            await repo.delete_session(conn, self.box.hash_key(token))

    # -- web settings and what users do for themselves -------------------------------------------

    async def web_settings(self) -> WebSettings:
        async with self.engine.connect() as conn:
            return WebSettings(**await repo.operator_settings_row(conn))

    async def change_web_settings(self, *, starting_credit_usd: float | None = None, **changes) -> WebSettings:
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
        async with self._writing() as conn:
            await repo.update_operator_settings(conn, asdict(settings))
            await repo.bump_version(conn)

    async def create_user_key(self, email: str, *, name: str, limits: KeyLimits) -> NewKey:
        """A key a user makes for themselves: its limits within the operator's caps."""
        name = name.strip()
        if len(name) > MAX_KEY_NAME_CHARS:
            raise OperationError(f"a key name has at most {MAX_KEY_NAME_CHARS} characters")
        settings = await self.web_settings()
        return await self.create_key(email, name=name, limits=settings.cap(limits))

    async def recent_requests(self, *, limit: int, **filters) -> list[dict]:
        """The newest usage rows matching `filters` (user_id, key_id, model, since_ms, until_ms)."""
        async with self.engine.connect() as conn:
            return await repo.recent_usage(conn, limit=limit, **filters)

    # -- console ---------------------------------------------------------------------------------

    async def overview(self) -> Overview:
        now = repo.now_ms()
        hour_ago, day_ago = now - 3_600_000, now - repo.DAY_MS
        async with self.engine.connect() as conn:
            return Overview(
                per_minute=await repo.requests_per_minute(conn, hour_ago),
                errors=await repo.errors_by_type(conn, hour_ago),
                spend_today_micro=await repo.spend_since(conn, now - now % repo.DAY_MS),
                spend_24h_micro=await repo.spend_since(conn, day_ago),
                top_users=await repo.top_spenders(conn, day_ago, 10),
            )

    async def models(self) -> list[dict]:
        """Every model, enabled or not, with its aliases and prices."""
        async with self.engine.connect() as conn:
            return [{**row, "aliases": aliases} for row, aliases in await repo.models_with_aliases(conn)]

    async def update_model(self, model_id: str, *, prices_usd: dict[str, float] | None = None,
                           markup: float | None = None, enabled: bool | None = None) -> None:
        """Change a model's list prices (USD per million tokens), markup multiplier or availability."""
        values: dict = {}
        for column, usd in (prices_usd or {}).items():
            if column not in PRICE_COLUMNS or not 0 <= usd <= 1_000_000:
                raise OperationError(f"{column.replace('_', ' ')}: a price is $0 to $1,000,000 per million tokens")
            values[column] = usd_to_micro(usd)
        if markup is not None:
            if not 0 < markup <= 100:
                raise OperationError("markup is a multiplier above 0 and at most 100, e.g. 1.2")
            values["markup_bp"] = round(markup * 10_000)
        if enabled is not None:
            values["enabled"] = enabled
        if not values:
            raise OperationError("nothing to change")
        async with self._writing() as conn:
            if not await repo.update_model(conn, model_id, values):
                raise OperationError(f"no model {model_id}")
            await repo.bump_version(conn)
