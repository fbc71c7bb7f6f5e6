"""Forms of the booking pages. Limits match the database's CHECK constraints."""
from __future__ import annotations

import re

from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
    URLField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import URL, DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from coach import money
from coach.blueprints.forms import BaseForm, TimezoneField
from coach.booking.service import NOTE_MAX, WEEKDAYS
from coach.booking.waitlist import MODES as WAITLIST_MODES

TIME_RE = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")
# A 12-hour time as people type it: "9am", "9:30 pm", "12 p.m." (the schedule lists hours that way for a member
# on a 12-hour clock).
TIME_12_RE = re.compile(r"^(0?[1-9]|1[0-2])(?:[:.]([0-5]\d))?\s*([ap])\.?\s*m?\.?$", re.IGNORECASE)


def parse_time(value: str) -> int | None:
    """``"09:30"`` or ``"9:30 am"`` → 570 minutes; ``"24:00"`` → 1440; ``"midnight"`` → 0 (as ``"00:00"``: an
    end time reads it as the day's end); anything else → ``None``."""
    value = (value or "").strip()
    if value.lower() in ("midnight", "noon"):
        return 0 if value.lower() == "midnight" else 720
    match = TIME_RE.match(value)
    if not match:
        twelve = TIME_12_RE.match(value)
        if twelve is None:
            return None
        hour = int(twelve.group(1)) % 12 + (12 if twelve.group(3).lower() == "p" else 0)
        return hour * 60 + int(twelve.group(2) or 0)
    minutes = int(match.group(1)) * 60 + int(match.group(2))
    return minutes if minutes <= 1440 else None


class TimeOfDayField(StringField):
    """A wall-clock time as minutes after midnight; ``00:00`` as an end time means midnight at the end."""

    def __init__(self, label, end_of_day: bool = False, **kwargs):
        super().__init__(label, render_kw={"type": "time", "step": 300, **kwargs.pop("render_kw", {})}, **kwargs)
        self.end_of_day = end_of_day
        self.minutes: int | None = None

    def pre_validate(self, form):
        minutes = parse_time(self.data or "")
        if minutes is None:
            raise ValidationError("Enter a time like 09:00.")
        if self.end_of_day and minutes == 0:
            minutes = 1440
        self.minutes = minutes


class PriceField(StringField):
    """A price typed in the organization's currency ("45.50", "5,000"), read by :func:`coach.money.parse` into
    ``minor`` (that currency's minor units: no multiplying by 100). The form sets ``currency`` first."""

    currency = "EUR"
    minor: int | None = None

    def pre_validate(self, form):
        raw = (self.data or "").strip()
        if not raw:
            raise ValidationError("Enter a price (0 for free).")
        if "nan" in raw.lower() or "inf" in raw.lower():  # decimals to Python, never a price
            raise ValidationError("Enter a price like 45.00.")
        try:
            self.minor = money.parse(raw, self.currency)
        except money.MoneyError as exc:
            raise ValidationError(str(exc)) from exc
        except (ArithmeticError, ValueError) as exc:  # "NaN", "Infinity" parse as decimals but are no price
            raise ValidationError("Enter a price like 45.00.") from exc


