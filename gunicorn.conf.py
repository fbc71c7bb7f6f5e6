"""gunicorn settings shared by the Procfile and the benchmarks.

Prometheus needs one directory that every worker process writes its metrics to;
it is made fresh at start unless PROMETHEUS_MULTIPROC_DIR is set.

gunicorn's own messages ("Listening at", "Booting worker", worker timeouts) are written as the
same JSON lines as the app's, to stderr, so one stream has one format. Their level follows
gunicorn's ``--log-level`` (default info); the app's follows ``LOG_LEVEL``.
"""
import os
import shutil
import sys
import tempfile

from gunicorn.glogging import Logger

worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = 1000
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
timeout = 30
graceful_timeout = 20
accesslog = None  # the app logs one JSON line per request itself
control_socket_disable = True

# dictConfig resolves the formatter by its dotted path when gunicorn starts (in the master, before
# the workers fork); the app's configure_logging() then finds this JSON handler on the root logger
# and keeps it rather than adding a second one. gunicorn replaces only the top-level keys given
# here in its defaults (gunicorn.glogging.CONFIG_DEFAULTS), so all four are spelt out.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "coach.platform.observability.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    # WARNING until the app's configure_logging() sets LOG_LEVEL: libraries' chatter while the app is
    # imported stays out, as it did without this dict.
    "root": {"level": "WARNING", "handlers": ["stderr"]},
    # No "level": gunicorn sets these two from its own settings before applying this dict.
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"handlers": ["stderr"], "propagate": False},
    },
}


class JsonLogger(Logger):
    """gunicorn's logger, except that a ``logconfig_dict`` alone does not turn its access log on.

    gunicorn writes access lines whenever any log configuration is given; here they are written
    only when ``accesslog`` is set (``--access-logfile -``), and then as JSON like the rest.
    """

    def access(self, resp, req, environ, request_time):
        if self.cfg.accesslog is not None:
            super().access(resp, req, environ, request_time)


logger_class = JsonLogger

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="coach-metrics-")
else:
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def on_starting(server):
    # The formatter above loads the coach package into the master, before the workers' gevent
    # monkey-patching. psycopg picks its wait function when it is imported: imported here, it would
    # block a whole worker on every query. Fail at start rather than serve like that.
    if "psycopg" in sys.modules:
        raise RuntimeError("psycopg is imported in gunicorn's master (by --preload, or by what the log "
                           "formatter's import of coach pulls in): the gevent workers would block on queries")


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
