"""The HTML report in a real headless Chromium: rows, the inline Pareto SVG, sorting and escaping."""

from __future__ import annotations

import io
import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from bnextbench.cli import app
from bnextbench.errors import BnextbenchError
from bnextbench.report.html import HtmlTable, render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
XSS_NAME = "<script>alert(1)</script>"

ROWS_JS = """return Array.from(document.querySelectorAll(arguments[0] + " tbody tr.bnb-row")).map(
  row => Array.from(row.cells).map(cell => [cell.getAttribute("data-column"), cell.getAttribute("data-value"),
                                            cell.textContent]));"""


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        missing = "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("BNEXTBENCH_REQUIRE_BROWSER"):  # set by .ci/run, which installs them
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def rows_of(browser, table: str) -> list[list[tuple[str, str, str]]]:
    """(column, data-value, shown text) of every body cell of ``table`` (a CSS selector), in page order."""
    return [[tuple(cell) for cell in row] for row in browser.execute_script(ROWS_JS, table)]


def column(rows, name: str, part: int = 1) -> list[str]:
    return [cell[part] for row in rows for cell in row if cell[0] == name]


def assert_no_alert_and_only_the_page_script(browser) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018 - reading it raises when no alert is open
    assert browser.execute_script("return document.scripts.length") == 1
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0  # no network


