"""The worker loop: take trials until the study is full, and recover the trials of workers that died.

Any number of workers can run one study: each takes the next trial until the study holds its size
in trials that count (complete, pruned, infeasible, running or queued), so the count is exact
however many join. A trial whose worker died (its process is gone on this host, or its Optuna
heartbeat stopped on a database storage) is kept as failed and retried once, by Optuna's retry
callback, as a new trial; workers stay until no trial is running, so they can take over.
Everything goes through Optuna's public API (``Study.tell``, ``fail_stale_trials``).
"""

from __future__ import annotations

import logging
import re
import socket
import time
import warnings

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from ..store import Store, pid_alive
from ..train.loop import TrainingDiverged
from .objective import Strategy, SurplusTrial, counted_trials
from .progress import SearchProgress
from .summary import ARCH_ATTR, NAME_ATTR, SURPLUS_ATTR, trial_state

MAX_RETRY = 1
MAX_POLL_S = 10


class _TrialLog(logging.Filter):
    """Optuna logs a failed trial as a traceback plus a "failed with value None" line. A surplus trial (never
    run) and a diverged one get one plain line instead; a trial the user interrupted gets none (the command
    says it)."""

    def __init__(self):
        super().__init__()
        self.quiet: set[str] = set()  # trial numbers whose "failed with value" line is dropped

    def filter(self, record: logging.LogRecord) -> bool:
        number = re.match(r"Trial (\d+) ", record.getMessage())
        error = record.exc_info[1] if record.exc_info else None
        if number and isinstance(error, KeyboardInterrupt):
            self.quiet.add(number[1])
            return False
        if number and isinstance(error, (SurplusTrial, TrainingDiverged)):
            self.quiet.add(number[1])
            said = "not run" if isinstance(error, SurplusTrial) else "stopped"
            record.msg, record.args, record.exc_info, record.exc_text = f"Trial {number[1]} {said}: {error}", (), None, None
            return True
        return not (number and number[1] in self.quiet and "failed with value" in record.getMessage())


logging.getLogger("optuna.study._optimize").addFilter(_TrialLog())


class DeadTrials:
    """Finds trials whose worker died and keeps each as failed, in Optuna and in the store, then queues its
    retry once. Also Optuna's heartbeat callback (``__call__``) on database storages."""

    def __init__(self, study_name: str, store: Store):
        self.study_name, self.store = study_name, store

    def recover(self, study: optuna.Study) -> None:
        """On this host a trial's process is gone; anywhere its heartbeat stopped."""
        host = socket.gethostname()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            pid = trial.user_attrs.get("pid")
            if trial.user_attrs.get("host") != host or pid is None or pid_alive(pid):
                continue
            try:
                failed = study.tell(trial.number, state=TrialState.FAIL)
            except (ValueError, UpdateFinishedTrialError):  # another worker got there first
                continue
            self(study, failed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            fail_stale_trials(study)  # heartbeat storages; calls this object for each

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Keep the dead attempt (FAIL in Optuna, its run interrupted, its row failed), then let Optuna's retry
        callback queue it again as a new trial, once."""
        attrs = trial.user_attrs
        run = self.store.trial_run(self.study_name, trial.number)
        if run is not None and run.status == "running":
            self.store.update_run(run.id, status="interrupted",
                                  message=f"worker {attrs.get('worker', '?')} died during trial {trial.number}")
        if NAME_ATTR in attrs:  # counted before it died
            self.store.record_failed_trial(
                study=self.study_name, trial_number=trial.number, candidate_name=attrs[NAME_ATTR],
                candidate=attrs[ARCH_ATTR], run_id=run.id if run else None, worker=attrs.get("worker"),
                retry_of=trial.system_attrs.get("failed_trial"),
                **{key: attrs[key] for key in ("bops", "flops", "ops", "params")})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, trial)


class WorkerLoop:
    """Runs ``strategy`` on trials of ``study`` until it holds ``size`` counted trials and none is running, or
    until as many trials failed by an error as the study has trials."""

    def __init__(self, study: optuna.Study, strategy: Strategy, size: int, dead_trials: DeadTrials,
                 progress: SearchProgress, heartbeat_s: int):
        self.study, self.strategy, self.size = study, strategy, size
        self.dead_trials, self.progress = dead_trials, progress
        self.poll_s = min(heartbeat_s, MAX_POLL_S)  # seconds between looks at others' running trials
        self.failed_by_error = 0

    def _after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        state = trial_state(trial)
        if state != SURPLUS_ATTR:
            self.progress.trial_finished(trial.number, state, trial.user_attrs.get("top1"))
        if trial.state == TrialState.FAIL and state != SURPLUS_ATTR:
            self.failed_by_error += 1
        self.dead_trials.recover(study)
        trials = study.get_trials(deepcopy=False)
        if counted_trials(trials) >= self.size or self.failed_by_error >= self.size:
            study.stop()

    def run(self) -> None:
        study = self.study
        while self.failed_by_error < self.size:
            self.dead_trials.recover(study)
            trials = study.get_trials(deepcopy=False)
            waiting = sum(1 for t in trials if t.state == TrialState.WAITING)
            wanted = max(self.size - counted_trials(trials), 0) + waiting
            if wanted:
                study.optimize(self.strategy, n_trials=wanted, catch=(TrainingDiverged, SurplusTrial),
                               callbacks=[self._after_trial])
            elif any(t.state == TrialState.RUNNING for t in trials):
                time.sleep(self.poll_s)
            else:
                return
