"""Sign-up, log in and out, password reset, profile."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, redirect, request, session, url_for
from flask_login import current_user, login_required, logout_user

from coach.accounts import service
from coach.accounts.service import AccountError
from coach.blueprints.accounts import bp
from coach.blueprints.accounts.forms import (
    ChangePasswordForm,
    ForgotPasswordForm,
    LoginForm,
    ProfileForm,
    ResetPasswordForm,
    SignInLinkForm,
    SignupForm,
)
from coach.blueprints.accounts.twofactor import finish_sign_in, tell_password_lockout
from coach.blueprints.auth import fresh_auth_required, landing_url, start_session
from coach.blueprints.forms import ActionForm, attempt
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.platform.ratelimit import (
    EMAIL_PER_IP,
    LOGIN_PER_ACCOUNT_IP,
    LOGIN_PER_IP,
    SIGNIN_LINK_PER_ACCOUNT,
    count_failed_login,
    failed_form,
    limiter,
    login_account_ip_key,
    signin_link_key,
    slow_down_login,
)


def safe_next(default: str = "/") -> str:
    """The ``next`` target if it stays on this site, else ``default``."""
    target = request.values.get("next", "")
    # Control characters are never in a link of ours, and a newline would break the Location header (a 500).
    if len(target) > 2000 or not target.isprintable():
        return default
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or parts.scheme or parts.netloc or "\\" in target:
        return default
    return target


def _form_accepted(response) -> bool:
    """Count a request only when it went through (and so may have sent an email)."""
    return response.status_code in (204, 303)


# Each accepted sign-up or reset request can send an email: an IP may not flood inboxes through us.
# Shared: sign-up and reset draw on one budget per IP (a plain limit would give each form its own).
email_limit = limiter.shared_limit(EMAIL_PER_IP, "email-ip", methods=["POST"], deduct_when=_form_accepted)


@bp.route("/signup", methods=["GET", "POST"])
@email_limit
def signup():
    """Sign up: we email a confirmation link; the account exists once it is opened."""
    form = SignupForm()
    if form.validate_on_submit():
        service.request_signup(form.email.data, form.password.data, form.display_name.data, form.timezone.data)
        db.session.commit()
        return redirect_after_post(url_for("accounts.check_email", email=service.normalize_email(form.email.data)))
    if not form.is_submitted():
        form.timezone.preselect(request.headers.get("Accept-Language"))
    return render("accounts/signup.html", "form", status=422 if form.errors else 200, form=form)


@bp.get("/signup/sent")
def check_email():
    """Tell the visitor to look in their inbox (same text whether or not the email had an account)."""
    return render("accounts/check_email.html", email=request.args.get("email", "")[:254])


@bp.route("/signup/confirm/<token>", methods=["GET", "POST"])
def confirm_signup(token: str):
    """Confirm an email address; the POST creates the account and logs in."""
    if request.method == "GET":
        return render("accounts/confirm.html", token=token)
    continue_to = service.signup_continues_to(token)  # a booking started from the directory, if any
    try:
        user = service.confirm_signup(token)
    except AccountError as exc:
        # Kept, not rolled back: the used-up sign-up stays deleted when its address already has an account.
        db.session.commit()
        return render("accounts/confirm.html", status=410, token=None, error=str(exc))
    db.session.commit()
    if continue_to:
        return finish_sign_in(user, "signup", continue_to, "Welcome to Coach! Your account is ready: carry on booking.")
    return finish_sign_in(user, "signup", url_for("orgs.picker"),
                          "Welcome to Coach! Create your organization or open an invitation to get started.")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(LOGIN_PER_ACCOUNT_IP, key_func=login_account_ip_key, methods=["POST"], deduct_when=failed_form,
               scope="login-account-ip")
@limiter.limit(LOGIN_PER_IP, methods=["POST"], deduct_when=failed_form, scope="login-ip")
def login():
    """Log in with email and password."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(landing_url(current_user)))
    form = LoginForm()
    if form.validate_on_submit():
        slow_down_login(form.email.data)
        user = service.authenticate(form.email.data, form.password.data)
        if user is not None:
            db.session.commit()
            return finish_sign_in(user, "password", safe_next(landing_url(user)))
        db.session.commit()  # the failed attempt stays in the audit trail
        if count_failed_login(form.email.data):
            tell_password_lockout(form.email.data)
        form.password.errors.append("Email or password is not correct.")
    return render("accounts/login.html", "form", status=422 if form.errors else 200, form=form,
                  next=safe_next(""))


