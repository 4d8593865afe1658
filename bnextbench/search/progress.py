"""What a search shows while it runs: trials done of N, the current trial's epoch and top-1, the best
complete trial so far.

On a terminal a rich progress bar on stderr; elsewhere (a log file, a pipe) one plain line per epoch and
per finished trial, so a log of a long search tells what happened when. stdout stays for the result.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class SearchProgress:
    """Receives the search's events; ``enabled=False`` shows nothing."""

    def __init__(self, study: str, trials: int, done: int = 0, enabled: bool = True, console: Console | None = None):
        self.study, self.trials, self.done, self.enabled = study, trials, done, enabled
        self.console = console or Console(stderr=True)
        self.best: tuple[float, int] | None = None  # (top-1, trial number)
        self.live = enabled and self.console.is_terminal
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=self.console,
                             disable=not self.live)
        self._task = self._bar.add_task(f"study {study}", total=trials, completed=done, status="")

    def __enter__(self) -> SearchProgress:
        self._bar.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._bar.stop()

    def _best_text(self) -> str:
        return "best -" if self.best is None else f"best {self.best[0]:.2f} % (trial {self.best[1]})"

    def _show(self, status: str) -> None:
        if self.live:
            self._bar.update(self._task, completed=self.done, status=f"{status} · {self._best_text()}")
        elif self.enabled:
            self.console.print(f"study {self.study} [{self.done}/{self.trials} trials] {status}; {self._best_text()}",
                               highlight=False, soft_wrap=True)

    def trial_started(self, number: int, candidate: str, action: str = "training") -> None:
        self._show(f"trial {number}: {candidate}, {action}")

    def epoch_done(self, number: int, epoch: int, epochs: int, top1: float) -> None:
        """``epoch`` counts from 0."""
        self._show(f"trial {number}: epoch {epoch + 1}/{epochs}, top-1 {top1:.2f} %")

    def trial_finished(self, number: int, state: str, top1: float | None) -> None:
        self.done += 1
        if top1 is not None and state == "complete" and (self.best is None or top1 > self.best[0]):
            self.best = (top1, number)
        shown = "" if top1 is None else f", top-1 {top1:.2f} %"
        self._show(f"trial {number} {state}{shown}")
