"""The schema of bnextbench 0.1: runs, their per-epoch metrics, and search trials.

Databases written by 0.1 have these tables and no version table; the store stamps them with this
revision instead of running it.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("arch_spec", sa.JSON()),
        sa.Column("arch_hash", sa.String(32)),
        sa.Column("data", sa.String(512), nullable=False),
        sa.Column("resolution", sa.Integer(), nullable=False),
        sa.Column("num_classes", sa.Integer(), nullable=False),
        sa.Column("recipe", sa.JSON(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("teacher", sa.String(512)),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("checkpoint", sa.String(1024)),
        sa.Column("epochs_planned", sa.Integer(), nullable=False),
        sa.Column("epochs_done", sa.Integer(), nullable=False),
        sa.Column("top1", sa.Float()),
        sa.Column("top5", sa.Float()),
        sa.Column("train_images_per_s", sa.Float()),
        sa.Column("complexity", sa.JSON()),
        sa.Column("message", sa.String(2048)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "epoch_metrics",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        *(sa.Column(name, sa.Integer() if name == "epoch" else sa.Float(), nullable=False)
          for name in ("epoch", "train_loss", "train_top1", "test_loss", "test_top1", "test_top5", "lr", "tau",
                       "seconds", "images_per_s")),
    )
    op.create_index("ix_epoch_metrics_run_id", "epoch_metrics", ["run_id"])
    op.create_table(
        "search_trials",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study", sa.String(255), nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=False),
        sa.Column("candidate_hash", sa.String(32), nullable=False),
        sa.Column("candidate", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id")),
        sa.Column("bops", sa.Integer(), nullable=False),
        sa.Column("flops", sa.Float(), nullable=False),
        sa.Column("ops", sa.Float(), nullable=False),
        sa.Column("params", sa.Integer(), nullable=False),
        sa.Column("top1", sa.Float()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_search_trials_study", "search_trials", ["study"])
    op.create_index("ix_search_trials_candidate_hash", "search_trials", ["candidate_hash"])


def downgrade() -> None:
    op.drop_table("search_trials")
    op.drop_table("epoch_metrics")
    op.drop_table("runs")
