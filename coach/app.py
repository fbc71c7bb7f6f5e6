"""The application factory: settings, extensions, the installed domains, blueprints, hooks and errors.

The top of the import graph (with ``worker.py`` and ``relay.py``): it may import anything, nothing in
``coach`` imports it.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from urllib.parse import urlsplit

from flask import (Flask, abort, g, has_app_context, has_request_context, jsonify, make_response, render_template,
                   request)
from flask_compress import Compress
from flask_login import current_user
from flask_static_digest import FlaskStaticDigest
from flask_wtf.csrf import CSRFError
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from whitenoise import WhiteNoise

from coach import tenancy
from coach.accounts.loader import setup_login
from coach.blueprints import (accounts, admin, booking, chat, core, directory, media, notifications, operator, orgs,
                              payments, privacy, progress, rooms, spaces, storage, templating)
from coach.cli import register_cli
from coach.config import load_config
from coach.errors import DomainError
from coach.extensions import csrf, db, htmx_ext, login_manager, migrate
from coach.htmx import apply_triggers, render
from coach.directory.cli import directory_cli
from coach.media.cli import media_cli
from coach.media.storage import StorageError, get_storage
from coach.payments import provider
from coach.platform import jobs
from coach.platform.observability import configure_logging, init_observability
from coach.platform.ratelimit import init_limiter, retry_after_seconds

# The installed domains, lowest first: importing each one's ``models`` gives SQLAlchemy (and Alembic) its
# tables; importing its ``jobs`` registers its outbox consumers and periodic sweeps with the platform's
# registries (:func:`coach.platform.jobs.consumer`, :func:`coach.platform.periodic.periodic`). A new domain
# is added here, and nowhere else.
DOMAINS = (
    "coach.platform",
    "coach.accounts",
    "coach.orgs",
    "coach.media",
    "coach.spaces",
    "coach.booking",
    "coach.chat",
    "coach.payments",
    "coach.progress",
    "coach.calsync",
    "coach.directory",
    "coach.rooms",
    "coach.privacy",
    "coach.governance",
    "coach.notifications",
)

# Every blueprint, in registration order.
BLUEPRINTS = (core.bp, accounts.bp, orgs.bp, admin.bp, booking.bp, booking.links, spaces.bp, storage.bp, media.bp,
              chat.bp, payments.bp, payments.hooks, progress.bp, rooms.bp, directory.bp,
              directory.public, privacy.bp, privacy.org, operator.bp,
              notifications.bp, notifications.links)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:{media}; media-src 'self'{media}; "
    "connect-src 'self'{media}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'{checkout}"
)

ERROR_TEXT = {
    400: ("Bad request", "The request could not be understood. Check what you sent and try again."),
    403: ("Not allowed", "You do not have permission to do that."),
    404: ("Not found", "There is nothing here. The link may be wrong, or the thing was removed."),
    405: ("Method not allowed", "That action is not available here."),
    409: ("Conflict", "This request clashes with another one. Reload the page and try again."),
    410: ("Gone", "This link is no longer valid."),
    413: ("Too large", "What you sent is larger than allowed."),
    422: ("Not accepted", "What you sent could not be accepted. Check it and try again."),
    429: ("Slow down", "Too many requests. Wait a moment and try again."),
    500: ("Something went wrong", "An unexpected error happened on our side. It has been logged."),
    503: ("Unavailable", "A service we depend on is not answering. Try again in a minute."),
}


def content_security_policy(media_origin: str | None, checkout_origin: str | None = None) -> str:
    """The policy of every page; with S3 storage, browsers load and upload media from its origin too; a form
    that starts a card payment redirects to the provider's checkout page (``form-action`` covers redirects)."""
    return CSP.format(media=f" {media_origin}" if media_origin else "",
                      checkout=f" {checkout_origin}" if checkout_origin else "")


def load_domains(extra: tuple[str, ...] = ()) -> None:
    """Import each installed domain's models and jobs (idempotent: Python imports a module once).

    :param extra: more modules that register consumers on import (``COACH_EXTRA_CONSUMERS``: the
        benchmarks' and the fault tests' own topics).
    """
    for name in DOMAINS:
        for part in ("models", "jobs"):
            if importlib.util.find_spec(f"{name}.{part}") is not None:
                importlib.import_module(f"{name}.{part}")
    for module in extra:
        importlib.import_module(module)


