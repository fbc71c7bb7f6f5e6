"""Two-factor: the second sign-in step (a code from the app, or a recovery code), setting up and turning off an
authenticator app, recovery codes.

Between a correct password (or an emailed link) and the code, nobody is signed in: the signed session cookie holds
only the pending step (who, since when, what they proved, where to go next) for ``PENDING_TTL``.
"""
from __future__ import annotations

import base64
import time
import uuid

from flask import current_app, flash, session, url_for
from flask_login import current_user, login_required
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from coach.accounts import alerts, service, twofactor
from coach.accounts.models import User
from coach.blueprints.accounts import bp
from coach.blueprints.auth import fresh_auth_required, landing_url, start_session
from coach.blueprints.forms import ActionForm, BaseForm, attempt, require_action_form
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.platform import ratelimit
from coach.platform.sealing import seal, unseal
from coach.tenancy import second_factor_required_by, to_enrolment

PENDING = "second_step"
PENDING_TTL = 300  # seconds between the password and the code
SHOWN_CODES = "new_recovery_codes"
SHOWN_CODES_TTL = 600


class CodeForm(BaseForm):
    code = StringField("Code from your authenticator app",
                       validators=[DataRequired(message="Enter the 6-digit code."), Length(max=12)])


class RecoveryForm(BaseForm):
    code = StringField("Recovery code", validators=[DataRequired(message="Enter one of your recovery codes."),
                                                    Length(max=40)])


class DisableForm(BaseForm):
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password."),
                                                     Length(max=128)])
    code = StringField("Code from your app, or a recovery code",
                       validators=[DataRequired(message="Enter a code."), Length(max=40)])


# --- the second sign-in step ----------------------------------------------------------------------------

def finish_sign_in(user: User, proved: str, next_url: str, message: str | None = None):
    """After a password, an emailed link, a reset or a confirmed sign-up: open the session, or, for a person
    with two-factor on, ask for the code first (the session opens once it is given). ``message`` is flashed
    once the person is signed in. A member of an organization that requires a second factor they lack goes
    to set-up."""
    if twofactor.is_enabled(user):
        session.clear()  # whoever was signed in on this browser is no longer
        session[PENDING] = {"user_id": str(user.id), "at": time.time(), "proved": proved, "next": next_url,
                            "message": message}
        return redirect_after_post(url_for("accounts.login_verify"))
    start_session(user)
    if message:
        flash(message, "success")
    org = second_factor_required_by(user)
    return to_enrolment(org) if org is not None else redirect_after_post(next_url)


def tell_password_lockout(email: str) -> None:
    """The account's wrong passwords (from everywhere) just reached the limit: tell its person, once per window."""
    user = service.find_user_by_email(email) if len(email) <= 254 else None
    if user is not None:
        alerts.notice_lockout(user, "password", ratelimit.limit_window("RATELIMIT_LOGIN_PER_ACCOUNT"))
        db.session.commit()


