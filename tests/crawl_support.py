"""Support for the cross-tenant crawl (tests/test_tenant_crawl.py).

- :func:`seed_world` builds an organization through the services, with RLS in force, with rows in every
  domain (members, hours, an offering, a booking, a space with a post, a comment and a flag, media, a
  conversation, a notification, an invitation, a calendar feed, an audit event, a dead letter, a failed
  job) and returns their ids as plain strings (:class:`World`). The second organization's texts, names,
  addresses and title all carry a random marker.
- :func:`variants` turns one URL rule into the URLs to request: the other organization's slug and ids in
  every parameter, the home organization's slug with the other's ids, ids of another kind, real tokens.
- :func:`leaks` says where a response shows the other organization (marker, name, slug, id).
- :class:`Snapshot` reads every row of one organization as the owner role (counts and checksums per
  table, its organization row, its people's accounts, its stored files, its failed job).
"""
from __future__ import annotations

import html
import itertools
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote, urlencode

import psycopg
from werkzeug.routing import Rule
from werkzeug.routing.converters import AnyConverter, IntegerConverter

from coach import tenancy
from coach.accounts import email_change
from coach.accounts import service as accounts
from coach.accounts.models import AccountExport, Passkey
from coach.booking import manage_links, waitlist
from coach.booking import series as booking_series
from coach.booking import service as booking
from coach.booking.models import CoachingSession
from coach.chat import service as chat
from coach.directory import projection
from coach.extensions import db
from coach.governance import branding
from coach.media import service as media
from coach.notifications import service as notifications
from coach.orgs import service as orgs
from coach.platform import audit
from coach.privacy import exports
from coach.privacy.models import OrgExport
from coach.spaces import service as spaces
from tests.booking_support import make_offering, open_every_day
from tests.calendar_rows import seed_calendar_rows
from tests.directory_rows import seed_directory_rows
from tests.factories import PASSWORD, add_member, make_org, make_user, media_row
from tests.payments_support import seed_payment_rows
from tests.progress_support import seed_progress_rows
from tests.room_rows import seed_rooms

UTC = timezone.utc
ROLES = ("admin", "coach", "athlete")

# Which seeded kind a URL parameter names. A parameter not listed here gets every id of every kind
# (so a new route is crawled without editing this), see :func:`values_for`.
PARAM_KINDS = {
    "membership_id": "membership", "coach_id": "coach", "invitation_id": "invitation", "event_id": "event",
    "job_id": "job", "booking_id": "booking", "conversation_id": "conversation", "message_id": "message",
    "space_id": "space", "rule_id": "rule", "time_off_id": "time_off", "on_date": "date", "comment_id": "comment",
    "target_id": "target", "media_id": "media", "notification_id": "notification", "offering_id": "offering",
    "post_id": "post", "upload_id": "upload", "key": "key", "payment_id": "payment", "product_id": "product",
    "invoice_id": "invoice", "subscription_id": "subscription", "grant_id": "grant", "payout_id": "payout",
    "athlete_id": "athlete", "framework_id": "framework", "area_id": "area", "skill_id": "skill",
    "record_id": "record", "goal_id": "goal", "milestone_id": "milestone", "habit_id": "habit",
    "exercise_id": "exercise", "program_id": "program", "workout_id": "workout", "line_id": "line",
    "assignment_id": "assignment", "log_id": "log", "note_id": "note", "report_id": "report",
    "value_id": "value", "link_id": "link",
    # Issue 18: account-level rows (another person's are as unknown as missing ones).
    "session_id": "session", "passkey_id": "passkey",
    # Issue 19: calendar connections, recurring series, waitlist places.
    "connection_id": "connection", "series_id": "series", "entry_id": "waitlist_entry",
    # Issue 20: a room's recording.
    "recording_id": "recording",
    # Issue 22: the taxonomy's terms, reviews; a public profile's address (its organization's slug and handle).
    "term_id": "term", "review_id": "review", "org_slug": "org_slug", "handle": "handle",
}
# A parameter whose kind depends on the blueprint: (endpoint prefix, name) -> kind.
ENDPOINT_PARAM_KINDS = {("privacy.", "export_id"): "account_export", ("org_privacy.", "export_id"): "org_export",
                        # a group session's waitlist (under /account, session_id is a signed-in device)
                        ("booking.", "session_id"): "group_session",
                        # Issue 20: the session of a room (open now, or ended), and one of its bookings (notes).
                        ("rooms.", "session_id"): "room_session", ("rooms.", "booking_id"): "room_booking",
                        # Issue 22: a coach's profile (its page, editor, preview, verification, reviews), and the
                        # booking a review is written for.
                        ("directory.", "coach_id"): "profile_coach", ("directory.", "booking_id"): "review_booking"}
