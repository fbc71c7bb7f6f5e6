"""RQ worker: ``python worker.py`` (queues from ``RQ_QUEUES``, default: default, mail, media, notifications).

One process runs job after job (RQ's ``SimpleWorker``): no fork and no new database connection per job. What
a fork per job gave is kept another way:

- **Timeouts.** A job that runs past its ``job_timeout`` is stopped by RQ's death penalty (``SIGALRM`` raises
  in the job); it fails (its ``Retry`` applies) and the worker goes on with the next job. A job stuck where
  the alarm cannot reach it (a C call that never returns) is killed with its work process by the supervisor,
  ``WORKER_KILL_GRACE`` seconds past its timeout; it is then retried like the job of a worker killed mid-job.
- **Leaks are bounded.** ``python worker.py`` is a small supervisor: it builds the app once and forks the work
  process, which stops itself after ``WORKER_MAX_JOBS`` jobs or once its resident memory passes
  ``WORKER_MAX_MEMORY_MB``; the supervisor starts a fresh one at once (a fork of the supervisor, which loaded
  everything and holds no connection: no imports and no app to build again). A work process that exits for
  any other reason (Redis away, a crash) is replaced after a back-off; SIGTERM/SIGINT stop both (RQ's warm
  shutdown: the job in progress finishes; a second signal stops it at once).
- **A job's heartbeat** is kept by a thread of the work process while the job runs (the forking worker's
  parent did it), so a long job is not taken for abandoned, and a dead worker's job is found within a minute.

A worker that dies mid-job (kill -9, lost machine) leaves its job in the queue's started registry; another
worker's maintenance retries it once the dead worker's heartbeat has expired (the job's ``Retry``; consumers
are idempotent). How soon that happens is tunable (coach/config.py); the defaults retry it within a minute:

``RQ_JOB_MONITORING_INTERVAL`` (10)  seconds between heartbeats while a job runs
``RQ_HEARTBEAT_GRACE`` (20)         seconds a missed heartbeat is tolerated before the job counts as abandoned
``RQ_MAINTENANCE_INTERVAL`` (20)    seconds between registry clean-ups (abandoned jobs are found there)
``RQ_WORKER_TTL`` (35)              worker key lifetime; an idle worker wakes every ``RQ_WORKER_TTL - 15`` s
``RQ_WITH_SCHEDULER`` (true)        run the scheduler (``enqueue_at``/``enqueue_in``, retry intervals) here
``RQ_LOG_LEVEL`` (WARNING)           RQ's own log lines (INFO: three per job; each event job logs its own line)
``WORKER_MAX_JOBS`` (10000)         jobs a work process runs before it is replaced (0: no limit)
``WORKER_MAX_MEMORY_MB`` (512)      resident memory after which a work process is replaced (0: no limit)
``WORKER_KILL_GRACE`` (30)          seconds past a job's timeout before the supervisor kills a stuck work process
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time

from redis import Redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer
from rq.worker import WorkerStatus

from coach.app import create_app
from coach.extensions import db
from coach.platform.periodic import ensure_scheduled
from coach.platform.queues import PromptStop

log = logging.getLogger("coach.worker")

RECYCLE = 3  # exit status of a work process that stopped to be replaced (its job or memory limit)
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024) if hasattr(os, "sysconf") else 0.0


def resident_mb() -> float:
    """This process's resident memory now (its peak where ``/proc`` is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_MB
    except OSError:
        import resource  # not at the top: Unix only, and only where /proc is missing

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


class _JobHeartbeat(threading.Thread):
    """Renews the running job's heartbeat every ``job_monitoring_interval`` seconds (RQ's forking worker
    did it from the parent while the horse worked; a ``SimpleWorker`` runs the job in its only thread)."""

    def __init__(self, worker: CoachWorker):
        super().__init__(name="job-heartbeat", daemon=True)
        self.worker = worker
        self._lock = threading.Lock()
        self._current = None

    def watch(self, job, execution) -> None:
        with self._lock:
            self._current = (job, execution)

    def clear(self) -> None:
        # Taking the lock waits for a heartbeat in progress: none is sent for a job once it is cleared.
        with self._lock:
            self._current = None

    def run(self) -> None:
        while True:
            time.sleep(self.worker.job_monitoring_interval)
            with self._lock:
                if self._current is None:
                    continue
                try:
                    self.worker.maintain_heartbeats(*self._current)
                except Exception:  # Redis away: the next beat tries again; the job runs on
                    log.warning("heartbeat of job %s failed", self._current[0].id, exc_info=True)


