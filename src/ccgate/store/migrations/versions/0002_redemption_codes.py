"""Redemption codes: prepaid credit a user redeems; stored as an HMAC like keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "redemption_codes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("amount_micro", sa.BigInteger, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("redeemed_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("redeemed_ms", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("redemption_codes")
