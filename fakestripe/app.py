"""The fake provider's HTTP side: Stripe's API paths for the real client, the hosted checkout page, /_fake/.

Requests are form-encoded as the ``stripe`` client sends them; answers are Stripe's JSON objects, errors
``{"error": {"type", "message", "code"}}`` with 4xx statuses. Every API call needs a bearer key (any
``sk_test_...``); a POST with an ``Idempotency-Key`` seen before gets the first answer again.
"""
from __future__ import annotations

import json

from babel.numbers import format_currency, get_currency_precision
from flask import Flask, Response, abort, redirect, render_template_string, request

from fakestripe.params import BadParam, decode
from fakestripe.store import FakeError, Store, public

# The page names an empty icon: without one the browser asks for /favicon.ico and logs its 404.
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · Fake payment provider</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#222}
.banner{background:#fff3cd;border:1px solid #e0c36b;padding:.6rem .8rem;border-radius:.4rem}
table{width:100%;border-collapse:collapse;margin:1rem 0}td{padding:.3rem 0}td.amount{text-align:right}
.total td{border-top:1px solid #999;font-weight:bold}.buttons{display:flex;gap:1rem}
button{font-size:1rem;padding:.6rem 1.2rem;border-radius:.4rem;border:1px solid #555;cursor:pointer}
button.pay{background:#1a7f37;color:#fff;border-color:#1a7f37}.error{color:#b00020}
</style></head>
<body><p class="banner" role="note"><strong>Fake payment provider — no real money.</strong>
This page stands in for Stripe Checkout in development and tests.</p>
{{ body|safe }}</body></html>"""

CHECKOUT = """<h1>{{ 'Subscribe' if session.mode == 'subscription' else 'Pay' }}</h1>
{% if session.customer_email %}<p>Paying as {{ session.customer_email }}</p>{% endif %}
<table><tbody>
{% for line in lines %}<tr><td>{{ line.description }}{% if line.quantity > 1 %} × {{ line.quantity }}{% endif %}
{% if line.price.recurring %} (every {{ line.price.recurring.interval }}){% endif %}</td>
<td class="amount">{{ line.shown }}</td></tr>{% endfor %}
<tr class="total"><td>Total</td><td class="amount" data-testid="amount">{{ total }}</td></tr>
</tbody></table>
<div class="buttons">
<form method="post" action="/checkout/{{ session.id }}/pay">
<button class="pay" type="submit">Pay {{ total }}</button></form>
<form method="post" action="/checkout/{{ session.id }}/decline"><button type="submit">Decline</button></form>
</div>
{% if session.cancel_url %}<p><a href="{{ session.cancel_url }}">Cancel and go back</a></p>{% endif %}"""

DECLINED = """<h1 class="error">Your card was declined</h1>
<p>Nothing was charged.</p>
<p><a href="/checkout/{{ session.id }}">Try again</a>{% if session.cancel_url %} ·
<a href="{{ session.cancel_url }}">Back to the shop</a>{% endif %}</p>"""

CLOSED = """<h1>This checkout is {{ session.status }}</h1>
<p>{{ 'It was paid already.' if session.status == 'complete' else 'It can no longer be paid.' }}</p>
{% if session.cancel_url %}<p><a href="{{ session.cancel_url }}">Back to the shop</a></p>{% endif %}"""


def amount_text(minor: int, currency: str) -> str:
    """``minor`` units of ``currency`` as a person reads them (JPY 5000 → ¥5,000; EUR 5000 → €50.00)."""
    code = currency.upper()
    return format_currency(minor / 10 ** get_currency_precision(code), code, locale="en")


def create_app(store: Store) -> Flask:
    app = Flask("fakestripe")
    app.config["FAKE_STORE"] = store

    def fail(exc: FakeError) -> Response:
        return Response(json.dumps(exc.body()), status=exc.status, mimetype="application/json")

    def reply(obj: dict, status: int = 200) -> Response:
        return Response(json.dumps(_clean(obj)), status=status, mimetype="application/json",
                        headers={"Request-Id": "req_fake"})

    def page(title: str, body: str, status: int = 200, **values) -> Response:
        inner = render_template_string(body, **values)
        return Response(render_template_string(PAGE, title=title, body=inner), status=status,
                        mimetype="text/html")

    def api(handler):
        """Key check, Stripe's error shape, and the idempotent replay of POSTs."""
        def view(**kwargs):
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
                return fail(FakeError("You did not provide an API key.", status=401,
                                      type="invalid_request_error"))
            key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
            if not key:
                return answer(None, **kwargs)
            with store.lock:  # a retry racing its first attempt waits for it and gets its answer
                return answer(key, **kwargs)

        def answer(key, **kwargs):
            signature = f"{request.method} {request.path} {request.get_data(as_text=True)}"
            if key:
                seen = store.idempotent.get(key)
                if seen is not None:
                    if seen[0] != signature:
                        return fail(FakeError("Keys for idempotent requests can only be used with the same "
                                              "parameters they were first used with.", type="idempotency_error",
                                              code="idempotency_key_in_use"))
                    return Response(json.dumps(seen[2]), status=seen[1], mimetype="application/json",
                                    headers={"Idempotent-Replayed": "true"})
            try:
                params = decode(request.form.items(multi=True)) if request.method == "POST" else \
                    decode(request.args.items(multi=True))
                status, body = 200, _clean(handler(params, **kwargs))
            except BadParam as exc:
                status, body = 400, FakeError(str(exc), param=exc.param).body()
            except FakeError as exc:
                status, body = exc.status, exc.body()
            if key:
                store.idempotent[key] = (signature, status, body)
            return Response(json.dumps(body), status=status, mimetype="application/json")
        view.__name__ = handler.__name__
        return view

    def route(rule, methods, handler):
        app.add_url_rule(rule, view_func=api(handler), methods=methods)

    # --- the API the stripe client calls ---------------------------------------------------------

    def create_session(p):
        return store.create_checkout_session(p)
    route("/v1/checkout/sessions", ["POST"], create_session)

    def retrieve_session(p, session_id):
        return store.retrieve_checkout_session(session_id)
    route("/v1/checkout/sessions/<session_id>", ["GET"], retrieve_session)

    def expire_session(p, session_id):
        return store.expire_checkout_session(session_id)
    route("/v1/checkout/sessions/<session_id>/expire", ["POST"], expire_session)

    def session_line_items(p, session_id):
        store.retrieve_checkout_session(session_id)
        return {"object": "list", "data": store.session_lines(session_id), "has_more": False,
                "url": f"/v1/checkout/sessions/{session_id}/line_items"}
    route("/v1/checkout/sessions/<session_id>/line_items", ["GET"], session_line_items)

    def create_refund(p):
        return store.create_refund(p)
    route("/v1/refunds", ["POST"], create_refund)

    def retrieve(kind):
        def handler(p, object_id):
            with store.lock:
                return store.get(object_id, kind)
        handler.__name__ = f"retrieve_{kind}"
        return handler
    for path, kind in (("refunds", "refund"), ("payment_intents", "payment_intent"), ("charges", "charge"),
                       ("invoices", "invoice"), ("customers", "customer"), ("disputes", "dispute"),
                       ("events", "event")):
        route(f"/v1/{path}/<object_id>", ["GET"], retrieve(kind))

    def subscription(p, sub_id):
        if request.method == "GET":
            return store.retrieve_subscription(sub_id)
        if request.method == "DELETE":
            return store.cancel_subscription(sub_id)
        return store.update_subscription(sub_id, p)
    route("/v1/subscriptions/<sub_id>", ["GET", "POST", "DELETE"], subscription)

    def subscription_cancel(p, sub_id):
        return store.cancel_subscription(sub_id)
    route("/v1/subscriptions/<sub_id>/cancel", ["POST"], subscription_cancel)

    @app.errorhandler(404)
    def not_found(_exc):
        if request.path.startswith("/v1/"):
            return fail(FakeError(f"Unrecognized request URL ({request.method}: {request.path}). The fake "
                                  f"payment provider implements only what Coach uses.", status=404))
        return page("Not found", "<h1>Not found</h1>", status=404)

    @app.errorhandler(405)
    def not_allowed(_exc):
        return fail(FakeError(f"Unrecognized request URL ({request.method}: {request.path}).", status=404))

    # --- the hosted checkout page ----------------------------------------------------------------

    def _session_or_404(session_id):
        try:
            return store.retrieve_checkout_session(session_id)
        except FakeError:
            abort(404)

    @app.get("/checkout/<session_id>")
    def checkout_page(session_id):
        session = _session_or_404(session_id)
        if session["status"] != "open":
            return page("Checkout closed", CLOSED, status=410, session=session)
        lines = [{**line, "shown": amount_text(line["amount_total"], line["currency"])}
                 for line in store.session_lines(session_id)]
        return page("Checkout", CHECKOUT, session=session, lines=lines,
                    total=amount_text(session["amount_total"], session["currency"]))

    @app.post("/checkout/<session_id>/pay")
    def checkout_pay(session_id):
        session = _session_or_404(session_id)
        if session["status"] == "complete":
            return redirect(_success(session), 303)
        try:
            store.pay(session_id)
        except FakeError:
            return page("Checkout closed", CLOSED, status=410, session=session)
        return redirect(_success(session), 303)

    @app.post("/checkout/<session_id>/decline")
    def checkout_decline(session_id):
        session = _session_or_404(session_id)
        try:
            store.decline(session_id)
        except FakeError:
            return page("Checkout closed", CLOSED, status=410, session=session)
        return page("Card declined", DECLINED, status=402, session=session)

    # --- test control ----------------------------------------------------------------------------

    def control(rule, handler):
        def view(**kwargs):
            values = request.get_json(silent=True) or request.form.to_dict()
            try:
                return reply(handler(values, **kwargs))
            except FakeError as exc:
                return fail(exc)
        view.__name__ = "fake_" + handler.__name__
        app.add_url_rule(rule, view_func=view, methods=["POST"])

    def renew(v, sub_id):
        return store.renew(sub_id, v.get("outcome", "paid"))
    control("/_fake/subscriptions/<sub_id>/renew", renew)

    def end_unpaid(v, sub_id):
        return store.end_unpaid(sub_id)
    control("/_fake/subscriptions/<sub_id>/end", end_unpaid)

    def dispute(v):
        amount = v.get("amount")
        return store.dispute(v.get("payment_intent", ""), None if amount in (None, "") else amount)
    control("/_fake/disputes", dispute)

    def pay(v, session_id):
        return store.pay(session_id)
    control("/_fake/checkout/<session_id>/pay", pay)

    def lapse(v, session_id):
        return store.lapse(session_id)
    control("/_fake/checkout/<session_id>/lapse", lapse)

    def decline(v, session_id):
        return store.decline(session_id)
    control("/_fake/checkout/<session_id>/decline", decline)

    def webhook(v):
        store.target = v.get("url") or None
        return {"url": store.target}
    control("/_fake/webhook", webhook)

    def resend(v, event_id):
        store.resend(event_id)
        return {"resent": event_id}
    control("/_fake/events/<event_id>/resend", resend)

    def reset(v):
        store.reset()
        return {"reset": True}
    control("/_fake/reset", reset)

    @app.get("/_fake/events")
    def fake_events():
        return reply({"object": "list", "data": store.sent()})

    return app


def _success(session: dict) -> str:
    return session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in public(value).items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
