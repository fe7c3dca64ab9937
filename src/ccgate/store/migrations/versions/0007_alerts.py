"""Observability: alert webhooks and their delivery log, usage per Claude Code session, account headroom.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_webhooks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("secret_enc", sa.Text, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("webhook_id", sa.Integer, sa.ForeignKey("alert_webhooks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("alert", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("http_status", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_alert_deliveries_time", "alert_deliveries", ["created_ms"])
    with op.batch_alter_table("usage") as batch:
        batch.add_column(sa.Column("session_id", sa.String(128), nullable=True))
    op.create_index("ix_usage_session", "usage", ["session_id", "created_ms"])
    with op.batch_alter_table("account_status") as batch:
        batch.add_column(sa.Column("ratelimit", sa.JSON, nullable=True))
        batch.add_column(sa.Column("unroutable", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account_status") as batch:
        batch.drop_column("unroutable")
        batch.drop_column("ratelimit")
    op.drop_index("ix_usage_session", "usage")
    with op.batch_alter_table("usage") as batch:
        batch.drop_column("session_id")
    op.drop_index("ix_alert_deliveries_time", "alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_table("alert_webhooks")
