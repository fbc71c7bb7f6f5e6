"""Idempotency keys for unsafe requests a double click or a retry could repeat.

A form carries a fresh key in a hidden ``idempotency_key`` field (htmx posts it
with the form); JSON clients (``static/js/media.js``) send an ``Idempotency-Key``
header, one per attempt, reused on its retries. Keys are unique per (user,
organization, key). The first request with a key runs the view and stores its
response; a replay with the same parameters gets the stored response; the same
key with other parameters is refused (422); a replay while the first is still
running waits briefly for its outcome, then gets 409. A JSON request is refused
in JSON. Keys older than 72 hours are swept by a periodic job.
"""
from __future__ import annotations

import hashlib
import re
import time
import uuid
from functools import wraps

from flask import abort, g, jsonify, make_response, request
from flask_login import current_user
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from coach.clock import now
from coach.extensions import db
from coach.htmx import apply_triggers
from coach.platform import tenant_context
from coach.platform.models import IdempotencyKey
from coach.platform.periodic import periodic

KEY_RE = re.compile(r"[A-Za-z0-9_-]{8,100}")
FORM_FIELD = "idempotency_key"
HEADER = "Idempotency-Key"
KEPT_HEADERS = ("Location", "HX-Redirect", "HX-Location", "HX-Trigger", "Content-Type")
MAX_BODY = 256 * 1024
IN_FLIGHT_WAIT_SECONDS = 3.0
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
MALFORMED = "The idempotency key is malformed: use 8–100 letters, digits, '-' or '_'."
OTHER_REQUEST = "This Idempotency-Key was already used for a different request."
IN_FLIGHT = "This request is already being processed. Wait a moment and reload."


def new_key() -> str:
    return uuid.uuid4().hex


def request_fingerprint() -> str:
    """What makes two requests "the same": method, path and the submitted fields (not the tokens), or the
    body itself when it is not a form (a JSON upload intent)."""
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}\n".encode())
    if request.mimetype not in FORM_TYPES:
        digest.update(request.get_data(cache=True))  # cached: the view still reads it (get_json)
        return digest.hexdigest()
    for name in sorted(request.form.keys()):
        if name in ("csrf_token", FORM_FIELD):
            continue
        for value in request.form.getlist(name):
            digest.update(f"{name}={value}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _lookup(key: str) -> IdempotencyKey | None:
    tenant_id = g.get("tenant_id")
    query = select(IdempotencyKey).where(IdempotencyKey.user_id == current_user.id, IdempotencyKey.key == key)
    query = query.where(IdempotencyKey.tenant_id == tenant_id if tenant_id else IdempotencyKey.tenant_id.is_(None))
    return db.session.scalar(query)


def _claim(key: str, fingerprint: str) -> uuid.UUID | None:
    """Record the key as in flight (committed at once); its row id, or ``None`` if it was already there."""
    row_id = uuid.uuid4()
    try:
        with db.session.begin_nested():
            db.session.add(IdempotencyKey(id=row_id, tenant_id=g.get("tenant_id"), user_id=current_user.id,
                                          key=key, fingerprint=fingerprint))
        db.session.commit()
        return row_id
    except IntegrityError:
        db.session.rollback()
        return None


def _replay(row: IdempotencyKey):
    response = make_response(row.response_body or b"", row.status_code)
    for name, value in (row.response_headers or {}).items():
        response.headers[name] = value
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _existing_outcome(key: str, fingerprint: str):
    deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
    while True:
        db.session.rollback()  # a fresh snapshot each look
        row = _lookup(key)
        if row is None:
            return None  # released meanwhile: run it
        if row.fingerprint != fingerprint:
            _refuse(422, OTHER_REQUEST)
        if row.completed_at is not None:
            return _replay(row)
        if time.monotonic() >= deadline:
            _refuse(409, IN_FLIGHT)
        time.sleep(0.1)


def _refuse(status: int, message: str):
    """Abort with ``message``: an error page for forms, ``{"error": message}`` for a JSON request (whose
    client reads the message from JSON)."""
    if request.is_json:
        abort(make_response(jsonify(error=message), status))
    abort(status, message)


def idempotent(view):
    """Make an unsafe request (creating, toggling, changing state) safe to repeat when it carries a key.

    Put it under the role check (the organization and membership are resolved first) and above a rate
    limit (a replay is not counted again).
    """

    @wraps(view)
    def wrapped(*args, **kwargs):
        if request.method not in UNSAFE_METHODS:
            return view(*args, **kwargs)
        key = request.headers.get(HEADER) or (request.form.get(FORM_FIELD) if request.mimetype in FORM_TYPES
                                                else None)
        if not key or not current_user.is_authenticated:
            return view(*args, **kwargs)
        if not KEY_RE.fullmatch(key):  # not match: "$" also matches before a trailing newline
            _refuse(400, MALFORMED)
        fingerprint = request_fingerprint()
        for _ in range(3):
            claimed = _claim(key, fingerprint)
            if claimed is not None:
                break
            outcome = _existing_outcome(key, fingerprint)
            if outcome is not None:
                return outcome
        else:
            _refuse(409, IN_FLIGHT)
        # The view may switch organization (creating one does): finish the key where it was made.
        scope = (claimed, g.get("tenant_id"), current_user.id)
        try:
            response = make_response(view(*args, **kwargs))
        except BaseException:
            _release(scope)
            raise
        if response.status_code >= 500 or response.status_code in (409, 429) or response.is_streamed:
            _release(scope)
            return response
        apply_triggers(response)  # the HX-Trigger events the view queued are part of the answer a replay repeats
        _store(scope, response)
        return response

    wrapped.idempotent = True  # functools.wraps copies it onto outer decorators: tests find protected views
    return wrapped


def _release(scope) -> None:
    row_id, tenant_id, user_id = scope
    db.session.rollback()
    with tenant_context.acting_for(tenant_id, user_id):
        db.session.execute(IdempotencyKey.__table__.delete().where(IdempotencyKey.id == row_id))
        db.session.commit()


def _store(scope, response) -> None:
    row_id, tenant_id, user_id = scope
    body = response.get_data()
    db.session.rollback()  # whatever the view left open is finished; store in a transaction of our own
    with tenant_context.acting_for(tenant_id, user_id):
        db.session.execute(
            IdempotencyKey.__table__.update().where(IdempotencyKey.id == row_id).values(
                status_code=response.status_code,
                response_headers={h: response.headers[h] for h in KEPT_HEADERS if h in response.headers},
                response_body=body if len(body) <= MAX_BODY else b"",
                completed_at=now(),
            )
        )
        db.session.commit()


@periodic(every=3600, name="sweep_idempotency_keys")
def _sweep_periodically() -> int:
    return sweep(72)


def sweep(older_than_hours: int = 72) -> int:
    """Delete keys older than ``older_than_hours`` (all organizations); returns how many."""
    removed = db.session.execute(text("SELECT idempotency_keys_sweep(make_interval(hours => :h))"),
                                 {"h": older_than_hours}).scalar_one()
    db.session.commit()
    return removed
