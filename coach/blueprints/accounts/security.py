"""Account security: confirm it is you, the security page, sessions and devices, the security log, email change."""
from __future__ import annotations

from flask import abort, flash, request, session, url_for
from flask_login import current_user, login_required, logout_user
from wtforms import PasswordField, StringField
from wtforms.validators import Length

from coach.accounts import devices, email_change, reauth, security_log, service, twofactor
from coach.blueprints.accounts import bp
from coach.blueprints.accounts.views import email_limit, safe_next
from coach.blueprints.auth import fresh_auth_required
from coach.blueprints.forms import ActionForm, BaseForm, attempt, email_field, require_action_form
from coach.extensions import db
from coach.htmx import redirect_after_post, render, swap_or_redirect
from coach.platform.ratelimit import LOGIN_PER_ACCOUNT_IP, LOGIN_PER_IP, failed_form, limiter

RECENT_LOG_LINES = 5


class ConfirmIdentityForm(BaseForm):
    password = PasswordField("Password", validators=[Length(max=128)])
    code = StringField("Or a code from your authenticator app", validators=[Length(max=20)])

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if valid and not (self.password.data or (self.code.data or "").strip()):
            self.password.errors.append("Enter your password.")
            return False
        return valid


def _reauth_key() -> str:
    """Wrong answers to "confirm it is you" for one account: refused past the login's per-account limit."""
    return f"reauth:{current_user.id if current_user.is_authenticated else ''}"


@bp.route("/account/confirm", methods=["GET", "POST"])
@login_required
@limiter.limit(LOGIN_PER_ACCOUNT_IP, key_func=_reauth_key, methods=["POST"], deduct_when=failed_form,
               scope="reauth-account")
@limiter.limit(LOGIN_PER_IP, methods=["POST"], deduct_when=failed_form, scope="reauth-ip")
def reauthenticate():
    """Confirm it is you (password, or a two-factor code) before a sensitive change; then back to ``next``."""
    form = ConfirmIdentityForm()
    if form.validate_on_submit():
        confirmed = reauth.confirm_identity(current_user._get_current_object(), form.password.data or "",
                                            (form.code.data or "").strip())
        db.session.commit()  # a failure stays in the security log
        if confirmed:
            return redirect_after_post(safe_next(url_for("accounts.security")))
        form.form_errors.append(reauth.WRONG)
    return render("accounts/security/confirm.html", "form", status=422 if form.errors or form.form_errors else 200,
                  form=form, next=safe_next(""), has_code=reauth.has_code(current_user))


@bp.get("/account/security")
@login_required
def security():
    """The security page: password, email, two-factor, passkeys, sessions and the latest log lines."""
    return render("accounts/security/index.html", **_hub())


# --- sessions and devices ----------------------------------------------------------------------------

@bp.get("/account/sessions")
@login_required
def sessions():
    """Where I am signed in: each live session's device, address, country, times and how it signed in."""
    return render("accounts/security/sessions.html", "session_list", devices=devices.devices(current_user),
                  form=ActionForm())


@bp.post("/account/sessions/<uuid:session_id>/revoke")
@login_required
def revoke_session(session_id):
    """Sign out one of my sessions (another device); someone else's session id is a 404."""
    require_action_form()
    ended = devices.end_session(current_user, session_id)
    if ended is None:
        abort(404, "No such session of yours: it may have ended already.")
    db.session.commit()
    return swap_or_redirect("accounts/security/sessions.html", "session_list", url_for("accounts.sessions"),
                            f"Signed out {devices.describe(ended.user_agent)}.",
                            context=lambda: {"devices": devices.devices(current_user), "form": ActionForm()})


@bp.post("/account/sessions/revoke-others")
@login_required
def revoke_other_sessions():
    """Sign out everywhere else: every session but this one."""
    require_action_form()
    count = devices.end_other_sessions(current_user)
    db.session.commit()
    message = f"Signed out {count} other session{'' if count == 1 else 's'}." if count else "No other sessions."
    return swap_or_redirect("accounts/security/sessions.html", "session_list", url_for("accounts.sessions"),
                            message, context=lambda: {"devices": devices.devices(current_user), "form": ActionForm()})


