"""Forms of the booking pages. Limits match the database's CHECK constraints."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    DecimalField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
    URLField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import URL, DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from coach.blueprints.forms import BaseForm, TimezoneField
from coach.booking.service import NOTE_MAX, WEEKDAYS

CURRENCIES = ("EUR", "USD", "GBP", "CHF", "SEK", "NOK", "DKK", "PLN", "CAD", "AUD", "NZD", "INR", "JPY")
TIME_RE = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


def parse_time(value: str) -> int | None:
    """``"09:30"`` → 570 minutes; ``"24:00"`` → 1440; anything else → ``None``."""
    match = TIME_RE.match((value or "").strip())
    if not match:
        return None
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


class AmountField(DecimalField):
    """A decimal amount of money: "NaN" and "Infinity" parse as decimals but are not amounts."""

    def process_formdata(self, valuelist):
        super().process_formdata(valuelist)
        if self.data is not None and not self.data.is_finite():
            self.data = None
            raise ValueError("Enter a price like 45.00.")


class OfferingForm(BaseForm):
    title = StringField("Title", validators=[DataRequired(message="Give the offering a title."), Length(max=120)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=2000)])
    duration_minutes = IntegerField("Duration (minutes)", default=60, validators=[
        InputRequired(message="Enter the duration in minutes."),
        NumberRange(5, 720, message="A session lasts between 5 and 720 minutes.")])
    price = AmountField("Price", places=2, default=Decimal("0"), validators=[
        InputRequired(message="Enter a price (0 for free)."),
        NumberRange(0, 1_000_000, message="Enter a price between 0 and 1,000,000.")])
    currency = SelectField("Currency", choices=[SelectChoice(c, c) for c in CURRENCIES], default="EUR")
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

    def validate_price(self, field):
        try:
            if field.data is not None and field.data != field.data.quantize(Decimal("0.01")):
                raise ValidationError("Use at most two decimals.")
        except InvalidOperation as exc:
            raise ValidationError("Enter a price like 45.00.") from exc

    def values(self) -> dict:
        data = {name: getattr(self, name).data for name in (
            "title", "duration_minutes", "currency", "capacity", "auto_confirm", "buffer_before_minutes",
            "buffer_after_minutes", "min_notice_minutes", "max_per_day", "horizon_days",
            "cancellation_window_hours")}
        data.update(description=(self.description.data or "").strip(), location=(self.location.data or "").strip(),
                    meeting_url=(self.meeting_url.data or "").strip(),
                    price_minor=int((self.price.data or 0) * 100))
        return data

    def fill_from(self, offering) -> None:
        for name in ("title", "description", "duration_minutes", "currency", "location", "meeting_url", "capacity",
                     "auto_confirm", "buffer_before_minutes", "buffer_after_minutes", "min_notice_minutes",
                     "max_per_day", "horizon_days", "cancellation_window_hours"):
            getattr(self, name).data = getattr(offering, name)
        self.price.data = Decimal(offering.price_minor) / 100


class TimezoneForm(BaseForm):
    timezone = TimezoneField("Time zone of your availability")


class RuleForm(BaseForm):
    weekday = SelectField("Day", choices=[SelectChoice(str(i), name) for i, name in enumerate(WEEKDAYS)])
    start = TimeOfDayField("From")
    end = TimeOfDayField("To", end_of_day=True)


class OverrideForm(BaseForm):
    on_date = DateField("Date", validators=[InputRequired(message="Choose a date.")])
    closed = BooleanField("Closed all day")
    hours = StringField("Hours", description="For example 09:00-12:00, 14:00-18:00",
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
    note = TextAreaField("Note for the coach", validators=[
        Optional(), Length(max=NOTE_MAX, message=f"A note can have at most {NOTE_MAX:,} characters.")])
