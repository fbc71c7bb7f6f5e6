"""gunicorn settings shared by the Procfile and the benchmarks.

Prometheus needs one directory that every worker process writes its metrics to;
it is made fresh at start unless PROMETHEUS_MULTIPROC_DIR is set.
"""
import os
import shutil
import tempfile

worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = 1000
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
timeout = 30
graceful_timeout = 20
accesslog = None  # the app logs one JSON line per request itself
control_socket_disable = True

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="coach-metrics-")
else:
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
