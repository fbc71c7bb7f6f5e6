"""Health checks and the development mailbox."""
from __future__ import annotations

from flask import abort, current_app, jsonify

from coach.blueprints.core import bp
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
