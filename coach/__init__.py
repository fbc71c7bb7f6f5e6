"""Coach: the application factory."""
from __future__ import annotations

from pathlib import Path

from flask import Flask, g, has_request_context, jsonify, request
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from coach.config import load_config
from coach.extensions import csrf, db, htmx_ext, login_manager, migrate

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:{media}; media-src 'self'{media}; "
    "connect-src 'self'{media}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def content_security_policy(media_origin: str | None) -> str:
    """The policy of every page; with S3 storage, browsers load and upload media from its origin too."""
    return CSP.format(media=f" {media_origin}" if media_origin else "")


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


def create_app(config: dict | None = None) -> Flask:
    """Build the app; ``config`` overrides settings read from the environment (tests)."""
    app = Flask(__name__, instance_path=str(Path.cwd() / "instance"), instance_relative_config=False)
    app.config.update(load_config(Path(app.instance_path), config))
    _configure_logging(app)

    if app.config["PROXY_FIX_HOPS"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["PROXY_FIX_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    htmx_ext.init_app(app)
    _register_models()

    from coach.platform.observability import init_observability
    from coach.platform.ratelimit import init_limiter

    init_observability(app)  # first: the request id exists before anything logs
    init_limiter(app)

    from coach.accounts.loader import setup_login

    setup_login(login_manager)

    from coach.blueprints.accounts.views import bp as accounts_bp
    import coach.blueprints.admin.platform_views  # noqa: F401  (audit and System pages on the admin blueprint)
    from coach.blueprints.admin.views import bp as admin_bp
    import coach.blueprints.booking.schedule  # noqa: F401  (schedule pages on the booking blueprint)
    from coach.blueprints.booking.views import bp as booking_bp
    from coach.blueprints.chat.views import bp as chat_bp
    from coach.blueprints.media.views import bp as media_bp
    from coach.blueprints.notifications.views import bp as notifications_bp
    from coach.blueprints.notifications.views import links as notification_links_bp
    from coach.blueprints.spaces.views import bp as spaces_bp
    from coach.blueprints.core.views import bp as core_bp
    from coach.blueprints.orgs.views import bp as orgs_bp
    from coach.blueprints.storage.views import bp as storage_bp

    app.register_blueprint(core_bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(orgs_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(booking_bp)
    app.register_blueprint(spaces_bp)
    app.register_blueprint(storage_bp)
    app.register_blueprint(media_bp)
    app.register_blueprint(chat_bp)
    app.register_blueprint(notifications_bp)
    app.register_blueprint(notification_links_bp)

    with app.app_context():
        from coach.media.storage import get_storage

        app.config.setdefault("CONTENT_SECURITY_POLICY", content_security_policy(get_storage().browser_origin()))
    _register_request_hooks(app)
    _register_template_helpers(app)
    _register_error_handlers(app)
    from coach.cli import register_cli

    register_cli(app)
    from coach.media.cli import media_cli

    app.cli.add_command(media_cli)
    return app


def _register_models() -> None:
    # Import every model so metadata (and Alembic) sees all tables.
    import coach.accounts.models  # noqa: F401
    import coach.booking.models  # noqa: F401
    import coach.chat.models  # noqa: F401
    import coach.media.models  # noqa: F401
    import coach.spaces.models  # noqa: F401
    import coach.orgs.models  # noqa: F401
    import coach.platform.models  # noqa: F401
    import coach.platform.mail  # noqa: F401  (registers the mail.send consumer)


def _configure_logging(app: Flask) -> None:
    from coach.platform.observability import configure_logging

    configure_logging(app.config["LOG_LEVEL"])


def _register_request_hooks(app: Flask) -> None:
    from coach.htmx import apply_triggers

    @app.before_request
    def _identify():
        if current_user.is_authenticated:
            from coach import tenancy

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


def _register_template_helpers(app: Flask) -> None:
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    from coach.htmx import wants_fragment

    from markupsafe import Markup

    from coach.platform.idempotency import FORM_FIELD, new_key

    # A fresh key per rendered form: a double-clicked submit then creates one thing.
    app.jinja_env.globals["idempotency_field"] = lambda: Markup(
        f'<input type="hidden" name="{FORM_FIELD}" value="{new_key()}">')

    @app.context_processor
    def _globals():
        return {"is_fragment": wants_fragment(), "now": datetime.now(timezone.utc)}

    @app.template_filter("orgtime")
    def _orgtime(value: datetime | None, org, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        """Show a UTC time in the organization's time zone (audit trails read in one zone)."""
        if value is None:
            return ""
        try:
            zone = ZoneInfo(org.timezone)
        except (KeyError, ValueError):
            zone = ZoneInfo("UTC")
        return value.astimezone(zone).strftime(fmt)

    @app.template_filter("localtime")
    def _localtime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
        """Show a UTC time in the viewer's time zone."""
        if value is None:
            return ""
        # Pages: the signed-in user's zone. Sockets' pushes are rendered outside any request, for a
        # reader named by g.viewer_timezone.
        tz = g.get("viewer_timezone") or (current_user.timezone if has_request_context()
                                          and current_user.is_authenticated else "UTC")
        try:
            zone = ZoneInfo(tz)
        except (KeyError, ValueError):
            zone = ZoneInfo("UTC")
        return value.astimezone(zone).strftime(fmt)


def _register_error_handlers(app: Flask) -> None:
    from flask_wtf.csrf import CSRFError

    from coach.htmx import render

    def error_page(code: int, message: str | None = None):
        title, text = ERROR_TEXT.get(code, ERROR_TEXT[500])
        db.session.rollback()
        return render("errors/error.html", "content", status=code, code=code, title=title,
                      message=message or text)

    @app.errorhandler(CSRFError)
    def _csrf(exc):
        return error_page(400, "Your form expired or was sent without its security token. "
                               "Reload the page and try again.")

    @app.errorhandler(HTTPException)
    def _http(exc):
        response = error_page(exc.code or 500, exc.description if exc.code in (400, 403, 404, 409, 410, 422, 503) and
                              exc.description and not exc.description.startswith(("The requested URL",
                              "The browser (or proxy)", "You don't have the permission", "A conflict happened",
                              "The request was well-formed")) else None)
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        if exc.code == 429:
            from coach.platform.ratelimit import retry_after_seconds

            retry_after = getattr(exc, "retry_after", None)
            response.headers.setdefault("Retry-After", str(retry_after or retry_after_seconds()))
        return response

    from coach.media.storage import StorageError

    @app.errorhandler(StorageError)
    def _storage_away(exc):
        """Media storage refused or did not answer: nothing was changed; the person can try again."""
        app.logger.exception("media storage failed")
        message = "File storage is not answering right now. Please try again in a minute."
        if request.is_json or request.accept_mimetypes.best == "application/json":
            db.session.rollback()
            return jsonify(error=message), 503
        return error_page(503, message)

    @app.errorhandler(Exception)
    def _unexpected(exc):
        app.logger.exception("unhandled error")
        return error_page(500)
