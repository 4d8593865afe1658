"""Scale-out: which worker ran each trial, which trial a retry repeats, one row per trial, 64-bit BOPs.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("search_trials") as table:
        table.add_column(sa.Column("worker", sa.String(320)))
        table.add_column(sa.Column("retry_of", sa.Integer()))
        table.alter_column("bops", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)
        table.create_index("ix_search_trials_study_trial", ["study", "trial_number"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("search_trials") as table:
        table.drop_index("ix_search_trials_study_trial")
        table.alter_column("bops", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)
        table.drop_column("retry_of")
        table.drop_column("worker")