# Issue 19's kinds: B's row of one of them under A's slug (or anything under B's slug) is a 404 (403 for a role
# that may not open the page at all), never a page.
REFUSED_KINDS = {"connection", "series", "group_session", "waitlist_entry",
                 # Issue 20: rooms (their page, panel, notes, consent, recording, end; the socket's handshake).
                 "room_session", "room_booking", "recording",
                 # Issue 22: profiles, terms, reviews, and a public profile's address (B is not listed; B's handle
                 # under A's listed address is no profile either).
                 "profile_coach", "term", "review", "review_booking", "org_slug", "handle"}
# Kinds of rows that belong to a person, not to an organization: under /account, another person's is a 404.
ACCOUNT_KINDS = {"session", "passkey", "account_export"}
# Parameters that are not ids: the values a real page would put there.
PLAIN_VALUES = {"action": ["retry", "discard", "delete"], "kind": ["like"], "number": ["1"]}
# For "an id of another kind": the kind used instead.
OTHER_KIND = {
    "membership": "post", "coach": "offering", "invitation": "membership", "event": "booking", "job": "event",
    "booking": "offering", "conversation": "space", "message": "comment", "space": "conversation",
    "rule": "time_off", "time_off": "rule", "date": "booking", "comment": "message", "target": "media",
    "media": "post", "notification": "message", "offering": "booking", "post": "comment", "upload": "media",
    "key": "media", "payment": "invoice", "product": "offering", "invoice": "payment", "subscription": "product",
    "grant": "payment", "payout": "payment",
    "athlete": "coach", "framework": "program", "area": "skill", "skill": "area", "record": "booking",
    "goal": "habit", "milestone": "goal", "habit": "goal", "exercise": "program", "program": "exercise",
    "workout": "line", "line": "workout", "assignment": "program", "log": "assignment", "note": "record",
    "report": "record", "value": "milestone", "link": "media",
    "session": "passkey", "passkey": "session", "account_export": "org_export", "org_export": "account_export",
    "connection": "source", "source": "connection", "series": "booking", "group_session": "booking",
    "waitlist_entry": "group_session",
    "room_session": "booking", "room_booking": "room_session", "recording": "media",
    "profile_coach": "offering", "term": "review", "review": "term", "review_booking": "review",
    "org_slug": "handle", "handle": "org_slug",
}


def kind_of(endpoint: str, name: str) -> str | None:
    """The seeded kind the parameter ``name`` of ``endpoint`` names, if known."""
    for (prefix, param), kind in ENDPOINT_PARAM_KINDS.items():
        if param == name and endpoint.startswith(prefix):
            return kind
    return PARAM_KINDS.get(name)


# --- the worlds ------------------------------------------------------------------------------------

@dataclass
class World:
    """One seeded organization, as plain values (no ORM objects: they belong to a finished session)."""

    org_id: str
    slug: str
    name: str
    emails: dict[str, str]  # role -> address (admin, coach, athlete, spare)
    user_ids: list[str]
    ids: dict[str, list[str]] = field(default_factory=dict)  # kind -> ids (see PARAM_KINDS)
    tokens: dict[str, str] = field(default_factory=dict)  # invitation, feed, unsubscribe
    slot_start: str = ""  # a free slot of the offering, as the booking form sends it
    upload_key: str = ""  # the object key of the upload still in progress
    media_root: Path | None = None
    accent: str = ""  # the accent colour of its branding (none: no branding)
    branding_version: int = 0

    def first(self, kind: str) -> str:
        return self.ids[kind][0]


def _jpeg(path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (64, 48), "teal").save(path, "JPEG", quality=80)
    return path


