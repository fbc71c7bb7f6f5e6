"""Passkeys over HTTP: the JSON steps of the WebAuthn ceremonies (options, then the browser's answer) that
``static/js/passkeys.js`` drives, and the management forms (rename, remove) of the security page's section.

Each ceremony's challenge waits in the signed session cookie for ``CHALLENGE_TTL`` and is taken out (and marked
used) by its answer, so it works once. The JSON endpoints answer ``{"redirect": url}`` on success and
``{"error": message}`` with a 4xx otherwise; the CSRF token comes in the ``X-CSRFToken`` header and the app's
cross-site check applies as to every POST.
"""
from __future__ import annotations

import time
import uuid
from functools import wraps
from urllib.parse import urlsplit

from flask import current_app, flash, jsonify, request, session, url_for
from flask_login import current_user, login_required
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from coach.accounts import devices, passkeys, security_log, service
from coach.accounts.passkeys import CHALLENGE_TTL, NAME_MAX, PasskeyError, RelyingParty
from coach.blueprints.accounts import bp
from coach.blueprints.accounts.views import safe_next
from coach.blueprints.auth import fresh_auth_required, landing_url, start_session
from coach.blueprints.forms import BaseForm, attempt, require_action_form
from coach.errors import DomainError
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.platform.ratelimit import LOGIN_PER_IP, limiter


class PasskeyNameForm(BaseForm):
    name = StringField("Name", validators=[DataRequired(message="Give the passkey a name."),
                                           Length(max=NAME_MAX, message=f"Use at most {NAME_MAX} characters.")])


def relying_party() -> RelyingParty:
    """The relying party: ``WEBAUTHN_RP_ID`` / ``WEBAUTHN_ORIGIN``, else this request's host name and origin."""
    config = current_app.config
    return RelyingParty(id=config.get("WEBAUTHN_RP_ID") or urlsplit(request.host_url).hostname or "localhost",
                        origin=config.get("WEBAUTHN_ORIGIN") or f"{request.scheme}://{request.host}")


def _keep_challenge(purpose: str, challenge: bytes) -> None:
    session[f"passkey_{purpose}"] = {"challenge": bytes_to_base64url(challenge),
                                     "until": time.time() + CHALLENGE_TTL.total_seconds()}


def _take_challenge(purpose: str) -> bytes:
    """This ceremony's challenge, taken out of the session (it works once), or a clear refusal."""
    kept = session.pop(f"passkey_{purpose}", None)
    if not isinstance(kept, dict) or not isinstance(kept.get("challenge"), str):
        raise PasskeyError("No passkey request is waiting (it was used already, or the page is old). Try again.")
    if not isinstance(kept.get("until"), (int, float)) or kept["until"] < time.time():
        raise PasskeyError("The passkey request expired. Try again.")
    challenge = base64url_to_bytes(kept["challenge"])
    passkeys.consume_challenge(challenge)
    return challenge


def _body() -> dict:
    """The JSON body of an answer: ``{"credential": {...}, "name": "..."}``, or a clear 400."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("credential"), dict):
        raise PasskeyError("Send the passkey's answer as JSON: {\"credential\": ...}.")
    return body


def json_steps(need: str = "anyone"):
    """A JSON step of a ceremony: a refused request is ``{"error": ...}`` with its status (never an HTML page
    the script cannot read); ``need`` is ``"anyone"``, ``"user"`` (signed in) or ``"fresh"`` (signed in and
    confirmed in the last 10 minutes: adding a way to sign in is as sensitive as changing the password)."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if need != "anyone" and not current_user.is_authenticated:
                return jsonify(error="Log in first.", redirect=url_for("accounts.login")), 401
            if need == "fresh" and not service.recently_authenticated(current_user):
                flash("Confirm it is you to add a passkey.", "info")
                return jsonify(error="Confirm it is you first.",
                               redirect=url_for("accounts.reauthenticate", next=url_for("accounts.security"))), 403
            try:
                return view(*args, **kwargs)
            except DomainError as exc:
                db.session.rollback()
                return jsonify(error=str(exc)), exc.status

        return wrapper

    return decorate


def _failed(response) -> bool:
    return response.status_code in (400, 403)


@bp.app_template_global()
def my_passkeys() -> list:
    """The signed-in person's passkeys, for the security page's section (rendered by another view's page)."""
    return passkeys.list_passkeys(current_user.id) if current_user.is_authenticated else []


