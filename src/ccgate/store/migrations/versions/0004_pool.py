"""Upstream pool: each account's health as each server process last saw it; sessions moved by failover.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_status",
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("process", sa.String(128), primary_key=True),
        sa.Column("cooldown_until_ms", sa.BigInteger, nullable=True),
        sa.Column("cause", sa.String(32), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_error_ms", sa.BigInteger, nullable=True),
        sa.Column("in_flight", sa.Integer, nullable=False),
        sa.Column("requests_last_minute", sa.Integer, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    with op.batch_alter_table("usage") as batch:
        batch.add_column(sa.Column("session_moved", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:
        batch.drop_column("session_moved")
    op.drop_table("account_status")