def seed_world(app, runner, mailbox, tmp: Path, *, slug: str, name: str, label: str, owner_url: str,
               accent: str = "", listed: bool = False, hour_cycle: int = 24) -> World:
    """An organization with rows in every domain, made through the services with RLS in force.

    Issue 19: a recurring series of two sessions (booked by the coach), a full group session (two seats taken,
    the spare athlete on its waitlist), view and cancel links of the booking (``tokens["manage_view"]``,
    ``tokens["manage_cancel"]``), and, written directly (pages never call a calendar server), a calendar
    connection with a source that blocks time and receives bookings, a busy time and a pushed event.

    Issue 20 (written directly, see tests/room_rows.py): a room open now (the coach's 1:1 with the athlete) and
    an ended one with its stays, the athlete's consent and a finished recording with its media item.

    Issue 22 (written directly, see tests/directory_rows.py): the coach's profile (handle ``<label>-coach``,
    lower case) teaching a discipline and a skill, the athlete's review of the booking, flagged and voted helpful,
    and the coach's rating. With ``listed``, the organization lists its coaches publicly and its listing is
    projected (the crawl's A: its public profile is a page; B is never listed).

    Account level (issue 18): an export of the organization and one of the athlete's account, a passkey and
    a second signed-in session of the athlete, an email change of the spare member waiting for its link;
    with ``accent``, branding (that accent colour and a logo). Everyone reads clocks on ``hour_cycle`` hours
    (what is written for them, notification titles, is written on it).

    ``label`` starts every text, name and address (the marker for the other organization). Returns once
    every event its making emitted has been delivered (media processed, invitation emailed, notified).
    """
    low = label.lower()
    people = {role: (f"{low}-{role}@example.com", f"{label} {role.title()}")
              for role in ("admin", "coach", "athlete", "spare")}
    invitee = f"{low}-invitee@example.com"
    with app.test_request_context():
        users = {role: make_user(email, display) for role, (email, display) in people.items()}
        for user in users.values():
            user.hour_cycle = hour_cycle
        org = make_org(users["admin"], slug=slug, name=name)
        tenancy.activate(org.id)
        admin = orgs.membership_for(org, users["admin"])
        coach = add_member(org, users["coach"], "coach")
        athlete = add_member(org, users["athlete"], "athlete")
        spare = add_member(org, users["spare"], "athlete")
        org_id = org.id

        # Booking: hours, an override, time off, an offering, a requested booking, a calendar feed.
        open_every_day(coach, tz="Europe/Berlin")
        offering = make_offering(coach, title=f"{label} technique", description=f"{label} offering text",
                                 location=f"{label} court")
        tenancy.activate(org_id)
        override_day = date.today() + timedelta(days=20)
        booking.set_override(coach, override_day, [(600, 720)], coach)
        off_start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=30)
        time_off = booking.add_time_off(coach, off_start, off_start + timedelta(days=2), f"{label} away", coach)
        day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=2)
        slots = booking.available_slots(offering, day, day + timedelta(days=1))
        assert len(slots) >= 2, "the offering should have free slots"
        booked = booking.request_booking(offering, athlete, slots[0].starts_at, f"{label} booking note", athlete)
        feed_secret = booking.regenerate_feed(athlete)
        rule_ids = [str(r.id) for rules in booking.weekly_rules(coach).values() for r in rules]
        db.session.commit()

        # Media: a processed image, a video (its row) with a review comment, an upload in progress.
        tenancy.activate(org_id)
        image = media.import_file(org, coach, _jpeg(tmp / f"{low}-photo.jpg"), "image/jpeg",
                                  audience="organization", title=f"{label} photo")
        video = media_row(org_id, coach, title=f"{label} video", audience="organization")
        db.session.commit()
        tenancy.activate(org_id)
        review = media.add_review_comment(video, athlete, 1000, f"{label} review comment")
        uploading = media.start_upload(org, athlete, f"{low}-upload.jpg", 2000, "image/jpeg", "staff",
                                       f"{label} upload")
        db.session.commit()

        # Spaces: a space everyone joined, a post with the image, a comment, a flag, a reaction.
        tenancy.activate(org_id)
        space = spaces.create_space(org, coach, f"{label} space", f"{label} space about", "open")
        for member in (admin, athlete, spare):
            spaces.join(space, member)
        post = spaces.create_post(space, coach, f"{label} post body", attachments=[image])
        comment = spaces.add_comment(post, athlete, f"{label} comment body")
        spaces.flag(comment, spare, f"{label} flag reason")
        spaces.toggle_reaction(post, admin, "like")
        db.session.commit()

        # Chat: a direct conversation and the space's channel, each with a message.
        tenancy.activate(org_id)
        direct = chat.direct_with(org, coach, athlete)
        said = chat.send(direct, coach, f"{label} direct message", attachments=[image])
        channel = chat.space_channel(space)
        said_in_channel = chat.send(channel, athlete, f"{label} channel message")
        db.session.commit()

        # Payments: a pack bought and used on the booking, a plan with a subscription, earnings, a payout, a receipt.
        tenancy.activate(org_id)
        paid = seed_payment_rows(org, coach, athlete, offering, space, booked, label=label)
        paid = {kind: str(row.id) for kind, row in paid.items()}
        db.session.commit()

        # Athlete development: a framework, a signed record of the booking, goals, habits, readiness, a program
        # assigned and logged, a coach note, the timeline, a report and a digest.
        tenancy.activate(org_id)
        grown = seed_progress_rows(org, coach, athlete, booked, video, label=label)
        grown = {kind: str(row.id) for kind, row in grown.items()}
        db.session.commit()

        # A notification, an invitation, an audit event of our own.
        tenancy.activate(org_id)
        note = notifications.notify(athlete, "comment", dedupe_key=f"crawl-{uuid.uuid4()}",
                                    title=f"{label} notification", url=f"/o/{slug}/", body=f"{label} notified")
        invitation = orgs.invite(org, admin, invitee, "athlete")
        audit.record("crawl.seeded", actor=users["admin"], target_type="organization", target_id=org_id,
                     details={"note": f"{label} audit"})
        unsubscribe = notifications.unsubscribe_token(athlete, "comment")
        db.session.commit()

        # Issue 19: a series, a full group session with its waitlist, manage links, a calendar connection.
        tenancy.activate(org_id)
        later = day + timedelta(days=5)
        first = booking.available_slots(offering, later, later + timedelta(days=1))[0].starts_at
        planned = booking_series.plan(offering, athlete, first, 1, 2, None, coach)
        series = booking_series.book(offering, athlete, first, 1, 2, None, planned.digest, coach,
                                     note=f"{label} series note")
        series_id = series.id
        db.session.commit()
        group = make_offering(coach, title=f"{label} squad", description=f"{label} squad text", capacity=2,
                              auto_confirm=True, waitlist_mode="auto")
        tenancy.activate(org_id)
        waiter = add_member(org, make_user(f"{low}-waiting@example.com", f"{label} Waiting"), "athlete")
        waiter.user.hour_cycle = hour_cycle
        group_day = day + timedelta(days=8)
        group_start = booking.available_slots(group, group_day, group_day + timedelta(days=1))[0].starts_at
        seated = [booking.request_booking(group, a, group_start, "", a) for a in (athlete, waiter)]
        session = db.session.get(CoachingSession, seated[0].session_id)
        entry = waitlist.join(session, spare, spare)
        view_token = manage_links.issue(booked, "view")
        calendar = seed_calendar_rows(org, coach, athlete, offering, booked)
        issue19 = {"connection": [str(calendar["connection"].id)], "source": [str(calendar["source"].id)],
                   "series": [str(series_id), str(calendar["series"].id)], "group_session": [str(session.id)],
                   "waitlist_entry": [str(entry.id)]}
        waiter_user_id = str(waiter.user_id)
        db.session.commit()

        # Issue 18: exports (built by the drain below), a passkey, a session, an email change, branding.
        tenancy.activate(org_id)
        org_export = exports.request_org_export(org, admin)
        account_export = exports.request_account_export(users["athlete"])
        passkey = Passkey(id=uuid.uuid4(), user_id=users["athlete"].id, credential_id=secrets.token_bytes(32),
                          public_key=secrets.token_bytes(77), name=f"{label} passkey")
        db.session.add(passkey)
        device = accounts.open_session(users["athlete"], f"{label} Browser/1.0", "192.0.2.7")
        email_change.request_change(users["spare"], f"{low}-spare-new@example.com")
        if accent:
            branding.set_accent(org, accent, admin)
            with _jpeg(tmp / f"{low}-logo.jpg").open("rb") as logo:
                branding.set_logo(org, logo, admin)
        branding_version = org.branding_version
        db.session.commit()

        # Issue 20: a room open now (the coach's 1:1 with the athlete) and an ended one with a stay each, the
        # athlete's consent and a finished recording (a media item), written directly.
        tenancy.activate(org_id)
        issue20 = seed_rooms(org, coach, athlete, offering, label=label)
        db.session.commit()

        # Issue 22: a profile, terms, a review with a flag and a vote, a rating; A's public listing.
        tenancy.activate(org_id)
        directory = seed_directory_rows(org, coach, athlete, booked, label=low)
        issue22 = {"profile_coach": [str(coach.id)], "review_booking": [str(booked.id)],
                   "term": [str(directory["discipline"].id), str(directory["skill"].id)],
                   "review": [str(directory["review"].id)], "org_slug": [slug], "handle": [directory["profile"].handle]}
        if listed:
            org.listed_publicly = True
        db.session.commit()
        if listed:
            tenancy.activate(org_id)
            assert projection.refresh_org(org_id) == 1, "the listed organization's coach should be public"
            db.session.commit()

        world = World(
            org_id=str(org_id), slug=slug, name=name, emails={role: email for role, (email, _) in people.items()},
            user_ids=[str(u.id) for u in users.values()] + [waiter_user_id],
            ids={
                "membership": [str(m.id) for m in (admin, coach, athlete, spare)],
                "coach": [str(coach.id)],
                "invitation": [str(invitation.id)],
                "booking": [str(booked.id)],
                "conversation": [str(direct.id), str(channel.id)],
                "message": [str(said.id), str(said_in_channel.id)],
                "space": [str(space.id)],
                "rule": rule_ids[:1],
                "time_off": [str(time_off.id)],
                "date": [override_day.isoformat()],
                "comment": [str(comment.id), str(review.id)],
                "target": [str(post.id), str(comment.id)],
                "media": [str(image.id), str(video.id), str(uploading.id)],
                "notification": [str(note.id)],
                "offering": [str(offering.id)],
                "post": [str(post.id)],
                "upload": [uploading.upload_id],
                "payment": [paid["payment"]], "product": [paid["pack"], paid["plan"]], "invoice": [paid["invoice"]],
                "subscription": [paid["subscription"]], "grant": [paid["grant"]], "payout": [paid["payout"]],
                "athlete": [str(athlete.id)],
                **{kind: [grown[kind]] for kind in ("framework", "area", "skill", "record", "goal", "milestone",
                                                     "habit", "exercise", "program", "workout", "line",
                                                     "assignment", "log", "note", "report", "value", "link")},
                "org_export": [str(org_export.id)], "account_export": [str(account_export.id)],
                "passkey": [str(passkey.id)], "session": [str(device.id)],
                **issue19, **issue20, **issue22,
            },
            tokens={"feed": feed_secret, "unsubscribe": unsubscribe, "manage_view": view_token,
                    "manage_cancel": calendar["manage_token"]},
            slot_start=slots[1].starts_at.isoformat(),
            upload_key=uploading.original_key,
            media_root=Path(app.config["MEDIA_LOCAL_ROOT"]),
            accent=accent, branding_version=branding_version,
        )
        image_key = image.original_key
        db.session.remove()

    with runner.paused():  # the background round in flight ends first, then everything left runs here
        runner.drain(60)  # media processed, notifications made, the invitation emailed
    with app.test_request_context():
        tenancy.activate(uuid.UUID(world.org_id))
        item = media.get_item(SimpleNamespace(id=uuid.UUID(world.org_id)), world.ids["media"][0])
        assert item is not None and item.status == "ready", f"the seeded image was not processed: {item and item.status}"
        world.ids["key"] = [image_key, *sorted(item.derived_keys.values())][:2]
        for model, export_id in ((OrgExport, world.first("org_export")), (AccountExport, world.first("account_export"))):
            made = db.session.get(model, uuid.UUID(export_id))
            assert made.status == "ready", f"the seeded {model.__tablename__} row is {made.status}: {made.error}"
        db.session.remove()
    link = mailbox.wait_for(invitee, timeout=10)
    match = re.search(r"/invitations/([^/\s]+)/([A-Za-z0-9_-]+)", mailbox.text(link))
    assert match and match.group(1) == slug, "the invitation email has no link"
    world.tokens["invitation"] = match.group(2)
    world.ids["event"] = [add_dead_letter(owner_url, world.org_id, f"{label} dead letter")]
    world.ids["job"] = [fail_a_job(app, runner, world.org_id, f"{label} failed job")]
    return world


