"""Runs of their own kind: a supernet's training run beside ordinary ones; the training images a run held out.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="train"))
        table.add_column(sa.Column("holdout", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.drop_column("holdout")
        table.drop_column("kind")
