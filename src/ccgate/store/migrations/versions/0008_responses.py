"""Stored Responses-API answers for previous_response_id and GET /v1/responses/{id}.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("input_items", sa.Text, nullable=False),
        sa.Column("turns", sa.Text, nullable=True),
        sa.Column("response", sa.Text, nullable=True),
    )
    op.create_index("ix_responses_user", "responses", ["user_id"])
    op.create_index("ix_responses_expiry", "responses", ["expires_ms"])


def downgrade() -> None:
    op.drop_index("ix_responses_expiry", "responses")
    op.drop_index("ix_responses_user", "responses")
    op.drop_table("responses")
