"""Runs trained by several processes (their world size), images skipped as unreadable, and evaluation runs
(kind "evaluate") with their throughput.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.add_column(sa.Column("world_size", sa.Integer(), nullable=False, server_default="1"))
        table.add_column(sa.Column("skipped_images", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("eval_images_per_s", sa.Float()))


def downgrade() -> None:
    with op.batch_alter_table("runs") as table:
        table.drop_column("eval_images_per_s")
        table.drop_column("skipped_images")
        table.drop_column("world_size")
