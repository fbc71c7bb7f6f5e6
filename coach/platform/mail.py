"""Email: recorded in the ``emails`` table with the change that causes it, sent after commit.

A service calls :func:`queue_email` inside its transaction. The row commits or
rolls back with the change; ids of committed rows are delivered over SMTP at the
end of the request (or by :func:`deliver_committed` in CLI code). With no
``MAIL_SERVER`` in development, the stored row is the delivery and ``/dev/mail``
shows it.
"""
from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app, g, has_app_context, render_template
from sqlalchemy import event
from sqlalchemy.orm import Session

from coach.extensions import db
from coach.platform.models import Email

log = logging.getLogger(__name__)


def queue_email(to: str, subject: str, template: str, **context) -> Email:
    """Record an email to ``to`` in the current transaction.

    :param template: base name under ``templates/email/``; ``<name>.txt`` and
        ``<name>.html`` are both rendered.
    """
    context.setdefault("base_url", current_app.config["APP_BASE_URL"])
    transport = "smtp" if current_app.config["MAIL_SERVER"] else "stored"
    email = Email(
        to_address=to,
        subject=subject,
        body_text=render_template(f"email/{template}.txt", **context),
        body_html=render_template(f"email/{template}.html", **context),
        transport=transport,
    )
    db.session.add(email)
    db.session.flush()
    db.session.info.setdefault("queued_email_ids", []).append(email.id)
    return email


@event.listens_for(Session, "after_commit")
def _remember_committed(session):
    ids = session.info.pop("queued_email_ids", None)
    if ids and has_app_context():
        g.setdefault("committed_email_ids", []).extend(ids)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session):
    session.info.pop("queued_email_ids", None)


def deliver_committed() -> None:
    """Send every email whose transaction committed during this request or command."""
    ids = g.pop("committed_email_ids", None) if has_app_context() else None
    for email_id in ids or ():
        deliver(email_id)


def deliver(email_id) -> None:
    """Send one recorded email and record the outcome. Never raises: a mail failure is logged."""
    email = db.session.get(Email, email_id)
    if email is None or email.sent_at is not None:
        return
    cfg = current_app.config
    if not cfg["MAIL_SERVER"]:
        if cfg["COACH_ENV"] == "production":
            email.error = "MAIL_SERVER is not configured"
            log.error("email %s not sent: MAIL_SERVER is not configured", email.id)
        else:
            email.sent_at = datetime.now(timezone.utc)
            log.info("email %s to %s stored (no SMTP configured; see /dev/mail)", email.id, email.to_address)
        db.session.commit()
        return
    try:
        _send_smtp(email)
    except (OSError, smtplib.SMTPException) as exc:
        email.error = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("email %s to %s failed: %s", email.id, email.to_address, email.error)
    else:
        email.sent_at = datetime.now(timezone.utc)
        email.error = None
    db.session.commit()


def _send_smtp(email: Email) -> None:
    cfg = current_app.config
    msg = EmailMessage()
    msg["Subject"] = email.subject
    msg["From"] = cfg["MAIL_DEFAULT_SENDER"]
    msg["To"] = email.to_address
    msg["Message-ID"] = make_msgid(idstring=str(email.id))
    msg.set_content(email.body_text)
    msg.add_alternative(email.body_html, subtype="html")
    timeout = cfg["MAIL_TIMEOUT"]
    if cfg["MAIL_USE_SSL"]:
        client = smtplib.SMTP_SSL(cfg["MAIL_SERVER"], cfg["MAIL_PORT"], timeout=timeout,
                                  context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(cfg["MAIL_SERVER"], cfg["MAIL_PORT"], timeout=timeout)
    with client:
        if cfg["MAIL_USE_TLS"] and not cfg["MAIL_USE_SSL"]:
            client.starttls(context=ssl.create_default_context())
        if cfg["MAIL_USERNAME"]:
            client.login(cfg["MAIL_USERNAME"], cfg["MAIL_PASSWORD"])
        client.send_message(msg)