def add_dead_letter(owner_url: str, tenant_id: str, error: str) -> str:
    """A dead outbox event of the organization (the relay gave up on it), as the owner writes it."""
    event_id = uuid.uuid4()
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO outbox_events (id, tenant_id, topic, payload, created_at, available_at, attempts, "
            "last_error, dead_at) VALUES (%s, %s, 'mail.send', '{}', now(), now() + interval '1 hour', 8, %s, now())",
            [event_id, tenant_id, error])
    return str(event_id)


def fail_a_job(app, runner, tenant_id: str, description: str) -> str:
    """A failed RQ job of the organization's events (a mail job for an email that does not exist)."""
    from rq.registry import FailedJobRegistry

    from coach.platform.queues import queue

    event_id = uuid.uuid4()
    job_id = f"event-{event_id}"
    event = {"id": str(event_id), "tenant_id": tenant_id, "topic": "mail.send",
             "payload": {"email_id": "not-a-uuid"}, "request_id": None, "created_at": time.time()}
    with app.app_context():
        q = queue("mail")
        q.enqueue("coach.platform.jobs.handle_event", event, job_id=job_id, description=description,
                  job_timeout=30, failure_ttl=3600)
        registry = FailedJobRegistry(queue=q)
        deadline = time.monotonic() + 20
        while job_id not in registry.get_job_ids():
            assert time.monotonic() < deadline, "the job did not fail in time"
            time.sleep(0.05)
    return job_id


