"""Notifications as members and operators notice them: who is told about what (never the person who
acted), no duplicates, preferences and their emails (right away, delayed, daily digest), one-click
unsubscribe, the pages, the bell pushed over the socket, and other organizations kept out.

Events go the real way (outbox → relay → RQ worker → SMTP), drained from the test's thread with
the ``quiet`` runner so "nobody else was told" is a fact, not a timing. Direct calls of
``coach.notifications.service.notify`` are used only where a test is about the pages.
"""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from coach.booking import service as booking
from coach.chat import realtime
from coach.chat import service as chat
from coach.extensions import db
from coach.media import service as media
from coach.notifications import service
from coach.notifications.models import KINDS, Notification
from coach.platform.jobs import handle_event
from tests.chat_support import Sockets, unread_badge
from tests.conftest import Auth, csrf_from
from tests.notification_support import NotifyWorld

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
HX = {"HX-Request": "true"}
ITEM_RE = re.compile(r'<li class="notification( unread)?" id="notification-([0-9a-f-]{36})">')
BELL_RE = re.compile(r'<span id="notify-count"[^>]*>(\d+)<')
CHAT_BADGE_RE = re.compile(r'<span id="chat-unread"[^>]*>(\d+)<')


@pytest.fixture()
def world(app, quiet, ctx):
    return NotifyWorld(app, quiet)


def text(response) -> str:
    return response.get_data(as_text=True)


def items(html: str) -> list[tuple[str, bool]]:
    """``(notification id, unread)`` of every item of a list page or fragment, in order."""
    return [(ident, bool(unread)) for unread, ident in ITEM_RE.findall(html)]


def token_of(page) -> str:
    """The CSRF token of a page's forms (hand-written inputs put ``type`` before ``name``)."""
    html = page if isinstance(page, str) else text(page)
    match = re.search(r'<input type="hidden" name="csrf_token" value="([^"]+)"', html)
    return match.group(1) if match else csrf_from(html)


def bell(html: str) -> int | None:
    match = BELL_RE.search(html)
    return int(match.group(1)) if match else None


def only(rows):
    assert len(rows) == 1, [(n.kind, n.title) for n in rows]
    return rows[0]


def mails(mailbox, member, subject: str | None = None):
    found = mailbox.to(member.user.email)
    return [m for m in found if subject is None or subject in m["Subject"]]


def direct_note(world, member, title: str, *, kind: str = "comment", url: str = "/o/river/spaces",
                now: datetime | None = None, key: str | None = None) -> Notification:
    """A notification written straight through the service (for the pages' tests)."""
    world.act()
    n = service.notify(member, kind, dedupe_key=key or f"test:{uuid.uuid4()}", title=title, url=url, now=now)
    db.session.commit()
    return n


# --- who is told about what ------------------------------------------------------------------------

def test_a_mention_in_a_post_tells_the_mentioned_member_and_nobody_else(world):
    post = world.post(world.maria, "Great rally @ana.alves, see you Friday (@maria.santos is me)")
    world.run()

    n = only(world.notes(world.ana))
    assert n.kind == "mention"
    assert n.title == "Maria Santos mentioned you in Tennis"
    assert n.url == f"/o/river/posts/{post.id}"
    assert "Great rally" in n.body and n.actor_membership_id == world.maria.id and n.unread
    assert world.told() == {"Ana Alves": ["mention"]}


def test_a_mention_in_a_comment_links_to_the_comment_and_the_post_author_hears_of_the_comment(world):
    post = world.post(world.maria, "Drills for Saturday")
    comment = world.comment(post, world.ben, "@ana.alves you should come")
    world.run()

    mention = only(world.notes(world.ana))
    assert (mention.kind, mention.title) == ("mention", "Ben Brown mentioned you in a comment in Tennis")
    assert mention.url == f"/o/river/posts/{post.id}#comment-{comment.id}"
    note = only(world.notes(world.maria))
    assert (note.kind, note.title) == ("comment", "Ben Brown commented on your post in Tennis")
    assert note.url == f"/o/river/posts/{post.id}#comment-{comment.id}"
    assert world.notes(world.ben) == []


def test_a_reply_tells_the_comment_author_and_the_post_author_never_the_replier(world):
    post = world.post(world.maria, "Drills for Saturday")
    first = world.comment(post, world.ana, "Count me in")
    world.run()
    assert only(world.notes(world.maria)).title == "Ana Alves commented on your post in Tennis"

    reply = world.comment(post, world.ben, "Me too", parent=first)
    world.run()
    to_ana = only(world.notes(world.ana))
    assert (to_ana.kind, to_ana.title) == ("comment", "Ben Brown replied to your comment in Tennis")
    assert to_ana.url.endswith(f"#comment-{reply.id}")
    assert [n.title for n in world.notes(world.maria)] == ["Ben Brown commented on your post in Tennis",
                                                          "Ana Alves commented on your post in Tennis"]

    world.comment(post, world.maria, "Great, bring balls", parent=first)  # the post's author replies
    world.comment(post, world.ana, "Will do", parent=first)  # the comment's author replies to herself
    world.run()
    assert len(world.notes(world.maria)) == 3  # + Ana's second reply on her post, nothing for her own
    assert [n.title for n in world.notes(world.ana)] == ["Maria Santos replied to your comment in Tennis",
                                                        "Ben Brown replied to your comment in Tennis"]
    assert world.notes(world.ben) == []


