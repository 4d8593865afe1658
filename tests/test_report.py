"""Report: every format from a real digits search plus baselines, all or nothing; model cards; provenance."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from bnextbench import __version__
from bnextbench.report.board import LEADERBOARD_COLUMNS
from bnextbench.report.html import format_value
from bnextbench.store import Store

from .helpers import STUDY, build_results_db, invoke

REPORT_FILES = {"leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.html", "pareto.png",
                "pareto.svg", "published-vs-counted.csv", "provenance.json"}

NUMERIC = {c.header for c in LEADERBOARD_COLUMNS if c.scale or c.key in ("rank", "n_seeds", "resolution", "epochs")}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return build_results_db(tmp_path_factory.mktemp("report"), extras=False)


@pytest.fixture(scope="module")
def report_dir(results):
    """``bnextbench report`` in every format for the study, written once for the module."""
    out = results.root / "report"
    invoke("report", "--db", results.db, "--study", STUDY, "--out", str(out))
    return out


def markdown_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Every Markdown table under a ``## `` heading, as rows of cell text (escaped pipes restored)."""
    tables: dict[str, list[dict[str, str]]] = {}
    heading, header = None, None
    for line in text.splitlines():
        if line.startswith("## "):
            heading, header = line[3:], None
        elif line.startswith("|") and heading is not None:
            cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if header is None:
                header = cells
                tables[heading] = []
            elif not all(set(cell) <= {"-"} for cell in cells):
                tables[heading].append(dict(zip(header, cells)))
    return tables


