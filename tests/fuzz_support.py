"""Form fuzz support: a seeded organization, the forms of rendered pages, hostile values, raw form bodies.

- :class:`FuzzWorld` seeds one organization through the services: an admin, a coach with weekly hours
  and an offering, athletes, a space with a post and a comment, a media item (its row), a direct
  conversation with messages, a booking, an open invitation, a reset link and a pending sign-up; and the
  athlete's development (see :meth:`FuzzWorld.seed_progress`): frameworks, ended sessions with a draft and a
  signed record, a program with a logged workout, a goal with a metric, a habit and a report.
- :func:`forms_in` parses a page's forms (``html.parser``): method, action and named fields, hidden
  ones included, with the value the page rendered.
- :data:`HOSTILE` and :func:`hostile_values` are the values the fuzz sends; :func:`encode_pairs`
  percent-encodes raw bytes, so lone surrogates and invalid UTF-8 arrive as a browser or a
  script could send them.
- :class:`ErrorLog` is a logging handler that keeps ERROR records carrying a traceback.
"""
from __future__ import annotations

import logging
import threading
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from html.parser import HTMLParser
from urllib.parse import quote_from_bytes, urljoin, urlsplit

from hypothesis import strategies as st

from coach import tenancy
from coach.accounts import service as accounts
from coach.accounts import twofactor
from coach.accounts.models import EmailChange, Passkey, PasswordResetToken, PendingSignup
from coach.booking import manage_links, waitlist
from coach.booking import series as booking_series
from coach.booking import service as booking
from coach.booking.models import Booking, CoachingSession
from coach.chat import service as chat
from coach.extensions import db
from coach.media import service as media
from coach.orgs import service as orgs
from coach.orgs.service import membership_for
from coach.progress import exercises, frameworks, goals, habits, programs, records, reports
from coach.privacy import exports
from coach.progress.models import ProgressReport
from coach.security import hash_password, new_token
from coach.spaces import service as spaces
from tests.booking_support import make_offering, open_every_day
from tests.calendar_rows import seed_calendar_rows
from tests.factories import PASSWORD, add_member, make_org, make_user, media_row
from tests.room_rows import write_session

UTC = timezone.utc


# --- the world -------------------------------------------------------------------------------------