def _pending_user() -> User | None:
    """The person half signed in on this browser, while the step is fresh."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or time.time() - float(pending.get("at", 0)) > PENDING_TTL:
        return None
    try:
        return db.session.get(User, uuid.UUID(str(pending.get("user_id"))))
    except ValueError:
        return None


def _pending_key() -> str:
    pending = session.get(PENDING)
    return f"second-step:{pending.get('user_id', '') if isinstance(pending, dict) else ''}"


def _expired():
    if session.pop(PENDING, None) is not None:
        flash("The sign-in took too long. Log in again.", "info")
    return redirect_after_post(url_for("accounts.login"))


def _second_step(template: str, form, check, second_factor: str):
    """The shared body of the code and recovery-code pages."""
    user = _pending_user()
    if user is None or not twofactor.is_enabled(user):
        return _expired()
    if form.validate_on_submit():
        if check(user, form.code.data):
            pending = session[PENDING]
            db.session.commit()
            start_session(user, second_factor=second_factor)  # the pending step goes with the old session
            if pending.get("message"):
                flash(pending["message"], "success")
            if second_factor == "recovery":
                left = twofactor.recovery_codes_left(user)
                flash(f"Recovery code used: {left} left. Make new ones on your security page if you are running "
                      "low.", "info")
            return redirect_after_post(pending.get("next") or landing_url(user))
        if ratelimit.second_step_exhausted(_pending_key()):
            alerts.notice_lockout(user, "code", ratelimit.limit_window("RATELIMIT_TWOFACTOR_PER_ACCOUNT"))
        db.session.commit()  # the failure stays in the person's security log
        form.code.errors.append("That code is not correct." if second_factor == "totp"
                                else "That recovery code is not correct or was already used.")
    return render(template, "form", status=422 if form.errors else 200, form=form)


limit_second_step = ratelimit.second_step_limits(_pending_key)


@bp.route("/login/verify", methods=["GET", "POST"])
@limit_second_step
def login_verify():
    """The second sign-in step: the code from the authenticator app."""
    return _second_step("accounts/login_verify.html", CodeForm(), twofactor.check_code, "totp")


@bp.route("/login/recovery", methods=["GET", "POST"])
@limit_second_step
def login_recovery():
    """The second sign-in step with a recovery code instead (each works once)."""
    return _second_step("accounts/twofactor_recovery_login.html", RecoveryForm(), twofactor.use_recovery_code,
                        "recovery")


# --- setting up, recovery codes, turning off ------------------------------------------------------------

def _security_home() -> str:
    return url_for("accounts.security" if "accounts.security" in current_app.view_functions
                   else "accounts.two_factor_setup")


def _show_codes_once(codes: list[str]):
    """Keep the new codes (sealed) for the page that shows them, once, and go there."""
    session[SHOWN_CODES] = {"codes": seal("\n".join(codes)), "at": time.time()}
    return redirect_after_post(url_for("accounts.recovery_codes"))


@bp.route("/account/two-factor", methods=["GET", "POST"])
@login_required
@fresh_auth_required
def two_factor_setup():
    """Set up an authenticator app (scan, then confirm with a code); once on, what can be changed."""
    user = current_user._get_current_object()
    if twofactor.is_enabled(user):
        return render("accounts/twofactor_setup.html", "disable_form", two_factor=twofactor.status(user),
                      disable_form=DisableForm(formdata=None), action_form=ActionForm())
    form = CodeForm()
    if form.validate_on_submit():
        done = attempt(form, twofactor.confirm_enrolment, user, form.code.data)
        if done:
            db.session.commit()
            flash("Two-factor authentication is on. Keep your recovery codes somewhere safe.", "success")
            return _show_codes_once(done.value)
    enrolment = twofactor.begin_enrolment(user)
    db.session.commit()  # the pending secret is kept while the person scans it
    return render("accounts/twofactor_setup.html", "form", status=422 if form.errors or form.form_errors else 200,
                  form=form, enrolment=enrolment, two_factor=twofactor.status(user))


@bp.post("/account/two-factor/restart")
@login_required
@fresh_auth_required
def two_factor_restart():
    """A new key for a set-up that was not finished (the QR code was lost or scanned into the wrong app)."""
    require_action_form()
    done = attempt(None, twofactor.begin_enrolment, current_user._get_current_object(), restart=True)
    if done:
        db.session.commit()
    return redirect_after_post(url_for("accounts.two_factor_setup"))


@bp.get("/account/two-factor/recovery-codes")
@login_required
def recovery_codes():
    """The recovery codes just made: shown once (reloading the page shows them no more), with a download."""
    kept = session.pop(SHOWN_CODES, None)
    codes = []
    if isinstance(kept, dict) and time.time() - float(kept.get("at", 0)) <= SHOWN_CODES_TTL:
        try:
            codes = unseal(kept["codes"]).split("\n")
        except Exception:  # noqa: BLE001 (a key rotated meanwhile: the codes are gone, make new ones)
            codes = []
    text = "Coach recovery codes for {}\nEach code works once.\n\n{}\n".format(current_user.email, "\n".join(codes))
    download = "data:text/plain;charset=utf-8;base64," + base64.b64encode(text.encode()).decode()
    return render("accounts/twofactor_codes.html", codes=codes, download=download, back=_security_home(),
                  action_form=ActionForm())


@bp.post("/account/two-factor/recovery-codes")
@login_required
@fresh_auth_required
def regenerate_recovery_codes():
    """Replace the recovery codes (the old ones stop working)."""
    require_action_form()
    done = attempt(None, twofactor.regenerate_recovery_codes, current_user._get_current_object())
    if not done:
        flash(str(done.error), "error")
        return redirect_after_post(_security_home())
    db.session.commit()
    return _show_codes_once(done.value)


@bp.post("/account/two-factor/disable")
@login_required
@fresh_auth_required
def two_factor_disable():
    """Turn two-factor off: the password and a current code."""
    user = current_user._get_current_object()
    if not twofactor.is_enabled(user):  # already off: the page to show the form again on is the set-up
        flash("Two-factor authentication is already off.", "info")
        return redirect_after_post(url_for("accounts.two_factor_setup"))
    form = DisableForm()
    if form.validate_on_submit() and attempt(form, twofactor.disable, user, form.password.data, form.code.data):
        db.session.commit()
        flash("Two-factor authentication is off. Your account is protected by your password only.", "info")
        return redirect_after_post(_security_home())
    return render("accounts/twofactor_setup.html", "disable_form", status=422, two_factor=twofactor.status(user),
                  disable_form=form, action_form=ActionForm())

