"""The web dashboard: browser sessions, the operator's sign-up and key settings, a time index on usage.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
    )
    settings = op.create_table(
        "operator_settings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("signup_mode", sa.String(16), nullable=False),
        sa.Column("invite_code", sa.Text, nullable=True),
        sa.Column("starting_credit_micro", sa.BigInteger, nullable=False),
        sa.Column("max_rpm", sa.Integer, nullable=True),
        sa.Column("max_concurrency", sa.Integer, nullable=True),
        sa.Column("max_token_budget", sa.BigInteger, nullable=True),
    )
    op.bulk_insert(settings, [{"id": 1, "signup_mode": "open", "invite_code": None, "starting_credit_micro": 0,
                               "max_rpm": None, "max_concurrency": None, "max_token_budget": None}])
    op.create_index("ix_usage_time", "usage", ["created_ms"])


def downgrade() -> None:
    op.drop_index("ix_usage_time", "usage")
    op.drop_table("operator_settings")
    op.drop_table("web_sessions")