class FuzzWorld:
    """Fuzz Club (slug ``fuzz``): Ada Admin; Carla Coach (Berlin, 09–17 daily, a 60-minute offering that
    confirms at once) hosting the open space "Court" with a post and a comment; Arno Athlete (booked for
    a session, owner of a video, in a direct conversation with Carla); Pat Profile, an athlete whose own
    profile and password are fuzzed (nobody else logs in as Pat).

    Secrets of the one-time links (``reset_secret``, ``signup_secret``, ``invite_secret``) are known.
    """

    def __init__(self):
        ada = make_user("ada@example.com", "Ada Admin")
        self.org = make_org(ada, slug="fuzz", name="Fuzz Club")
        tenancy.activate(self.org.id)
        self.admin = membership_for(self.org, ada)
        self.coach = add_member(self.org, make_user("carla@example.com", "Carla Coach"), "coach")
        self.athlete = add_member(self.org, make_user("arno@example.com", "Arno Athlete"), "athlete")
        self.pat = add_member(self.org, make_user("pat@example.com", "Pat Profile"), "athlete")
        self.bea = add_member(self.org, make_user("bea@example.com", "Bea Berg"), "athlete")
        open_every_day(self.coach, tz="Europe/Berlin")
        self.offering = make_offering(self.coach, auto_confirm=True)
        self.spare = make_offering(self.coach, title="Spare session")  # whose edit form is fuzzed
        tenancy.activate(self.org.id)
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=3)
        slots = booking.available_slots(self.offering, start, start + timedelta(days=1))
        self.booking = booking.request_booking(self.offering, self.athlete, slots[0].starts_at, "First", self.athlete)
        self.free_slot = slots[2].starts_at
        # Free times of the next days: each booking the fuzz sends gets one of its own, so that one which
        # succeeds (or a value the form lets through) leaves the next a time still free.
        later = booking.available_slots(self.offering, start + timedelta(days=1), start + timedelta(days=12))
        self.free_starts = [s.starts_at.strftime("%Y-%m-%dT%H:%M:%SZ") for s in later]
        self.space = spaces.create_space(self.org, self.coach, "Court", "Serve and volley", "open")
        spaces.join(self.space, self.athlete)
        spaces.join(self.space, self.bea)
        self.post = spaces.create_post(self.space, self.coach, "Welcome to the court, @Arno")
        self.comment = spaces.add_comment(self.post, self.athlete, "Thanks!")
        self.media = media_row(self.org.id, self.athlete, "Serve drill", audience="organization")
        db.session.flush()
        self.conversation = chat.direct_with(self.org, self.athlete, self.coach)
        self.message = chat.send(self.conversation, self.athlete, "Hello coach")
        chat.send(self.conversation, self.coach, "Hello Arno")
        # Two invitations: the fuzzed sign-up accepts the first; the second stays open for the members page.
        self.invitation = orgs.invite(self.org, self.admin, "newbie@example.com", "athlete")
        self.invite_secret, self.invitation.token_hash = new_token()
        orgs.invite(self.org, self.admin, "later@example.com", "coach")
        db.session.commit()
        tenancy.activate(self.org.id)
        self.review = media.add_review_comment(self.media, self.coach, 1000, "Watch the toss")
        db.session.commit()
        self.reset_secret, digest = new_token()
        db.session.add(PasswordResetToken(user_id=self.bea.user.id, token_hash=digest,
                                          expires_at=datetime.now(UTC) + timedelta(hours=1)))
        self.signup_secret, digest = new_token()
        db.session.add(PendingSignup(email="pending@example.com", display_name="Pen Ding", timezone="Europe/Berlin",
                                     password_hash=hash_password(PASSWORD), token_hash=digest,
                                     expires_at=datetime.now(UTC) + timedelta(hours=1)))
        db.session.commit()
        tenancy.activate(self.org.id)
        progress = self.seed_progress()
        db.session.commit()
        tenancy.activate(self.org.id)
        secure = self.seed_account_security()
        db.session.commit()
        tenancy.activate(self.org.id)
        secure.update(self.seed_calendars_series_waitlists())
        db.session.commit()
        tenancy.activate(self.org.id)
        secure.update(self.seed_room())
        db.session.commit()
        tenancy.activate(self.org.id)
        secure.update(self.seed_directory())
        db.session.commit()
        tenancy.activate(self.org.id)
        # Plain values, read while the rows are loaded: the fuzz uses them after the session is gone.
        self.ids = {**progress, **secure,
            "slug": self.org.slug, "coach": str(self.coach.id), "athlete": str(self.athlete.id),
            "offering": str(self.offering.id), "spare": str(self.spare.id), "booking": str(self.booking.id), "space": str(self.space.id),
            "post": str(self.post.id), "comment": str(self.comment.id), "media": str(self.media.id),
            "conversation": str(self.conversation.id), "message": str(self.message.id),
            "invitation": str(self.invitation.id), "bea": str(self.bea.id), "start": self.free_slot.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


    def _slot(self, offering, days: int, index: int = 0) -> datetime:
        day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=days)
        return booking.available_slots(offering, day, day + timedelta(days=1))[index].starts_at

    def seed_calendars_series_waitlists(self) -> dict[str, str]:
        """Issue 19, after the days the booking form's fuzz books (4 to 15): Carla's calendar connection
        (written directly: showing it calls no server), a weekly series of four sessions of Bea's from day 30, a
        squad (two seats, waitlist 'auto') with two full sessions, Arno in line for the first (day 25), and a
        squad whose freed seats are offered (day 27: Arno's offer is open), Bea's bookings for the no-login cancel
        and reschedule links (day 17), and a reschedule link whose page's query string is fuzzed."""
        coach, bea, pat, arno = self.coach, self.bea, self.pat, self.athlete
        to_cancel = booking.request_booking(self.offering, bea, self._slot(self.offering, 17, 0), "", bea)
        to_move = booking.request_booking(self.offering, bea, self._slot(self.offering, 17, 2), "", bea)
        move_to = self._slot(self.offering, 18, 3)
        rows = seed_calendar_rows(self.org, coach, bea, self.offering, to_cancel)
        first = self._slot(self.offering, 30, 1)
        plan = booking_series.plan(self.offering, bea, first, 1, 4, None, coach)
        series = booking_series.book(self.offering, bea, first, 1, 4, None, plan.digest, coach)
        ids = {"connection": str(rows["connection"].id), "series": str(series.id),
               "series_weekday": str((first.weekday() + 1) % 7), "cancel_booking": str(to_cancel.id),
               "move_booking": str(to_move.id), "move_start": move_to.strftime("%Y-%m-%dT%H:%M:%SZ"),
               "reschedule_link": manage_links.issue(to_move, "reschedule"),
               "series_date": (datetime.now(UTC) + timedelta(days=45)).date().isoformat()}
        db.session.commit()
        squad = make_offering(coach, title="Squad", capacity=2, auto_confirm=True, waitlist_mode="auto")
        offers = make_offering(coach, title="Squad offers", capacity=2, auto_confirm=True, waitlist_mode="offer",
                               waitlist_offer_minutes=1440)
        tenancy.activate(self.org.id)
        for name, offering, days in (("group_leave", squad, 25), ("group_join", squad, 26), ("group_offer", offers, 27)):
            start = self._slot(offering, days)
            seats = [booking.request_booking(offering, a, start, "", a) for a in (bea, pat)]
            session = db.session.get(CoachingSession, seats[0].session_id)
            ids[name] = str(session.id)
            if name != "group_join":
                ids[f"{name}_entry"] = str(waitlist.join(session, arno, arno).id)
            if name == "group_offer":
                booking.transition(seats[1], "cancel", pat)
                db.session.flush()
                waitlist.fill(self.org.id, session.id)
        return ids

    def seed_room(self) -> dict[str, str]:
        """Issue 20: Carla's 1:1 with Arno whose room is open now, for three hours (the module takes a while),
        written directly (see tests/room_rows.py): its page has the consent form, the panel's chat composer and,
        for Carla, the notes form and the end form."""
        session, room_booking = write_session(self.coach, self.athlete, self.offering,
                                              datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5), 180)
        return {"room": str(session.id), "room_booking": str(room_booking.id)}

    def seed_account_security(self) -> dict[str, str]:
        """Issue 18: Tess Two (an admin with two-factor on, a platform admin, a passkey and a second session,
        whose security pages, the settings, branding and the operators' console are fuzzed) and Vic Verify
        (two-factor on; the fuzz stops at the second sign-in step). Pat has a second session and a passkey."""
        tess = make_user("tess@example.com", "Tess Two")
        self.tess = add_member(self.org, tess, "admin")
        vic = make_user("vic@example.com", "Vic Verify")
        self.totp = {}
        for user in (tess, vic):
            self.totp[user.email] = twofactor.begin_enrolment(user).secret
            user.totp_enabled_at = datetime.now(UTC)
        tess.platform_admin = True
        for user in (tess, self.pat.user):
            db.session.add(Passkey(id=uuid.uuid4(), user_id=user.id, credential_id=uuid.uuid4().bytes * 2,
                                   public_key=b"fuzz-key", name="Fuzz key"))
            accounts.open_session(user, "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", "192.0.2.9")
        # Email changes with known links: Emil's waits for its confirmation, Una's was made and may be undone.
        emil = make_user("emil@example.com", "Emil Change")
        una = make_user("una-new@example.com", "Una Undo")
        confirm_secret, confirm_digest = new_token()
        undo_secret, undo_digest = new_token()
        at = datetime.now(UTC)
        db.session.add_all([
            EmailChange(id=uuid.uuid4(), user_id=emil.id, old_email=emil.email, new_email="emil-new@example.com",
                        token_hash=confirm_digest, expires_at=at + timedelta(hours=24)),
            EmailChange(id=uuid.uuid4(), user_id=una.id, old_email="una@example.com", new_email=una.email,
                        token_hash=new_token()[1], expires_at=at + timedelta(hours=24), confirmed_at=at,
                        undo_token_hash=undo_digest, undo_expires_at=at + timedelta(days=7)),
        ])
        account_export = exports.request_account_export(self.pat.user)
        org_export = exports.request_org_export(self.org, self.tess)
        return {"org_id": str(self.org.id), "account_export": str(account_export.id), "org_export": str(org_export.id),
                "email_confirm": confirm_secret, "email_undo": undo_secret}

    def seed_directory(self) -> dict[str, str]:
        """Issue 22: the club lists its coaches publicly; Carla's profile (handle ``carla-coach``) teaches Tennis
        and its Serve skill (the taxonomy the admin's editor shows has Padel and Volley too); Arno's ended session with Carla (day 5) waits
        for his review (the form is fuzzed); Bea reviewed two ended sessions (days 6 and 7): one visible (reply,
        flag, helpful and hide are fuzzed on it), one hidden by Ada (restore); the public booking page has a free
        time of Carla's (day 40) for the sign-up and join forms."""
        from coach.directory import profiles, projection, reviews, taxonomy

        self.org.listed_publicly = True
        tennis = taxonomy.add_term(self.org, "discipline", "Tennis", self.admin)
        serve = taxonomy.add_term(self.org, "skill", "Serve", self.admin, parent_id=tennis.id)
        taxonomy.add_term(self.org, "discipline", "Padel", self.admin)  # two of a kind: the editor's move forms
        taxonomy.add_term(self.org, "skill", "Volley", self.admin, parent_id=tennis.id)
        profile = profiles.ensure_profile(self.coach)
        profiles.save_profile(profile, {"headline": "Serve and volley coach", "bio": "Twenty years on **clay**.",
                                        "languages": ["en", "de"], "years_experience": "20", "online": True,
                                        "in_person": True, "location": "Berlin", "listed": True,
                                        "term_ids": [str(tennis.id), str(serve.id)]}, self.coach)
        to_review = self._past_booking(5)
        visible = reviews.write_review(self._past_booking(6, self.bea), self.bea, 4, "Clear and patient.")
        hidden = reviews.write_review(self._past_booking(7, self.bea), self.bea, 2, "Late twice.")
        reviews.hide(hidden, self.admin, "Off topic")
        db.session.flush()
        projection.refresh_org(self.org.id)
        public_start = self._slot(self.offering, 40, 1).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"handle": profile.handle, "term": str(serve.id), "discipline": str(tennis.id),
                "review_booking": str(to_review.id), "review": str(visible.id), "hidden_review": str(hidden.id),
                "public_start": public_start}

    def _past_booking(self, days_ago: int, athlete=None) -> Booking:
        """An ended session of Carla's with Arno (or ``athlete``) ``days_ago`` days ago at 10:00 UTC, written
        directly (the booking rules only book the future), as ``coach/cli.py`` does for the demo."""
        athlete = athlete or self.athlete
        starts = datetime.combine(datetime.now(UTC).date() - timedelta(days=days_ago), time(10), UTC)
        ends = starts + timedelta(minutes=self.offering.duration_minutes)
        session = CoachingSession(tenant_id=self.org.id, coach_membership_id=self.coach.id,
                                  offering_id=self.offering.id, starts_at=starts, ends_at=ends, busy_from=starts,
                                  busy_until=ends, capacity=1, live_seats=0)
        db.session.add(session)
        db.session.flush()
        row = Booking(tenant_id=self.org.id, session_id=session.id, offering_id=self.offering.id,
                      coach_membership_id=self.coach.id, athlete_membership_id=athlete.id,
                      booked_by_membership_id=athlete.id, starts_at=starts, ends_at=ends, status="ended",
                      confirmed_at=starts - timedelta(days=2), status_changed_at=ends)
        db.session.add(row)
        db.session.flush()
        return row

    def seed_progress(self) -> dict[str, str]:
        """Arno's development, through the services: the two example frameworks; three ended sessions with
        Carla (one with a draft record, one with a signed record, one with none yet); an exercise and a
        one-week program with a workout on Monday (of this week, so it is to log today or earlier) and a
        line, assigned to Arno, its workout logged; a goal with a metric and a milestone; a habit; a report, and
        one whose build failed.
        Returns the ids the fuzz formats its paths with."""
        coach, athlete = self.coach, self.athlete
        tennis = frameworks.seed_examples(self.org)[0]
        view = frameworks.structure(tennis)
        skills = [s for area in view.areas for s in area.skills]
        draft = records.start(self._past_booking(1), coach, tennis.id)
        records.save_draft(draft, coach, framework_id=tennis.id, notes_md="Toss drifting right.",
                           levels={str(skills[0].id): "2"})
        signed = records.start(self._past_booking(2), coach, tennis.id)
        records.save_draft(signed, coach, framework_id=tennis.id, notes_md="Serve steadier.",
                           levels={str(skills[0].id): "1", str(skills[1].id): "2"})
        records.sign(signed, coach)
        unrecorded = self._past_booking(3)
        squat = exercises.save_exercise(coach, {"title": "Back squat", "description": "Below parallel."})
        program = programs.create_program(coach, {"title": "Strength block", "weeks": "2"})
        workout = programs.add_workout(coach, program, {"week": "1", "day": "1", "title": "Legs"})
        line = programs.add_line(coach, program, workout, {"exercise_id": str(squat.id), "sets": "3", "reps": "5",
                                                           "load_kg": "60"})
        monday = programs.monday_of(programs.local_today(athlete))
        assignment = programs.assign(coach, program, athlete_ids=[str(athlete.id)], start=monday)[0]
        log = programs.log_workout(athlete, assignment.id, workout.id, {"status": "done", "rpe": "7"})
        today = goals.local_today(athlete)
        goal = goals.create_goal(athlete, coach, {
            "title": "First serves in", "target_date": (today + timedelta(days=60)).isoformat(),
            "metric_unit": "%", "metric_start": "50", "metric_target": "65"})
        goals.log_value(goal, athlete, athlete, "52")
        milestone = goals.add_milestone(goal, athlete, coach, "55 % in practice")
        other_goal = goals.create_goal(athlete, athlete, {"title": "Play a tournament"})
        habit = habits.create_habit(athlete, athlete, {"title": "Stretch", "frequency": "daily"})
        report = reports.request(athlete, coach, today - timedelta(days=28), today - timedelta(days=1))
        # A report whose build failed (written directly: no job picks it up), so the page has a retry form.
        db.session.add(ProgressReport(tenant_id=self.org.id, athlete_membership_id=athlete.id,
                                      requested_by_membership_id=coach.id, period_start=today - timedelta(days=14),
                                      period_end=today - timedelta(days=7), status="failed", progress=40,
                                      stage="Drawing the charts", error="The storage was unreachable."))
        return {
            "framework": str(tennis.id), "area": str(view.areas[0].area.id), "skill": str(skills[0].id),
            "draft": str(draft.id), "signed": str(signed.id), "unrecorded": str(unrecorded.id),
            "exercise": str(squat.id), "program": str(program.id), "workout": str(workout.id),
            "line": str(line.id), "assignment": str(assignment.id), "log": str(log.id), "goal": str(goal.id),
            "milestone": str(milestone.id), "other_goal": str(other_goal.id), "habit": str(habit.id),
            "report": str(report.id), "report_token": reports.link_token(report),
            "month": monday.strftime("%Y-%m"), "monday": monday.isoformat(),
        }