# --- adding and managing ---------------------------------------------------------------------------------

@bp.get("/account/passkeys")
@login_required
def passkeys_page():
    """The passkeys section on a page of its own (where a rename that was refused is shown)."""
    return render("accounts/security/passkeys.html", form=PasskeyNameForm(formdata=None), renaming=None)


@bp.post("/account/passkeys/options")
@json_steps("fresh")
def passkey_registration_options():
    """Step 1 of adding a passkey: the options for ``navigator.credentials.create()``."""
    options, challenge = passkeys.registration_options(current_user, relying_party())
    _keep_challenge("register", challenge)
    return jsonify(options)


@bp.post("/account/passkeys/verify")
@json_steps("fresh")
def passkey_registration_verify():
    """Step 2 of adding a passkey: the authenticator's new credential, kept once verified."""
    body = _body()
    name = body.get("name") if isinstance(body.get("name"), str) else ""
    passkey = passkeys.register(current_user, relying_party(), _take_challenge("register"), body["credential"],
                                name, default_name=devices.describe(request.user_agent.string))
    db.session.commit()
    flash(f"Passkey \u201c{passkey.name}\u201d added. You can sign in with it instead of your password.", "success")
    return jsonify(redirect=url_for("accounts.security") + "#passkeys")


@bp.post("/account/passkeys/<uuid:passkey_id>/rename")
@login_required
def rename_passkey(passkey_id: uuid.UUID):
    """Rename one of my passkeys."""
    form = PasskeyNameForm()
    if form.validate_on_submit() and attempt(form, passkeys.rename, current_user, passkey_id, form.name.data):
        db.session.commit()
        flash("Passkey renamed.", "success")
        return redirect_after_post(url_for("accounts.security") + "#passkeys")
    passkeys.get_passkey(current_user, passkey_id)  # another person's passkey is a 404, not a form error
    return render("accounts/security/passkeys.html", status=422, form=form, renaming=passkey_id)


@bp.post("/account/passkeys/<uuid:passkey_id>/remove")
@fresh_auth_required
def remove_passkey(passkey_id: uuid.UUID):
    """Remove one of my passkeys (after confirming it is me): it no longer signs in."""
    require_action_form()
    passkeys.remove(current_user, passkey_id)
    db.session.commit()
    flash("Passkey removed. It no longer signs you in; you may also delete it from your device.", "success")
    return redirect_after_post(url_for("accounts.security") + "#passkeys")


# --- signing in and confirming identity ----------------------------------------------------------------------

@bp.post("/login/passkey/options")
@json_steps()
def passkey_login_options():
    """Step 1 of signing in with a passkey: options that let the browser offer any passkey it has for us."""
    options, challenge = passkeys.authentication_options(relying_party())
    _keep_challenge("signin", challenge)
    return jsonify(options)


@bp.post("/login/passkey/verify")
@limiter.limit(LOGIN_PER_IP, methods=["POST"], deduct_when=_failed, scope="passkey-login-ip")
@json_steps()
def passkey_login_verify():
    """Step 2 of signing in with a passkey: a verified answer signs its owner in, no password or code needed."""
    user = passkeys.authenticate(relying_party(), _take_challenge("signin"), _body()["credential"])
    passkeys.record_sign_in(user)
    start_session(user, second_factor="passkey")  # commits
    return jsonify(redirect=safe_next(landing_url(user)))


@bp.post("/account/confirm/passkey/options")
@json_steps("user")
def passkey_reauth_options():
    """Step 1 of confirming it is me with a passkey: only my own passkeys are allowed."""
    options, challenge = passkeys.authentication_options(relying_party(), current_user)
    _keep_challenge("reauth", challenge)
    return jsonify(options)


@bp.post("/account/confirm/passkey/verify")
@limiter.limit(LOGIN_PER_IP, methods=["POST"], deduct_when=_failed, scope="passkey-reauth-ip")
@json_steps("user")
def passkey_reauth_verify():
    """Step 2 of confirming it is me with a passkey: the session counts as freshly signed in for 10 minutes."""
    passkeys.authenticate(relying_party(), _take_challenge("reauth"), _body()["credential"],
                          expected_user_id=current_user.id)
    service.mark_reauthenticated(current_user)
    security_log.record(current_user.id, "reauth.succeeded", method="passkey")
    db.session.commit()
    return jsonify(redirect=safe_next(url_for("accounts.security")))
