"""Form pieces and form handling shared by every blueprint."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from flask import abort
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import EmailField, PasswordField, StringField
from wtforms.widgets import HiddenInput, html_params
from wtforms.validators import DataRequired, Email, Length, ValidationError

from coach import clock
from coach.accounts import passwords
from coach.errors import DomainError
from coach.extensions import db
from coach.timezones import (
    MAX_INPUT,
    UNKNOWN,
    UTC_NAME,
    UnknownTimezone,
    canonical,
    is_valid_timezone,
    parse_timezone,
    picker_options,
    suggest_from_accept_language,
)

PASSWORD_RULES = [DataRequired(), Length(min=10, max=128, message="Use between 10 and 128 characters.")]


def hard_to_guess(form, field) -> None:
    """A new password must be hard to guess (zxcvbn, see accounts.passwords), judged against what an attacker
    knows of the person: the form's email and name, the signed-in person's, and ``form.password_user_inputs``
    (set by a view that knows whose password it is, such as a reset)."""
    if field.errors or not field.data:
        return  # too short or too long already says enough
    inputs = [form[name].data for name in ("email", "display_name") if name in form and form[name].data]
    inputs += list(getattr(form, "password_user_inputs", ()))
    if current_user and current_user.is_authenticated:
        inputs += [current_user.email, current_user.display_name]
    reason = passwords.problem(field.data, inputs)
    if reason:
        raise ValidationError(reason)


def email_field(label: str = "Email") -> EmailField:
    return EmailField(label, validators=[
        DataRequired(message="Enter your email address."),
        Length(max=254, message="An email address has at most 254 characters."),
        Email(message="Enter a valid email address.", check_deliverability=False),
    ])


def new_password_field(label: str = "Password") -> PasswordField:
    return PasswordField(label, validators=[*PASSWORD_RULES, hard_to_guess],
                         description="At least 10 characters. A few uncommon words make a strong one.")


class TimezonePicker:
    """The time-zone picker: a text box with a ``<datalist>`` of every zone labelled with its offset
    ("Europe/Berlin (UTC+01:00)"): browsers filter the list as one types, and without JavaScript it is still a
    box to type a city in. A preset value (not the person's choice yet) carries ``data-tz-preset``:
    static/js/timezone.js puts the browser's own zone there until the person changes it."""

    def __call__(self, field, **kwargs) -> Markup:
        kwargs.setdefault("id", field.id)
        # ``shared_list``: the id of a list the page renders once with :meth:`datalist`, outside a region htmx
        # swaps (the week calendar's switcher would otherwise carry ~35 KB of zones with every week).
        shared = kwargs.pop("shared_list", None)
        list_id = shared or f"{kwargs['id']}-zones"
        attrs = {"type": "text", "name": field.name, "value": field._value(), "list": list_id,
                 "autocomplete": "off", "spellcheck": "false", "autocapitalize": "none", "maxlength": MAX_INPUT,
                 **kwargs}
        if field.preset:
            attrs["data-tz-preset"] = field._value()
        return Markup(f'<input {html_params(**attrs)}>') + (Markup() if shared else self.datalist(list_id))

    @staticmethod
    def datalist(list_id: str) -> Markup:
        """The zones' ``<datalist>`` alone, for boxes that name it in ``shared_list``."""
        return Markup(f'<datalist id="{escape(list_id)}">{_zone_options(clock.now().date())}</datalist>')


@lru_cache(maxsize=2)
def _zone_options(on) -> Markup:
    # An old name (a browser may report Asia/Calcutta) names its current one, which timezone.js fills instead.
    return Markup("".join(
        f'<option value="{escape(name)}"'
        + (f' data-current="{escape(canonical(name))}"' if canonical(name) != name else "")
        + f'>{escape(label)}</option>' for name, label in picker_options(on)))


class TimezoneField(StringField):
    """A time zone typed or picked (see :func:`coach.timezones.parse_timezone`: any case, spaces for
    underscores, a city alone); its ``data`` is the zone's canonical name once it validates."""

    widget = TimezonePicker()

    def __init__(self, label="Time zone", **kwargs):
        super().__init__(label, **kwargs)
        self.preset = False
        self.parse_error: str | None = None

    def process_formdata(self, valuelist):
        typed = valuelist[0] if valuelist else ""
        try:
            self.data = parse_timezone(typed)
        except UnknownTimezone as exc:
            self.data, self.parse_error = typed[:MAX_INPUT], str(exc)

    def pre_validate(self, form):
        if self.parse_error:
            raise ValidationError(self.parse_error)
        if not self.data or not is_valid_timezone(self.data):
            raise ValidationError(UNKNOWN)

    def preselect(self, accept_language: str | None, known: str | None = None) -> None:
        """A form shown for the first time: ``known`` (a zone the person already has), else the zone of the
        browser's language region, else UTC, with a hint that says which. timezone.js puts the browser's own
        zone in its place, without JavaScript this stands."""
        suggested = known if known and known != UTC_NAME else suggest_from_accept_language(accept_language)
        self.data, self.preset = suggested or UTC_NAME, True
        if suggested is None:
            self.description = "Times will show in UTC. Choose your zone."
        elif suggested != known:
            self.description = "Suggested from your browser's language. Choose another if you are elsewhere."


NUL_MESSAGE = "This field cannot contain a NUL character."


class HiddenInputWithoutId(HiddenInput):
    """A hidden input with no ``id``: nothing labels or targets the CSRF token, and a page with several forms
    would otherwise repeat ``id="csrf_token"`` once per form (an id must be unique in a page)."""

    def __call__(self, field, **kwargs):
        kwargs.setdefault("id", False)  # html_params leaves out an attribute whose value is False
        return super().__call__(field, **kwargs)


class BaseForm(FlaskForm):
    """All forms: CSRF from Flask-WTF, and no NUL in any text (PostgreSQL refuses it in text columns, and no
    field of ours means one): the field says so instead of the database failing the request."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.meta.csrf:
            self[self.meta.csrf_field_name].widget = HiddenInputWithoutId()

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for field in self:
            if isinstance(field.data, str) and "\x00" in field.data:
                if NUL_MESSAGE not in field.errors:
                    field.errors = [*field.errors, NUL_MESSAGE]
                valid = False
        return valid


def org_path(target: str | None, slug: str) -> bool:
    """Whether ``target`` (a form's ``next``) is a plain path inside organization ``slug``: where a post may
    send its author back to, never another site, another organization or a string with control characters."""
    return bool(target) and target.startswith(f"/o/{slug}/") and "//" not in target and target.isprintable()


NAME_RULES = [DataRequired(message="Enter your name."), Length(max=100, message="Use at most 100 characters.")]


class ActionForm(BaseForm):
    """Just the CSRF token: actions that are a button (remove, confirm, pin, retry)."""


def require_action_form() -> None:
    """Refuse (400) a button's POST whose form does not validate: a missing or stale CSRF token."""
    if not ActionForm().validate_on_submit():
        abort(400, "This action's form was incomplete or expired. Reload the page and try again.")


@dataclass
class Attempt:
    """What :func:`attempt` did: ``ok`` (true when the action succeeded), its ``value``, or the ``error``."""

    ok: bool
    value: Any = None
    error: DomainError | None = None

    def __bool__(self) -> bool:
        return self.ok

    @property
    def status(self) -> int:
        """The status to re-show the form with: the error's, else 200."""
        return self.error.status if self.error is not None else 200


def attempt(form: FlaskForm | None, action: Callable[..., Any], *args, **kwargs) -> Attempt:
    """Call a service; a :class:`DomainError` rolls the transaction back and becomes the form's message.

    For views that re-show their form when the service refuses (any other refusal is the app-wide
    error handler's): ``done = attempt(form, service.create, ...)``; ``if done: commit and redirect``;
    else render the form with ``status=done.status``.
    """
    try:
        return Attempt(True, action(*args, **kwargs))
    except DomainError as exc:
        db.session.rollback()
        if form is not None:
            form.form_errors.append(str(exc))
        return Attempt(False, error=exc)