def create_app(config: dict | None = None) -> Flask:
    """Build the app; ``config`` overrides settings read from the environment (tests)."""
    app = Flask("coach", instance_path=str(Path.cwd() / "instance"), instance_relative_config=False)
    app.config.update(load_config(Path(app.instance_path), config))
    configure_logging(app.config["LOG_LEVEL"])

    if app.config["PROXY_FIX_HOPS"]:
        hops = app.config["PROXY_FIX_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    db.init_app(app)
    _close_sessions_quietly(app)
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    htmx_ext.init_app(app)
    load_domains(app.config["EXTRA_CONSUMERS"])
    jobs.use_app(app)

    init_observability(app)  # first: the request id exists before anything logs
    init_limiter(app)
    setup_login(login_manager)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)

    with app.app_context():
        app.config.setdefault("CONTENT_SECURITY_POLICY", content_security_policy(get_storage().browser_origin(),
                                                                                  provider.checkout_origin()))
    _serve_static(app)
    _compress_responses(app)  # before the request hooks: its after-request hook then runs after theirs
    _register_request_hooks(app)
    templating.init_app(app)
    _register_error_handlers(app)
    register_cli(app)
    app.cli.add_command(media_cli)
    app.cli.add_command(directory_cli)
    return app


# A name with the 32 hex digits of its content's MD5 (``css/app-<md5>.css``, made by Flask-Static-Digest).
FINGERPRINTED = r"-[0-9a-f]{32}\.[^/]+$"


def _serve_static(app: Flask) -> None:
    """Static files: WhiteNoise answers ``/static/`` before Flask (no session, user or database for a file),
    with the precompressed ``.br``/``.gz`` next to a file when the browser accepts them, ETag and 304s;
    fingerprinted names are cached for ten years (``immutable``), plain names for 60 s. Templates link
    files with ``static_url_for``: the fingerprinted name from ``cache_manifest.json`` if the static build
    (``make setup``, a PaaS build: docs/OPERATIONS.md) has made one, else the plain name."""
    digest = FlaskStaticDigest(app)
    app.extensions["static_digest"] = digest

    def security_headers(headers, path, url):
        headers["X-Content-Type-Options"] = "nosniff"

    app.wsgi_app = WhiteNoise(app.wsgi_app, root=app.static_folder, prefix=app.static_url_path,
                              immutable_file_test=FINGERPRINTED, add_headers_function=security_headers)


def _compress_responses(app: Flask) -> None:
    """Pages, fragments, JSON and calendar files of 1400 bytes or more (one TCP segment: smaller gains no
    round trip) compressed by Flask-Compress at the fastest level of the best coding the browser offers:
    zstd 1 (Chrome, Edge, Firefox), else brotli 1 (Safari), else gzip 1. Each costs a tenth to a third of
    gzip's usual level 6 for about the same size (docs/PERFORMANCE.md, "HTML compression"). Streamed
    answers (CSV exports) are left as they are."""
    app.config.setdefault("COMPRESS_MIMETYPES", ["text/html", "application/json", "text/calendar"])
    app.config.setdefault("COMPRESS_ALGORITHM", ["zstd", "br", "gzip"])
    app.config.setdefault("COMPRESS_ZSTD_LEVEL", 1)
    app.config.setdefault("COMPRESS_BR_LEVEL", 1)
    app.config.setdefault("COMPRESS_LEVEL", 1)
    app.config.setdefault("COMPRESS_MIN_SIZE", 1400)
    app.config.setdefault("COMPRESS_STREAMS", False)
    Compress(app)


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Endpoints a foreign page may legitimately POST to: the signature or token in their URL is the credential
# (mail providers' one-click unsubscribe, the local storage backend's signed part uploads).
CROSS_SITE_ALLOWED = frozenset({"notification_links.unsubscribe_now", "storage.put_part"})


