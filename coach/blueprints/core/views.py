"""Health checks, the development mailbox and the style guide."""
from __future__ import annotations

from flask import abort, current_app, jsonify, request

from coach.blueprints.core import bp, style_guide as guide
from coach.htmx import render
from coach.platform.health import check_dependencies
from coach.platform.mail import recent_emails


@bp.get("/health")
def health():
    """Liveness: the process answers."""
    return jsonify(status="ok")


@bp.get("/health/ready")
def ready():
    """Readiness: PostgreSQL and Redis both answer; 503 names the one that does not."""
    failures = check_dependencies()
    if failures:
        return jsonify(status="unavailable", failing=failures), 503
    return jsonify(status="ok")


@bp.get("/dev/mail")
def dev_mail():
    """Development only: the emails the app would have sent."""
    if current_app.config["COACH_ENV"] != "development":
        abort(404)
    return render("core/dev_mail.html", emails=recent_emails())


@bp.get("/dev/style")
def style_guide():
    """Development only (or with STYLE_GUIDE set): every design token and component, light and dark."""
    if current_app.config["COACH_ENV"] != "development" and not current_app.config.get("STYLE_GUIDE"):
        abort(404)
    scheme = request.args.get("scheme")
    schemes = (scheme,) if scheme in ("light", "dark") else ("light", "dark")
    return render("core/style_guide.html", guide=guide, schemes=schemes)
