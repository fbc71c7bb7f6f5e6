"""Account security: confirm it is you, the security page, sessions and devices, the security log, email change."""
from __future__ import annotations

from flask import abort, request, url_for
from flask_login import current_user, login_required
from wtforms import PasswordField, StringField
from wtforms.validators import Length

from coach.accounts import devices, reauth, security_log, service
from coach.blueprints.accounts import bp
from coach.blueprints.accounts.views import safe_next
from coach.blueprints.forms import ActionForm, BaseForm, require_action_form
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
        confirmed = reauth.confirm_identity(current_user, form.password.data or "", (form.code.data or "").strip())
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
    return render("accounts/security/index.html", sessions=service.live_sessions(current_user),
                  log=security_log.page(current_user.id, None, RECENT_LOG_LINES), label=security_log.label,
                  describe_device=devices.describe)


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