def failed_job_ids(app) -> set[str]:
    from rq.registry import FailedJobRegistry

    from coach.platform.queues import queue

    with app.app_context():
        return set(FailedJobRegistry(queue=queue("mail")).get_job_ids())


# --- the URLs of a rule ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    path: str
    what: str  # e.g. "B slug, B ids #0"


def _token_values(endpoint: str, home: World, other: World) -> list[tuple[str, str, str]]:
    """``(slug owner, token, what)`` for a rule with a ``token``: the other organization's real secret under
    the home slug, a made-up one under the other's slug. The other's real secret under its own slug is not
    crawled: that link is the credential the token's holder was given (the invitation names the club)."""
    made_up = secrets.token_urlsafe(32)
    if endpoint.startswith("orgs.invitation"):
        return [("home", other.tokens["invitation"], "B's real invitation token"),
                ("other", made_up, "a made-up token")]
    if endpoint == "booking.feed":
        return [("home", other.tokens["feed"], "B's real feed token"), ("other", made_up, "a made-up token")]
    if endpoint.startswith("booking_links."):
        return _manage_link_tokens(home, other) + [("", made_up, "a made-up token")]
    if endpoint.startswith("notification_links."):
        real = other.tokens["unsubscribe"]
        tampered = real[:-3] + ("AAA" if not real.endswith("AAA") else "BBB")
        return [("", tampered, "B's unsubscribe token, tampered")]
    return [("", made_up, "a made-up token")]


