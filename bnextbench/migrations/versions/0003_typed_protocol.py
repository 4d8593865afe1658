"""Typed run protocol: candidate name, width, train limit, protocol keys, study and trial as indexed columns.

Until 0002 these lived in the ``recipe`` JSON of each run (next to the recipe's own fields) and every
lookup scanned all runs in Python. This revision moves them into columns, fills them from each row's
JSON, leaves ``recipe`` with the recipe's fields only, and renames ``search_trials.candidate_hash`` to
``candidate_name`` with each candidate's one name (``bnext-spec-<spec hash>``, or ``MODEL [xWIDTH]``).

The protocol keys of an old row digest its recipe as it was stored, so a run trained under an older
recipe never matches a protocol of today's recipe by accident. A downgrade restores the 0002 layout
but not the runs' old "candidate" and "protocol" keys, so 0002 would train those candidates again.

Revision ID: 0003
Revises: 0002
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

from bnextbench.models.candidate import candidate_name
from bnextbench.models.spec import BNextSpec
from bnextbench.train.protocol import protocol_keys

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# What 0.1 and 0002 kept in a run's recipe JSON besides the recipe's fields.
_NOT_RECIPE = ("train_limit", "width_mult", "model_kwargs", "candidate", "protocol", "study", "trial",
               "baseline_budgets")


def _old_candidate_hash(candidate: dict) -> str:
    """The candidate hash of 0.1 and 0002: a digest of the candidate's canonical JSON."""
    return hashlib.sha256(json.dumps(candidate, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _trial_candidate_name(candidate: dict) -> str:
    if candidate.get("family") == "bnext":
        return candidate_name("bnext_spec", BNextSpec.from_dict(candidate["spec"]))
    return candidate_name(candidate["model"], width_mult=candidate.get("width_mult", 1.0))


def _rename_trial_candidate(old: tuple[str, int], new: tuple[str, int], value_of) -> None:
    """Rename search_trials' candidate column ``(name, length)`` to ``new`` with its index, each row's value
    recomputed from the row's candidate JSON by ``value_of``."""
    connection = op.get_bind()
    trials = sa.table("search_trials", sa.column("id", sa.Integer), sa.column("candidate", sa.JSON),
                      sa.column(new[0], sa.String))
    rows = connection.execute(sa.select(trials.c.id, trials.c.candidate)).all()
    with op.batch_alter_table("search_trials") as table:  # index and rename: two batches, SQLite copies twice
        table.drop_index(f"ix_search_trials_{old[0]}")
        table.alter_column(old[0], new_column_name=new[0], existing_type=sa.String(old[1]), type_=sa.String(new[1]),
                           existing_nullable=False)
    op.create_index(f"ix_search_trials_{new[0]}", "search_trials", [new[0]])
    for trial_id, candidate in rows:
        connection.execute(trials.update().where(trials.c.id == trial_id).values({new[0]: value_of(candidate)}))


def upgrade() -> None:
    connection = op.get_bind()
    runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("model", sa.String), sa.column("arch_hash", sa.String),
                    sa.column("data", sa.String), sa.column("resolution", sa.Integer),
                    sa.column("teacher", sa.String), sa.column("recipe", sa.JSON))
    rows = connection.execute(sa.select(runs)).mappings().all()
    with op.batch_alter_table("runs") as table:
        table.add_column(sa.Column("candidate", sa.String(96)))
        table.add_column(sa.Column("width_mult", sa.Float()))
        table.add_column(sa.Column("train_limit", sa.Integer()))
        table.add_column(sa.Column("protocol_key", sa.String(16)))
        table.add_column(sa.Column("protocol_group", sa.String(16)))
        table.add_column(sa.Column("study", sa.String(255)))
        table.add_column(sa.Column("trial_number", sa.Integer()))
    filled = sa.table("runs", sa.column("id", sa.Integer), sa.column("candidate", sa.String),
                      sa.column("width_mult", sa.Float), sa.column("train_limit", sa.Integer),
                      sa.column("protocol_key", sa.String), sa.column("protocol_group", sa.String),
                      sa.column("study", sa.String), sa.column("trial_number", sa.Integer),
                      sa.column("recipe", sa.JSON))
    for row in rows:
        stored = dict(row["recipe"])
        recipe = {key: value for key, value in stored.items() if key not in _NOT_RECIPE}
        width = float(stored.get("width_mult", 1.0))
        canonical = {"data": row["data"], "resolution": row["resolution"], "train_limit": stored.get("train_limit"),
                     "recipe": recipe}
        if row["teacher"] is not None:
            canonical["teacher"] = row["teacher"]
        key, group = protocol_keys(canonical)
        name = row["model"] if row["arch_hash"] else candidate_name(row["model"], width_mult=width)
        connection.execute(filled.update().where(filled.c.id == row["id"]).values(
            candidate=name, width_mult=width, train_limit=stored.get("train_limit"), protocol_key=key,
            protocol_group=group, study=stored.get("study"), trial_number=stored.get("trial"), recipe=recipe))
    with op.batch_alter_table("runs") as table:
        for column, kind in (("candidate", sa.String(96)), ("width_mult", sa.Float()),
                             ("protocol_key", sa.String(16)), ("protocol_group", sa.String(16))):
            table.alter_column(column, existing_type=kind, nullable=False)
        table.create_index("ix_runs_protocol_candidate", ["protocol_key", "candidate", "status"])
        table.create_index("ix_runs_protocol_group", ["protocol_group"])
        table.create_index("ix_runs_study_trial", ["study", "trial_number"])

    _rename_trial_candidate(("candidate_hash", 32), ("candidate_name", 96), _trial_candidate_name)


def downgrade() -> None:
    connection = op.get_bind()
    _rename_trial_candidate(("candidate_name", 96), ("candidate_hash", 32), _old_candidate_hash)

    runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("recipe", sa.JSON),
                    sa.column("width_mult", sa.Float), sa.column("train_limit", sa.Integer),
                    sa.column("study", sa.String), sa.column("trial_number", sa.Integer))
    for row in connection.execute(sa.select(runs)).mappings().all():
        recipe = {**row["recipe"], "train_limit": row["train_limit"], "width_mult": row["width_mult"]}
        if row["study"] is not None:
            recipe.update(study=row["study"], trial=row["trial_number"])
        connection.execute(runs.update().where(runs.c.id == row["id"]).values(recipe=recipe))
    with op.batch_alter_table("runs") as table:
        for index in ("ix_runs_study_trial", "ix_runs_protocol_group", "ix_runs_protocol_candidate"):
            table.drop_index(index)
        for column in ("trial_number", "study", "protocol_group", "protocol_key", "train_limit", "width_mult",
                       "candidate"):
            table.drop_column(column)