def cross_site(req) -> bool:
    """Whether a browser says this request comes from a page of another site.

    ``Sec-Fetch-Site`` when the browser sends it (anything but same-origin or a user's own navigation);
    else ``Origin`` compared with the origin the request was made to. Neither header (a non-browser
    client, an old browser): not cross-site; the CSRF token still has to match.
    """
    fetch_site = req.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = req.headers.get("Origin")
    if origin is None:
        return False
    parts = urlsplit(origin)
    # "null" (a sandboxed frame, a cross-site redirect) has no scheme or host and is refused too.
    return f"{parts.scheme}://{parts.netloc}" != f"{req.scheme}://{req.host}"


def _close_sessions_quietly(app: Flask) -> None:
    """End each request's database session without letting a lost connection turn a sent answer into a 500.

    Flask-SQLAlchemy's own teardown rolls back at the end of the app context; if the connection died after the
    request's last query, that rollback raises outside every error handler, and the server answers 500 while
    the request log says otherwise. Here the failure is logged and the broken connection discarded."""
    app.teardown_appcontext_funcs.remove(db._teardown_session)

    @app.teardown_request
    def _end_reading(exc):
        # COMMIT, not ROLLBACK, ends a request's transaction that only read: the same round trip and the same
        # effect, but psycopg keeps the statements it prepared (a ROLLBACK makes it forget them all), so the
        # statements every page sends are planned once per connection, not on every request.
        if exc is None and _only_read():
            try:
                db.session.commit()
            except DBAPIError as error:  # the answer is sent; the session is discarded below
                app.logger.warning("ending a read-only transaction failed: %s", str(error.orig or error)[:200])

    @app.teardown_appcontext
    def _close_session(exc):
        try:
            db.session.remove()
        except DBAPIError as error:
            app.logger.warning("closing the database session failed: %s", str(error.orig or error).strip()[:200])
            db.session.registry.clear()


@event.listens_for(Engine, "before_cursor_execute")
def _note_writes(conn, cursor, statement, parameters, context, executemany):
    """Remember, for the app context, that a statement other than a plain SELECT ran (see _only_read)."""
    if not statement.lstrip()[:6].upper() == "SELECT" and has_app_context():
        g._db_wrote = True


def _only_read() -> bool:
    """This context is a GET or HEAD request whose open transaction ran plain SELECTs only (and nothing is
    waiting to be flushed): committing it changes nothing. Any other statement (a write, a CTE, a savepoint),
    any other method or context, and any pending change keep the rollback."""
    return (has_request_context() and request.method in ("GET", "HEAD") and not g.get("_db_wrote")
            and _session_reads_only(db.session()))


def _session_reads_only(session) -> bool:
    return session.in_transaction() and not (session.new or session.dirty or session.deleted)


def _register_request_hooks(app: Flask) -> None:
    @app.before_request
    def _refuse_cross_site():
        """CSRF defence in depth that also holds on plain HTTP (the token library checks Referer over HTTPS only)."""
        if request.method in UNSAFE_METHODS and request.endpoint not in CROSS_SITE_ALLOWED and cross_site(request):
            abort(403, "This form was sent from another site. Open the page on this site and try again.")

    @app.before_request
    def _identify():
        if current_user.is_authenticated:
            # Keep the organization that a URL value preprocessor (enter_org) already resolved.
            tenancy.activate(g.get("tenant_id"), current_user.id)

    @app.after_request
    def _finish(response):
        response = apply_triggers(response)
        headers = response.headers
        headers.setdefault("Content-Security-Policy", app.config["CONTENT_SECURITY_POLICY"])
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if app.config["SESSION_COOKIE_SECURE"]:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if current_user.is_authenticated or request.method != "GET":
            headers.setdefault("Cache-Control", "no-store")
        return response


def error_page(code: int, message: str | None = None):
    """The error page (its ``content`` block for htmx) after rolling back whatever the request began."""
    title, text = ERROR_TEXT.get(code, ERROR_TEXT[500])
    try:
        db.session.rollback()
        _keep_org_navigation(code)
        return render("errors/error.html", "content", status=code, code=code, title=title,
                      message=message or text)
    except OperationalError as exc:
        # The page's navigation queries (who is signed in, their badges): with the database away, the
        # answer is the page that needs none, not an error raised from the error handler.
        if not _away(exc):
            raise
        return database_away_page()