@bp.route("/login/link", methods=["GET", "POST"])
@email_limit
@limiter.limit(SIGNIN_LINK_PER_ACCOUNT, key_func=signin_link_key, methods=["POST"], deduct_when=_form_accepted,
               scope="signin-link-account")
def sign_in_link():
    """Ask for a sign-in link by email; the answer is the same whether or not the email has an account."""
    form = SignInLinkForm()
    if form.validate_on_submit():
        service.request_sign_in_link(form.email.data)
        db.session.commit()
        flash("If an account uses that address, a sign-in link is on its way. It works once, for a limited time.",
              "info")
        return redirect_after_post(url_for("accounts.login"))
    return render("accounts/sign_in_link.html", "form", status=422 if form.errors else 200, form=form)


@bp.route("/login/link/<token>", methods=["GET", "POST"])
def use_sign_in_link(token: str):
    """Open an emailed sign-in link: a button (mail scanners fetch links), whose POST signs in once."""
    if request.method == "POST":
        done = attempt(None, service.use_sign_in_link, token)  # the app's CSRF check came first
        if done:
            db.session.commit()
            return finish_sign_in(done.value, "link", landing_url(done.value))
    else:
        done = attempt(None, service.check_sign_in_link, token)
    if not done:
        return render("accounts/use_sign_in_link.html", "form", status=410, form=None, error=str(done.error))
    return render("accounts/use_sign_in_link.html", "form", form=ActionForm(), token=token)


@bp.post("/logout")
def logout():
    """Log out: this session ends for good, wherever its cookie was copied to, and its sockets close."""
    if current_user.is_authenticated:
        service.revoke_session(current_user, current_user.auth_session_id)
        db.session.commit()
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect_after_post(url_for("accounts.login"))


@bp.route("/password/forgot", methods=["GET", "POST"])
@email_limit
def forgot_password():
    """Ask for a reset link; the answer is the same whether or not the email has an account."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        service.request_password_reset(form.email.data)
        db.session.commit()
        flash("If an account uses that address, a reset link is on its way. It works once, for a limited time.",
              "info")
        return redirect_after_post(url_for("accounts.login"))
    return render("accounts/forgot.html", "form", status=422 if form.errors else 200, form=form)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    """Choose a new password from an emailed link."""
    form = ResetPasswordForm()
    # A link that is not (or no longer) good shows why in place of the form, the check and the change alike.
    done = attempt(None, service.check_reset_token, token)
    if done:  # the new password is judged against this person's email and name
        form.password_user_inputs = (done.value.user.email, done.value.user.display_name)
    if done and form.validate_on_submit():
        done = attempt(None, service.reset_password, token, form.password.data)
        if done:
            db.session.commit()
            return finish_sign_in(done.value, "reset", url_for("orgs.picker"),
                                  "Your password is changed and you are logged in.")
    if not done:
        return render("accounts/reset.html", "form", status=410, form=None, error=str(done.error), token=token)
    return render("accounts/reset.html", "form", status=422 if form.errors else 200, form=form, token=token)


@bp.route("/profile", methods=["GET", "POST"])
@login_required
def profile():
    """Edit name, time zone and clock (12 or 24 hours)."""
    form = ProfileForm(obj=current_user)
    if form.validate_on_submit():
        service.update_profile(current_user, form.display_name.data, form.timezone.data)
        service.set_hour_cycle(current_user, form.hour_cycle.data)
        db.session.commit()
        clock = "12-hour clock (2:30 pm)" if current_user.hour_cycle == 12 else "24-hour clock (14:30)"
        flash(f"Profile saved. Times show in {current_user.timezone} on the {clock}.", "success")
        return redirect_after_post(url_for("accounts.profile"))
    return render("accounts/profile.html", "profile_form", status=422 if form.errors else 200, form=form,
                  password_form=ChangePasswordForm(formdata=None))


@bp.post("/profile/password")
@login_required
@fresh_auth_required
def change_password():
    """Change the password (the current one is required); other sessions end."""
    password_form = ChangePasswordForm()
    if password_form.validate_on_submit() and attempt(password_form, service.change_password, current_user,
                                                      password_form.current_password.data,
                                                      password_form.password.data):
        db.session.commit()
        start_session(current_user._get_current_object())
        flash("Password changed. Other sessions have been logged out.", "success")
        return redirect_after_post(url_for("accounts.profile"))
    return render("accounts/profile.html", "password_form", status=422,
                  form=ProfileForm(obj=current_user, formdata=None),
                  password_form=password_form)