def _manage_link_tokens(home: World, other: World) -> list[tuple[str, str, str]]:
    """Tokens of no-login booking links that must open nothing: B's real links tampered, B's secret claimed
    for A's organization (signed with the app's key: a token of B never opens a booking of A), A's secret
    claimed for B, and B's booking id in place of a token (tokens are no guessable ids). B's real links
    themselves are not crawled: each is the credential its email gave B's athlete."""
    found = []
    for action in ("view", "cancel"):
        real = other.tokens[f"manage_{action}"]
        found.append(("", real[:-3] + ("AAA" if not real.endswith("AAA") else "BBB"),
                      f"B's {action} link, tampered"))
    serializer = manage_links._serializer()
    _, b_secret = serializer.loads(other.tokens["manage_view"])
    _, a_secret = serializer.loads(home.tokens["manage_view"])
    found.append(("", serializer.dumps([uuid.UUID(home.org_id).hex, b_secret]), "B's link secret signed for A"))
    found.append(("", serializer.dumps([uuid.UUID(other.org_id).hex, a_secret]), "A's link secret signed for B"))
    found.append(("", other.first("booking"), "B's booking id as the token"))
    return found


def values_for(name: str, converter, world: World, endpoint: str = "") -> list[str]:
    """Every value of ``world`` a parameter can take (its kind's ids; a choice's every option)."""
    if isinstance(converter, AnyConverter):
        return sorted(converter.items)
    if kind_of(endpoint, name):
        return world.ids.get(kind_of(endpoint, name), [])
    if name in PLAIN_VALUES:
        return PLAIN_VALUES[name]
    if isinstance(converter, IntegerConverter):
        return ["1"]
    # Unknown parameter: every id of every kind.
    return sorted({v for ids in world.ids.values() for v in ids})


def _build(rule: Rule, values: dict[str, str]) -> str:
    """The path of ``rule`` with ``values``, quoted by the rule's own converters."""
    built = rule.build(values, append_unknown=False)
    assert built is not None, (rule.rule, values)
    return built[1]


def variants(rule: Rule, home: World, other: World) -> list[Variant]:
    """The URLs to request for ``rule``: B's slug and A's slug; B's ids of the parameter's kind (each of
    them under A's slug, the first under B's), an id of another kind, and A's own ids (where A has every
    kind) for the form's B ids to act on."""
    params = [p for p in rule.arguments if p != "slug"]
    has_slug = "slug" in rule.arguments
    # Parameters that are not ids (a choice, an action word, a number) take each of their values.
    choices = {p: values_for(p, rule._converters[p], other, rule.endpoint) for p in params
               if isinstance(rule._converters[p], (AnyConverter, IntegerConverter)) or p in PLAIN_VALUES}
    id_params = [p for p in params if p not in choices and p != "token"]
    found: list[Variant] = []

    def add(slug_world: World | None, values: dict[str, str], what: str) -> None:
        combos = list(itertools.product(*[choices[p] for p in choices])) if choices else [()]
        if slug_world is other:  # B's organization is refused before the choice is read: one will do
            combos = combos[:1]
        for combo in combos:
            full = dict(values, **dict(zip(choices, combo)))
            if has_slug:
                full["slug"] = slug_world.slug
            label = what + (f", {'/'.join(combo)}" if combo else "")
            found.append(Variant(_build(rule, full), label))

    slug_owners = [("B slug", other), ("A slug", home)] if has_slug else [("", None)]
    if "token" in params:
        for owner, token, what in _token_values(rule.endpoint, home, other):
            slug_world = {"home": home, "other": other}.get(owner) or other
            values = {p: (values_for(p, rule._converters[p], other, rule.endpoint) or ["x"])[0] for p in id_params}
            add(slug_world if has_slug else None, dict(values, token=token),
                f"{'A' if slug_world is home else 'B'} slug, {what}" if has_slug else what)
        return _unique(found)

    pools = {p: values_for(p, rule._converters[p], other, rule.endpoint) for p in id_params}
    rounds = max([len(v) for v in pools.values()] or [1])
    for owner_label, slug_world in slug_owners:
        # Under B's slug the organization itself is refused before any id is read: one round of ids is enough.
        for i in range(1 if slug_world is other else rounds):
            values = {p: pool[i % len(pool)] for p, pool in pools.items() if pool}
            what = ", ".join(x for x in (owner_label, f"B ids #{i}" if id_params else "") if x)
            add(slug_world, values, what or "as is")
        if id_params:
            # An unknown parameter (already given every id) gets a post's id here.
            values = {p: other.ids[OTHER_KIND[kind_of(rule.endpoint, p)]][0] if kind_of(rule.endpoint, p)
                      else other.first("post") for p in id_params}
            add(slug_world, values, ", ".join(x for x in (owner_label, "B ids of another kind") if x))
    if {"org_slug", "handle"} <= set(params):
        # Issue 22: a public profile's address. A is listed: B's handle under A's address is no profile of A's;
        # A's own listing is a page (with B's ids in the form and the query).
        values = {p: other.first(kind_of(rule.endpoint, p)) for p in id_params}
        add(None, dict(values, org_slug=home.slug), "A's listed address, B's handle")
        values = {p: home.first(kind_of(rule.endpoint, p)) for p in id_params}
        add(None, values, "A slug, A's own ids (B ids in the form)")
    if has_slug and id_params and all(kind_of(rule.endpoint, p) in home.ids for p in id_params):
        # The last membership is A's spare member: the crawlers themselves are not removed or demoted.
        values = {p: home.ids[kind_of(rule.endpoint, p)][-1 if kind_of(rule.endpoint, p) == "membership" else 0]
                  for p in id_params}
        add(home, values, "A slug, A's own ids (B ids in the form)")
    return _unique(found)