def _keep_org_navigation(code: int) -> None:
    """A member's 404 or 405 under ``/o/<slug>/`` for a URL no route matched keeps the organization's navigation
    (the organization is resolved only for a matched route); a stranger's stays anonymous."""
    if code not in (404, 405) or request.endpoint is not None or g.get("membership") is not None:
        return
    parts = request.path.split("/", 3)
    if len(parts) >= 3 and parts[1] == "o" and current_user.is_authenticated:
        tenancy.enter_org_if_member(parts[2])


DATABASE_AWAY = "The database is not answering right now (a restart or a network blip). Try again in a few seconds."


def database_away_page():
    """A 503 that needs no database: the session's connection is discarded, and the page is rendered without
    the navigation (whose badges would query again)."""
    try:
        db.session.rollback()
    except DBAPIError:
        pass
    db.session.remove()
    g.org = g.membership = None
    # Whoever is signed in stays unknown for this answer: loading them would query the database again
    # (in the after-request hooks, outside any error handler).
    g._login_user = login_manager.anonymous_user()
    body = render_template("errors/unavailable.html", message=DATABASE_AWAY)
    response = make_response(body, 503)
    response.headers["Retry-After"] = "5"
    return response


# Statuses whose abort message is ours to show (a 429's description is the limit's notation, a 413's
# and a 405's are Werkzeug's own).
OWN_MESSAGES = frozenset({400, 403, 404, 409, 410, 422, 503})


def _own_description(exc: HTTPException) -> str | None:
    """What the code that aborted said (``abort(404, "...")``), not Werkzeug's generic text for the code."""
    description = exc.description
    if exc.code in OWN_MESSAGES and description and description != type(exc).description:
        return description
    return None


# SQLSTATE classes of a database that is away: connection exceptions (08), shutting down / admin (57P0x).
_AWAY_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def _away(exc: OperationalError) -> bool:
    """The database is unreachable or restarting (not a bad statement)."""
    return bool(getattr(exc, "connection_invalidated", False)) or _is_connection_error(exc)


def _is_connection_error(exc: OperationalError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    # psycopg reports a refused or dropped socket with no SQLSTATE at all.
    return not sqlstate or sqlstate.startswith(_AWAY_SQLSTATES)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        """A service refused (the message is written for the user): nothing it began is kept."""
        return error_page(exc.status, str(exc) or None)

    @app.errorhandler(CSRFError)
    def _csrf(exc):
        return error_page(400, "Your form expired or was sent without its security token. "
                               "Reload the page and try again.")

    @app.errorhandler(HTTPException)
    def _http(exc):
        original = getattr(exc, "original_exception", None)
        if isinstance(original, OperationalError) and _away(original):
            # The database went away outside every view (an after-request hook, the response's finishing):
            # Flask turned it into a 500; it is the same 503 as inside a view.
            return _database_away_answer(original)
        response = error_page(exc.code or 500, _own_description(exc))
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        if exc.code == 429:
            retry_after = getattr(exc, "retry_after", None)
            response.headers.setdefault("Retry-After", str(retry_after or retry_after_seconds()))
        return response

    @app.errorhandler(StorageError)
    def _storage_away(exc):
        """Media storage refused or did not answer: nothing was changed; the person can try again."""
        app.logger.exception("media storage failed")
        message = "File storage is not answering right now. Please try again in a minute."
        if request.is_json or request.accept_mimetypes.best == "application/json":
            db.session.rollback()
            return jsonify(error=message), 503
        return error_page(503, message)

    @app.errorhandler(OperationalError)
    def _database_away(exc):
        """PostgreSQL restarting or unreachable: a 503 to try again, not a 500 (the pool reconnects itself: a
        connection the server closed is replaced at checkout, and a request's first statement that still finds
        its connection dead is retried once on a fresh one)."""
        if _away(exc):
            return _database_away_answer(exc)
        app.logger.exception("database error")
        return error_page(500)

    def _database_away_answer(exc: OperationalError):
        app.logger.warning("database unavailable: %s", str(exc.orig or exc).strip().splitlines()[0])
        return database_away_page()

    @app.errorhandler(Exception)
    def _unexpected(exc):
        app.logger.exception("unhandled error")
        return error_page(500)
