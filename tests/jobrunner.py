"""Runs the real relay and a real RQ worker inside the test process, in a background thread.

Tests (and the browser journeys) then see side effects (emails over SMTP) as in
production: through the outbox, the relay, Redis and an RQ worker.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from rq import SimpleWorker
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from coach.platform.queues import QUEUE_NAMES, PromptStop, queue, redis_conn
from coach.platform.relay import relay_once


class ThreadWorker(PromptStop, SimpleWorker):
    """SimpleWorker that leaves signal handling to the main thread (job timeouts by timer, not SIGALRM)."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self):
        pass


class JobRunner:
    def __init__(self, app):
        self.app = app
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._paused = threading.Event()
        self._busy = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="test-job-runner", daemon=True)
        self.errors: list[BaseException] = []

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)

    @contextmanager
    def paused(self):
        """Keep the background relay and worker still inside the block (for tests that deliver by hand).

        Returns once any round in progress has finished, so nothing of theirs is in flight.
        """
        self._paused.set()
        with self._busy:
            pass
        try:
            yield self
        finally:
            self._paused.clear()

    def drain(self, timeout: float = 30.0) -> None:
        """Run relay and worker until nothing is left (from the calling thread); returns as soon as it is.

        The background relay and worker are held still meanwhile (unless the caller holds them already): a job
        they had taken would otherwise still be running when the outbox and queues look empty, and a test would
        read the world before that job's change."""
        if not self._paused.is_set():
            with self.paused():
                return self._drain(timeout)
        return self._drain(timeout)

    def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.app.app_context():
            while time.monotonic() < deadline:
                moved = relay_once()
                worked = self._work_once()
                if not moved and not worked:
                    return
        raise AssertionError("outbox did not drain in time")

    def _work_once(self) -> bool:
        connection = redis_conn()
        queues = [queue(name, connection) for name in QUEUE_NAMES]
        if not any(q.count for q in queues):
            return False
        worker = ThreadWorker(queues, connection=connection, serializer=JSONSerializer)
        worker.work(burst=True, logging_level="WARNING")
        return True

    def _run(self):
        while not self._stop.is_set():
            if self._paused.is_set():
                self._stop.wait(0.05)
                continue
            try:
                with self._busy:
                    if self._paused.is_set():
                        continue
                    with self.app.app_context():
                        moved = relay_once()
                        worked = self._work_once()
                if not moved and not worked:
                    self._stop.wait(0.05)
            except Exception as exc:  # keep running; tests that need it will time out with a reason
                self.errors.append(exc)
                self._stop.wait(0.2)