def _unique(found: list[Variant]) -> list[Variant]:
    seen, out = set(), []
    for v in found:
        if v.path not in seen:
            seen.add(v.path)
            out.append(v)
    return out


def query_with_other_ids(other: World) -> str:
    """Query arguments a view may read, each naming one of B's rows."""
    return urlencode({"coach": other.first("coach"), "reschedule": other.first("booking"),
                      "member": other.ids["membership"][2], "start": other.slot_start, "t": "0:01",
                      "space": other.first("space"), "conversation": other.first("conversation"),
                      "media": other.first("media"), "after": other.first("post"), "before": "1",
                      "since": "2000-01-01T00:00:00+00:00", "key": other.upload_key, "size": "10",
                      "exp": "4102444800", "sig": "forged",
                      # issue 19: the series form's athlete, a time zone, the week's clock
                      "athlete": other.ids["membership"][2], "tz": "Europe/London", "week": date.today().isoformat(),
                      # issue 20: the room panel's athlete tab, the panel's open section
                      "with": other.first("room_booking"), "panel": "notes",
                      # issue 22: a public booking's offering; a page of reviews, of coaches; a review's order
                      "offering": other.first("offering"), "cursor": "forged", "order": "helpful"})


def form_data(other: World, csrf: str, n: int) -> dict:
    """A plausible form for any of the app's POSTs, every id-valued field naming one of B's rows
    (fields a form does not have are ignored by it)."""
    return {
        "csrf_token": csrf,
        "body": "Crawl text", "title": "Crawl title", "name": "Crawl space", "description": "Crawl description",
        "reason": "Crawl reason", "note": "Crawl note", "location": "Crawl court",
        "email": f"crawl-{n}@example.com", "role": "athlete", "display_name": "Crawl Person",
        "password": "another-horse-battery-staple", "confirm": "another-horse-battery-staple",
        "current_password": "not-the-password", "timezone": "Europe/Berlin", "slug": f"crawl-new-{n}",
        "visibility": "open", "audience": "organization", "days": "1", "at": "0:01",
        "weekday": "2", "start": other.slot_start, "end": "11:00", "on_date": (date.today() + timedelta(days=40)).isoformat(),
        "hours": "09:00-12:00", "starts": "2031-01-01T09:00", "ends": "2031-01-02T09:00",
        "duration_minutes": "60", "price": "10.00", "currency": "EUR", "capacity": "1", "buffer_before_minutes": "0",
        "buffer_after_minutes": "0", "min_notice_minutes": "0", "horizon_days": "60", "cancellation_window_hours": "24",
        "athlete": other.ids["membership"][2], "member": other.ids["membership"][2],
        "reschedule": other.first("booking"), "parent": other.first("comment"),
        "attachments": other.ids["media"], "client_id": str(uuid.uuid4()), "next": "/",
        "kind": "like", "channel": "email", "timing": "immediate",
        # Issue 19: calendars (a server that refuses at once), series, waitlists, the clock.
        "server_url": "http://127.0.0.1:9/dav/", "username": "crawl", "label": "Crawl calendar",
        "blocks": other.ids["source"], "receives": other.first("source"), "hour_cycle": "12",
        "tz": "Europe/London", "week": date.today().isoformat(), "first_date": (date.today() + timedelta(days=9)).isoformat(),
        "first_time": "10:00", "every": "1", "count": "2", "until": "", "time": "10:00",
        "expected": "0" * 32, "waitlist_mode": "auto", "waitlist_offer_minutes": "60",
        # Issue 20: a room's consent and the coach's notes.
        "given": "1", "notes": "Crawl notes",
        # Issue 22: a profile naming B's terms and media, a review, a term under B's discipline, a verification,
        # booking from a public profile.
        "headline": "Crawl headline", "bio": "Crawl bio", "languages": "en", "years_experience": "3",
        "certifications": "Crawl certificate", "tags": "crawl", "online": "y", "listed": "y",
        "photo_media_id": other.first("media"), "intro_media_id": other.ids["media"][1], "term_ids": other.ids["term"],
        "stars": "5", "parent_id": other.first("term"), "step": "up", "action": "verify",
        "offering": other.first("offering"),
    }


