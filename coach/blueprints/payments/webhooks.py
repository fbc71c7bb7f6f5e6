"""``POST /payments/webhook``: the provider's signed events. No session, no CSRF token (the signature is the
credential), no app-wide rate limit (a provider retrying a backlog must never be refused), at most 1 MB.

The answer is fast: verify, store raw, emit ``PROVIDER_EVENT``, commit, 200; the work happens in the job
(:func:`coach.payments.webhooks.apply`). A bad or stale signature is a 400 with nothing stored.
"""
from __future__ import annotations

from flask import abort, jsonify, request
from flask_limiter import ExemptionScope

from coach.blueprints.payments import hooks
from coach.extensions import csrf, db
from coach.payments import webhooks
from coach.platform.ratelimit import limiter


@hooks.post("/webhook")
def webhook():
    if request.content_length is not None and request.content_length > webhooks.MAX_BODY:
        abort(413)
    body = request.stream.read(webhooks.MAX_BODY + 1)
    if len(body) > webhooks.MAX_BODY:
        abort(413)
    try:
        event_id, stored = webhooks.receive(body, request.headers.get("Stripe-Signature", ""))
    except (webhooks.BadEvent, webhooks.ProviderBusy) as exc:
        db.session.rollback()
        return jsonify(error=str(exc)), exc.status
    db.session.commit()
    return jsonify(received=event_id, duplicate=not stored), 200


csrf.exempt(webhook)
limiter.exempt(hooks, flags=ExemptionScope.APPLICATION)