class CellCollector(HTMLParser):
    """The data-value of every body cell, per table id."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[dict[str, str]]] = {}
        self.current = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.current = attrs["id"]
            self.tables[self.current] = []
        elif tag == "tr" and "bnb-row" in (attrs.get("class") or ""):
            self.tables[self.current].append({})
        elif tag == "td":
            self.tables[self.current][-1][attrs["data-column"]] = attrs["data-value"]


def test_report_writes_every_format(report_dir):
    assert {p.name for p in report_dir.iterdir()} == REPORT_FILES
    assert (report_dir / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (report_dir / "pareto.svg").read_text()
    ElementTree.fromstring(svg.encode())
    for label in ("xnor_resnet18 x", "birealnet18 x", "reactnet_a x", "ReActNet-A", "BNext-L", "searched Pareto front"):
        assert f"<!-- {label}" in svg, label  # matplotlib keeps each drawn text as a comment
    page = (report_dir / "leaderboard.html").read_text()
    assert "<svg" in page and not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert page.count('class="bnb-table"') == 4  # digits at 16 px, published, notes, published against counted


def test_markdown_parses_back_to_the_csv_numbers(report_dir):
    tables = markdown_tables((report_dir / "leaderboard.md").read_text())
    rows = list(csv.DictReader(io.StringIO((report_dir / "leaderboard.csv").read_text())))
    sections = list(dict.fromkeys(row["section"] for row in rows))
    assert [title.split(";")[0] for title in sections] == ["digits at 16 px",
                                                          "published, ImageNet (ILSVRC-2012 val) at 224 px"]
    for section in sections:
        from_csv = [{k: v for k, v in row.items() if k != "section"} for row in rows if row["section"] == section]
        from_md = tables[section]
        assert len(from_md) == len(from_csv)
        for md_row, csv_row in zip(from_md, from_csv):
            for column, value in md_row.items():
                assert csv_row[column] == value
                if value and column in NUMERIC:
                    assert float(csv_row[column]) == float(value)
    counted = markdown_tables((report_dir / "leaderboard.md").read_text())
    counted = next(rows for title, rows in counted.items() if title.startswith("Published against counted"))
    from_csv = list(csv.DictReader(io.StringIO((report_dir / "published-vs-counted.csv").read_text())))
    assert counted == from_csv


def test_json_holds_local_and_published_rows_matching_the_csv(report_dir, results):
    report = json.loads((report_dir / "leaderboard.json").read_text())
    local, published = report["sections"]
    models = {row["model"].split(" ")[0]: row for row in local["rows"]}
    store = Store(results.db)
    for name in ("xnor_resnet18", "reactnet_a"):
        row = models[name]
        run = store.get_run(row["run_ids"][0])
        assert row["kind"] == "baseline" and row["source"] == f"run {run.id}" and row["top1"] == run.top1
    prior = {row["model"]: row for row in published["rows"]}
    assert prior["XNOR-Net ResNet-18"]["source_url"] == "https://github.com/liuzechun/Bi-Real-net"
    assert prior["ReActNet-A"]["source_url"] == "https://github.com/liuzechun/ReActNet"
    rows = list(csv.DictReader(io.StringIO((report_dir / "leaderboard.csv").read_text())))
    sections = [(row, "BOPs (M)", 1e6) for row in local["rows"]] + [(row, "BOPs (G)", 1e9) for row in published["rows"]]
    for (json_row, bops_column, scale), csv_row in zip(sections, rows, strict=True):
        assert csv_row["model"] == json_row["model"]
        assert float(csv_row["top-1 (%)"]) == pytest.approx(json_row["top1"], abs=0.005)
        if json_row["bops"] is not None:  # local rows in millions, published ones in billions, the other column empty
            assert float(csv_row[bops_column]) == pytest.approx(json_row["bops"] / scale, abs=0.0005)
            assert csv_row[({"BOPs (M)", "BOPs (G)"} - {bops_column}).pop()] == ""


def test_html_cells_are_the_json_tables(report_dir):
    report = json.loads((report_dir / "leaderboard.json").read_text())
    collector = CellCollector()
    collector.feed((report_dir / "leaderboard.html").read_text())
    assert len(collector.tables) == len(report["tables"])
    for index, table in enumerate(report["tables"]):
        shown = collector.tables[f"table-{index}"]
        assert len(shown) == len(table["rows"])
        for cells, row in zip(shown, table["rows"]):
            assert cells == {column: format_value(row.get(column))[1] for column in table["columns"]}


def test_every_report_records_how_it_was_made(report_dir):
    provenance = json.loads((report_dir / "provenance.json").read_text())
    assert provenance["bnextbench_version"] == __version__
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).parent).stdout.strip()
    assert provenance["git_commit"] == (head or None)
    assert provenance["ops_rule"]["local"] == ["bits"] and "bnext-paper" in provenance["ops_rule"]["published"]
    assert provenance["data"] == ["digits at 16 px"] and provenance["seeds"] == [0]
    assert provenance["study"] == STUDY and len(provenance["run_ids"]) == 5  # 2 searched + 3 baselines
    assert json.loads((report_dir / "leaderboard.json").read_text())["provenance"] == provenance
    markdown = (report_dir / "leaderboard.md").read_text()
    assert f"- **bnextbench_version**: {__version__}" in markdown and "- **seeds**: [0]" in markdown
    assert 'id="provenance"' in (report_dir / "leaderboard.html").read_text()


def test_model_card_is_hugging_face_model_index(results, tmp_path, run_cli):
    from huggingface_hub import ModelCard

    run = Store(results.db).get_run(results.baselines[2]["run_id"])
    code, _, err = run_cli("report", "--db", results.db, "--model-card", str(run.id), "--out",
                           str(tmp_path))
    assert code == 0, err
    path = tmp_path / f"model-card-run-{run.id}.md"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    front = yaml.safe_load(path.read_text().split("---")[1])
    metrics = front["model-index"][0]["results"][0]["metrics"]
    assert metrics[0] == {"type": "accuracy", "name": "top-1 accuracy (%)", "value": round(run.top1, 4)}
    assert front["bnextbench"]["complexity"]["bops"] == run.complexity["bops"]
    card = ModelCard.load(path)
    result = card.data.eval_results[0]
    assert (result.task_type, result.dataset_type, result.dataset_split) == ("image-classification", "digits", "test")
    assert result.metric_value == round(run.top1, 4) and card.data.library_name == "bnextbench"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("--study", "no-such-study"), "unknown study 'no-such-study'"),
        (("--model-card", "999"), "no run 999"),
        (("--format", "pdf"), "--format"),
    ],
)
def test_bad_report_input_writes_nothing(results, tmp_path, args, fragment, run_cli):
    out = tmp_path / "out"
    code, stdout, err = run_cli("report", "--db", results.db, "--out", str(out), *args)
    assert code == 2 and stdout == "" and fragment in err and err.count("\n") == 1
    assert not out.exists()


def test_unwritable_output_is_one_line_and_leaves_nothing(monkeypatch, results, tmp_path, run_cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = run_cli("report", "--db", results.db, "--format", "md", "--out",
                           str(blocker / "report"))
    assert code == 2 and err.startswith("error: cannot write the report to") and err.count("\n") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]

    out = tmp_path / "full-disk"
    real_replace, calls = os.replace, []

    def replace_until_disk_full(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr("bnextbench.io.os.replace", replace_until_disk_full)
    code, _, err = run_cli("report", "--db", results.db, "--format", "md", "--out", str(out))
    assert code == 2 and "No space left on device" in err and err.count("\n") == 1
    assert len(calls) == 3 and not out.exists()


def test_figure_labels_never_overlap_and_the_study_panel_shows_every_trial_and_its_budget(results):
    from itertools import combinations

    import matplotlib

    matplotlib.use("Agg")
    from bnextbench.report.board import build_leaderboard
    from bnextbench.report.figures import draw_figure

    board = build_leaderboard(Store(results.db), STUDY)
    figure = draw_figure(board)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    for axis in figure.axes:
        boxes = [text.get_window_extent(renderer) for text in axis.texts]
        assert not [(a, b) for a, b in combinations(boxes, 2) if a.overlaps(b)], axis.get_title()
    study_axis, published_axis = figure.axes
    assert len(published_axis.texts) >= 8  # the BNext sizes, ReActNet, Bi-Real, XNOR-Net, ... each named
    legend = [text.get_text() for text in study_axis.get_legend().get_texts()]
    budget = f"budget {results.search['budgets'][0]}"
    assert budget in legend and study_axis.get_xlabel().startswith("BOPs at 16 px")  # drawn against its metric
    line = next(line for line in study_axis.lines if line.get_label() == budget)
    assert line.get_xdata()[0] == pytest.approx(20e6)  # 20MBOPs, as a vertical line
    states = {trial["state"] for trial in results.search["trials"]}
    for state, label in (("pruned", "pruned (top-1 after fewer epochs)"), ("infeasible", "over budget, not trained")):
        assert (label in legend) == (state in states)