def test_a_booking_request_tells_the_coach_and_her_answers_tell_the_athlete(world):
    requested = world.request(world.ana, note="Backhand please")
    world.run()
    n = only(world.notes(world.maria))
    local = requested.starts_at.astimezone(BERLIN).strftime("%a %-d %b, %H:%M")
    assert n.kind == "booking_requested"
    assert n.title == f"Ana Alves requested Technique session · {local} (Europe/Berlin)"
    assert n.body == "Backhand please" and n.url == f"/o/river/bookings/{requested.id}"
    assert world.notes(world.ana) == []

    world.do(booking.transition, requested, "confirm", world.maria)
    world.run()
    confirmed = only(world.notes(world.ana))
    assert confirmed.kind == "booking_confirmed"
    assert confirmed.title.startswith("Maria Santos confirmed Technique session · ")

    world.do(booking.transition, requested, "cancel", world.ana)
    world.run()
    cancelled = only(world.notes(world.maria, "booking_cancelled"))
    assert cancelled.title.startswith("Ana Alves cancelled Technique session · ")
    assert world.notes(world.ana, "booking_cancelled") == []

    declined = world.request(world.ana, starts_at=world.slot(4))
    world.do(booking.transition, declined, "decline", world.maria)
    world.run()
    n = only(world.notes(world.ana, "booking_declined"))
    assert n.title.startswith("Maria Santos declined Technique session · ") and n.url.endswith(str(declined.id))


def test_an_unanswered_request_that_expires_tells_the_athlete(world):
    requested = world.request(world.ana)
    world.run()
    world.do(booking.run_due, world.org.id, now=requested.expires_at)
    world.run()
    n = only(world.notes(world.ana))
    assert n.kind == "booking_declined"
    assert n.title.startswith("Your request for Technique session expired without an answer · ")
    assert n.actor_membership_id is None
    assert [x.kind for x in world.notes(world.maria)] == ["booking_requested"]


def test_a_session_booked_by_an_admin_tells_the_coach_and_the_athlete(world):
    from tests.booking_support import make_offering

    drop_in = make_offering(world.maria, title="Drop-in", auto_confirm=True)
    made = world.request(world.ana, starts_at=world.slot(offering=drop_in), actor=world.admin, offering=drop_in)
    world.run()
    assert only(world.notes(world.maria)).title.startswith("Ana Alves booked Drop-in · ")
    n = only(world.notes(world.ana))
    assert n.kind == "booking_confirmed" and n.title.startswith("Ada Admin booked Drop-in for you · ")
    assert world.notes(world.admin) == []

    world.do(booking.transition, made, "cancel", world.maria)
    world.run()
    assert only(world.notes(world.ana, "booking_cancelled")).title.startswith("Maria Santos cancelled Drop-in")
    assert world.notes(world.maria, "booking_cancelled") == []


def test_a_request_made_on_the_athletes_behalf_tells_the_athlete_too(world):
    made = world.request(world.ana, starts_at=world.slot(), actor=world.admin)
    world.run()
    assert made.status == "requested"
    assert only(world.notes(world.maria)).title.startswith("Ana Alves requested ")
    n = only(world.notes(world.ana))
    assert n.kind == "booking_requested" and n.title.startswith("Ada Admin requested ") and " for you · " in n.title
    assert world.notes(world.admin) == []


def test_both_people_are_reminded_a_day_and_an_hour_before_once_each(world, mailbox):
    from tests.booking_support import make_offering

    drop_in = make_offering(world.maria, title="Drop-in", auto_confirm=True, location="Court 3")
    made = world.request(world.ana, starts_at=world.slot(3, offering=drop_in), offering=drop_in)
    world.run()
    start = made.starts_at

    for _ in range(2):  # a second sweep at the same moment reminds nobody again
        world.do(booking.run_due, world.org.id, now=start - timedelta(hours=24))
        world.run()
    to_ana = only(world.notes(world.ana, "booking_reminder"))
    to_maria = only(world.notes(world.maria, "booking_reminder"))
    assert to_ana.title == to_maria.title == "Reminder: Drop-in tomorrow"
    assert "Drop-in with Maria Santos starts tomorrow" in to_ana.body and "Where: Court 3." in to_ana.body
    assert "Drop-in with Ana Alves starts tomorrow" in to_maria.body
    assert to_ana.url == f"/o/river/bookings/{made.id}"

    world.do(booking.run_due, world.org.id, now=start - timedelta(hours=1))
    world.run()
    assert [n.title for n in world.notes(world.ana, "booking_reminder")] == ["Reminder: Drop-in in one hour",
                                                                           "Reminder: Drop-in tomorrow"]
    assert len(world.notes(world.maria, "booking_reminder")) == 2
    # Reminders are emailed by default: two to each, each once.
    assert len(mails(mailbox, world.ana, "Reminder: Drop-in")) == 2
    assert len(mails(mailbox, world.maria, "Reminder: Drop-in")) == 2


