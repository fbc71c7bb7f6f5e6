"""Form fuzz: every form of the main pages, sent with hostile values, never gets a 5xx or an unhandled error.

One organization is seeded through the services (see :class:`tests.fuzz_support.FuzzWorld`) and kept for
the whole module: each test renders one page as the role that uses it, parses its forms from the HTML
(action, method, every named field, hidden ones included) and drives each form with hypothesis. Per
example, every field is kept (a plausible value), replaced by a hostile one (huge, NUL, lone surrogates
and invalid UTF-8 as percent-encoded bytes, bidi controls, emoji, extreme numbers, bad dates, times,
zones and UUIDs, wrong types), left out, or sent twice; sometimes an unknown field is added or the body is
sent as raw bytes. The CSRF token stays valid. Each example goes out as a plain POST and as an htmx POST
(``HX-Request: true``); GET forms and the pages' query strings (cursors, weeks, starts, filters) are
fuzzed the same way. Before hypothesis's examples, a sweep sends each field alone with the values that
most often get past validation to PostgreSQL (a NUL in text, a 31-digit number).

A response of 500 or more, or an ERROR record with a traceback in the log (an "unhandled error" answered
with any status), fails the test with the form, the input (each field put back to its plausible value
where the failure stays) and the traceback's frames in the app's code. Refusals (400, 403, 404, 405, 409,
410, 413, 422, 429) are what bad input should get.

Forms that would destroy the seeded world (delete, remove, leave, revoke, archive, log out) are not sent;
they are listed in ``NOT_SENT`` with the reason. Examples are derandomized, so CI repeats the same inputs.
"""
from __future__ import annotations

import html
import io
import itertools
import logging
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psycopg
import pyotp
import pytest
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import MethodNotAllowed, NotFound

from coach import tenancy
from coach.booking import manage_links
from coach.booking.models import Booking
from coach.extensions import db
from coach.platform.ratelimit import limiter
from coach.security import new_token
from tests.conftest import Auth, csrf_from
from tests.crawl_support import fail_a_job
from tests.factories import PASSWORD, make_user
from tests.fuzz_support import ErrorLog, Form, FuzzWorld, encode_pairs, forms_in, hostile_values, multipart_body, \
    mutate, shown, traceback_tail