# --- the security log ---------------------------------------------------------------------------------

@bp.get("/account/security/log")
@login_required
def security_log_page():
    """My security log, newest first, 50 lines a page (``after``: the cursor of the "More" link)."""
    log = security_log.page(current_user.id, request.args.get("after") or None)
    return render("accounts/security/log.html", "log_lines", log=log, label=security_log.label,
                  describe_device=devices.describe)


# --- email change -------------------------------------------------------------------------------------

class EmailChangeForm(BaseForm):
    email = email_field("New email address")


def _hub(**context) -> dict:
    """What the security page shows (its email form replaced by ``context``'s when re-shown with messages)."""
    return {"sessions": service.live_sessions(current_user),
            "log": security_log.page(current_user.id, None, RECENT_LOG_LINES), "label": security_log.label,
            "describe_device": devices.describe, "two_factor": twofactor.status(current_user),
            "pending_email": email_change.pending(current_user), "email_form": EmailChangeForm(formdata=None),
            "action_form": ActionForm(), **context}


@bp.post("/account/email")
@login_required
@fresh_auth_required
@email_limit
def change_email():
    """Ask to sign in with another address: a link goes to it, a notice to the current one."""
    form = EmailChangeForm()
    if form.validate_on_submit() and attempt(form, email_change.request_change, current_user, form.email.data):
        db.session.commit()
        flash(f"We sent a link to {service.normalize_email(form.email.data)}. Your address changes when you open "
              "it (within 24 hours).", "info")
        return redirect_after_post(url_for("accounts.security"))
    return render("accounts/security/index.html", "email_form", status=422, **_hub(email_form=form))


@bp.post("/account/email/cancel")
@login_required
def cancel_email_change():
    """Drop the change still waiting for its confirmation link."""
    require_action_form()
    email_change.cancel(current_user)
    db.session.commit()
    flash("The email change is cancelled; the link sent for it no longer works.", "info")
    return redirect_after_post(url_for("accounts.security"))


@bp.route("/account/email/confirm/<token>", methods=["GET", "POST"])
def confirm_email_change(token: str):
    """The link sent to the new address: a button (mail scanners open links) whose POST makes the change."""
    if request.method == "GET":
        done = attempt(None, email_change.check_confirm_link, token)
    else:
        keep = current_user.auth_session_id if current_user.is_authenticated else None
        done = attempt(None, email_change.confirm_change, token, keep)
        if done:
            db.session.commit()
            flash(f"Your email address is now {done.value.email}.", "success")
            signed_in = current_user.is_authenticated and current_user.id == done.value.id
            return redirect_after_post(url_for("accounts.security" if signed_in else "accounts.login"))
    if not done:
        return render("accounts/security/email_link.html", status=done.status, error=str(done.error),
                      form=None, kind="confirm")
    return render("accounts/security/email_link.html", form=ActionForm(), kind="confirm", change=done.value,
                  token=token)


@bp.route("/account/email/undo/<token>", methods=["GET", "POST"])
def undo_email_change(token: str):
    """The undo link sent to the old address: a button whose POST puts it back and signs out everywhere."""
    if request.method == "GET":
        done = attempt(None, email_change.check_undo_link, token)
    else:
        done = attempt(None, email_change.undo_change, token)
        if done:
            db.session.commit()
            if current_user.is_authenticated and current_user.id == done.value.id:
                logout_user()
                session.clear()
            return render("accounts/security/email_link.html", form=None, kind="undone", user=done.value)
    if not done:
        return render("accounts/security/email_link.html", status=done.status, error=str(done.error),
                      form=None, kind="undo")
    return render("accounts/security/email_link.html", form=ActionForm(), kind="undo", change=done.value,
                  token=token)
