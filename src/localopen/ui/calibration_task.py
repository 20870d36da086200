"""This machine's first-launch calibration, run once in the background for the whole window: the
Start view shows its progress and the time left, Explore its words, and every view refreshes its
predicted speeds when it ends. The measuring is app/calibration's; this only runs and reports it."""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, Signal

from localopen.app.context import AppContext
from localopen.app.measure import calibration as calibrations
from localopen.app.measure.benchmark import BenchmarkSession
from localopen.app.measure.calibration import CalibrationStep
from localopen.core.errors import LocalopenError
from localopen.core.estimate.speed import Calibration
from localopen.ui.engine_runner import EngineRunner

log = logging.getLogger("localopen.ui")


class CalibrationTask(QObject):
    step = Signal(object)  # CalibrationStep
    calibrated = Signal(object)  # Calibration
    failed = Signal(str)

    def __init__(self, ctx: AppContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.session = BenchmarkSession(ctx)
        self._runner: EngineRunner | None = None  # its thread starts with the first calibration
        self.running = False
        self.last: CalibrationStep | None = None
        self._started: dict[int, float] = {}  # shape index -> when its measurement began
        self._retried_busy = False

    def start_if_needed(self) -> bool:
        """Calibrate unless this llama.cpp build is calibrated here, one runs, or the setting is off."""
        ctx = self.ctx
        kept = calibrations.current(ctx)
        # One taken while other programs kept the cores busy is measured again (once a launch).
        again = kept is not None and bool(kept.busy) and not self._retried_busy
        if self.running or not ctx.settings.calibrate_automatically or (kept is not None and not again):
            return False
        self._retried_busy = self._retried_busy or again
        self.running, self.last, self._started = True, None, {}
        if self._runner is None:
            self._runner = EngineRunner("calibration-engine")
        session = self.session
        self._runner.submit(
            lambda emit: calibrations.calibrate(ctx, session, emit), self._on_step, self._on_done, self._on_failed
        )
        return True

    def remaining_s(self) -> float | None:
        """About how long the calibration still takes, from the shapes measured so far (None until
        one is done). Shapes grow in size, so this errs short; it is said as 'about'."""
        step = self.last
        done = sorted(i for i in self._started if step is not None and i < step.index)
        if step is None or not done:
            return None
        now = time.monotonic()
        spans = [self._started[i + 1] - self._started[i] for i in done if i + 1 in self._started]
        if not spans:
            return None
        per_shape = sum(spans) / len(spans)
        current = now - self._started.get(step.index, now)
        return max(0.0, per_shape * (step.total - step.index + 1) - current)

    def _on_step(self, step: CalibrationStep) -> None:
        if not step.waiting:
            self._started.setdefault(step.index, time.monotonic())
        self.last = step
        self.step.emit(step)

    def _on_done(self, calibration: Calibration) -> None:
        self.running = False
        self.calibrated.emit(calibration)

    def _on_failed(self, error: LocalopenError) -> None:
        self.running = False
        log.info("Calibration did not finish: %s", error)
        self.failed.emit(str(error))

    def shutdown(self) -> None:
        if self._runner is not None:
            self._runner.shutdown(stop=self.session.stop, close=lambda: None, kill=self.session.kill)