def matplotlib_svg() -> str:
    """A real matplotlib SVG (with its XML prolog and doctype) of top-1 against OPs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4, 3))
    axis.scatter([2e6, 5e7, 1.2e8], [100.0, 10.25, 9.5])
    axis.set(xscale="log", xlabel="OPs", ylabel="top-1 (%)")
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    plt.close(figure)
    return buffer.getvalue()


def test_page_sorts_escapes_and_embeds_the_figure(browser, tmp_path):
    rows = [
        {"model": XSS_NAME, "top1": 9.5, "ops": 123_456_789, "degree": 0.000123456},
        {"model": "bnext_tiny x0.125", "top1": 100.0, "ops": 2_000_000, "degree": 0.5},
        {"model": "a & b \"quoted\"", "top1": 10.25, "ops": 50_000_000, "degree": None},
        {"model": "no top-1", "top1": None, "ops": 7, "degree": 0.25},
    ]
    svg = matplotlib_svg()
    assert svg.startswith("<?xml")
    page = render_html("ranking <b>test</b>", "study <i>s</i> · digits at 16 px",
                       [HtmlTable("ranked <rows>", ["model", "top1", "ops", "degree"], rows)],
                       svg, {"bnextbench_version": "0.1.0", "git_commit": "abc123", "seeds": [0, 1]})
    path = tmp_path / "page.html"
    path.write_text(page)
    browser.get(path.as_uri())

    assert browser.title == "ranking <b>test</b>"
    assert browser.find_element("css selector", "p.headline").text == "study <i>s</i> · digits at 16 px"
    shown = rows_of(browser, "#table-0")
    assert len(shown) == len(rows)
    assert column(shown, "model", 2) == [row["model"] for row in rows]  # names are literal text
    assert_no_alert_and_only_the_page_script(browser)
    assert column(shown, "ops", 2)[0] == "123,456,789" and column(shown, "degree", 2)[0] == "0.0001235"
    assert column(shown, "degree")[0] == "0.000123456"  # exact value kept for sorting
    assert browser.execute_script("return document.querySelectorAll('#figure > svg path').length") > 0
    assert "<?xml" not in browser.page_source and "DOCTYPE svg" not in browser.page_source
    provenance = browser.execute_script(
        "return Array.from(document.querySelectorAll('#provenance dd')).map(d => [d.dataset.key, d.textContent])")
    assert provenance == [["bnextbench_version", "0.1.0"], ["git_commit", "abc123"], ["seeds", "[0, 1]"]]

    header = browser.find_element("css selector", "#table-0 th[data-column=top1]")
    assert column(rows_of(browser, "#table-0"), "top1") == ["9.5", "100.0", "10.25", ""]
    header.click()  # numeric, not text order; empty cells last
    assert column(rows_of(browser, "#table-0"), "top1") == ["9.5", "10.25", "100.0", ""]
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert column(rows_of(browser, "#table-0"), "top1") == ["100.0", "10.25", "9.5", ""]
    assert header.get_attribute("aria-sort") == "descending"
    browser.find_element("css selector", "#table-0 th[data-column=model]").click()
    assert column(rows_of(browser, "#table-0"), "model", 2) == sorted(row["model"] for row in rows)
    assert_no_alert_and_only_the_page_script(browser)


def test_report_command_html_matches_its_json(browser, tmp_path):
    """A real search on digits, then `bnextbench report`: the page shows exactly the JSON report's tables."""
    db, out = tmp_path / "runs.db", tmp_path / "report"
    runner = CliRunner()
    searched = runner.invoke(app, ["search", "--budget", "0.3GBOPs", "--data", "digits", "--trials", "2",
                                   "--epochs", "1", "--resolution", "16", "--train-limit", "50", "--batch-size", "50",
                                   "--noise-seeds", "0", "--db", str(db), "--format", "json"])
    assert searched.exit_code == 0, searched.output
    reported = runner.invoke(app, ["report", "--format", "html", "--format", "json", "--db", str(db),
                                   "--study", "search-0.3GBOPs", "--out", str(out)])
    assert reported.exit_code == 0, reported.output
    tables = json.loads((out / "leaderboard.json").read_text())["tables"]
    browser.get((out / "leaderboard.html").as_uri())

    assert_no_alert_and_only_the_page_script(browser)
    headline = browser.find_element("css selector", "p.headline").text
    assert headline.startswith("study search-0.3GBOPs, budget 0.3GBOPs · digits at 16 px · 1 epoch · bnextbench ")
    # On a laptop screen: neither the page nor any table scrolls sideways at 1400 px (screenshot kept in tmp_path)
    browser.set_window_size(1400, 900)
    assert browser.execute_script("return document.documentElement.scrollWidth") <= browser.execute_script(
        "return document.documentElement.clientWidth")
    assert browser.execute_script("return Array.from(document.querySelectorAll('.table-scroll'))"
                                  ".filter(box => box.scrollWidth > box.clientWidth).length") == 0
    assert browser.save_screenshot(str(tmp_path / "report-at-1400px.png"))
    assert browser.execute_script("return document.querySelectorAll('#figure > svg path').length") > 0
    assert browser.execute_script("return document.querySelectorAll('table.bnb-table').length") == len(tables)
    local = tables[0]
    assert local["caption"] == "digits at 16 px; OPs and degree by the bits ops rule" and 1 <= len(local["rows"]) <= 2
    for index, table in enumerate(tables):
        shown = rows_of(browser, f"#table-{index}")
        assert len(shown) == len(table["rows"])
        for page_row, json_row in zip(shown, table["rows"]):
            assert [cell[0] for cell in page_row] == table["columns"]
            for name, exact, _ in page_row:
                expected = json_row.get(name)
                if isinstance(expected, (int, float)) and not isinstance(expected, bool):
                    assert float(exact) == expected
                else:
                    assert exact == ("" if expected is None else str(expected))

    published = rows_of(browser, "#table-1")
    browser.find_element("css selector", "#table-1 th[data-column='top-1 (%)']").click()
    ascending = [float(value) for value in column(rows_of(browser, "#table-1"), "top-1 (%)") if value]
    assert ascending == sorted(float(value) for value in column(published, "top-1 (%)") if value)
    assert ascending != [float(value) for value in column(published, "top-1 (%)") if value]  # the order changed


def test_figure_must_be_svg():
    with pytest.raises(BnextbenchError, match="not SVG"):
        render_html("t", "", [], "\x89PNG not a vector figure", {})
