"""Initial schema: users, keys, accounts, model catalog, usage, ledger; seeded price table.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from ccgate.dialects.models import REFERENCE_MODELS

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _micro(usd_per_mtok: float) -> int:
    return round(usd_per_mtok * 1_000_000)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=True),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("balance_micro", sa.BigInteger, nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("display", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("last_used_ms", sa.BigInteger, nullable=True),
        sa.Column("revoked_ms", sa.BigInteger, nullable=True),
        sa.Column("expires_ms", sa.BigInteger, nullable=True),
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("concurrency", sa.Integer, nullable=True),
        sa.Column("token_budget", sa.BigInteger, nullable=True),
        sa.Column("window_seconds", sa.Integer, nullable=True),
        sa.Column("models", sa.Text, nullable=True),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("api_key_enc", sa.Text, nullable=False),
        sa.Column("base_url", sa.Text, nullable=False),
        sa.Column("models", sa.Text, nullable=True),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("weight", sa.Integer, nullable=False),
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("concurrency", sa.Integer, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.Text, nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    models = op.create_table(
        "models",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("max_input_tokens", sa.Integer, nullable=False),
        sa.Column("max_tokens", sa.Integer, nullable=False),
        sa.Column("input_price", sa.BigInteger, nullable=False),
        sa.Column("output_price", sa.BigInteger, nullable=False),
        sa.Column("cache_write_5m_price", sa.BigInteger, nullable=False),
        sa.Column("cache_write_1h_price", sa.BigInteger, nullable=False),
        sa.Column("cache_read_price", sa.BigInteger, nullable=False),
        sa.Column("markup_bp", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
    )
    aliases = op.create_table(
        "model_aliases",
        sa.Column("alias", sa.String(128), primary_key=True),
        sa.Column("model_id", sa.String(128), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    )
    op.create_table(
        "usage",
        sa.Column("request_id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("dialect", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("streamed", sa.Boolean, nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cache_read_tokens", sa.Integer, nullable=False),
        sa.Column("cache_write_5m_tokens", sa.Integer, nullable=False),
        sa.Column("cache_write_1h_tokens", sa.Integer, nullable=False),
        sa.Column("cost_micro", sa.BigInteger, nullable=False),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("ttft_ms", sa.Integer, nullable=True),
        sa.Column("account_id", sa.Integer, nullable=True),
        sa.Column("upstream_request_id", sa.String(64), nullable=True),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("cache_hit", sa.Boolean, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_usage_user_time", "usage", ["user_id", "created_ms"])
    op.create_index("ix_usage_key_time", "usage", ["key_id", "created_ms"])
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_micro", sa.BigInteger, nullable=False),
        sa.Column("request_id", sa.String(40), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ledger_user_time", "ledger", ["user_id", "created_ms"])
    version = op.create_table(
        "config_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(version, [{"id": 1, "version": 1}])
    op.bulk_insert(models, [
        {
            "id": spec.id, "display_name": spec.display_name, "created_at": spec.created_at,
            "max_input_tokens": spec.max_input_tokens, "max_tokens": spec.max_tokens,
            "input_price": _micro(spec.input_price), "output_price": _micro(spec.output_price),
            "cache_write_5m_price": _micro(spec.cache_write_5m_price),
            "cache_write_1h_price": _micro(spec.cache_write_1h_price),
            "cache_read_price": _micro(spec.cache_read_price), "markup_bp": 10000, "enabled": True,
        }
        for spec in REFERENCE_MODELS
    ])
    op.bulk_insert(aliases, [
        {"alias": alias, "model_id": spec.id} for spec in REFERENCE_MODELS for alias in spec.aliases
    ])


def downgrade() -> None:
    for table in ("config_version", "ledger", "usage", "model_aliases", "models", "accounts", "api_keys", "users"):
        op.drop_table(table)