def ready_video(world, owner, title: str = "Serve", audience: str = "organization"):
    """A video that the worker "processed" (the renditions are recorded by the service, no ffmpeg)."""
    world.act()
    item = media.start_upload(world.org, owner, "serve.mp4", 1000, "video/mp4", audience, title)
    item.status, item.size_bytes, item.uploaded_at = "processing", 1000, datetime.now(UTC)
    db.session.flush()
    assert media.record_renditions(item, {}, 0, width=320, height=240, duration_ms=60_000)
    db.session.commit()
    return item


def test_the_owner_hears_when_an_upload_is_ready(world):
    item = ready_video(world, world.ana)
    world.run()
    n = only(world.notes(world.ana))
    assert (n.kind, n.title) == ("media_ready", "“Serve” is ready")
    assert n.url == f"/o/river/media/{item.id}"
    assert world.told() == {"Ana Alves": ["media_ready"]}


def test_review_comments_tell_the_owner_and_the_thread_never_the_commenter(world):
    item = ready_video(world, world.ana)
    world.run()
    first = world.do(media.add_review_comment, item, world.maria, 5000, "Elbow higher here")
    world.run()
    n = only(world.notes(world.ana, "review_comment"))
    assert n.title == "Maria Santos commented at 0:05 on your video"
    assert n.url == f"/o/river/media/{item.id}#review-{first.id}" and n.body == "Elbow higher here"

    world.do(media.add_review_comment, item, world.ana, None, "Like this?", parent=first)
    world.run()
    assert len(world.notes(world.ana, "review_comment")) == 1  # not told about her own reply
    assert only(world.notes(world.maria)).title == "Ana Alves commented at 0:05 on “Serve”"

    world.do(media.add_review_comment, item, world.ben, None, "Nice one", parent=first)
    world.run()
    assert len(world.notes(world.ana, "review_comment")) == 2
    assert len(world.notes(world.maria)) == 2
    assert world.notes(world.ben) == []
    assert world.notes(world.cleo) == []  # not in the thread


def test_a_direct_message_to_an_offline_member_is_a_notification(world):
    conversation = world.direct(world.ana, world.ben)
    world.say(conversation, world.ben, "Are you coming today?")
    world.run()
    n = only(world.notes(world.ana))
    assert (n.kind, n.title, n.count) == ("message", "Ben Brown sent you a message", 1)
    assert n.url == f"/o/river/chat/{conversation.id}" and n.body == "Are you coming today?"
    assert world.told() == {"Ana Alves": ["message"]}


def test_a_member_online_in_the_app_gets_no_notification_for_a_message(world):
    conversation = world.direct(world.ana, world.ben)
    realtime.set_presence(world.org.id, world.ana.id, "online")
    world.say(conversation, world.ben, "Are you coming today?")
    world.run()
    assert world.notes(world.ana) == []

    realtime.set_presence(world.org.id, world.ana.id, "away")  # a tab in the background still has the chat
    world.say(conversation, world.ben, "Hello?")
    world.run()
    assert world.notes(world.ana) == []


def test_several_messages_gather_into_one_notification_that_reading_the_conversation_reads(world):
    conversation = world.direct(world.ana, world.ben)
    world.say(conversation, world.ben, "One")
    world.run()
    world.say(conversation, world.ben, "Two", "Three")
    world.run()
    n = only(world.notes(world.ana))
    assert (n.count, n.title, n.body) == (3, "3 new messages from Ben Brown", "Three")

    world.do(chat.mark_read, conversation, world.ana, 2)  # not to the end: two were read, one is still new
    assert only(world.notes(world.ana)).unread
    world.do(chat.mark_read, conversation, world.ana, 3)
    assert not only(world.notes(world.ana)).unread

    world.say(conversation, world.ben, "Four")
    world.run()
    newest, older = world.notes(world.ana)
    assert (newest.count, newest.title, newest.unread) == (1, "Ben Brown sent you a message", True)
    assert older.count == 3


def test_a_channel_message_tells_offline_space_members_only(world):
    channel = world.channel()
    realtime.set_presence(world.org.id, world.ben.id, "online")
    world.say(channel, world.maria, "Courts are wet, we meet inside")
    world.run()
    n = only(world.notes(world.ana))
    assert (n.kind, n.title) == ("channel_message", "Maria Santos wrote in # Tennis")
    assert world.told() == {"Ana Alves": ["channel_message"]}  # Ben is online, Cleo not in the space


# --- no duplicates ---------------------------------------------------------------------------------

def test_an_event_handled_twice_tells_once_and_emails_once(world, mailbox):
    post = world.post(world.maria, "Drills for Saturday")
    world.run()
    event = {"id": str(uuid.uuid4()), "tenant_id": str(world.org.id), "topic": "space.mentioned",
             "payload": {"post_id": str(post.id), "membership_id": str(world.ana.id),
                         "author_membership_id": str(world.maria.id), "excerpt": "Drills"}}
    assert handle_event(event) == "done"
    assert handle_event(event) == "duplicate"
    again = {**event, "id": str(uuid.uuid4())}  # the same mention announced by a second event
    assert handle_event(again) == "done"
    world.run()
    assert len(world.notes(world.ana)) == 1
    assert len(mails(mailbox, world.ana)) == 1


