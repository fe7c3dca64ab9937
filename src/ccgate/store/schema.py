"""The database schema, as SQLAlchemy Core tables; Alembic migrations mirror it.

Times are epoch milliseconds and money is integer micro-dollars (1e-6 USD), so both
databases compute the same numbers with plain integer arithmetic.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from ccgate.store.rows import USAGE_COST_COLUMNS

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", Text, nullable=True),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    # NULL: postpaid, no credit check.  A number: prepaid credit that admission holds against.
    Column("balance_micro", BigInteger, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    # How far below zero a prepaid balance may go while requests run; NULL: the operator's default.
    Column("overdraft_micro", BigInteger, nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False, default=""),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("display", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("last_used_ms", BigInteger, nullable=True),
    Column("revoked_ms", BigInteger, nullable=True),
    Column("expires_ms", BigInteger, nullable=True),
    Column("rpm", Integer, nullable=True),
    Column("concurrency", Integer, nullable=True),
    Column("token_budget", BigInteger, nullable=True),
    Column("window_seconds", Integer, nullable=True),
    Column("models", Text, nullable=True),
    Column("cache_enabled", Boolean, nullable=False, default=True),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("api_key_enc", Text, nullable=False),
    Column("base_url", Text, nullable=False),
    Column("models", Text, nullable=True),
    Column("priority", Integer, nullable=False, default=0),
    Column("weight", Integer, nullable=False, default=1),
    Column("rpm", Integer, nullable=True),
    Column("concurrency", Integer, nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("disabled_reason", Text, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
)

models = Table(
    "models",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("display_name", String(200), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("max_input_tokens", Integer, nullable=False),
    Column("max_tokens", Integer, nullable=False),
    # Prices in micro-dollars per million tokens ($3/MTok is 3_000_000).
    Column("input_price", BigInteger, nullable=False),
    Column("output_price", BigInteger, nullable=False),
    Column("cache_write_5m_price", BigInteger, nullable=False),
    Column("cache_write_1h_price", BigInteger, nullable=False),
    Column("cache_read_price", BigInteger, nullable=False),
    # Multiplier on the list price in basis points: 10000 is 1.0x.
    Column("markup_bp", Integer, nullable=False, default=10000),
    Column("enabled", Boolean, nullable=False, default=True),
    # Price modifiers (ccgate.billing.prices.ModelPrice); multipliers in basis points.
    # Above this many input tokens, with the 1M-context beta, the whole request is long-context priced.
    Column("long_context_threshold", BigInteger, nullable=True),
    Column("long_context_input_bp", Integer, nullable=False, default=10000),
    Column("long_context_output_bp", Integer, nullable=False, default=10000),
    Column("fast_input_bp", Integer, nullable=True),  # NULL: no fast mode
    Column("fast_output_bp", Integer, nullable=True),
    Column("us_geo_bp", Integer, nullable=False, default=10000),  # inference_geo "us"
    Column("web_search_price_micro", BigInteger, nullable=False, default=10000),  # per search
    Column("web_fetch_price_micro", BigInteger, nullable=False, default=0),  # per fetch
    Column("batch_bp", Integer, nullable=False, default=5000),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("alias", String(128), primary_key=True),
    Column("model_id", String(128), ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
)

usage = Table(
    "usage",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("key_id", String(32), nullable=False),
    Column("user_id", Integer, nullable=False),
    Column("model", String(128), nullable=False),
    Column("dialect", String(16), nullable=False),
    Column("status", Integer, nullable=False),
    Column("streamed", Boolean, nullable=False),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("cache_read_tokens", Integer, nullable=False, default=0),
    Column("cache_write_5m_tokens", Integer, nullable=False, default=0),
    Column("cache_write_1h_tokens", Integer, nullable=False, default=0),
    Column("cost_micro", BigInteger, nullable=False, default=0),
    Column("latency_ms", Integer, nullable=False, default=0),
    Column("ttft_ms", Integer, nullable=True),
    Column("account_id", Integer, nullable=True),
    Column("upstream_request_id", String(64), nullable=True),
    Column("error_type", String(64), nullable=True),
    Column("cache_hit", Boolean, nullable=False, default=False),
    Column("session_moved", Boolean, nullable=False, default=False),
    Column("created_ms", BigInteger, nullable=False),
    # The request's price flags and server tool uses.
    Column("speed", String(16), nullable=True),
    Column("inference_geo", String(16), nullable=True),
    Column("long_context", Boolean, nullable=False, default=False),  # priced at the long-context tier
    Column("web_search_requests", Integer, nullable=False, default=0),
    Column("web_fetch_requests", Integer, nullable=False, default=0),
    # What each component cost, markup included, in nano-dollars (1/1000 micro-dollar) rounded up;
    # cost_micro is the exact sum rounded up once.  Columns, not JSON, so reports sum them in SQL.
    *(Column(name, BigInteger, nullable=False, default=0) for name in USAGE_COST_COLUMNS),
    Column("session_id", String(128), nullable=True),  # x-claude-code-session-id, for cost per session
    Index("ix_usage_user_time", "user_id", "created_ms"),
    Index("ix_usage_key_time", "key_id", "created_ms"),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount_micro", BigInteger, nullable=False),
    Column("request_id", String(40), nullable=True),
    Column("note", Text, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_ledger_user_time", "user_id", "created_ms"),
)

config_version = Table(
    "config_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
)

redemption_codes = Table(
    "redemption_codes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("amount_micro", BigInteger, nullable=False),
    Column("note", Text, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("redeemed_by", Integer, ForeignKey("users.id"), nullable=True),
    Column("redeemed_ms", BigInteger, nullable=True),
)

# The console's "last hour" and "today" read usage by time alone.
Index("ix_usage_time", usage.c.created_ms)

web_sessions = Table(
    "web_sessions",
    metadata,
    # The HMAC of the session cookie; the cookie itself is never stored.
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)

operator_settings = Table(
    "operator_settings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("signup_mode", String(16), nullable=False),  # open | invite | closed
    Column("invite_code", Text, nullable=True),
    Column("starting_credit_micro", BigInteger, nullable=False),
    # Caps on the limits of keys users create for themselves; NULL is no cap.
    Column("max_rpm", Integer, nullable=True),
    Column("max_concurrency", Integer, nullable=True),
    Column("max_token_budget", BigInteger, nullable=True),
)

account_status = Table(
    "account_status",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("process", String(128), primary_key=True),
    Column("cooldown_until_ms", BigInteger, nullable=True),
    Column("cause", String(32), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_error_ms", BigInteger, nullable=True),
    Column("in_flight", Integer, nullable=False, default=0),
    Column("requests_last_minute", Integer, nullable=False, default=0),
    Column("updated_ms", BigInteger, nullable=False),
    # The anthropic-ratelimit-* windows last seen: {kind: {limit, remaining, reset_ms}}.
    Column("ratelimit", JSON, nullable=True),
    Column("unroutable", String(128), nullable=True),  # why no request can go there now
)

Index("ix_usage_session", usage.c.session_id, usage.c.created_ms)

alert_webhooks = Table(
    "alert_webhooks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("url", Text, nullable=False),
    Column("kind", String(16), nullable=False),  # generic (JSON signed with HMAC-SHA256) or slack
    Column("secret_enc", Text, nullable=True),  # the signing secret, encrypted like account credentials
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_ms", BigInteger, nullable=False),
)

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("webhook_id", Integer, ForeignKey("alert_webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("alert", String(64), nullable=False),  # the condition, e.g. account_disabled
    Column("subject", String(200), nullable=False),  # what it is about: an account name, a user id, a key id
    Column("message", Text, nullable=False),
    Column("outcome", String(16), nullable=False),  # delivered or failed
    Column("attempts", Integer, nullable=False),
    Column("http_status", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_alert_deliveries_time", "created_ms"),
)

# Stored Responses-API answers, for previous_response_id and GET /v1/responses/{id}; each user sees only
# their own, and a row is gone once expires_ms has passed (CCGATE_RESPONSES_RETENTION).
responses = Table(
    "responses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("input_items", Text, nullable=False),  # JSON: the request's input items, as input_items lists them
    Column("turns", Text, nullable=True),  # JSON: the Anthropic messages of the whole conversation, answer included
    Column("response", Text, nullable=True),  # JSON: the Response object once finished
    Index("ix_responses_user", "user_id"),
    Index("ix_responses_expiry", "expires_ms"),
)
