"""Start-up time of the command line against the floor of any Typer program, measured side by side.

    python benchmarks/startup.py [--repeats 7]

The floor is a minimal Typer app with bnextbench's command tree (the same groups and commands, each a
function with a docstring and no work) printing its ``--help``: Python, Typer and rich start, nothing else.
Timed in one run, interleaved so that drifts of the host's speed hit every command alike; each figure is the
median wall time of a fresh process. Target: ``bnextbench --help`` within 2x the floor.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer.main

from bnextbench.cli import app

TARGET_RATIO = 2.0


def command_tree(command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf command of a click command as its path of names, e.g. ("plot", "curves")."""
    children = getattr(command, "commands", None)
    if not children:
        return [prefix]
    return [path for name, child in children.items() for path in command_tree(child, (*prefix, name))]


def minimal_app_source(paths: list[tuple[str, ...]]) -> str:
    """A Typer program with the command tree ``paths``, whose commands do nothing."""
    lines = ["import typer", "", "app = typer.Typer(add_completion=False, no_args_is_help=True)"]
    groups = sorted({path[0] for path in paths if len(path) == 2})
    for group in groups:
        lines += [f"{group}_app = typer.Typer()", f"app.add_typer({group}_app, name={group!r})"]
    for index, path in enumerate(paths):
        owner = f"{path[0]}_app" if len(path) == 2 else "app"
        lines += ["", f"@{owner}.command({path[-1]!r})", f"def command_{index}() -> None:",
                  f'    """The {" ".join(path)} command."""']
    return "\n".join([*lines, "", "app()", ""])


def time_once(argv: list[str], runs: list[float]) -> None:
    """Append the wall time of one fresh process running ``argv`` to ``runs``."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs.append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="fresh processes per command (default 7)")
    args = parser.parse_args()
    paths = command_tree(typer.main.get_command(app))
    cli = [shutil.which("bnextbench") or sys.executable, *([] if shutil.which("bnextbench") else ["-m", "bnextbench"])]
    with tempfile.TemporaryDirectory() as folder:
        minimal = Path(folder) / "minimal_typer_app.py"
        minimal.write_text(minimal_app_source(paths))
        commands = {
            f"minimal Typer app, {len(paths)} commands: --help": [sys.executable, str(minimal), "--help"],
            "bnextbench --help": [*cli, "--help"],
            "bnextbench train --help": [*cli, "train", "--help"],
            "bnextbench models (counts every model at 224 px)": [*cli, "models"],
            "bnextbench profile bnext_tiny": [*cli, "profile", "bnext_tiny"],
        }
        for argv in commands.values():  # warm the file cache once
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, argv in commands.items():
                time_once(argv, times[name])
    floor = statistics.median(next(iter(times.values())))
    print(f"start-up, median of {args.repeats} fresh processes each, interleaved ({sys.platform}, "
          f"Python {sys.version.split()[0]})")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"  {name:<50} {median:7.3f} s  {median / floor:5.2f}x the floor")
    ratio = statistics.median(times["bnextbench --help"]) / floor
    print(f"bnextbench --help: {ratio:.2f}x the minimal Typer app (target <= {TARGET_RATIO:g}x): "
          f"{'met' if ratio <= TARGET_RATIO else 'missed'}")


if __name__ == "__main__":
    main()
