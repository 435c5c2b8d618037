"""Run the real scheduler (with real worker processes) in a background thread of the test."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from hopper.engine.services import Services
from hopper.mop_scheduler import Scheduler


class RunningScheduler:
    def __init__(self, services: Services, **kwargs) -> None:
        self.scheduler = Scheduler(services, **kwargs)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="scheduler", daemon=True)

    def _run(self) -> None:
        try:
            self.scheduler.run(stop_event=self.stop_event)
        except BaseException as exc:  # noqa: BLE001 - surfaced by wait_for / stop
            self.error = exc

    def __enter__(self) -> RunningScheduler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(60)
        if self.error is not None:
            raise self.error

    def wait_for(self, predicate: Callable[[], object], timeout: float = 180, what: str = "condition") -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise self.error
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")