# --- forms in a page -------------------------------------------------------------------------------

@dataclass
class Field:
    name: str
    kind: str  # input type ("text", "hidden", "email", "file", ...), "select", "textarea" or "button"
    value: str = ""
    options: list[str] = field(default_factory=list)


@dataclass
class Form:
    page: str  # the page (path and query) it was found on
    method: str
    action: str  # path and query the form is sent to
    fields: list[Field] = field(default_factory=list)
    multipart: bool = False  # enctype="multipart/form-data": its file inputs are fields (sent as files)

    @property
    def key(self) -> str:
        names = ",".join(sorted({f.name for f in self.fields}))
        return f"{self.method} {self.action} [{names}]"

    def names(self) -> list[str]:
        seen: list[str] = []
        for f in self.fields:
            if f.name not in seen:
                seen.append(f.name)
        return seen

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


class _FormParser(HTMLParser):
    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.page = page
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: Field | None = None
        self._textarea: Field | None = None
        self._option: str | None = None
        self._option_selected = False

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            method = (a.get("method") or "get").lower()
            # hx-post forms without action: htmx posts them to hx-post's URL.
            action = a.get("action") or a.get("hx-post") or a.get("hx-get") or self.page
            if a.get("hx-post"):
                method = "post"
            target = urlsplit(urljoin("http://localhost" + self.page, action))
            self._form = Form(self.page, method, target.path + (f"?{target.query}" if target.query else ""),
                              multipart=a.get("enctype", "").lower() == "multipart/form-data")
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input" and a.get("name"):
            kind = (a.get("type") or "text").lower()
            if kind == "file" and self._form.multipart:
                self._form.fields.append(Field(a["name"], kind))
                return
            if kind in ("submit", "button", "image", "reset", "file"):
                if kind == "submit" and a.get("name"):
                    self._form.fields.append(Field(a["name"], kind, a.get("value", "")))
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                # Unchecked: not sent by a browser, but a choice to fuzz (its value is kept as an option).
                self._form.fields.append(Field(a["name"], kind, "", [a.get("value", "on")]))
                return
            self._form.fields.append(Field(a["name"], kind, a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "button" and a.get("name") and (a.get("type") or "submit").lower() == "submit":
            # A named submit button: a browser sends it only when it is the one clicked. Like an unticked box,
            # a choice to fuzz (its value kept as an option), not sent by default.
            self._form.fields.append(Field(a["name"], "button", "", [a.get("value", "")]))
        elif tag == "select" and a.get("name"):
            self._select = Field(a["name"], "select")
            self._form.fields.append(self._select)
        elif tag == "option" and self._select is not None:
            self._option = a.get("value")
            self._option_selected = "selected" in a
            self._option_text = ""
        elif tag == "textarea" and a.get("name"):
            self._textarea = Field(a["name"], "textarea")
            self._form.fields.append(self._textarea)

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea.value += data
        if self._option is None and self._select is not None and hasattr(self, "_option_text"):
            self._option_text += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "option" and self._select is not None:
            value = self._option if self._option is not None else getattr(self, "_option_text", "").strip()
            self._select.options.append(value)
            if self._option_selected or (not self._select.value and len(self._select.options) == 1):
                self._select.value = value
            self._option = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self._textarea.value = self._textarea.value.removeprefix("\n")
            self._textarea = None


def forms_in(page: str, html: str) -> list[Form]:
    parser = _FormParser(page)
    parser.feed(html)
    parser.close()
    return parser.forms


# --- hostile values --------------------------------------------------------------------------------

def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# Raw bytes: what arrives after percent-decoding. Lone surrogates as a browser cannot but a script can send
# them (CESU-style ED A0 80), invalid UTF-8, and what a form field could never hold.
HOSTILE: list[bytes] = [
    b"", b" ", b"\t\r\n", b"\x00", b"a\x00b", b"\x00" * 64,
    b"\xed\xa0\x80", b"x\xed\xbf\xbfy", b"\xed\xa0\xbd\xed\xb8\x80",  # lone and paired surrogates in CESU-8
    b"\xff\xfe", b"\xc3\x28", b"\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf",  # invalid UTF-8
    _b("\u202eevil\u202c"), _b("\u2066abc\u2069"), _b("\u200f\u200e"), _b("\ufeff"), _b("\u0301"),
    _b("\U0001F600"), _b("\U0001F469\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466"), _b("\U0010FFFF"),
    b"-1", b"0", b"-0", b"1" + b"0" * 30, b"-" + b"9" * 40, b"NaN", b"nan", b"inf", b"-Infinity", b"1e309",
    b"-1e309", b"1.5", b"0x10", b"1_000", b" 7 ", b"\xd9\xa3",  # Arabic-Indic three
    b"2024-02-30", b"0000-00-00", b"0001-01-01", b"9999-12-31", b"10000-01-01", b"-2024-01-01", b"2024-13-01",
    b"2024-01-01T25:00", b"1970-01-01T00:00:00Z", b"2999-01-01T00:00:00+99:00", b"yesterday", b"2024-W01",
    b"24:00", b"23:60", b"-1:00", b"99:99", b"12:00:00.999999999", b"00:00", b"7",
    b"Mars/Olympus", b"../../etc/passwd", b"Etc/GMT+14", b"Factory", b"localtime", b"posixrules",
    b"Europe/Berlin\x00", b"UTC", b"EST5EDT", b"right/UTC",
    b"00000000-0000-0000-0000-000000000000", b"ffffffff-ffff-ffff-ffff-ffffffffffff", b"not-a-uuid",
    b"12345678-1234-1234-1234-1234567890ab0", b"{12345678-1234-1234-1234-1234567890ab}",
    b"urn:uuid:12345678-1234-1234-1234-1234567890ab", b"12345678123412341234123456789",
    b"[]", b"{}", b"true", b"null", b"None", b"<script>alert(1)</script>", b"' OR 1=1 --", b"%00", b"%",
    b"\\", b"\r\nSet-Cookie: x=1", b"javascript:alert(1)", b"//evil.example/", b"https://evil.example/",
    b"eyJ0IjoiMjAyNCJ9", b"!!!", b"====", b"MjAyNC0wMS0wMXwxMjM=", b"a|b|c",
    b"a@b", b"@", b"x" * 300 + b"@example.com", _b("us\u202eer@example.com"), b"Ada <ada@example.com>",
    b"ada@example.com", b"ADA@EXAMPLE.COM", b"ada@example.com\x00", _b("\u0430da@example.com"),
    b"9999-12-31T23:59:59Z", b"0001-01-01T00:00:00Z", b"2030-01-01T00:00:00-23:59", b"1700000000",
    b"2030-01-01T10:00", b"2999-12-31T23:59", b"2000-01-01T00:00", b"2030-03-31T02:30",  # a Berlin gap
    b"10:00-11:00," * 300, b"23:00-01:00", b"00:00-00:00", b"09:00-24:00", b"09:00\xe2\x80\x9312:00",
]

# Lengths around the limits forms and columns set (100, 120, 128, 200, 254, 500, 2000, 4000, 10000 ...), in
# one-byte, two-byte and four-byte characters: a form's limit counts characters, a column's may differ.
LENGTHS = (63, 64, 65, 99, 100, 101, 119, 120, 121, 128, 129, 199, 200, 201, 254, 255, 256, 499, 500, 501,
           1999, 2000, 2001, 4000, 4001, 10000, 10001, 20001)


def _sized(choice: tuple[int, str]) -> bytes:
    n, char = choice
    return _b(char * n)


def _hostile(index: int) -> bytes:
    return HOSTILE[index]


def _huge(index: int) -> bytes:
    return HUGE[index]


def _long(index: int) -> bytes:
    return LONG[index]

HUGE: list[bytes] = [b"A" * 100_000, _b("\U0001F600") * 25_000, b"\x00" * 100_000, b"\xed\xa0\x80" * 30_000,
                     b"9" * 100_000]


# Long values for query strings: a request line longer than 4094 bytes never reaches the app (gunicorn's
# limit_request_line refuses it), so a GET carries long values, not huge ones.
LONG: list[bytes] = [b"A" * 1000, _b("\U0001F600") * 100, b"\x00" * 300, b"\xed\xa0\x80" * 100, b"9" * 1000]


def hostile_values(huge: bool = True) -> st.SearchStrategy[bytes]:
    """One hostile value: a listed one, a huge (or, for a query string, long) one, or generated text (any
    code point, surrogates included) or bytes."""
    generated = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None),
                        max_size=40).map(_b)
    # Indexes mapped to values: the strategies' reprs stay short (hypothesis prints them in some warnings).
    listed = st.integers(0, len(HOSTILE) - 1).map(_hostile)
    big = st.integers(0, len(HUGE) - 1).map(_huge) if huge else st.integers(0, len(LONG) - 1).map(_long)
    sized = st.tuples(st.sampled_from([n for n in LENGTHS if huge or n <= 1000]),
                      st.sampled_from(["x", "\u00e9", "\U0001F600"])).map(_sized)
    return st.one_of(listed, big, sized, generated, st.binary(max_size=24))


