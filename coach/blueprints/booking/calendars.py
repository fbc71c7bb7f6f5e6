"""A coach's calendar connections: connect a CalDAV account, choose calendars, sync now, disconnect.

No view talks to a calendar server: connecting saves a pending connection and the sync job lists its calendars.
Each connection's card polls its own URL (htmx, every 2 s) while a sync it asked for has not happened; without
JavaScript a reload shows the same.
"""
from __future__ import annotations

from datetime import datetime

from flask import abort, flash, g, url_for
from wtforms import PasswordField, RadioField, SelectMultipleField, StringField
from wtforms.validators import InputRequired, Length, Optional

from coach import clock
from coach.blueprints.booking import bp
from coach.blueprints.booking.schedule import load_managed_coach
from coach.blueprints.forms import ActionForm, BaseForm, attempt, require_action_form
from coach.calsync import push, service
from coach.calsync.caldav_read import AUTH_MESSAGE
from coach.extensions import db
from coach.htmx import redirect_after_post, render, swap_or_redirect, wants_fragment
from coach.ids import parse_uuid
from coach.orgs.models import COACH
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required

PAGE = "booking/calendars.html"
CARD = "booking/_calendar_connection.html"


class ConnectForm(BaseForm):
    server_url = StringField("Server address", validators=[InputRequired("Enter the server's address."),
                                                           Length(max=1000)],
                             description="For example https://caldav.fastmail.com/ or your Nextcloud's "
                                         "https://cloud.example.com/remote.php/dav/")
    username = StringField("User name", validators=[InputRequired("Enter the user name."), Length(max=200)])
    password = PasswordField("App password", validators=[InputRequired("Enter an app password."),
                                                         Length(max=500)],
                             description="Make one in your calendar account's security settings; Coach keeps it "
                                         "encrypted and never shows it again.")
    label = StringField("Name (optional)", validators=[Optional(), Length(max=120)])


class PasswordForm(BaseForm):
    password = PasswordField("New app password", validators=[InputRequired("Enter the new app password."),
                                                             Length(max=500)])


class ChooseForm(BaseForm):
    blocks = SelectMultipleField("Blocks my time", choices=[], validate_choice=True)
    receives = RadioField("Receives bookings", choices=[], validate_choice=True, default="")

    def for_sources(self, sources) -> ChooseForm:
        choices = [(str(source.id), source.display_name or source.url) for source in sources]
        self.blocks.choices = choices
        self.receives.choices = [("", "None")] + choices
        return self


def since(moment: datetime | None, now: datetime) -> str:
    """"3 minutes ago" for a moment in the past."""
    if moment is None:
        return "never"
    seconds = max(int((now - moment).total_seconds()), 0)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def _card_context(coach, connection, choose_form: ChooseForm | None = None,
                  password_form: PasswordForm | None = None) -> dict:
    state = service.state_of(connection)
    form = choose_form or ChooseForm(formdata=None).for_sources(state.sources)
    if choose_form is None:
        form.blocks.data = [str(s.id) for s in state.sources if s.blocks_time]
        form.receives.data = next((str(s.id) for s in state.sources if s.receives_bookings), "")
    return dict(coach=coach, state=state, choose_form=form, since=since, now=clock.now(),
                auth_failed=connection.status == "failing" and connection.last_error == AUTH_MESSAGE,
                password_form=password_form or PasswordForm(formdata=None),
                action_form=ActionForm(formdata=None), pushes=push.states([connection.id])[connection.id])


def _page(coach, status: int = 200, connect_form: ConnectForm | None = None, forms: dict | None = None):
    cards = [_card_context(coach, connection, **(forms or {}).get(connection.id, {}))
             for connection in service.connections_of(coach)]
    return render(PAGE, "connect", status=status, org=g.org, coach=coach, cards=cards,
                  connect_form=connect_form or ConnectForm(formdata=None))


def _load_connection(coach, connection_id: str):
    connection = service.get_connection(coach, connection_id)
    if connection is None:
        abort(404)
    return connection


def _button(coach_id: str, connection_id: str):
    """The coach and connection of a button's POST (404/403 as for the page; 400 without a valid form)."""
    coach = load_managed_coach(coach_id)
    connection = _load_connection(coach, connection_id)
    require_action_form()
    return coach, connection


def _card(coach, connection, status: int = 200, **forms):
    """One connection's card for htmx; the whole page (with that card's forms as posted) otherwise."""
    if not wants_fragment():
        return _page(coach, status=status, forms={connection.id: forms})
    return render(CARD, "card", status=status, **_card_context(coach, connection, **forms))