def json_body(other: World) -> dict:
    """What the JSON endpoints read (an upload intent), with B's ids where an id could go."""
    return {"filename": "crawl.jpg", "size": 1000, "content_type": "image/jpeg", "audience": "organization",
            "title": "Crawl upload", "media_id": other.first("media"), "conversation": other.first("conversation"),
            "number": 1, "recording_id": other.first("recording")}  # issue 20: a recording's part


# --- what a response must not show ----------------------------------------------------------------

def _echo_forms(url: str) -> set[str]:
    """The request URL as a page may echo it (a form's action, a login link's ``next``)."""
    path = url.split("?", 1)[0]
    forms = set()
    for u in (url, path):
        forms |= {u, html.escape(u), quote(u, safe=""), quote(u, safe="/"), html.escape(quote(u, safe="/:?=&"))}
    return {f.lower() for f in forms if f}


def leaks(text: str, url: str, other: World, marker: str) -> list[str]:
    """Where ``text`` (a body with its headers) shows the other organization: its marker (in every name,
    text and address it has), its name, and, outside the echo of the requested URL, its slug and id."""
    low = text.lower()
    found = []
    for what, needle in (("B's name", other.name.lower()), ("B's marker", marker.lower())):
        at = low.find(needle)
        if at >= 0:
            found.append(f"{what} …{text[max(0, at - 80):at + len(needle) + 40]!r}…")
            break  # the name carries the marker: one of them says it
    stripped = low
    for echo in sorted(_echo_forms(url), key=len, reverse=True):
        stripped = stripped.replace(echo, " ")
    for what, needle in (("B's slug", other.slug.lower()), ("B's organization id", other.org_id.lower())):
        at = stripped.find(needle)
        if at >= 0:
            found.append(f"{what} …{stripped[max(0, at - 80):at + len(needle) + 40]!r}…")
    return found


# --- the other organization's rows ------------------------------------------------------------------

class Snapshot:
    """Counts and checksums of everything of one organization, read as the owner role."""

    def __init__(self, app, owner_url: str, world: World):
        self.app, self.owner_url, self.world = app, owner_url, world
        with psycopg.connect(owner_url) as conn:
            self.tables = [r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
                "AND column_name = 'tenant_id' ORDER BY table_name")]
        assert len(self.tables) >= 20, self.tables
        digest = "count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
        parts = [f"SELECT '{name}', {digest} FROM {name} t WHERE tenant_id = %(org)s" for name in self.tables]
        parts += [f"SELECT 'organizations', {digest} FROM organizations t WHERE id = %(org)s",
                  f"SELECT 'users', {digest} FROM users t WHERE id = ANY(%(users)s::uuid[])",
                  f"SELECT 'password_reset_tokens', {digest} FROM password_reset_tokens t "
                  "WHERE user_id = ANY(%(users)s::uuid[])",
                  *[f"SELECT '{name}', {digest} FROM {name} t WHERE user_id = ANY(%(users)s::uuid[])"
                    for name in ("user_sessions", "passkeys", "recovery_codes", "security_events",
                                 "email_changes", "account_exports")],
                  f"SELECT 'emails', {digest} FROM emails t WHERE lower(to_address) = ANY(%(emails)s)",
                  # Issue 22: the public projection (B is never listed: no row may appear).
                  *[f"SELECT '{name}', {digest} FROM {name} t WHERE organization_id = %(org)s"
                    for name in ("directory_listings", "directory_words")]]
        self.sql = " UNION ALL ".join(parts)

    def take(self) -> dict[str, tuple]:
        w = self.world
        with psycopg.connect(self.owner_url) as conn:
            with conn.transaction():
                conn.execute("SELECT set_config('app.tenant_id', %s, true)", [w.org_id])
                rows = conn.execute(self.sql, {"org": w.org_id, "users": w.user_ids,
                                               "emails": [e.lower() for e in w.emails.values()]}).fetchall()
        state = {name: (count, digest) for name, count, digest in rows}
        root = w.media_root / w.org_id
        state["stored files"] = tuple(sorted((str(p.relative_to(root)), p.stat().st_size)
                                             for p in root.rglob("*") if p.is_file())) if root.exists() else ()
        state["failed job"] = tuple(j for j in w.ids["job"] if j in failed_job_ids(self.app))
        return state

    @staticmethod
    def changes(before: dict, after: dict) -> list[str]:
        out = []
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                b, a = before.get(name), after.get(name)
                if isinstance(b, tuple) and len(b) == 2 and isinstance(b[0], int):
                    out.append(f"{name}: {b[0]} rows → {a[0]} rows" + (" (rows changed)" if b[0] == a[0] else ""))
                else:
                    out.append(f"{name}: {b!r} → {a!r}")
        return out


def login_email(world: World, role: str) -> tuple[str, str]:
    return world.emails[role], PASSWORD