MUTATIONS = (
    lambda v: v + b"\x00", lambda v: b"\x00" + v, lambda v: _b("\u202e") + v, lambda v: v + b"\xed\xa0\x80",
    lambda v: v + b"\xff", lambda v: b"  " + v + b"  ", lambda v: v.upper(), lambda v: v + _b("\u0301"),
    lambda v: (v * (300 // max(len(v), 1) + 1))[:300], lambda v: v + _b("\U0001F600"), lambda v: v[:-1],
    lambda v: v + b"0", lambda v: b"-" + v, lambda v: v.replace(b"-", b"/"), lambda v: v + b"\r\n",
)


def mutate(value: bytes, index: int) -> bytes:
    """A plausible value made hostile: NUL or a bidi control around it, invalid UTF-8 after it, padded, ..."""
    return MUTATIONS[index % len(MUTATIONS)](value)


def encode_pairs(pairs: list[tuple[str, bytes]]) -> str:
    """``application/x-www-form-urlencoded`` of raw byte values, every byte outside the safe set escaped."""
    return "&".join(f"{quote_from_bytes(_b(name), safe='')}={quote_from_bytes(value, safe='')}"
                    for name, value in pairs)


def multipart_body(pairs: list[tuple[str, bytes]], files: set[str], boundary: str = "fuzz-boundary-7MA4YWxk"
                   ) -> tuple[bytes, str]:
    """``multipart/form-data`` of raw byte values (the fields named in ``files`` as uploaded files): the body and
    its content type. A value holding the boundary is sent as it is: the parser must cope with that too."""
    parts = []
    for name, value in pairs:
        head = f'Content-Disposition: form-data; name="{name}"'.encode("utf-8", "surrogatepass")
        if name in files:
            head += b'; filename="fuzz.csv"\r\nContent-Type: text/csv'
        parts.append(b"--" + boundary.encode() + b"\r\n" + head + b"\r\n\r\n" + value + b"\r\n")
    return b"".join(parts) + b"--" + boundary.encode() + b"--\r\n", f"multipart/form-data; boundary={boundary}"


def shown(value: bytes, limit: int = 80) -> str:
    """A value as a report shows it: its repr, shortened with its length when long."""
    text = repr(value[:limit])
    return text + (f"... ({len(value)} bytes)" if len(value) > limit else "")


# --- errors in the log -----------------------------------------------------------------------------

class ErrorLog(logging.Handler):
    """Keeps ERROR (and worse) records that carry a traceback, with the thread that logged them."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[tuple[str, logging.LogRecord]] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            with self._lock:
                self.records.append((threading.current_thread().name, record))

    def take(self, thread: str | None = None) -> list[logging.LogRecord]:
        """The records kept so far (of one thread, if given), removed from the log."""
        with self._lock:
            taken = [r for t, r in self.records if thread is None or t == thread]
            self.records = [(t, r) for t, r in self.records if not (thread is None or t == thread)]
        return taken


def _frames(exc_type, exc, tb, frames: int) -> list[str]:
    summary = traceback.extract_tb(tb)
    own = [f for f in summary if "/coach/" in f.filename and "/site-packages/" not in f.filename][-frames:]
    chosen = own + ([summary[-1]] if summary and summary[-1] not in own else [])
    lines = [f"  {f.filename.split('/work/main/')[-1]}:{f.lineno} in {f.name}: {f.line}" for f in chosen]
    message = "\n    ".join(str(exc).splitlines()[:2])[:400]
    return lines + [f"  {exc_type.__name__}: {message}"]


def traceback_tail(record_or_exc, frames: int = 3) -> str:
    """Where a logged record's (or an exception's) traceback failed: the last frames in the app's own code
    (``coach/``), the frame that raised, and the error (its first lines); and the same of the first
    exception of the chain, when this one was raised while handling another."""
    if isinstance(record_or_exc, logging.LogRecord):
        exc_type, exc, tb = record_or_exc.exc_info
        head = [f"{record_or_exc.name}: {record_or_exc.getMessage()}"]
    else:
        exc_type, exc, tb = type(record_or_exc), record_or_exc, record_or_exc.__traceback__
        head = []
    lines = head + _frames(exc_type, exc, tb, frames)
    # The earliest exception of the chain that passed through the app's code is where it began (a failed
    # statement, say, that left the transaction aborted for the one reported).
    first, earlier, seen = None, exc, {id(exc)}
    while (earlier := earlier.__cause__ or earlier.__context__) is not None and id(earlier) not in seen:
        seen.add(id(earlier))
        if any("/coach/" in f.filename for f in traceback.extract_tb(earlier.__traceback__)):
            first = earlier
    if first is not None:
        lines += ["  which began with:"] + _frames(type(first), first, first.__traceback__, frames)
    return "\n".join(lines)