def _page_url(coach) -> str:
    return url_for("booking.calendars", coach_id=coach.id)


@bp.get("/coaches/<coach_id>/calendars")
@role_required()
def calendars(coach_id: str):
    """The coach's connected calendar accounts and the form to connect one."""
    return _page(load_managed_coach(coach_id))


@bp.get("/calendars")
@role_required(COACH)
def my_calendars():
    """A coach's own calendars."""
    return calendars(str(g.membership.id))


@bp.post("/coaches/<coach_id>/calendars")
@role_required()
@idempotent
def connect_calendar(coach_id: str):
    """Save a CalDAV account (pending); its calendars are listed by the sync job."""
    coach = load_managed_coach(coach_id)
    form = ConnectForm()
    if form.validate_on_submit() and attempt(form, service.connect, coach, form.server_url.data, form.username.data,
                                             form.password.data, form.label.data or "", g.membership):
        db.session.commit()
        flash("Connecting… the calendars appear in a moment.", "success")
        return redirect_after_post(_page_url(coach))
    form.password.data = ""  # never sent back, even to the person who typed it
    return _page(coach, status=422, connect_form=form)


@bp.get("/coaches/<coach_id>/calendars/<connection_id>")
@role_required()
def calendar_connection(coach_id: str, connection_id: str):
    """One connection's card (what the page polls while a sync is on its way)."""
    coach = load_managed_coach(coach_id)
    connection = _load_connection(coach, connection_id)
    return _card(coach, connection)


@bp.post("/coaches/<coach_id>/calendars/<connection_id>/choose")
@role_required()
@idempotent
def choose_calendars(coach_id: str, connection_id: str):
    """Which calendars block time and which one receives bookings."""
    coach = load_managed_coach(coach_id)
    connection = _load_connection(coach, connection_id)
    form = ChooseForm().for_sources(service.sources_of(connection))
    if form.validate_on_submit():
        receiver = parse_uuid(form.receives.data) if form.receives.data else None
        blocking = {parse_uuid(value) for value in form.blocks.data or ()}
        if attempt(form, service.choose_calendars, connection, blocking, receiver, g.membership):
            db.session.commit()
            return _done(coach, connection, "Calendars saved; syncing now.")
    return _card(coach, connection, status=422, choose_form=form)


@bp.post("/coaches/<coach_id>/calendars/<connection_id>/password")
@role_required()
@idempotent
def change_calendar_password(coach_id: str, connection_id: str):
    """A new app password for an account whose server refused the old one; the calendars chosen stay."""
    coach = load_managed_coach(coach_id)
    connection = _load_connection(coach, connection_id)
    form = PasswordForm()
    if form.validate_on_submit():
        service.change_password(connection, form.password.data, g.membership)
        db.session.commit()
        return _done(coach, connection, "App password saved; syncing now.")
    return _card(coach, connection, status=422, password_form=form)


@bp.post("/coaches/<coach_id>/calendars/<connection_id>/sync")
@role_required()
@idempotent
def sync_calendar(coach_id: str, connection_id: str):
    """Sync now (in the background; the card shows when it is done)."""
    coach, connection = _button(coach_id, connection_id)
    wait = service.sync_now_wait(connection)
    if wait:
        flash(f"{connection.label} was asked to sync moments ago. Sync now works again in {wait} s (Coach also "
              f"syncs by itself every few minutes).", "error")
        # 429 with Retry-After; htmx gets 422, which it swaps without treating the answer as an error.
        response = _card(coach, connection, status=422 if wants_fragment() else 429)
        response.headers["Retry-After"] = str(wait)
        return response
    service.request_sync(connection, discover=True)
    db.session.commit()
    return _done(coach, connection, "Syncing…")


@bp.post("/coaches/<coach_id>/calendars/<connection_id>/disconnect")
@role_required()
@idempotent
def disconnect_calendar(coach_id: str, connection_id: str):
    """Remove the account, its busy time and the record of the bookings written there."""
    coach, connection = _button(coach_id, connection_id)
    service.disconnect(connection, g.membership)
    db.session.commit()
    return redirect_after_post(_page_url(coach))


def _done(coach, connection, message: str):
    """After a change to one connection: its card in place for htmx, the page again (303) otherwise."""
    return swap_or_redirect(CARD, "card", _page_url(coach), message,
                            context=lambda: _card_context(coach, connection))