HX = {"HX-Request": "true"}
# Random examples per form or query string, each sent twice (plain and htmx), after the sweep (see sweep()).
# FUZZ_EXAMPLES=200 fuzzes deeper, for a run by hand; FUZZ_TRACE=200 prints each request's status and
# input (its first 200 characters).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
SLOW_EXAMPLES = max(1, EXAMPLES // 2)  # forms that hash a password on each plausible submission (~50 ms)
TRACE = int(os.environ.get("FUZZ_TRACE", "0"))
SLOW = {"accounts.signup", "accounts.login", "accounts.change_password", "accounts.reset_password",
        "orgs.invitation_signup"}
ACCEPTED = {200, 201, 202, 204, 301, 302, 303, 304, 307, 308, 400, 403, 404, 405, 409, 410, 413, 422, 429}

# Forms found on the pages but never sent, with the reason (matched on the endpoint, and for some on the action).
NOT_SENT = {
    "accounts.logout": "ends the session the other forms of the page need",
    "admin.remove_member": "removes a seeded member",
    "admin.revoke_invitation": "revokes the seeded invitation",
    "booking.delete_rule": "deletes the coach's weekly hours (a button: CSRF token only)",
    "booking.delete_override": "deletes a date override (a button: CSRF token only)",
    "booking.delete_time_off": "deletes time off (a button: CSRF token only)",
    "booking.toggle_offering": "archiving the offering would close the booking form",
    "spaces.membership": "leaving the space would close its post form",
    "spaces.post_action": "deletes or pins the seeded post (a button: CSRF token only)",
    "spaces.delete_comment": "deletes the seeded comment (a button: CSRF token only)",
    "spaces.moderate": "removes seeded content (a button: CSRF token only)",
    "chat.delete": "deletes the seeded message (a button: CSRF token only)",
    "media.delete": "deletes the seeded video (a button: CSRF token only)",
    "media.delete_comment": "deletes the seeded review comment (a button: CSRF token only)",
    "progress.framework_action": "archiving the seeded framework takes it off the record forms (a button)",
    "progress.discard_record": "discards the seeded draft record whose editor is fuzzed (a button)",
    "progress.remove_record_media": "removes a media link of the draft record (a button)",
    "progress.delete_goal": "deletes the seeded goal (a button)",
    "progress.delete_value": "deletes a logged value of the goal (a button)",
    "progress.delete_milestone": "deletes the goal's milestone (a button)",
    "progress.archive_habit": "archives the seeded habit whose tick forms are fuzzed (a button)",
    "progress.program_archive": "archiving the program refuses its builder's and assign forms (a button)",
    "progress.assignment_end": "ends the athlete's assignment whose workout log is fuzzed (a button)",
    "progress.workout_delete": "deletes the seeded workout (a button)",
    "progress.line_delete": "deletes the seeded workout's line (a button)",
    "progress.exercise_archive": "archiving the exercise refuses the add-line form (a button)",
    "accounts.remove_passkey": "removes the seeded passkey whose rename form is fuzzed (a button)",
    "accounts.two_factor_restart": "a new secret for the set-up whose code form is fuzzed (a button)",
    "admin.branding_logo_remove": "removes the logo a fuzzed upload may have set (a button)",
}
NOT_SENT_ACTIONS = {
    ("spaces.member_action", "remove"): "removes a seeded member from the space",
    ("progress.area_action", "delete"): "deletes an area of the seeded framework (a button)",
    ("progress.skill_action", "delete"): "deletes a skill of the seeded framework (a button)",
    ("operator.job_action", "retry"): "re-runs the seeded failed job, which fails again in the background by "
                                      "design (its delete form, the same view, is fuzzed)",
}

ROLES = {"admin": "ada@example.com", "coach": "carla@example.com", "athlete": "arno@example.com",
         "pat": "pat@example.com", "tess": "tess@example.com", "vic": "vic@example.com",
         "lou": "lou@example.com"}  # issue 22: no member of the club (joins it from the public directory)
# Roles with two-factor on: Tess signs in with her app's code; Vic stops at the second step (its forms are fuzzed).
SECOND_STEP = {"tess": True, "vic": False}
_n = itertools.count(1)

# The background relay and worker (other threads) use the random module while hypothesis draws examples.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")


# --- pages and their forms -------------------------------------------------------------------------

@dataclass(frozen=True)
class Page:
    role: str  # "anon" (a new browser per example), or a key of ROLES
    path: str  # formatted with the world's ids
    expects: tuple[str, ...]  # endpoints whose forms the page must have (the fuzz must not lose them silently)
    prefer: str = ""  # of a form's instances, fuzz the one whose action contains this id (of the world's ids)
    fresh_message: bool = False  # {message} is a message sent just now (one can be edited for 10 minutes only)
    keep_out: tuple[str, ...] = ()  # endpoints not sent from this page (fuzzed on a later page instead)
    restore: bool = False  # afterwards, the organization's settings a fuzzed form may change go back (see restore)


P = "/o/{slug}/progress"
PAGES = [
    Page("anon", "/signup", ("accounts.signup",)),
    Page("anon", "/login", ("accounts.login",)),
    Page("anon", "/password/forgot", ("accounts.forgot_password",)),
    Page("anon", "/password/reset/{reset}", ("accounts.reset_password",)),
    Page("anon", "/signup/confirm/{signup}", ("accounts.confirm_signup",)),
    Page("anon", "/invitations/{slug}/{invite}", ("orgs.invitation_signup",)),
    Page("pat", "/profile", ("accounts.profile", "accounts.change_password")),
    Page("admin", "/orgs/new", ("orgs.create",)),
    Page("admin", "/o/{slug}/admin/members", ("admin.change_role", "admin.invite", "admin.resend_invitation"),
         prefer="bea"),
    # Issue 21: the getting-started checklist (its time-zone "Looks right" and "Hide this checklist").
    Page("admin", "/o/{slug}/onboarding", ("orgs.onboarding_confirm", "orgs.onboarding_dismiss")),
    Page("admin", "/o/{slug}/notifications/preferences", ("notifications.preferences",)),
    Page("admin", "/o/{slug}/notifications", ("notifications.mark_all",)),
    # Before the schedule's forms change the coach's hours.
    Page("athlete", "/o/{slug}/offerings/{offering}/book?start={start}", ("booking.book",)),
    Page("coach", "/o/{slug}/coaches/{coach}/schedule",
         ("booking.set_timezone", "booking.add_rule", "booking.set_override", "booking.add_time_off")),
    Page("coach", "/o/{slug}/coaches/{coach}/offerings/new", ("booking.new_offering",)),
    Page("coach", "/o/{slug}/offerings/{spare}/edit", ("booking.edit_offering",)),
    Page("coach", "/o/{slug}/calendar-feed", ("booking.feed_regenerate",)),
    Page("coach", "/o/{slug}/spaces/new", ("spaces.create",)),
    Page("athlete", "/o/{slug}/spaces/{space}", ("spaces.create_post", "spaces.react")),
    Page("athlete", "/o/{slug}/posts/{post}", ("spaces.comment",)),
    Page("athlete", "/o/{slug}/posts/{post}/flag", ("spaces.flag",)),
    Page("athlete", "/o/{slug}/comments/{comment}/flag", ("spaces.flag",)),
    Page("coach", "/o/{slug}/posts/{post}/edit", ("spaces.edit_post",)),
    Page("coach", "/o/{slug}/spaces/{space}/members", ("spaces.members", "spaces.member_action"), prefer="bea"),
    Page("athlete", "/o/{slug}/chat", ("chat.start",)),
    Page("athlete", "/o/{slug}/chat/{conversation}", ("chat.send",)),
    Page("athlete", "/o/{slug}/chat/{conversation}/messages/{message}/edit", ("chat.edit",), fresh_message=True),
    Page("athlete", "/o/{slug}/media", ("media.start_upload",)),
    Page("athlete", "/o/{slug}/media/{media}", ("media.update", "media.comment")),
    Page("admin", "/o/{slug}/admin/audit", ("admin.audit_log",)),
    # Issue 22, before the settings' fuzz may unlist the club and the editors' fuzz may unlist Carla: the public
    # booking page (a visitor signs up, Lou, signed in and no member, joins), the review form of Arno's ended
    # session, Bea's review (the coach's reply, an athlete's helpful and flag, then restoring the hidden one and
    # hiding this one), the taxonomy editor, the verification, the coach's own editor and an admin's (each with
    # its live preview).
    Page("anon", "/coaches/{slug}/{handle}/book?offering={offering}&start={public_start}", ("directory_public.book",)),
    Page("lou", "/coaches/{slug}/{handle}/book?offering={offering}&start={public_start}", ("directory_public.join",)),
    Page("athlete", "/o/{slug}/bookings/{review_booking}/review", ("directory.review_form",)),
    Page("coach", "/o/{slug}/reviews/{review}", ("directory.reply",)),
    Page("athlete", "/o/{slug}/reviews/{review}", ("directory.helpful",)),
    Page("athlete", "/o/{slug}/reviews/{review}/flag", ("directory.flag",)),
    Page("admin", "/o/{slug}/reviews/{hidden_review}", ("directory.restore",)),
    Page("admin", "/o/{slug}/reviews/{review}/hide", ("directory.hide",)),
    Page("admin", "/o/{slug}/admin/taxonomy", ("directory.taxonomy", "directory.rename_term", "directory.move_term")),
    Page("admin", "/o/{slug}/coaches/{coach}/profile", ("directory.verification",)),
    Page("coach", "/o/{slug}/profile", ("directory.edit_own",)),  # its live preview: see test_profile_live_preview_…
    Page("admin", "/o/{slug}/coaches/{coach}/profile/edit", ("directory.edit_profile",)),
    # Athlete development (issue 17): frameworks, session records, goals, habits, readiness, programs, reports.
    Page("coach", P + "/frameworks/new", ("progress.new_framework",)),
    Page("coach", P + "/frameworks/{framework}",
         ("progress.add_area", "progress.rename_area", "progress.area_action", "progress.add_skill",
          "progress.skill_action")),
    Page("coach", P + "/frameworks/{framework}/edit", ("progress.edit_framework",)),
    Page("coach", P + "/frameworks/{framework}/skills/{skill}/edit", ("progress.edit_skill",)),
    Page("coach", P + "/frameworks/import", ("progress.import_framework",)),
    Page("coach", P + "/records/booking/{unrecorded}", ("progress.start_record",)),
    Page("coach", P + "/records/{draft}", ("progress.save_record", "progress.add_record_media")),
    Page("coach", P + "/records/{signed}", ("progress.amend_record",)),
    Page("coach", P + "/athletes/{athlete}/goals/new", ("progress.new_goal",)),
    # Closing the goal would refuse its value and milestone forms: its status form is fuzzed on the other goal.
    Page("athlete", P + "/goals/{goal}", ("progress.log_value", "progress.milestone", "progress.add_milestone"),
         keep_out=("progress.goal_status",)),
    Page("athlete", P + "/goals/{goal}/edit", ("progress.edit_goal",)),
    Page("coach", P + "/goals/{other_goal}", ("progress.goal_status",)),
    Page("athlete", P + "/athletes/{athlete}/habits/new", ("progress.new_habit",)),
    Page("athlete", P + "/habits/{habit}/edit", ("progress.edit_habit",)),
    Page("athlete", P + "/habits/{habit}", ("progress.check_habit",)),
    Page("athlete", P, ("progress.check_in_readiness",)),  # its habit is ticked by now: an untick form
    Page("coach", P + "/exercises", ("progress.exercise_create",)),
    Page("coach", P + "/exercises/{exercise}", ("progress.exercise_edit",)),
    Page("coach", P + "/programs", ("progress.program_create",)),
    Page("coach", P + "/programs/{program}",
         ("progress.program_update", "progress.workout_add", "progress.workout_update", "progress.line_add",
          "progress.line_update", "progress.program_copy_week", "progress.program_save_template")),
    Page("coach", P + "/programs/{program}/assign", ("progress.program_assign",)),
    Page("athlete", P + "/workouts/{assignment}/{workout}", ("progress.workout_log",)),
    Page("coach", P + "/workouts/logs/{log}", ("progress.workout_comment",)),
    Page("coach", P + "/athletes/{athlete}", ("progress.add_note",)),
    Page("coach", P, ("progress.index",)),
    Page("coach", P + "/athletes/{athlete}/reports", ("progress.report_request", "progress.report_settings",
                                                          "progress.report_retry")),
    # Account security, privacy, settings and the operators' console (issue 18).
    Page("vic", "/login/verify", ("accounts.login_verify",)),
    Page("vic", "/login/recovery", ("accounts.login_recovery",)),
    Page("anon", "/account/email/confirm/{email_confirm}", ("accounts.confirm_email_change",)),
    Page("anon", "/account/email/undo/{email_undo}", ("accounts.undo_email_change",)),
    Page("pat", "/account/confirm?next=/account/security", ("accounts.reauthenticate",)),
    Page("pat", "/account/security", ("accounts.change_email",)),
    Page("pat", "/account/passkeys", ("accounts.rename_passkey",)),
    Page("pat", "/account/two-factor", ("accounts.two_factor_setup",)),
    Page("pat", "/account/privacy", ("privacy.request_export", "privacy.request_deletion")),
    Page("tess", "/account/confirm?next=/account/security", ("accounts.reauthenticate",)),
    # Tess: Pat's other sessions ended when the fuzz changed Pat's password.
    Page("tess", "/account/sessions", ("accounts.revoke_session", "accounts.revoke_other_sessions")),
    Page("tess", "/account/two-factor", ("accounts.two_factor_disable", "accounts.regenerate_recovery_codes")),
    Page("tess", "/platform/", ("operator.job_action",)),
    Page("tess", "/o/{slug}/privacy", ("org_privacy.request_export", "org_privacy.request_closing"), restore=True),
    Page("tess", "/o/{slug}/admin/branding", ("admin.branding_accent", "admin.branding_logo"), restore=True),
    Page("tess", "/o/{slug}/admin/settings", ("admin.org_settings_page",), restore=True),
    # Issue 19: calendars (a server that refuses at once), the week's clock and zone, recurring series (a good plan
    # books, a good move moves occurrences 2 to 4, a good cancel cancels from the one rendered), waitlists (join,
    # leave, take an offered seat), the no-login booking links (a fresh link each time the page opens: a good POST
    # spends it, then 410).
    Page("coach", "/o/{slug}/coaches/{coach}/calendars",
         ("booking.connect_calendar", "booking.choose_calendars", "booking.sync_calendar"),
         keep_out=("booking.disconnect_calendar",)),
    Page("athlete", "/o/{slug}/offerings/{offering}", ("booking.set_clock",)),
    Page("coach", "/o/{slug}/offerings/{offering}/series?athlete={bea}&first_date={series_date}&first_time=10:00"
                  "&every=1&ends=count&count=2", ("booking.series_plan",)),
    Page("coach", "/o/{slug}/series/{series}/move?start=2&weekday={series_weekday}&time=11:00",
         ("booking.series_move",)),
    Page("coach", "/o/{slug}/series/{series}", ("booking.series_cancel",)),
    Page("athlete", "/o/{slug}/sessions/{group_join}/waitlist", ("booking.join_waitlist",)),
    Page("athlete", "/o/{slug}/sessions/{group_leave}/waitlist", ("booking.leave_waitlist",)),
    Page("athlete", "/o/{slug}/sessions/{group_offer}/waitlist", ("booking.accept_offer",),
         keep_out=("booking.leave_waitlist",)),
    Page("anon", "/b/{manage_cancel}/cancel", ("booking_links.cancel_now",)),
    Page("anon", "/b/{manage_reschedule}/reschedule?start={move_start}", ("booking_links.reschedule_now",)),
    Page("coach", "/o/{slug}/coaches/{coach}/calendars", ("booking.disconnect_calendar",), prefer="connection"),
    # Issue 20: the room open now. The athlete's page first (consent, the panel's chat composer; the coach's
    # consent form is the same form), then the coach's (the notes, saved as typed); ending the room is fuzzed
    # last of the room's forms, once nothing else needs it open.
    Page("athlete", "/o/{slug}/sessions/{room}/room", ("rooms.consent", "chat.send")),
    Page("coach", "/o/{slug}/sessions/{room}/room", ("rooms.notes",), keep_out=("rooms.end",)),
    Page("coach", "/o/{slug}/sessions/{room}/room", ("rooms.end",)),
    # Last: cancelling the booking is what its form does when the fuzz keeps every field.
    Page("athlete", "/o/{slug}/bookings/{booking}", ("booking.act",)),
]


@dataclass(frozen=True)
class Query:
    """A page whose query string is input: its parameters and a plausible value of each."""

    role: str
    path: str
    params: dict[str, str] = field(default_factory=dict)


QUERIES = [
    Query("admin", "/o/{slug}/admin/audit", {"actor": "ada@example.com", "action": "login.succeeded",
                                            "since": "{today}", "until": "{today}", "after": ""}),
    Query("admin", "/o/{slug}/admin/audit.csv", {"actor": "", "action": "", "since": "{today}", "until": ""}),
    Query("athlete", "/o/{slug}/media", {"show": "mine", "after": ""}),
    Query("athlete", "/o/{slug}/feed", {"after": ""}),
    Query("athlete", "/o/{slug}/spaces/{space}", {"after": ""}),
    Query("athlete", "/o/{slug}/feed/new-posts", {"since": "{now}"}),
    Query("athlete", "/o/{slug}/spaces/{space}/new-posts", {"since": "{now}"}),
    Query("athlete", "/o/{slug}/spaces/{space}/mentions", {"body": "Hi @Ca"}),
    Query("admin", "/o/{slug}/notifications", {"show": "unread", "before": ""}),
    Query("athlete", "/o/{slug}/chat/{conversation}", {"before": "2"}),
    Query("athlete", "/o/{slug}/offerings/{offering}", {"week": "{today}", "reschedule": ""}),
    Query("athlete", "/o/{slug}/offerings/{offering}/book", {"start": "{start}", "reschedule": ""}),
    Query("admin", "/o/{slug}/bookings", {"coach": "{coach}"}),
    Query("athlete", "/o/{slug}/media/{media}", {"t": "0:01"}),
    Query("anon", "/signup/sent", {"email": "ada@example.com"}),
    Query("anon", "/login", {"next": "/orgs"}),
    Query("coach", P, {"q": "Arno"}),
    Query("coach", P + "/athletes/{athlete}/timeline", {"before": ""}),
    Query("coach", P + "/workouts", {"athlete_id": "{athlete}", "on": "{today}"}),
    Query("athlete", P + "/workouts/calendar", {"month": "{month}"}),
    Query("coach", P + "/workouts/calendar", {"athlete_id": "{athlete}", "month": "{month}"}),
    Query("coach", P + "/compliance", {"week": "{monday}"}),
    Query("coach", P + "/programs", {"archived": "1"}),
    Query("anon", P + "/reports/{report}/link", {"token": "{report_token}"}),
    Query("tess", "/account/security/log", {"after": ""}),
    Query("pat", "/account/confirm", {"next": "/account/security"}),
    Query("pat", "/account/privacy/exports/{account_export}/download", {"token": ""}),
    Query("tess", "/o/{slug}/privacy/exports/{org_export}/download", {"token": ""}),
    # Issue 19: a time zone by name or city, the series form's prefill, a no-login link's week and chosen time.
    Query("athlete", "/o/{slug}/offerings/{offering}", {"week": "{today}", "tz": "Europe/London"}),
    Query("athlete", "/o/{slug}/offerings/{offering}/book", {"start": "{start}", "tz": "london"}),
    Query("coach", "/o/{slug}/offerings/{offering}/series", {"start": "{start}"}),
    Query("coach", "/o/{slug}/sessions/{group_join}/waitlist", {"athlete": "{athlete}"}),
    Query("anon", "/b/{reschedule_link}/reschedule", {"week": "{today}", "start": "{move_start}"}),
    # Issue 22: the searches (public and the members' own), a public profile, its reviews and booking, a coach's
    # reviews in the organization (see also test_directory_searches_survive_hostile_values).
    *[Query(role, path, {"q": "tenis serv", "discipline": "tennis", "skill": "serve", "lang": "en", "price": "2",
                         "rating": "4", "verified": "1", "week": "1", "mode": "online", "sort": "rating",
                         "exact": "", "cursor": ""})
      for role, path in (("anon", "/coaches"), ("athlete", "/o/{slug}/coaches"))],
    Query("anon", "/coaches/{slug}/{handle}", {"tz": "Europe/London"}),
    Query("anon", "/coaches/{slug}/{handle}/reviews", {"order": "helpful", "cursor": ""}),
    Query("anon", "/coaches/{slug}/{handle}/book", {"offering": "{offering}", "start": "{public_start}", "tz": "london"}),
    Query("coach", "/o/{slug}/coaches/{coach}/reviews", {"order": "helpful", "cursor": ""}),
]


# --- the module's world, browsers and log ----------------------------------------------------------

@pytest.fixture(autouse=True)
def _clean():
    """Overrides the suite's per-test truncation: this module's tests fuzz one seeded organization, and
    ``fuzz`` empties the tables once, after the module's last test."""
    yield


class Fuzz:
    """The seeded world's ids, a logged-in browser per role, the error log and what was fuzzed."""

    def __init__(self, app, world: FuzzWorld, log: ErrorLog):
        self.app = app
        self.log = log
        self.ids = dict(world.ids, reset=world.reset_secret, signup=world.signup_secret, invite=world.invite_secret,
                        today=datetime.now(timezone.utc).date().isoformat(),
                        now=datetime.now(timezone.utc).isoformat())
        self.free_starts = iter(world.free_starts)
        self.totp = world.totp
        self.owner_url = ""
        self.browsers: dict[str, object] = {}
        self.adapter = app.url_map.bind("localhost")
        self.fuzzed: set[tuple] = set()  # (endpoint, method, field names, non-id URL arguments)

    def browser(self, role: str):
        if role == "anon":
            return self.app.test_client()
        if role not in self.browsers:
            browser = self.app.test_client()
            response = Auth(browser).login(ROLES[role])
            assert response.status_code == 303, f"{role} cannot log in"
            if role in SECOND_STEP:
                assert "/login/verify" in response.headers["Location"], f"{role} has no second step"
            if SECOND_STEP.get(role):
                token = csrf_from(browser.get("/login/verify").get_data(as_text=True))
                code = pyotp.TOTP(self.totp[ROLES[role]]).now()
                done = browser.post("/login/verify", data={"csrf_token": token, "code": code})
                assert done.status_code == 303 and "/login" not in done.headers["Location"], f"{role}: no code"
            self.browsers[role] = browser
        return self.browsers[role]

    def endpoint(self, form: Form) -> tuple[str | None, dict]:
        path = form.action.split("?", 1)[0]
        try:
            return self.adapter.match(path, method=form.method.upper())
        except (NotFound, MethodNotAllowed):
            return None, {}

    def errors_logged(self) -> list[logging.LogRecord]:
        return self.log.take(threading.current_thread().name)


@pytest.fixture(scope="module")
def fuzz(app, stack, job_runner, mailbox, _tables):
    log = ErrorLog()
    root = logging.getLogger()
    with pytest.MonkeyPatch.context() as patch:
        # Hundreds of posts a minute from one address and one account. RATELIMIT_ENABLED is read when the
        # limiter is bound to the app, so the bound limiter is switched off itself.
        patch.setattr(limiter, "enabled", False)
        patch.setitem(app.config, "CHAT_MESSAGES_PER_10S", 1_000_000)  # the chat's own send limit (per member)
        with app.test_request_context():
            world = FuzzWorld()
            make_user("lou@example.com", "Lou Login")  # the account the login and forgot-password forms name
        fail_a_job(app, job_runner, world.ids["org_id"], "Fuzz failed job")  # for the operators' console
        root.addHandler(log)  # after the job's failure: that one is the seed's
        try:
            state = Fuzz(app, world, log)
            state.owner_url = stack.owner_url.replace("+psycopg", "")
            # The log capture sees the app's "unhandled error" records (propagated from its logger).
            try:
                raise RuntimeError("probe")
            except RuntimeError:
                app.logger.exception("unhandled error")
            assert [r.getMessage() for r in state.errors_logged()] == ["unhandled error"]
            yield state
        finally:
            root.removeHandler(log)
            with job_runner.paused():  # as the suite's per-test truncation does it
                with psycopg.connect(stack.owner_url.replace("+psycopg", ""), autocommit=True) as conn:
                    conn.execute(f"TRUNCATE {', '.join(_tables)} CASCADE")
                redis.Redis.from_url(stack.redis_url).flushdb()
            mailbox.clear()


# --- values ----------------------------------------------------------------------------------------

def _future(days: int, hour: int = 10) -> datetime:
    return (datetime.now(timezone.utc) + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (24, 16), "navy").save(out, "PNG")
    return out.getvalue()


LOGO = _png()
# Plausible values for one form's field, where the generic ones would miss the path worth reaching.
PLAUSIBLE_FOR = {
    ("accounts.login", "email"): lambda fuzz, rendered: "lou@example.com",  # the right password logs in
    ("accounts.forgot_password", "email"): lambda fuzz, rendered: "lou@example.com",  # a link is made
    ("booking.book", "start"): lambda fuzz, rendered: next(fuzz.free_starts, rendered),  # a time still free
    ("progress.import_framework", "file"): lambda fuzz, rendered: (
        "scale,Introduced,Practised,Competent\narea,skill,description,required_level\nServe,Flat serve,,2\n"),
    ("progress.log_value", "value"): lambda fuzz, rendered: "55",
    ("progress.new_goal", "metric_unit"): lambda fuzz, rendered: "kg",
    ("progress.new_goal", "metric_start"): lambda fuzz, rendered: "10",
    ("progress.new_goal", "metric_target"): lambda fuzz, rendered: "12.5",
    ("progress.add_record_media", "moment"): lambda fuzz, rendered: "0:01",
    ("progress.line_add", "exercise_id"): lambda fuzz, rendered: fuzz.ids["exercise"],
    ("progress.program_assign", "athlete_ids"): lambda fuzz, rendered: fuzz.ids["bea"],
    **{("progress.check_in_readiness", name): (lambda fuzz, rendered: "3")
       for name in ("energy", "mood", "stress", "soreness")},
    ("progress.check_in_readiness", "sleep_hours"): lambda fuzz, rendered: "7.5",
    ("progress.new_habit", "times_per_week"): lambda fuzz, rendered: "3",
    ("progress.edit_habit", "times_per_week"): lambda fuzz, rendered: "3",
    ("progress.workout_move", "direction"): lambda fuzz, rendered: "up",
    ("progress.line_move", "direction"): lambda fuzz, rendered: "down",
    # Never the club's own address: that closes it (a banner on every page after).
    ("org_privacy.request_closing", "slug"): lambda fuzz, rendered: "not-this-club",
    ("admin.branding_accent", "accent_color"): lambda fuzz, rendered: "#0b4fa8",
    ("admin.branding_accent", "accent_picker"): lambda fuzz, rendered: "#0b4fa8",
    ("admin.branding_logo", "logo"): lambda fuzz, rendered: LOGO,  # a real picture: mutations corrupt it
    # A server that refuses at once (the sync the connection asks for fails fast, with its message).
    ("booking.connect_calendar", "server_url"): lambda fuzz, rendered: "http://127.0.0.1:9/dav/",
    # The week's clock toggle is a named button (not sent unless clicked): the click, so the change is made.
    ("booking.set_clock", "hour_cycle"): lambda fuzz, rendered: "12",
    # Selects whose first option is "" (none): a browser sends that.
    **{key: (lambda fuzz, rendered: "") for key in (
        ("progress.add_skill", "required_level"), ("progress.exercise_create", "demo_media_id"),
        ("progress.exercise_edit", "demo_media_id"), ("progress.program_create", "template_id"),
        ("progress.workout_log", "media_id"))},
}
# A workout's prescription (and, on the log form, ``line-<id>-<name>``) by the field's name.
LINE_VALUES = {"sets": "3", "reps": "5", "load_kg": "22.5", "duration": "1:30", "distance_m": "400", "rest": "90",
               "tempo": "3-1-1"}


def plausible(fuzz: Fuzz, endpoint: str, name: str, kind: str, rendered: str) -> bytes | None:
    """A value a person could have sent (``None``: a browser sends nothing, as for an unticked box)."""
    n = next(_n)
    if (endpoint, name) in PLAUSIBLE_FOR:
        value = PLAUSIBLE_FOR[endpoint, name](fuzz, rendered)
        return value if isinstance(value, bytes) else value.encode()
    if endpoint in ("progress.line_add", "progress.line_update", "progress.workout_log") and not rendered:
        suffix = name.rsplit("-", 1)[-1]
        if suffix in LINE_VALUES:
            return LINE_VALUES[suffix].encode()
    if name == "idempotency_key":
        return uuid.uuid4().hex.encode()  # a fresh one: a reused key would replay or refuse the first answer
    if name == "client_id":
        return str(uuid.uuid4()).encode()
    if kind in ("checkbox", "radio", "button") and not rendered:
        return None
    if rendered.strip():
        return rendered.encode()
    by_name = {
        "email": f"fuzz{n}@example.com", "password": PASSWORD, "confirm": PASSWORD, "current_password": PASSWORD,
        "slug": f"fuzz-{n}", "hours": "10:00-12:00", "start": "10:00", "end": "12:00", "at": "0:01",
        "meeting_url": "https://meet.example.com/room", "on_date": _future(20).date().isoformat(),
        "starts": _future(21).strftime("%Y-%m-%dT%H:%M"), "ends": _future(22).strftime("%Y-%m-%dT%H:%M"),
        "days": "7", "actor": "", "action": "", "since": "", "until": "", "after": "", "reschedule": "",
        "parent": "",
    }
    if name in by_name:
        return by_name[name].encode()
    by_kind = {"email": f"fuzz{n}@example.com", "password": PASSWORD, "number": "5", "time": "10:00",
               "date": _future(20).date().isoformat(), "datetime-local": _future(21).strftime("%Y-%m-%dT%H:%M"),
               "url": "https://example.com/"}
    return by_kind.get(kind, f"Fuzz text {n}").encode()


EXTRA_NAMES = ("extra", "csrf_token[]", "__proto__", "", "n" * 300)
# What a field gets in an example: its plausible value, a hostile one, its plausible value mutated (see
# fuzz_support.mutate), nothing, or two values. "keep" weighs three times the others: an example with one or
# two hostile fields among plausible ones gets past the first check that refuses, where the bugs are.
MODES = ("keep", "keep", "keep", "hostile", "mutated", "missing", "twice")
KEEP = ("keep", b"", 0, True)
TEXT_KINDS = {"text", "textarea", "hidden", "search", "email", "url", "password", "query", "file"}


def field_choices(huge: bool) -> st.SearchStrategy:
    """What one field gets: a mode, a hostile value, a mutation of the plausible value and, sent twice,
    which copy comes first."""
    return st.tuples(st.sampled_from(MODES), hostile_values(huge), st.integers(0, 63), st.booleans())


def example_strategy(names: list[str], huge: bool = True) -> st.SearchStrategy:
    return st.fixed_dictionaries({
        "fields": st.fixed_dictionaries({name: field_choices(huge) for name in names}),
        "extra": st.one_of(st.none(), st.tuples(st.sampled_from(EXTRA_NAMES), hostile_values(huge))),
        "raw": st.sampled_from([False] * 7 + [True]),  # sometimes the body's bytes unescaped
    })


def sweep(kinds: dict[str, str], keep: dict[str, bytes | None]) -> list[tuple[str, dict]]:
    """One example per field and value class that most often gets past a form's validation to PostgreSQL:
    a NUL after a text field's plausible value, and a 31-digit number in a number field or a query
    parameter. Every other field keeps its plausible value, so nothing else stops the request first."""
    examples = []
    for name, kind in kinds.items():
        values = []
        if kind in TEXT_KINDS:
            values.append((keep.get(name) or b"") + b"\x00")
        if kind in ("number", "query"):
            values.append(b"1" + b"0" * 30)
        for hostile in values:
            fields = {other: KEEP for other in kinds}
            fields[name] = ("hostile", hostile, 0, True)
            examples.append((name, {"fields": fields, "extra": None, "raw": False}))
    return examples


def build_pairs(values: dict[str, bytes | None], example: dict) -> list[tuple[str, bytes]]:
    """The (name, value) pairs an example sends, given each field's plausible value."""
    pairs: list[tuple[str, bytes]] = []
    for name, (mode, hostile, mutation, first) in example["fields"].items():
        keep = values[name]
        if mode == "keep":
            pairs += [] if keep is None else [(name, keep)]
        elif mode == "hostile":
            pairs.append((name, hostile))
        elif mode == "mutated":
            pairs.append((name, mutate(keep or b"", mutation)))
        elif mode == "twice":
            both = [(name, keep if keep is not None else hostile), (name, hostile)]
            pairs += both if first else both[::-1]
    if example["extra"] is not None:
        pairs.append(example["extra"])
    return pairs


def raw_body(pairs: list[tuple[str, bytes]]) -> bytes:
    """The pairs with only the separators escaped: other bytes (NUL, invalid UTF-8) go out as they are."""
    def esc(b: bytes) -> bytes:
        return b.replace(b"%", b"%25").replace(b"&", b"%26").replace(b"=", b"%3D").replace(b"+", b"%2B")
    return b"&".join(esc(k.encode("utf-8", "surrogatepass")) + b"=" + esc(v) for k, v in pairs)


def describe(pairs: list[tuple[str, bytes]], raw: bool) -> str:
    listed = ", ".join(f"{name}={shown(value)}" for name, value in pairs if name != "csrf_token")
    return ("raw body: " if raw else "") + (listed or "(no fields but the CSRF token)")


# --- sending ---------------------------------------------------------------------------------------

def check(fuzz: Fuzz, what: str, response=None, exc: BaseException | None = None) -> None:
    """Fail on a 5xx, an exception out of the app, or an error with a traceback in the log."""
    problems = []
    if exc is not None:
        problems.append("the request raised:\n" + traceback_tail(exc))
    if response is not None and response.status_code >= 500:
        problems.append(f"status {response.status_code}")
    elif response is not None and response.status_code not in ACCEPTED:
        problems.append(f"unexpected status {response.status_code}")
    for record in fuzz.errors_logged():
        problems.append("logged:\n" + traceback_tail(record))
    if problems:
        raise AssertionError(f"{what}\n" + "\n".join(problems))


def send(fuzz: Fuzz, browser, method: str, url: str, pairs, raw: bool, headers: dict,
         files: set[str] | None = None) -> None:
    """Send ``pairs`` (GET: in the query string; POST: form-urlencoded, or multipart when ``files`` names the
    form's file fields) and :func:`check` the answer."""
    what = f"{method.upper()} {url} ({'htmx' if headers else 'plain'}) with {describe(pairs, raw)}"
    fuzz.errors_logged()  # what earlier requests of this thread logged was checked already
    try:
        if method == "get":
            query = encode_pairs(pairs)
            response = browser.get(f"{url}{'&' if '?' in url else '?'}{query}" if query else url, headers=headers)
        elif files is not None:
            body, content_type = multipart_body(pairs, files)
            response = browser.post(url, data=body, content_type=content_type, headers=headers)
        else:
            body = raw_body(pairs) if raw else encode_pairs(pairs).encode()
            response = browser.post(url, data=body, content_type="application/x-www-form-urlencoded",
                                    headers=headers)
    except Exception as exc:  # the test client re-raises what the app did not handle
        check(fuzz, what, exc=exc)
        return
    if TRACE:
        print(response.status_code, what[:TRACE])
    check(fuzz, what, response)


def failure_of(body, example: dict) -> str | None:
    try:
        body(example)
    except AssertionError as exc:
        return str(exc)
    return None


def minimize(example: dict, body) -> str | None:
    """Greedily put each field back to its plausible value (and drop the extra field and the raw body)
    while the example still fails; the last failure's report, or ``None`` if it no longer fails."""
    report = failure_of(body, example)
    if report is None:
        return None
    for step in ("extra", "raw", *example["fields"]):
        candidate = {**example, "fields": dict(example["fields"])}
        if step == "extra":
            candidate["extra"] = None
        elif step == "raw":
            candidate["raw"] = False
        else:
            candidate["fields"][step] = ("keep", *example["fields"][step][1:])
        if candidate == example:
            continue
        smaller = failure_of(body, candidate)
        if smaller is not None:
            example, report = candidate, smaller
    return report


def run_examples(examples: int, strategy, body) -> str | None:
    """Run ``body`` on ``examples`` derandomized examples; on a failure, the report of a smaller failing input.

    Hypothesis stops at the first failing example (its shrinker would send thousands of requests);
    :func:`minimize` then keeps every field it can at its plausible value, a few requests per field.
    """
    failing: list[dict] = []

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None, print_blob=False,
              phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(example):
        try:
            body(example)
        except AssertionError:
            failing.append(example)
            raise

    try:
        run()
    except AssertionError as exc:
        if not failing:
            return str(exc)
        return minimize(failing[0], body) or str(exc)
    return None


def _where(report: str) -> str:
    """What went wrong, without the input: the status and the traceback's frames and error type."""
    problems = report.split("\n", 1)[-1].split("  which began with:")[0].splitlines()
    frames = [line for line in problems if ".py:" in line or line.startswith(("status", "unexpected"))]
    errors = [line.split(":", 1)[0] for line in problems if line.startswith("  ") and ".py:" not in line]
    return "\n".join(frames + errors[:1])


def fuzz_inputs(kinds: dict[str, str], keep: dict[str, bytes | None], body, examples: int, huge: bool) -> list[str]:
    """The sweep, then hypothesis's examples; the distinct failures' reports (one input per place in the
    code, with the other sweep fields that fail there listed)."""
    found = [(name, failure_of(body, example)) for name, example in sweep(kinds, keep)]
    found.append((None, run_examples(examples, example_strategy(list(kinds), huge), body)))
    distinct: dict[str, tuple[str, list[str]]] = {}
    for name, report in found:
        if report is None:
            continue
        first, also = distinct.setdefault(_where(report), (report, []))
        if report is not first and name:
            also.append(name)
    return [report + (f"\n(the same failure when the sweep's value is in: {', '.join(also)})" if also else "")
            for report, also in distinct.values()]


def fuzz_form(fuzz: Fuzz, page: Page, page_url: str, form: Form, endpoint: str) -> list[str]:
    url = form.action
    if fuzz.endpoint(form)[0] is None:
        url = page_url  # an action that is no route (see test_every_form_is_sent_to_a_route): fuzz the view
    names = [n for n in form.names() if n != "csrf_token"]
    token = form.field("csrf_token").value if "csrf_token" in form.names() else None
    rendered = {n: form.field(n) for n in names}

    def values() -> dict[str, bytes | None]:  # afresh for each request: a new idempotency key, a new email
        return {n: plausible(fuzz, endpoint, n, f.kind, f.value.strip() if f.kind == "textarea" else f.value)
                for n, f in rendered.items()}

    def body(example):
        browser = fuzz.browser(page.role)
        csrf = token
        if page.role == "anon" and token is not None:  # a new visitor: its own session and token (one-time
            csrf = csrf_from(browser.get("/login").get_data(as_text=True))  # links' pages lose their form)
        for headers in ({}, HX):
            pairs = ([("csrf_token", csrf.encode())] if csrf else []) + build_pairs(values(), example)
            files = {f.name for f in form.fields if f.kind == "file"} if form.multipart else None
            send(fuzz, browser, form.method, url, pairs, example["raw"] and form.method == "post", headers, files)

    examples = SLOW_EXAMPLES if endpoint in SLOW else EXAMPLES
    return fuzz_inputs({n: f.kind for n, f in rendered.items()}, values(), body, examples, form.method == "post")


UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MESSAGE_RE = re.compile(r'<article class="message[^"]*" id="msg-([0-9a-f-]{36})"')


def fresh_message(fuzz: Fuzz, role: str) -> str:
    """The id of a message ``role`` sends now, through the conversation page's own form."""
    browser = fuzz.browser(role)
    page = f"/o/{fuzz.ids['slug']}/chat/{fuzz.ids['conversation']}"
    send_form = next(form for form in forms_in(page, browser.get(page).get_data(as_text=True))
                     if fuzz.endpoint(form)[0] == "chat.send")
    data = {f.name: plausible(fuzz, "chat.send", f.name, f.kind, f.value) for f in send_form.fields
            if f.kind not in ("checkbox", "radio")}
    sent = browser.post(send_form.action, data={**data, "body": b"Edit me"})
    assert sent.status_code in (200, 204, 303), f"sending a message to edit: {sent.status_code}"
    return MESSAGE_RE.findall(browser.get(page).get_data(as_text=True))[-1]


def _owner(fuzz: Fuzz):
    return psycopg.connect(fuzz.owner_url, autocommit=True)


def fresh_reset_link(fuzz: Fuzz) -> str:
    """The secret of a new reset link of Bea's. A reset link works once: a fuzzed submission that happens to be a
    good new password (and its repeat) spends it, as it should, and the page then answers 410."""
    secret, digest = new_token()
    with _owner(fuzz) as conn:
        conn.execute("INSERT INTO password_reset_tokens (id, user_id, token_hash, expires_at) "
                     "SELECT %s, id, %s, now() + interval '1 hour' FROM users WHERE email = 'bea@example.com'",
                     (uuid.uuid4(), digest))
    return secret


def fresh_signup_link(fuzz: Fuzz) -> str:
    """The secret of a new sign-up waiting for its confirmation (a fuzzed confirmation creates the account)."""
    secret, digest = new_token()
    with _owner(fuzz) as conn:
        conn.execute("INSERT INTO pending_signups (id, email, display_name, timezone, password_hash, token_hash, "
                     "expires_at) SELECT %s, %s, 'Pen Ding', 'Europe/Berlin', password_hash, %s, "
                     "now() + interval '1 hour' FROM users WHERE email = 'ada@example.com'",
                     (uuid.uuid4(), f"pending{next(_n)}@example.com", digest))
    return secret


def fresh_invitation_link(fuzz: Fuzz) -> str:
    """The secret of a new open invitation to the club, like the seeded one (a fuzzed sign-up accepts it)."""
    secret, digest = new_token()
    with _owner(fuzz) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", [fuzz.ids["org_id"]])  # RLS applies
        conn.execute("INSERT INTO invitations (id, tenant_id, email, role, token_hash, invited_by_membership_id, "
                     "expires_at) SELECT %s, tenant_id, %s, role, %s, invited_by_membership_id, "
                     "now() + interval '7 days' FROM invitations WHERE id = %s",
                     (uuid.uuid4(), f"newbie{next(_n)}@example.com", digest, fuzz.ids["invitation"]))
    return secret


def fresh_email_confirm_link(fuzz: Fuzz) -> str:
    """The secret of a new email change of Emil's waiting for its confirmation (a fuzzed one confirms it)."""
    secret, digest = new_token()
    with _owner(fuzz) as conn:
        conn.execute("INSERT INTO email_changes (id, user_id, old_email, new_email, token_hash, expires_at) "
                     "SELECT %s, id, email, %s, %s, now() + interval '24 hours' FROM users "
                     "WHERE display_name = 'Emil Change'", (uuid.uuid4(), f"emil{next(_n)}@example.com", digest))
    return secret


def fresh_email_undo_link(fuzz: Fuzz) -> str:
    """The secret of the undo link of a new confirmed change of Una's (a fuzzed undo puts the old address back:
    a new one each time, so it is never taken)."""
    secret, digest = new_token()
    with _owner(fuzz) as conn:
        conn.execute("INSERT INTO email_changes (id, user_id, old_email, new_email, token_hash, expires_at, "
                     "confirmed_at, undo_token_hash, undo_expires_at) SELECT %s, id, %s, email, %s, "
                     "now() + interval '24 hours', now(), %s, now() + interval '7 days' FROM users "
                     "WHERE display_name = 'Una Undo'",
                     (uuid.uuid4(), f"una{next(_n)}@example.com", new_token()[1], digest))
    return secret


def fresh_manage_link(fuzz: Fuzz, booking_key: str, action: str) -> str:
    """A new no-login link (issue 19) to ``action`` the seeded booking ``booking_key`` (a fuzzed good POST spends it)."""
    with fuzz.app.test_request_context():
        tenancy.activate(uuid.UUID(fuzz.ids["org_id"]))
        token = manage_links.issue(db.session.get(Booking, uuid.UUID(fuzz.ids[booking_key])), action)
        db.session.commit()
        db.session.remove()
    return token


# The pages of one-time links get a new link each time they are opened: a fuzzed form spends its link, as it should
# (the page then answers 410), and no test may depend on running before the ones that fuzz it.
ONE_TIME_LINKS = {"reset": fresh_reset_link, "signup": fresh_signup_link, "invite": fresh_invitation_link,
                  "email_confirm": fresh_email_confirm_link, "email_undo": fresh_email_undo_link,
                  "manage_cancel": lambda fuzz: fresh_manage_link(fuzz, "cancel_booking", "cancel"),
                  "manage_reschedule": lambda fuzz: fresh_manage_link(fuzz, "move_booking", "reschedule")}


def page_forms(fuzz: Fuzz, page: Page) -> tuple[str, list[Form]]:
    ids = dict(fuzz.ids, message=fresh_message(fuzz, page.role)) if page.fresh_message else fuzz.ids
    ids = dict(ids, **{name: mint(fuzz) for name, mint in ONE_TIME_LINKS.items() if f"{{{name}}}" in page.path})
    url = page.path.format(**ids)
    if SECOND_STEP.get(page.role) is False:  # a password's pending second step lasts five minutes (PENDING_TTL):
        fuzz.browsers.pop(page.role, None)  # on a slow run the sign-in of an earlier test has expired by now
    browser = fuzz.browser(page.role)
    response = browser.get(url)
    check(fuzz, f"GET {url} as {page.role}", response)
    assert response.status_code == 200, f"GET {url} as {page.role}: {response.status_code}"
    return url, forms_in(url, response.get_data(as_text=True))


def restore(fuzz: Fuzz) -> None:
    """The organization as the later pages need it: not closing, no two-factor requirement (Ada and Carla have
    none), its name, locale and space rule back (a fuzzed settings form saves what it is sent)."""
    with psycopg.connect(fuzz.owner_url, autocommit=True) as conn:
        conn.execute("UPDATE organizations SET closing_requested_at = NULL, closing_due_at = NULL, "
                     "require_two_factor = false, name = 'Fuzz Club', locale = 'en', space_creation = 'leaders' "
                     "WHERE slug = %s", [fuzz.ids["slug"]])


def not_sent_reason(endpoint: str, args: dict) -> str | None:
    if endpoint in NOT_SENT:
        return NOT_SENT[endpoint]
    return next((why for (ep, action), why in NOT_SENT_ACTIONS.items()
                 if ep == endpoint and args.get("action") == action), None)


# --- the tests -------------------------------------------------------------------------------------

def test_every_form_is_sent_to_a_route(fuzz):
    """A form whose action is no route (or not for its method) fails in every browser, htmx or not."""
    broken = []
    for page in PAGES:
        url, forms = page_forms(fuzz, page)
        for form in forms:
            if form.method == "post" and fuzz.endpoint(form)[0] is None:
                broken.append(f"{url} (as {page.role}): <form method=post action={form.action!r}>")
    assert not broken, "forms sent nowhere:\n" + "\n".join(broken)


# Not named ``page``: that is pytest-playwright's fixture, and its name alone would parametrize the test with the
# browser (a session-scoped parameter, which pytest sorts the tests by: this file's tests would no longer run in the
# order written).
@pytest.mark.parametrize("shown", PAGES, ids=[f"{p.role}:{p.path.split('?')[0]}" for p in PAGES])
def test_forms_of_the_page_survive_hostile_input(fuzz, shown):
    url, forms = page_forms(fuzz, shown)
    found: dict[str, list[tuple[Form, dict]]] = {}
    for form in forms:
        endpoint, args = fuzz.endpoint(form)
        if endpoint is None and form.method == "post":
            endpoint, args = fuzz.endpoint(Form(url, "post", url))  # see test_every_form_is_sent_to_a_route
        if endpoint is None or not_sent_reason(endpoint, args) or endpoint in shown.keep_out:
            continue
        found.setdefault(endpoint, []).append((form, args))
    missing = [e for e in shown.expects if e not in found]
    assert not missing, f"{url} as {shown.role} no longer has the forms {missing}: the fuzz would miss them"

    failures = []
    prefer = fuzz.ids.get(shown.prefer, "\0")
    for endpoint, instances in found.items():
        # One instance per distinct set of fields (a reply form has a parent, a comment form not).
        by_fields: dict[tuple[str, ...], tuple[Form, dict]] = {}
        for form, args in instances:
            key = tuple(sorted(form.names()))
            if key not in by_fields or prefer in form.action:
                by_fields[key] = (form, args)
        for key, (form, args) in by_fields.items():
            # The same form on another page was fuzzed there; a flag on a comment is not a flag on a post.
            words = tuple(sorted((k, str(v)) for k, v in args.items()  # a uuid converter's value is a UUID
                                 if k != "slug" and not UUID_RE.fullmatch(str(v))))
            if (endpoint, form.method, key, words) in fuzz.fuzzed:
                continue
            fuzz.fuzzed.add((endpoint, form.method, key, words))
            failures += [f"== {endpoint}: {form.method.upper()} {form.action} ==\n{report}"
                         for report in fuzz_form(fuzz, shown, url, form, endpoint)]
    if shown.restore:
        restore(fuzz)
    assert not failures, "\n\n".join(failures)
    background = [traceback_tail(record) for record in fuzz.log.take()]  # jobs of the events the forms emitted
    assert not background, f"errors logged by background jobs after fuzzing {url}:\n" + "\n".join(background)


@pytest.mark.parametrize("query", QUERIES, ids=[f"{q.role}:{q.path}" for q in QUERIES])
def test_query_strings_survive_hostile_input(fuzz, query):
    url = query.path.format(**fuzz.ids)
    keep = {name: (value.format(**fuzz.ids).encode() or None) for name, value in query.params.items()}

    def body(example):
        browser = fuzz.browser(query.role)
        for headers in ({}, HX):
            send(fuzz, browser, "get", url, build_pairs(keep, example), False, headers)

    failures = fuzz_inputs({name: "query" for name in keep}, keep, body, EXAMPLES, huge=False)
    assert not failures, f"== GET {url} ==\n" + "\n\n".join(failures)


# Issue 22: what people (and scripts) type into a directory search, each alone in the parameter it targets.
SEARCH_VALUES = {
    "q": ["&|!():*", "aim & !coach | (tennis:* <-> serve)", "'\"", '"unclosed', "a:*:*", "!!!", "<->", "\\",
          "a" * 10_000, "serve " * 2_000, "\x00", "ten\x00nis", "the and of a", "'; DROP TABLE directory_listings; --",
          "%_%", "\u202eevil", "\U0001F3BE", "tenn", "valorrant", " "],
    "discipline": ["no-such-sport", "", "a" * 5_000, "\x00", "tennis' OR '1'='1"],
    "skill": ["unknown", "%", "\x00"],
    "lang": ["xx", "english", "e", "\x00", "en,de"],
    "price": ["-1", "99", "1e9", "1" + "0" * 30, "two"],
    "rating": ["5", "4.5", "0", "-4", "NaN", "4+"],
    "verified": ["maybe", "2", "\x00"], "week": ["yes", "-1"], "exact": ["perhaps"],
    "mode": ["teleport", "in person", "in-person", "\x00"],
    "sort": ["price; DROP", "RATING", "random()", ""],
    "cursor": ["forged", "", "x" * 10_000, "\x00", "eyJhIjoxfQ.forged.sig", "..", "%00"],
}


def _tampered_cursors(fuzz: Fuzz) -> list[str]:
    """A cursor of ours (signed), then the same changed by a character, cut short, with a foreign signature."""
    from coach.directory.search import Cursor, encode_cursor, fingerprint

    with fuzz.app.test_request_context():
        real = encode_cursor(Cursor("rating", (Decimal("4.1"),), uuid.uuid4(), fingerprint("")))
    flipped = real[:5] + ("A" if real[5] != "A" else "B") + real[6:]
    return [flipped, real[: len(real) // 2], real.rsplit(".", 1)[0] + ".AAAA", real + real]


@pytest.mark.parametrize("path", ["/coaches", "/o/{slug}/coaches"])
def test_directory_searches_survive_hostile_values(fuzz, path):
    """Hostile values in each search parameter (tsquery syntax, quotes, 10,000 characters, NUL, stop words only,
    SQL metacharacters, unknown facet values, forged and tampered cursors) get a page or a 4xx, never a 5xx,
    plain and as htmx; the same with every facet given at once."""
    url = path.format(**fuzz.ids)
    browser = fuzz.browser("athlete")
    values = dict(SEARCH_VALUES, cursor=SEARCH_VALUES["cursor"] + _tampered_cursors(fuzz))
    failures = []
    for name, hostile in values.items():
        for value in hostile:
            for headers in ({}, HX):
                try:
                    send(fuzz, browser, "get", url, [(name, value.encode("utf-8", "surrogatepass"))], False, headers)
                except AssertionError as exc:
                    failures.append(str(exc)[:1500])
    everything = [(name, hostile[0].encode()) for name, hostile in values.items()]
    try:
        send(fuzz, browser, "get", url, everything, False, {})
    except AssertionError as exc:
        failures.append(str(exc)[:1500])
    # A search with a bad cursor says so (400) instead of starting over silently.
    assert browser.get(f"{url}?cursor=forged").status_code == 400
    assert not failures, "\n\n".join(failures)


PREVIEW_RE = re.compile(r'id="profile-preview"[^>]*hx-post="([^"]+)"')


@pytest.mark.parametrize("role, path", [("coach", "/o/{slug}/profile"), ("admin", "/o/{slug}/coaches/{coach}/profile/edit")])
def test_profile_live_preview_survives_hostile_input(fuzz, role, path):
    """The editor's live preview (htmx posts the editor's fields to the preview route on every pause in typing) is
    fuzzed with the editor's own fields: it renders or refuses, never a 5xx, and writes nothing."""
    shown = Page(role, path, ())
    url, forms = page_forms(fuzz, shown)
    page = fuzz.browser(role).get(url).get_data(as_text=True)
    preview = PREVIEW_RE.search(page)
    assert preview, f"{url} has no live preview: the fuzz would miss it"
    editor = next(f for f in forms if f.method == "post" and fuzz.endpoint(f)[0] in ("directory.edit_own",
                                                                                      "directory.edit_profile"))
    form = Form(url, "post", html.unescape(preview.group(1)), editor.fields)
    endpoint = fuzz.endpoint(form)[0]
    assert endpoint in ("directory.preview_own", "directory.preview_profile"), endpoint
    failures = fuzz_form(fuzz, shown, url, form, endpoint)
    assert not failures, "\n\n".join(failures)