class OfferingForm(BaseForm):
    title = StringField("Title", validators=[DataRequired(message="Give the offering a title."), Length(max=120)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=2000)])
    duration_minutes = IntegerField("Duration (minutes)", default=60, validators=[
        InputRequired(message="Enter the duration in minutes."),
        NumberRange(5, 720, message="A session lasts between 5 and 720 minutes.")])
    price = PriceField("Price", default="0")
    location = StringField("Location", validators=[Optional(), Length(max=200)])
    meeting_url = URLField("Meeting link", validators=[Optional(), Length(max=500),
                                                       URL(message="Enter a full link starting with https://")])
    capacity = IntegerField("Seats", default=1, description="1 for one-on-one; more for a group session.",
                            validators=[InputRequired(), NumberRange(1, 500, message="Between 1 and 500 seats.")])
    auto_confirm = BooleanField("Confirm requests automatically")
    buffer_before_minutes = IntegerField("Buffer before (minutes)", default=0, validators=[
        InputRequired(), NumberRange(0, 240, message="Between 0 and 240 minutes.")])
    buffer_after_minutes = IntegerField("Buffer after (minutes)", default=0, validators=[
        InputRequired(), NumberRange(0, 240, message="Between 0 and 240 minutes.")])
    min_notice_minutes = IntegerField("Minimum notice (minutes)", default=120, validators=[
        InputRequired(), NumberRange(0, 43200, message="Between 0 and 43,200 minutes (30 days).")])
    max_per_day = IntegerField("Most bookings per day", validators=[
        Optional(), NumberRange(1, 100, message="Between 1 and 100, or leave empty for no limit.")])
    horizon_days = IntegerField("Bookable up to (days ahead)", default=60, validators=[
        InputRequired(), NumberRange(1, 730, message="Between 1 and 730 days.")])
    cancellation_window_hours = IntegerField("Free cancellation until (hours before)", default=24, validators=[
        InputRequired(), NumberRange(0, 720, message="Between 0 and 720 hours.")])
    late_cancel_policy = SelectField("A later cancellation or a no-show", default="forfeit", choices=[
        SelectChoice("forfeit", "forfeits the session (credit or payment kept)"),
        SelectChoice("fee", "keeps a fee (the rest of a payment is refunded; a credit is kept)"),
        SelectChoice("refund", "gives everything back")])
    late_cancel_fee_percent = IntegerField("Late-cancel fee (%)", default=50, validators=[
        Optional(), NumberRange(0, 100, message="A fee between 0 and 100 per cent.")])
    waitlist_mode = SelectField("When a full group session frees a seat", default="auto", choices=[
        SelectChoice(value, label) for value, label in WAITLIST_MODES.items()],
        description="Group sessions only. A paid offering always offers the seat (the athlete pays to take it).")
    waitlist_offer_minutes = IntegerField("An offered seat is held for (minutes)", default=120, validators=[
        Optional(), NumberRange(5, 10080, message="Between 5 minutes and 7 days (10,080 minutes).")])

    def __init__(self, *args, currency: str = "EUR", **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.price.currency = currency
        self.price.label.text = f"Price ({currency})"

    def values(self) -> dict:
        data = {name: getattr(self, name).data for name in (
            "title", "duration_minutes", "capacity", "auto_confirm", "buffer_before_minutes",
            "buffer_after_minutes", "min_notice_minutes", "max_per_day", "horizon_days",
            "cancellation_window_hours", "late_cancel_policy", "late_cancel_fee_percent", "waitlist_mode",
            "waitlist_offer_minutes")}
        data.update(description=(self.description.data or "").strip(), location=(self.location.data or "").strip(),
                    meeting_url=(self.meeting_url.data or "").strip(), price_minor=self.price.minor or 0,
                    currency=self.currency)
        if data["late_cancel_fee_percent"] is None:
            data["late_cancel_fee_percent"] = 50
        if data["waitlist_offer_minutes"] is None:
            data["waitlist_offer_minutes"] = 120
        return data

    def fill_from(self, offering) -> None:
        for name in ("title", "description", "duration_minutes", "location", "meeting_url", "capacity",
                     "auto_confirm", "buffer_before_minutes", "buffer_after_minutes", "min_notice_minutes",
                     "max_per_day", "horizon_days", "cancellation_window_hours", "late_cancel_policy",
                     "late_cancel_fee_percent", "waitlist_mode", "waitlist_offer_minutes"):
            getattr(self, name).data = getattr(offering, name)
        # Shown in the organization's currency; an offering priced in another (before billing settings) keeps
        # its number, and saving it states it in the organization's currency.
        self.price.data = money.plain(offering.price_minor, offering.currency)


class TimezoneForm(BaseForm):
    timezone = TimezoneField("Time zone of your availability")


class RuleForm(BaseForm):
    weekday = SelectField("Day", choices=[SelectChoice(str(i), name) for i, name in enumerate(WEEKDAYS)])
    start = TimeOfDayField("From")
    end = TimeOfDayField("To", end_of_day=True)


class OverrideForm(BaseForm):
    on_date = DateField("Date", validators=[InputRequired(message="Choose a date.")])
    closed = BooleanField("Closed all day")
    # Its own id: the schedule page's weekly-hours section is ``#hours`` (an id is unique in a page).
    hours = StringField("Hours", id="override-hours", description="For example 09:00-12:00, 14:00-18:00",
                        validators=[Optional(), Length(max=200)])

    def intervals(self) -> list[tuple[int, int]]:
        """The hours as minute pairs; sets a field error and returns [] when they cannot be read."""
        if self.closed.data:
            return []
        result = []
        for part in filter(None, (p.strip() for p in (self.hours.data or "").split(","))):
            bounds = [b.strip() for b in part.replace("–", "-").split("-")]
            start = parse_time(bounds[0]) if len(bounds) == 2 else None
            end = parse_time(bounds[1]) if len(bounds) == 2 else None
            if start is None or end is None:
                raise ValidationError(f"“{part}” is not a range like 09:00-12:00.")
            result.append((start, 1440 if end == 0 else end))
        if not result:
            raise ValidationError("Enter the hours for that date, or tick “Closed all day”.")
        return result


class TimeOffForm(BaseForm):
    starts = DateTimeLocalField("From", format="%Y-%m-%dT%H:%M", validators=[InputRequired(message="Choose a start.")])
    ends = DateTimeLocalField("Until", format="%Y-%m-%dT%H:%M", validators=[InputRequired(message="Choose an end.")])
    reason = StringField("Reason (only you and schedulers see it)", validators=[Optional(), Length(max=200)])

    def validate_starts(self, field):
        _within_calendar_years(field)

    def validate_ends(self, field):
        _within_calendar_years(field)


def _within_calendar_years(field) -> None:
    # Near year 1 or 9999 the conversion to UTC runs off the calendar.
    if field.data is not None and not 2000 <= field.data.year <= 2999:
        raise ValidationError("Choose a date between the years 2000 and 2999.")


class BookForm(BaseForm):
    start = HiddenField()
    reschedule = HiddenField()
    athlete = SelectField("Athlete", validate_choice=False)
    # The button pressed: "card", "credit" (the soonest to expire), "credit:<grant id>" or "manual".
    pay = StringField(validators=[Optional(), Length(max=60)])
    reference = StringField("Payment reference", description="Cash, a transfer's id: whatever finds it again.",
                            validators=[Optional(), Length(max=120)])
    note = TextAreaField("Note for the coach", validators=[
        Optional(), Length(max=NOTE_MAX, message=f"A note can have at most {NOTE_MAX:,} characters.")])


class WaitlistForm(BaseForm):
    # Schedulers and admins choose whom they line up; an athlete's own id (or nothing) otherwise.
    athlete = SelectField("Athlete", validate_choice=False, validators=[Optional()])
