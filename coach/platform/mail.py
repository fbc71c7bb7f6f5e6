"""Email: recorded with the change that causes it, sent by a job on the ``mail`` queue.

A service calls :func:`queue_email` inside its transaction. That writes the
``emails`` row and a ``mail.send`` outbox event; both commit or roll back with
the change. The relay hands the event to a worker, which sends the message over
SMTP and records the outcome. With no ``MAIL_SERVER`` outside production the
stored row is the delivery and ``/dev/mail`` shows it.

Never sent twice for one event: the consumer locks the row and skips it once
``sent_at`` is set. After an SMTP delivery the bodies are cleared: they carry
one-time links that must not sit in the database. (A crash after the SMTP server accepted the message but
before the commit can still repeat it; the Message-ID is the email's id, so
receiving servers can drop the copy.)
"""
from __future__ import annotations

import base64
import logging
import smtplib
import ssl
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import parseaddr

from flask import current_app, render_template
from sqlalchemy import select, update

from coach.clock import now
from coach.extensions import db
from coach.platform.events import MAIL_SEND
from coach.platform.jobs import consumer
from coach.platform.models import Email
from coach.platform.outbox import emit

log = logging.getLogger(__name__)


class MailNotSent(RuntimeError):
    """SMTP refused or failed; the job is retried."""


# Functions that add to every email's context before it is rendered (a higher layer's: governance adds an
# organization's logo and colour to emails about it). Each takes the context dict and may add keys.
_CONTEXT_PROCESSORS: list[Callable[[dict], None]] = []


def context_processor(func: Callable[[dict], None]) -> Callable[[dict], None]:
    """Register ``func(context)`` to run on every email's context (once per function)."""
    if func not in _CONTEXT_PROCESSORS:
        _CONTEXT_PROCESSORS.append(func)
    return func


def queue_email(to: str, subject: str, template: str, *, headers: dict | None = None,
                attachments: list[dict] | None = None, **context) -> Email:
    """Record an email to ``to`` and its ``mail.send`` event in the current transaction.

    :param template: base name under ``templates/email/``; ``<name>.txt`` and
        ``<name>.html`` are both rendered now, so the job needs no request.
    :param headers: extra headers, e.g. ``List-Unsubscribe``.
    :param attachments: files sent as MIME parts: ``{"filename", "content_type", "data"}`` with ``data`` as
        bytes (stored base64 in ``emails.attachments``; cleared with the bodies once delivered).
    """
    context.setdefault("base_url", current_app.config["APP_BASE_URL"])
    for process in _CONTEXT_PROCESSORS:
        process(context)
    transport = "smtp" if current_app.config["MAIL_SERVER"] else "stored"
    email = Email(
        id=uuid.uuid4(),
        to_address=to,
        subject=subject,
        body_text=render_template(f"email/{template}.txt", **context),
        body_html=render_template(f"email/{template}.html", **context),
        transport=transport,
        headers=headers or None,
        attachments=[_stored_attachment(a) for a in attachments] if attachments else None,
    )
    db.session.add(email)
    db.session.flush()
    emit(MAIL_SEND, {"email_id": str(email.id)})
    return email


@consumer(MAIL_SEND)
def send_email(payload: dict) -> None:
    """Consumer of ``mail.send``: send the recorded email once; raise to be retried on SMTP failure."""
    email = db.session.scalar(select(Email).where(Email.id == uuid.UUID(payload["email_id"])).with_for_update())
    if email is None or email.sent_at is not None:
        return
    cfg = current_app.config
    if not cfg["MAIL_SERVER"]:
        if cfg["COACH_ENV"] == "production":
            email.error = "MAIL_SERVER is not configured"
            log.error("email %s not sent: MAIL_SERVER is not configured", email.id)
            return
        email.sent_at = now()
        log.info("email %s to %s stored (no SMTP configured; see /dev/mail)", email.id, email.to_address)
        return
    try:
        _send_smtp(email)
    except (OSError, smtplib.SMTPException) as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("email %s to %s failed: %s", email.id, email.to_address, error)
        # Record the failure outside the job's transaction, which rolls back so RQ can retry.
        with db.engine.begin() as conn:
            conn.execute(update(Email).where(Email.id == email.id).values(error=error))
        raise MailNotSent(error) from exc
    email.sent_at = now()
    email.error = None
    # Bodies carry one-time links (reset, invitation): once delivered, keep only the envelope.
    email.body_text = email.body_html = ""
    email.attachments = None


def _stored_attachment(attachment: dict) -> dict:
    data = attachment["data"]
    if isinstance(data, str):  # already base64
        data = base64.b64decode(data, validate=True)
    filename = str(attachment["filename"]).replace("/", "_").replace("\\", "_")[:200] or "attachment"
    return {"filename": filename, "content_type": attachment.get("content_type") or "application/octet-stream",
            "data": base64.b64encode(data).decode("ascii")}


def _content_type(value: str) -> tuple[str, str, dict[str, str]]:
    """``("text", "calendar", {"method": "REQUEST"})`` of ``"text/calendar; method=REQUEST"``: a calendar
    invitation's ``method`` must reach the MIME part's header for mail clients to offer it as one."""
    kind, *rest = value.split(";")
    maintype, _, subtype = kind.strip().partition("/")
    params = {}
    for item in rest:
        name, sep, val = item.partition("=")
        if sep and name.strip():
            params[name.strip().lower()] = val.strip().strip('"')
    return maintype or "application", subtype or "octet-stream", params


def attachment_bytes(attachment: dict) -> bytes:
    """The file of one stored attachment (the development mailbox offers it for download)."""
    return base64.b64decode(attachment["data"])


def recent_emails(limit: int = 50) -> list[Email]:
    """The newest recorded emails, for the development mailbox (``/dev/mail``)."""
    return list(db.session.scalars(select(Email).order_by(Email.created_at.desc()).limit(limit)))


def _send_smtp(email: Email) -> None:
    cfg = current_app.config
    msg = EmailMessage()
    msg["Subject"] = email.subject
    msg["From"] = cfg["MAIL_DEFAULT_SENDER"]
    msg["To"] = email.to_address
    # The same id on every attempt, so a receiving server can drop a repeat.
    domain = parseaddr(cfg["MAIL_DEFAULT_SENDER"])[1].rpartition("@")[2] or "coach.localhost"
    msg["Message-ID"] = f"<{email.id}@{domain}>"
    for name, value in (email.headers or {}).items():
        msg[name] = value
    msg.set_content(email.body_text)
    msg.add_alternative(email.body_html, subtype="html")
    for attachment in email.attachments or ():
        maintype, subtype, params = _content_type(attachment["content_type"])
        msg.add_attachment(attachment_bytes(attachment), maintype=maintype, subtype=subtype,
                           filename=attachment["filename"], params=params)
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
