"""Every price Anthropic charges: long context, fast mode, data residency, server tools, batch per model;
the price flags and the cost per component of each request; a per-user overdraft.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from ccgate.billing.reference_prices import reference_modifiers
from ccgate.store.rows import USAGE_COST_COLUMNS

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

def model_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("long_context_threshold", sa.BigInteger, nullable=True),
        sa.Column("long_context_input_bp", sa.Integer, nullable=False, server_default="10000"),
        sa.Column("long_context_output_bp", sa.Integer, nullable=False, server_default="10000"),
        sa.Column("fast_input_bp", sa.Integer, nullable=True),
        sa.Column("fast_output_bp", sa.Integer, nullable=True),
        sa.Column("us_geo_bp", sa.Integer, nullable=False, server_default="10000"),
        sa.Column("web_search_price_micro", sa.BigInteger, nullable=False, server_default="10000"),
        sa.Column("web_fetch_price_micro", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("batch_bp", sa.Integer, nullable=False, server_default="5000"),
    ]


def usage_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("speed", sa.String(16), nullable=True),
        sa.Column("inference_geo", sa.String(16), nullable=True),
        sa.Column("long_context", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("web_search_requests", sa.Integer, nullable=False, server_default="0"),
        sa.Column("web_fetch_requests", sa.Integer, nullable=False, server_default="0"),
        *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in USAGE_COST_COLUMNS),
    ]


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("overdraft_micro", sa.BigInteger, nullable=True))
    with op.batch_alter_table("models") as batch:
        for column in model_columns():
            batch.add_column(column)
    models = sa.table("models", sa.column("id", sa.String), *(sa.column(c.name, c.type) for c in model_columns()))
    for model_id, values in reference_modifiers().items():
        op.execute(models.update().where(models.c.id == model_id).values(**values))
    with op.batch_alter_table("usage") as batch:
        for column in usage_columns():
            batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:
        for column in usage_columns():
            batch.drop_column(column.name)
    with op.batch_alter_table("models") as batch:
        for column in model_columns():
            batch.drop_column(column.name)
    with op.batch_alter_table("users") as batch:
        batch.drop_column("overdraft_micro")