class CoachWorker(PromptStop, SimpleWorker):
    """RQ's non-forking worker with the heartbeat grace configurable (RQ fixes it at 60 s), a heartbeat
    while a job runs, stopping promptly, and a limit on jobs and memory after which it stops to be replaced.

    Per job it also spares Redis round trips RQ would repeat: the worker's own heartbeat and state are
    written when they change or age, not three times each per job.
    """

    heartbeat_grace = 60
    max_jobs = 0  # 0: no limit
    max_memory_mb = 0  # 0: no limit
    kill_grace = 30
    # Shared with the supervisor (a ``multiprocessing.RawValue``): when the job in progress must be over
    # (epoch seconds; 0 while idle). ``None`` when not supervised.
    deadline = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.jobs_done = 0
        self.retiring = ""  # why this worker stops to be replaced, once it does
        self._beat_at = 0.0  # monotonic time of the last heartbeat of the worker key
        self._beat_ttl = 0
        self._suspension_checked_at = -1.0
        self._job_heartbeat: _JobHeartbeat | None = None

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        if job.timeout and job.timeout > 0:
            return int(min(job.timeout - working_time, self.job_monitoring_interval)) + self.heartbeat_grace
        return self.job_monitoring_interval + self.heartbeat_grace

    # --- fewer round trips per job ---------------------------------------------------------------------

    def heartbeat(self, timeout: int | None = None, pipeline=None):
        """RQ's worker heartbeat, in one round trip, and skipped when one as long was sent within a second
        (RQ sends it before and after each dequeue and after each job)."""
        timeout = timeout or self.worker_ttl + 60
        now = time.monotonic()
        if pipeline is None:
            if now - self._beat_at < 1 and self._beat_ttl >= timeout:
                return
            with self.connection.pipeline(transaction=False) as own:
                super().heartbeat(timeout, pipeline=own)
                own.execute()
        else:
            super().heartbeat(timeout, pipeline=pipeline)
        self._beat_at, self._beat_ttl = now, timeout

    def set_state(self, state: str, pipeline=None):
        if pipeline is None and state == getattr(self, "_state", None):
            return  # already written
        super().set_state(state, pipeline=pipeline)

    def check_for_suspension(self, burst: bool):
        # `rq suspend` takes effect within a second instead of before every job.
        now = time.monotonic()
        if now - self._suspension_checked_at >= 1:
            self._suspension_checked_at = now
            super().check_for_suspension(burst)

    # --- one job -----------------------------------------------------------------------------------

    def execute_job(self, job, queue):
        if self._job_heartbeat is None:
            self._job_heartbeat = _JobHeartbeat(self)
            self._job_heartbeat.start()
        execution = self.prepare_execution(job)
        timeout = job.timeout or self.queue_class.DEFAULT_TIMEOUT
        if self.deadline is not None and timeout > 0:
            self.deadline.value = time.time() + timeout + self.kill_grace
        self._job_heartbeat.watch(job, execution)
        try:
            self.perform_job(job, queue, execution)
        finally:
            self._job_heartbeat.clear()
            if self.deadline is not None:
                self.deadline.value = 0
        # Idle again and alive, in one round trip (RQ writes them one after the other; the work loop's own
        # heartbeat right after is then skipped as recent).
        with self.connection.pipeline(transaction=False) as pipeline:
            self.set_state(WorkerStatus.IDLE, pipeline=pipeline)
            self.heartbeat(pipeline=pipeline)
            pipeline.execute()
        self.jobs_done += 1
        self._retire_if_spent()

    def _retire_if_spent(self) -> None:
        if self.max_jobs and self.jobs_done >= self.max_jobs:
            self.retiring = f"ran {self.jobs_done} jobs (WORKER_MAX_JOBS)"
        elif self.max_memory_mb and (rss := resident_mb()) > self.max_memory_mb:
            self.retiring = f"uses {rss:.0f} MB after {self.jobs_done} jobs (WORKER_MAX_MEMORY_MB)"
        if self.retiring:
            log.info("work process %d (worker %s) stopping to be replaced: %s", os.getpid(), self.name, self.retiring)
            self._stop_requested = True  # the work loop stops before its next dequeue
            if self.deadline is not None:  # supervised: the replacement starts while this one unregisters
                os.kill(os.getppid(), signal.SIGUSR1)