def test_the_same_dedupe_key_notified_twice_is_one_row_and_one_email(world, mailbox):
    first = direct_note(world, world.ana, "Your session moved", kind="booking_confirmed", key="booking:x:confirmed")
    second = direct_note(world, world.ana, "Your session moved", kind="booking_confirmed", key="booking:x:confirmed")
    assert first is not None and second is None
    world.run()
    assert len(world.notes(world.ana)) == 1
    assert [m["Subject"] for m in mails(mailbox, world.ana)] == ["Your session moved"]


# --- preferences and emails ------------------------------------------------------------------------

def test_preferences_start_at_the_defaults(world):
    prefs = service.preferences_for(world.ana)
    assert list(prefs) == list(KINDS)
    assert {k: (p.channel, p.timing) for k, p in prefs.items()} == {k: (v.channel, "immediate")
                                                                     for k, v in KINDS.items()}
    assert prefs["mention"].channel == "email" and prefs["comment"].channel == "in_app"


def test_off_means_no_notification_and_no_email(world, mailbox):
    world.prefer(world.ana, "mention", "off")
    world.post(world.maria, "Hi @ana.alves")
    world.run()
    assert world.notes(world.ana) == []
    assert mails(mailbox, world.ana) == []


def test_in_the_app_only_means_no_email(world, mailbox):
    world.prefer(world.ana, "mention", "in_app")
    world.post(world.maria, "Hi @ana.alves")
    world.run()
    assert only(world.notes(world.ana)).email_state is None
    assert mails(mailbox, world.ana) == []


def test_an_immediate_email_has_both_parts_the_title_the_link_and_one_click_unsubscribe(world, mailbox, app):
    post = world.post(world.maria, "Hi @ana.alves, **nice** serve")
    world.run()
    n = only(world.notes(world.ana))
    assert n.email_state == "sent"
    message = only(mails(mailbox, world.ana))
    assert message["Subject"] == "Maria Santos mentioned you in Tennis"
    base = app.config["APP_BASE_URL"]
    plain = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert f"{base}/o/river/posts/{post.id}" in plain and f"/o/river/posts/{post.id}" in html
    assert "Maria Santos mentioned you in Tennis" in html
    unsubscribe = message["List-Unsubscribe"]
    assert re.fullmatch(rf"<{re.escape(base)}/unsubscribe/[^>]+>", unsubscribe), unsubscribe
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe[1:-1] in plain
    assert f"{base}/o/river/notifications/preferences" in plain


def test_daily_emails_wait_for_08_00_local_then_come_as_one_digest_of_what_is_unread(world, mailbox):
    world.prefer(world.ana, "mention", "email", "daily")
    world.prefer(world.ana, "comment", "email", "daily")
    her_post = world.post(world.ana, "My first post")
    world.post(world.maria, "Welcome @ana.alves")
    world.post(world.ben, "And from me @ana.alves")
    world.comment(her_post, world.ben, "Nice post")
    world.run()
    rows = world.notes(world.ana)
    assert len(rows) == 3 and mails(mailbox, world.ana) == []
    due = service.next_digest_at("Europe/Berlin", datetime.now(UTC))
    assert due.astimezone(BERLIN).hour == 8
    assert {(n.email_state, n.email_due_at, n.email_digest) for n in rows} == {("due", due, True)}

    read_one = next(n for n in rows if n.title.startswith("Ben Brown mentioned"))
    world.do(service.mark_read, world.ana, [read_one.id])
    assert world.do(service.send_due_emails, world.org.id, now=due - timedelta(seconds=1)) == 0
    assert world.org.id not in world.do(service.due_tenants, due - timedelta(seconds=1))
    assert world.org.id in world.do(service.due_tenants, due)
    assert world.do(service.send_due_emails, world.org.id, now=due) == 1
    world.run()
    digest = only(mails(mailbox, world.ana))
    assert digest["Subject"] == "Your day on River Club: 2 updates"
    body = digest.get_body(preferencelist=("plain",)).get_content()
    assert "Maria Santos mentioned you in Tennis" in body and "Ben Brown commented on your post in Tennis" in body
    assert "Ben Brown mentioned you" not in body
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    states = {n.title: n.email_state for n in world.notes(world.ana)}
    assert states == {"Maria Santos mentioned you in Tennis": "sent", "Ben Brown commented on your post in Tennis": "sent",
                      "Ben Brown mentioned you in Tennis": "skipped"}
    assert world.do(service.send_due_emails, world.org.id, now=due + timedelta(days=1)) == 0


def test_the_digest_hour_is_the_members_own(world):
    now = datetime(2026, 11, 22, 7, 30, tzinfo=UTC)  # 08:30 in Berlin, 02:30 in New York
    assert service.next_digest_at("Europe/Berlin", now) == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    assert service.next_digest_at("America/New_York", now) == datetime(2026, 11, 22, 13, 0, tzinfo=UTC)
    assert service.next_digest_at("Not/AZone", now) == datetime(2026, 11, 22, 8, 0, tzinfo=UTC)  # UTC


