"""Times written for a person outside our pages show it as they read clocks: in their zone, named, on their 12- or
24-hour clock — the account's emails (the booking emails' own tests are in test_booking_emails.py) and the payment
provider's checkout page."""
from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import pytest

from coach import tenancy
from coach.extensions import db
from coach.payments import checkout
from coach.timezones import clock_time
from tests.booking_support import BookingWorld
from tests.factories import make_user
from tests.test_security_twofactor import CHROME_LINUX, FIREFOX_WINDOWS, log_in


def new_device_notice(app, mailbox, job_runner, email: str) -> str:
    """The text of the email a sign-in from a new browser sends (after two from a known one)."""
    with job_runner.paused():
        for agent in (CHROME_LINUX, CHROME_LINUX, FIREFOX_WINDOWS):
            assert log_in(app.test_client(), email, headers={"User-Agent": agent}).status_code == 303
        job_runner.drain()
    notice = mailbox.wait_for(email)
    assert notice["Subject"] == "New sign-in to your Coach account"
    return notice.get_body(("plain",)).get_content()


@pytest.mark.parametrize(("hours", "shown"), [
    (12, r"\d{4}-\d\d-\d\d \d{1,2}:\d\d [ap]m E[SD]T \(America/New_York\)"),
    (24, r"\d{4}-\d\d-\d\d \d\d:\d\d E[SD]T \(America/New_York\)"),
])
def test_a_new_sign_in_email_gives_its_time_in_the_readers_zone_on_their_clock(app, ctx, mailbox, job_runner,
                                                                              hours, shown):
    ada = make_user("ada@example.com", "Ada Lovelace", tz="America/New_York")
    ada.hour_cycle = hours
    db.session.commit()

    text = new_device_notice(app, mailbox, job_runner, "ada@example.com")

    assert re.search(rf"^  Time: {shown}\r?$", text, re.M), text
    assert "UTC" not in text


def test_the_providers_checkout_page_names_the_session_in_the_buyers_zone_on_their_clock(ctx, app, fake_stripe,
                                                                                          quiet):
    w = BookingWorld(price_minor=5000, currency="EUR")  # the athlete lives in Europe/Berlin
    tenancy.activate(w.org.id)
    w.athlete.user.hour_cycle = 12
    db.session.commit()
    starts = w.first_slot().starts_at

    _booking, _payment, url = checkout.start_session_checkout(w.offering, w.athlete, starts, "", w.athlete)
    db.session.commit()

    page = fake_stripe.checkout_page(re.search(r"(cs_[A-Za-z0-9_]+)", url).group(1)).text
    local = starts.astimezone(ZoneInfo("Europe/Berlin"))
    assert re.search(rf"{local:%a %-d %b %Y}, {clock_time(local, 12)} CES?T", page), page
    assert "UTC" not in page