def run_worker(app, deadline=None) -> int:
    """Run jobs in this process until stopped; returns ``RECYCLE`` if it stopped to be replaced."""
    config = app.config
    connection = Redis.from_url(config["REDIS_URL"])
    CoachWorker.heartbeat_grace = config["RQ_HEARTBEAT_GRACE"]
    with app.app_context():
        queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in config["RQ_QUEUES"]]
        worker = CoachWorker(
            queues, connection=connection, serializer=JSONSerializer,
            worker_ttl=config["RQ_WORKER_TTL"],
            job_monitoring_interval=config["RQ_JOB_MONITORING_INTERVAL"],
            maintenance_interval=config["RQ_MAINTENANCE_INTERVAL"],
        )
        worker.max_jobs, worker.max_memory_mb = config["WORKER_MAX_JOBS"], config["WORKER_MAX_MEMORY_MB"]
        worker.kill_grace, worker.deadline = config["WORKER_KILL_GRACE"], deadline
        try:
            ensure_scheduled()  # periodic sweeps: make sure each has a pending run
        except Exception:  # Redis away at start: the worker's own loop retries connecting
            app.logger.exception("could not schedule periodic jobs")
        log.info("work process %d (worker %s) started on %s", os.getpid(), worker.name, ",".join(config["RQ_QUEUES"]))
        worker.work(with_scheduler=config["RQ_WITH_SCHEDULER"], logging_level=config["RQ_LOG_LEVEL"])
    return RECYCLE if worker.retiring else 0


class Supervisor:
    """Keeps one work process running: forks it, starts its replacement as soon as it stops taking jobs to be
    replaced (while it finishes; after a back-off when it ended otherwise), kills it when its job overruns,
    passes SIGTERM/SIGINT on."""

    BACKOFF_MAX = 30.0
    # Collected with sigtimedwait instead of handlers: a work process that exited, or one that asks for its
    # replacement (it has stopped taking jobs and is unregistering).
    WAKE_SIGNALS = {signal.SIGCHLD, signal.SIGUSR1}

    def __init__(self, app):
        self.app = app
        self.deadline = multiprocessing.RawValue("d", 0.0)
        self.child = 0
        self.leaving: set[int] = set()  # replaced work processes still finishing
        self.stopping = False
        self.started = 0  # work processes started so far

    def _forward(self, signum, _frame) -> None:
        self.stopping = True
        for pid in {self.child, *self.leaving} - {0}:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def _spawn(self) -> int:
        self.deadline.value = 0
        pid = os.fork()
        if pid:
            self.started += 1
            return pid
        # The work process: its own signal handling (RQ installs its own), no connection of the parent's.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, self.WAKE_SIGNALS)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        code = 1
        try:
            with self.app.app_context():
                db.engine.dispose(close=False)
            code = run_worker(self.app, self.deadline)
        except BaseException:
            log.exception("work process %d failed", os.getpid())
        finally:
            logging.shutdown()
            os._exit(code)

    def _reap_leaving(self, block: bool = False) -> None:
        for pid in list(self.leaving):
            try:
                done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.leaving.discard(pid)

    def _wait(self) -> int | None:
        """Until the work process exits (its exit code) or asks for its replacement (``None``); kills it if its
        job overran."""
        pid = self.child
        while True:
            self._reap_leaving()
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            overdue = self.deadline.value
            if overdue and time.time() > overdue:
                log.error("work process %d: its job is %d s past its timeout; killing it (the job will be retried)",
                          pid, self.app.config["WORKER_KILL_GRACE"])
                self.deadline.value = 0
                os.kill(pid, signal.SIGKILL)
            woken = signal.sigtimedwait(self.WAKE_SIGNALS, 1.0)
            if woken and woken.si_signo == signal.SIGUSR1 and woken.si_pid == pid and not self.stopping:
                return None

    def run(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, self.WAKE_SIGNALS)
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        backoff = 1.0
        try:
            while True:
                started = time.monotonic()
                self.child = self._spawn()
                code = self._wait()
                if code is None:  # replaced: its successor starts now, while it unregisters
                    self.leaving.add(self.child)
                    backoff = 1.0
                    continue
                self.child = 0
                if self.stopping:
                    log.info("worker stopped")
                    return code if code != RECYCLE else 0
                if code == RECYCLE:  # it stopped to be replaced without asking first
                    backoff = 1.0
                    continue
                if time.monotonic() - started > 60:
                    backoff = 1.0
                log.warning("work process exited with %s; starting another in %.0f s", code, backoff)
                end = time.monotonic() + backoff
                while not self.stopping and time.monotonic() < end:
                    time.sleep(0.1)
                if self.stopping:
                    return 0
                backoff = min(backoff * 2, self.BACKOFF_MAX)
        finally:
            self._reap_leaving(block=True)


def main() -> None:
    # The app is built once here (every installed domain's consumers and sweeps loaded); each work process is
    # a fork of this one and inherits them instead of importing again.
    app = create_app()
    sys.exit(Supervisor(app).run())


if __name__ == "__main__":
    main()