def test_a_message_email_waits_and_goes_only_if_still_unread(world, mailbox, app, monkeypatch):
    monkeypatch.setitem(app.config, "NOTIFY_MESSAGE_EMAIL_DELAY_SECONDS", 300)
    with_ben = world.direct(world.ana, world.ben)
    with_cleo = world.direct(world.ana, world.cleo)
    world.say(with_ben, world.ben, "Still on for today?")
    world.say(with_cleo, world.cleo, "Lunch?")
    world.run()
    from_ben = next(n for n in world.notes(world.ana) if n.subject_id == with_ben.id)
    assert from_ben.email_state == "due" and mails(mailbox, world.ana) == []
    due = from_ben.email_due_at
    assert timedelta(seconds=299) < due - from_ben.created_at <= timedelta(seconds=301)

    world.do(chat.mark_read, with_cleo, world.ana, 1)  # Ana came back and read Cleo's message
    assert world.do(service.send_due_emails, world.org.id, now=due - timedelta(seconds=5)) == 0
    assert world.do(service.send_due_emails, world.org.id, now=due + timedelta(seconds=5)) == 1
    world.run()
    assert [m["Subject"] for m in mails(mailbox, world.ana)] == ["Ben Brown sent you a message"]
    states = {n.subject_id: n.email_state for n in world.notes(world.ana)}
    assert states == {with_ben.id: "sent", with_cleo.id: "skipped"}


def test_with_no_delay_a_message_is_emailed_at_once(world, mailbox, app, monkeypatch):
    monkeypatch.setitem(app.config, "NOTIFY_MESSAGE_EMAIL_DELAY_SECONDS", 0)
    conversation = world.direct(world.ana, world.ben)
    world.say(conversation, world.ben, "Quick one")
    world.run()
    assert only(world.notes(world.ana)).email_state == "sent"
    assert [m["Subject"] for m in mails(mailbox, world.ana)] == ["Ben Brown sent you a message"]
    world.say(conversation, world.ben, "And another")
    world.run()
    assert only(world.notes(world.ana)).count == 2
    assert len(mails(mailbox, world.ana)) == 1  # a burst is at most one email


# --- unsubscribe -----------------------------------------------------------------------------------

def unsubscribe_path(message) -> str:
    return urlsplit(message["List-Unsubscribe"][1:-1]).path


def test_the_unsubscribe_link_of_a_real_email_asks_first_then_stops_that_kind(world, mailbox, client):
    world.post(world.maria, "Hi @ana.alves")
    world.run()
    path = unsubscribe_path(only(mails(mailbox, world.ana)))
    assert path in mails(mailbox, world.ana)[0].get_body(preferencelist=("plain",)).get_content()

    page = client.get(path)
    assert page.status_code == 200
    assert "Stop these emails?" in text(page) and "ana@example.com" in text(page)
    assert "Someone mentions me in a post or comment" in text(page)
    assert world.preference_rows(world.ana) == {}  # a mail scanner opening the link changes nothing

    done = client.post(path)  # the page's form: no CSRF token, the signed link is the proof
    assert done.status_code == 200 and "You are unsubscribed" in text(done)
    assert world.preference_rows(world.ana) == {"mention": ("in_app", "immediate")}

    world.post(world.ben, "Also @ana.alves")
    world.run()
    assert len(world.notes(world.ana)) == 2  # still told in the app
    assert len(mails(mailbox, world.ana)) == 1


def test_one_click_unsubscribe_by_a_mail_client_and_pending_emails_of_that_kind_are_skipped(world, client):
    conversation = world.direct(world.ana, world.ben)
    world.say(conversation, world.ben, "Still on for today?")
    world.run()
    assert only(world.notes(world.ana)).email_state == "due"
    world.act()
    token = service.unsubscribe_token(world.ana, "message")
    db.session.rollback()

    response = client.post(f"/unsubscribe/{token}", data="List-Unsubscribe=One-Click",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert world.preference_rows(world.ana) == {"message": ("in_app", "immediate")}
    n = only(world.notes(world.ana))
    assert (n.email_state, n.email_due_at, n.unread) == ("skipped", None, True)
    assert world.do(service.send_due_emails, world.org.id, now=datetime.now(UTC) + timedelta(hours=1)) == 0


def test_the_digest_link_turns_every_daily_kind_to_in_app_only(world, client):
    world.prefer(world.ana, "mention", "email", "daily")
    world.prefer(world.ana, "comment", "email", "daily")
    world.prefer(world.ana, "media_ready", "in_app")
    world.act()
    token = service.unsubscribe_token(world.ana, "digest")
    db.session.rollback()
    assert "the daily digest" in text(client.get(f"/unsubscribe/{token}"))
    assert client.post(f"/unsubscribe/{token}").status_code == 200
    rows = world.preference_rows(world.ana)
    assert rows["mention"][0] == rows["comment"][0] == "in_app"
    assert rows["media_ready"] == ("in_app", "immediate")
    assert service.preferences_for(world.ana)["booking_reminder"].channel == "email"  # immediate ones stay


def test_forged_or_stale_unsubscribe_links_get_a_clean_page_and_change_nothing(world, client, app):
    from itsdangerous import URLSafeSerializer

    world.act()
    good = service.unsubscribe_token(world.ana, "mention")
    signer = URLSafeSerializer(app.config["SECRET_KEY"], salt=service.UNSUBSCRIBE_SALT)
    other_key = URLSafeSerializer("not-our-secret", salt=service.UNSUBSCRIBE_SALT)
    t, m = str(world.org.id), str(world.ana.id)
    db.session.rollback()
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    cases = {
        "garbage": 400,
        tampered: 400,
        other_key.dumps({"t": t, "m": m, "k": "mention"}): 400,
        signer.dumps({"t": t, "m": m, "k": "everything"}): 400,  # an unknown kind
        signer.dumps(["not", "a", "dict"]): 400,
        signer.dumps({"t": t, "m": "not-a-uuid", "k": "mention"}): 400,
        signer.dumps({"t": t, "m": str(uuid.uuid4()), "k": "mention"}): 404,  # a member that is gone
        signer.dumps({"t": str(uuid.uuid4()), "m": m, "k": "mention"}): 404,  # an organization that is gone
    }
    for token, status in cases.items():
        for method in (client.get, client.post):
            response = method(f"/unsubscribe/{token}")
            assert response.status_code == status, (token, method)
            assert "unsubscribe" in text(response).lower() or "membership" in text(response).lower()
    assert world.preference_rows(world.ana) == {}


def test_the_link_of_a_member_who_left_is_a_clean_404(world, client, owner_db):
    world.act()
    token = service.unsubscribe_token(world.cleo, "mention")
    db.session.rollback()
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(world.org.id)])
    owner_db.execute("DELETE FROM memberships WHERE id = %s", [world.cleo.id])
    for method in (client.get, client.post):
        response = method(f"/unsubscribe/{token}")
        assert response.status_code == 404
        assert "no longer exists" in text(response)


