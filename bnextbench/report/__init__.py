"""Reports and figures made from the results store.

:mod:`.board` reads the leaderboard from the store, :mod:`.formats` renders and writes it,
:mod:`.figures` draws it, :mod:`.cards` writes model cards; :mod:`.plots` draws single runs.
"""

from .board import DESIGN_COLUMNS, LEADERBOARD_COLUMNS, build_leaderboard, counted_rows, study_record
from .cards import write_model_cards
from .formats import COUNTED_COLUMNS, cell_text, counted_csv, to_csv, to_json, write_report

__all__ = [
    "COUNTED_COLUMNS",
    "DESIGN_COLUMNS",
    "LEADERBOARD_COLUMNS",
    "build_leaderboard",
    "cell_text",
    "counted_csv",
    "counted_rows",
    "study_record",
    "to_csv",
    "to_json",
    "write_model_cards",
    "write_report",
]
