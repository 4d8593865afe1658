"""Alembic migrations of the results schema; :class:`bnextbench.store.Store` applies them when it opens a database.

The version is kept in the table ``bnextbench_alembic_version`` (Optuna keeps its own
``alembic_version`` in the same database). A new revision, after changing the models in
``bnextbench/store.py``::

    alembic -c bnextbench/migrations/alembic.ini -x db=sqlite:///results/bnextbench.db \
        revision --autogenerate -m "what changes"
"""