# --- the pages -------------------------------------------------------------------------------------

def test_the_list_is_newest_first_with_unread_ones_marked(world):
    now = datetime.now(UTC)
    old = direct_note(world, world.ana, "Oldest thing", now=now - timedelta(hours=3))
    mid = direct_note(world, world.ana, "Middle thing", now=now - timedelta(hours=2))
    new = direct_note(world, world.ana, "Newest thing", now=now - timedelta(hours=1))
    direct_note(world, world.ben, "Ben's own thing")
    world.do(service.mark_read, world.ana, [mid.id])

    page = world.browser(world.ana).get("/o/river/notifications")
    assert page.status_code == 200
    assert items(text(page)) == [(str(new.id), True), (str(mid.id), False), (str(old.id), True)]
    assert "Ben&#39;s own thing" not in text(page) and "Ben's own thing" not in text(page)
    assert bell(text(page)) == 2

    unread = world.browser(world.ana).get("/o/river/notifications?show=unread")
    assert items(text(unread)) == [(str(new.id), True), (str(old.id), True)]


def test_older_notifications_page_in_without_duplicates(world):
    now = datetime.now(UTC)
    made = [direct_note(world, world.ana, f"Thing {i}", now=now - timedelta(minutes=i)) for i in range(33)]
    # Two at the very same moment on the page boundary: the cursor's id breaks the tie.
    made += [direct_note(world, world.ana, f"Tie {i}", now=now - timedelta(minutes=28, seconds=30)) for i in range(2)]
    browser = world.browser(world.ana)
    first = text(browser.get("/o/river/notifications"))
    seen = [ident for ident, _ in items(first)]
    assert len(seen) == service.PAGE_SIZE
    older = re.search(r'<a class="button" href="([^"]+)">Older notifications</a>', first)
    assert older, "no link to older notifications"
    second = text(browser.get(older.group(1).replace("&amp;", "&")))
    more = [ident for ident, _ in items(second)]
    assert "Older notifications" not in second
    assert len(more) == len(made) - service.PAGE_SIZE
    assert len(set(seen + more)) == len(made) == len(seen + more)
    assert sorted(seen + more) == sorted(str(n.id) for n in made)

    fragment = text(browser.get(older.group(1).replace("&amp;", "&"), headers=HX))
    assert "<html" not in fragment and [i for i, _ in items(fragment)] == more


def test_a_broken_cursor_is_the_first_page(world):
    direct_note(world, world.ana, "Thing")
    for cursor in ("nonsense", "2026-01-01_notauuid", "_", f"2026-01-01T00:00:00_{uuid.uuid4()}"):
        response = world.browser(world.ana).get(f"/o/river/notifications?before={cursor}")
        assert response.status_code == 200
    assert len(items(text(world.browser(world.ana).get("/o/river/notifications?before=nonsense")))) == 1


def test_opening_a_notification_marks_it_read_and_goes_to_the_thing(world):
    post = world.post(world.maria, "Hi @ana.alves")
    world.run()
    n = only(world.notes(world.ana))
    response = world.browser(world.ana).get(f"/o/river/notifications/{n.id}")
    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == f"/o/river/posts/{post.id}"
    assert not only(world.notes(world.ana)).unread


def test_a_stored_url_that_is_not_a_path_of_ours_goes_to_the_list(world):
    n = direct_note(world, world.ana, "Odd", url="//evil.example.com/x")
    response = world.browser(world.ana).get(f"/o/river/notifications/{n.id}")
    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == "/o/river/notifications"


def test_someone_elses_or_a_malformed_notification_is_not_found(world):
    bens = direct_note(world, world.ben, "Ben's")
    browser = world.browser(world.ana)
    token = token_of(browser.get("/o/river/notifications"))
    for ident in (bens.id, uuid.uuid4(), "not-a-uuid", "1"):
        assert browser.get(f"/o/river/notifications/{ident}").status_code == 404
        assert browser.post(f"/o/river/notifications/{ident}/read", data={"csrf_token": token}).status_code == 404
    assert only(world.notes(world.ben)).unread


def test_mark_one_read_with_a_plain_form_and_with_htmx(world):
    a = direct_note(world, world.ana, "First")
    b = direct_note(world, world.ana, "Second")
    browser = world.browser(world.ana)
    token = token_of(browser.get("/o/river/notifications"))

    plain = browser.post(f"/o/river/notifications/{a.id}/read", data={"csrf_token": token})
    assert plain.status_code == 303
    assert urlsplit(plain.headers["Location"]).path == "/o/river/notifications"

    fragment = browser.post(f"/o/river/notifications/{b.id}/read", data={"csrf_token": token}, headers=HX)
    assert fragment.status_code == 200
    html = text(fragment)
    assert "<html" not in html
    assert items(html) == [(str(b.id), False)]
    assert re.search(r'<span id="notify-count"[^>]*hx-swap-oob="true"[^>]*hidden>0<', html), html
    assert not any(n.unread for n in world.notes(world.ana))


def test_mark_all_read(world):
    for i in range(3):
        direct_note(world, world.ana, f"Thing {i}")
    direct_note(world, world.ben, "Ben's")
    browser = world.browser(world.ana)
    token = token_of(browser.get("/o/river/notifications"))
    response = browser.post("/o/river/notifications/read-all", data={"csrf_token": token})
    assert response.status_code == 303
    assert not any(n.unread for n in world.notes(world.ana))
    assert only(world.notes(world.ben)).unread
    page = text(browser.get("/o/river/notifications"))
    assert "All notifications marked read." in page and bell(page) == 0


def test_posts_without_a_csrf_token_are_refused_and_change_nothing(world):
    n = direct_note(world, world.ana, "Thing")
    browser = world.browser(world.ana)
    assert browser.post(f"/o/river/notifications/{n.id}/read").status_code == 400
    assert browser.post("/o/river/notifications/read-all", data={"csrf_token": "forged"}).status_code == 400
    assert browser.post("/o/river/notifications/preferences", data={"channel-mention": "off"}).status_code == 400
    assert only(world.notes(world.ana)).unread
    assert world.preference_rows(world.ana) == {}


def selected(html: str, name: str) -> str:
    select_html = re.search(rf'<select id="{name}" name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select_html, name
    return re.search(r'<option value="([^"]+)" selected>', select_html.group(1)).group(1)


def test_preferences_are_shown_and_saved(world):
    browser = world.browser(world.ana)
    page = text(browser.get("/o/river/notifications/preferences"))
    assert selected(page, "channel-mention") == "email" and selected(page, "channel-comment") == "in_app"
    assert selected(page, "timing-mention") == "immediate"
    assert "Europe/Berlin" in page

    form = {"csrf_token": token_of(page), "channel-mention": "email", "timing-mention": "daily",
            "channel-comment": "off", "timing-comment": "immediate"}
    response = browser.post("/o/river/notifications/preferences", data=form)
    assert response.status_code == 303
    assert world.preference_rows(world.ana) == {"mention": ("email", "daily"), "comment": ("off", "immediate")}
    page = text(browser.get("/o/river/notifications/preferences"))
    assert "Notification settings saved." in page
    assert selected(page, "timing-mention") == "daily" and selected(page, "channel-comment") == "off"


def test_an_unknown_kind_is_a_400_and_saves_nothing(world):
    browser = world.browser(world.ana)
    token = token_of(browser.get("/o/river/notifications"))
    response = browser.post("/o/river/notifications/preferences",
                            data={"csrf_token": token, "channel-mention": "off", "channel-bogus": "off"})
    assert response.status_code == 400
    assert "Unknown notification kind" in text(response) and "bogus" in text(response)
    assert world.preference_rows(world.ana) == {}


def test_an_invalid_choice_is_a_422_with_a_message_and_saves_nothing(world):
    browser = world.browser(world.ana)
    token = token_of(browser.get("/o/river/notifications/preferences"))
    for form in ({"channel-comment": "off", "channel-mention": "carrier-pigeon"},
                 {"channel-comment": "off", "channel-mention": "email", "timing-mention": "weekly"}):
        response = browser.post("/o/river/notifications/preferences", data={"csrf_token": token, **form})
        assert response.status_code == 422
        assert "Choose one of the offered settings for “Someone mentions me in a post or comment”" in text(response)
        assert selected(text(response), "channel-comment") == "off"  # what was sent is shown again
    assert world.preference_rows(world.ana) == {}


def test_full_pages_show_the_bell_and_the_chat_badge(world):
    direct_note(world, world.ana, "One")
    direct_note(world, world.ana, "Two")
    conversation = world.direct(world.ana, world.ben)
    world.say(conversation, world.ben, "Hi", "There", "Again")
    page = text(world.browser(world.ana).get("/o/river/spaces"))
    assert bell(page) == 2
    assert int(CHAT_BADGE_RE.search(page).group(1)) == 3
    ben_page = text(world.browser(world.ben).get("/o/river/spaces"))
    assert bell(ben_page) == 0 and int(CHAT_BADGE_RE.search(ben_page).group(1)) == 0


# --- live -------------------------------------------------------------------------------------------

def test_the_bell_is_pushed_over_the_socket_when_the_worker_notifies(world, app, live_server):
    sockets = Sockets(app, live_server)
    try:
        sock = sockets.open("maria@example.com")
        post = world.post(world.maria, "Drills for Saturday")
        world.comment(post, world.ana, "Count me in")
        world.run()
        frame = sock.wait_for(lambda f: 'id="notify-count"' in f and bell(f) == 1, what="the bell at 1")
        assert 'hx-swap-oob="true"' in frame
        # With it, the signal the home page's blocks refresh on (issue 21).
        assert 'id="live-signal" hx-swap-oob="true" data-signal="notified"' in frame
        # Reading it elsewhere (another tab, the plain page) brings every page's bell back to 0.
        n = only(world.notes(world.maria))
        world.browser(world.maria).get(f"/o/river/notifications/{n.id}")
        sock.wait_for(lambda f: 'id="notify-count"' in f and bell(f) == 0, what="the bell at 0")
        assert unread_badge(sock.frames[0]) is not None
    finally:
        sockets.close_all()


# --- other organizations ---------------------------------------------------------------------------

def test_a_member_of_another_organization_cannot_reach_these_notifications(world, app):
    n = direct_note(world, world.ana, "River only")
    hill = world.other_club()
    browser = app.test_client()
    assert Auth(browser).login("yan@example.com").status_code == 303
    page = text(browser.get("/o/hill/notifications"))
    assert "River only" not in page
    token = token_of(page)
    assert browser.get(f"/o/hill/notifications/{n.id}").status_code == 404
    assert browser.post(f"/o/hill/notifications/{n.id}/read", data={"csrf_token": token}).status_code == 404
    assert browser.get(f"/o/river/notifications/{n.id}").status_code in (403, 404)
    assert only(world.notes(world.ana)).unread
    assert hill.org.id != world.org.id


def test_rls_keeps_notifications_in_their_organization_and_the_sweep_function_gives_ids_only(world, app_db):
    world.prefer(world.ana, "mention", "email", "daily")
    direct_note(world, world.ana, "Waiting for the digest", kind="mention")
    hill = world.other_club()
    due = only(world.notes(world.ana)).email_due_at

    assert app_db.execute("SELECT count(*) FROM notifications").fetchone()[0] == 0  # no organization: nothing
    app_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(hill.org.id)])
    assert app_db.execute("SELECT count(*) FROM notifications").fetchone()[0] == 0
    app_db.rollback()
    rows = app_db.execute("SELECT * FROM notifications_due_tenants(%s)", [due]).fetchall()
    assert rows == [(world.org.id,)]
    assert app_db.execute("SELECT * FROM notifications_due_tenants(%s)",
                          [due - timedelta(seconds=1)]).fetchall() == []
    assert service.due_tenants(due) == [world.org.id]


def test_the_minute_sweep_sends_what_is_due_in_every_organization(world, mailbox):
    from coach.notifications.jobs import sweep_all

    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    direct_note(world, world.ana, "Ben Brown sent you a message", kind="message", now=two_hours_ago)
    direct_note(world, world.maria, "Not yet", kind="message")  # due in five minutes
    assert only(world.notes(world.ana)).email_state == "due"
    assert sweep_all() == 1
    world.run()
    assert [m["Subject"] for m in mails(mailbox, world.ana)] == ["Ben Brown sent you a message"]
    assert mails(mailbox, world.maria) == []
    assert only(world.notes(world.maria)).email_state == "due"
    assert sweep_all() == 0


def test_a_held_booking_is_news_to_nobody_until_paid_and_a_lapsed_hold_tells_the_athlete(world):
    # Held for a checkout: the coach hears nothing yet.
    held = world.do(booking.request_booking, world.offering, world.ana, world.slot(), "", world.ana,
                    hold_minutes=30)
    world.run()
    assert held.status == "held" and world.notes(world.maria) == [] and world.notes(world.ana) == []
    # Paid: the coach is asked, as for any request.
    world.do(booking.transition, held, "settle", None)
    world.run()
    assert only(world.notes(world.maria)).title.startswith("Ana Alves requested Technique session · ")
    # A hold that runs out tells the athlete the time was released; the coach, never told of it, hears nothing.
    lapsed = world.do(booking.request_booking, world.offering, world.ana, world.slot(3), "", world.ana,
                      hold_minutes=30)
    world.do(booking.transition, lapsed, "expire", None)
    world.run()
    released = only(world.notes(world.ana, "booking_declined"))
    assert "was released: the payment was not completed in time" in released.title
    assert len(world.notes(world.maria)) == 1
    # Given up by the athlete themself: nobody is told.
    given_up = world.do(booking.request_booking, world.offering, world.ana, world.slot(4), "", world.ana,
                        hold_minutes=30)
    world.do(booking.transition, given_up, "cancel", world.ana)
    world.run()
    assert len(world.notes(world.ana)) == 1 and len(world.notes(world.maria)) == 1
