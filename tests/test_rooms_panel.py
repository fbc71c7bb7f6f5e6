"""The room's side panel: the booking's conversation (the athlete's direct one with the coach) and the coach's
private notes on the session (the draft of its progress record), on the room page and as htmx fragments, with and
without JavaScript."""
from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from coach import tenancy
from coach.chat import service as chat
from coach.extensions import db
from coach.progress import records
from coach.progress.models import DRAFT, SIGNED, SessionRecord
from tests.querycount import statements_for
from tests.room_support import RoomWorld
from tests.test_booking_views import HX, logged_in, text

CSRF_RE = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')


@pytest.fixture()
def world(ctx):
    world = RoomWorld()
    world.other_club()
    tenancy.activate(world.org.id)
    return world


def browser_of(app, member):
    return logged_in(app, member.user.email)


def conversation_of(world, a, b):
    tenancy.activate(world.org.id)
    conversation = chat.direct_with(world.org, a, b)
    db.session.commit()
    return conversation


def say(world, conversation, author, body):
    tenancy.activate(world.org.id)
    chat.send(conversation, author, body)
    db.session.commit()


def notes_path(world, session, booking) -> str:
    return f"{world.room_path(session)}/notes/{booking.id}"


def csrf_of(page: str) -> str:
    match = CSRF_RE.search(page)
    assert match, "the page has no CSRF token"
    return match.group(1)


def record_rows(world, booking) -> list[SessionRecord]:
    tenancy.activate(world.org.id)
    db.session.expire_all()
    return list(db.session.scalars(select(SessionRecord).where(SessionRecord.booking_id == booking.id)
                                   .order_by(SessionRecord.version)))


def panel_of(page: str) -> str:
    start = page.index('id="room-panel"')
    return page[start:page.index("</aside>", start)]


# --- what each member sees ----------------------------------------------------------------------------

def test_athlete_sees_their_conversation_with_the_coach_and_no_notes(app, world):
    conversation = conversation_of(world, world.maria, world.ana)
    say(world, conversation, world.maria, "Warm up before we start, please")
    booking = world.bookings[world.one.id][0]
    tenancy.activate(world.org.id)
    draft = records.start(booking, world.maria, live=True)
    records.save_notes(draft, world.maria, "Ana rushes her footwork under pressure")
    db.session.commit()

    page = text(browser_of(app, world.ana).get(world.room_path(world.one)))
    panel = panel_of(page)
    assert f'id="messages-{conversation.id}"' in panel and "data-live" in panel
    assert "Warm up before we start, please" in panel
    assert "Write to Maria Santos" in panel and "data-chat-composer" in panel
    assert 'id="room-notes"' not in page and "/notes/" not in page
    assert "rushes her footwork" not in page  # the coach's notes stay the coach's


def test_coach_sees_the_athletes_conversation_and_the_notes_form(app, world):
    booking = world.bookings[world.one.id][0]
    page = text(browser_of(app, world.maria).get(world.room_path(world.one)))
    panel = panel_of(page)
    conversation = conversation_of(world, world.maria, world.ana)  # made by the page, found here
    assert f'id="messages-{conversation.id}"' in panel
    assert "No messages yet" in panel and "Write to Ana Alves" in panel
    assert f'action="{notes_path(world, world.one, booking)}"' in panel
    assert 'hx-trigger="input changed delay:1s, blur"' in panel
    assert f'href="/o/river/progress/records/booking/{booking.id}"' in panel or "Open the full record" in panel
    assert "room-panel-tabs" not in panel  # a 1:1 has no athlete to choose


def test_group_session_has_a_tab_per_athlete_the_first_selected(app, world):
    ana_booking, ben_booking = world.bookings[world.group.id]
    maria = browser_of(app, world.maria)
    ana_chat = conversation_of(world, world.maria, world.ana)
    ben_chat = conversation_of(world, world.maria, world.ben)
    say(world, ben_chat, world.ben, "Can we look at my serve?")

    panel = panel_of(text(maria.get(world.room_path(world.group))))
    assert re.search(r'<a href="[^"]+"[^>]*aria-current="true">Ana Alves[ <]', panel)
    assert re.search(r'<a href="[^"]+"[^>]*>Ben Brown[ <]', panel) and f"with={ben_booking.id}" in panel
    assert f'id="messages-{ana_chat.id}"' in panel and f"/notes/{ana_booking.id}" in panel
    # Ben's tab says what Maria has not read from him (the chat socket's unread pushes keep it current).
    assert f'<span id="unread-{ben_chat.id}" class="badge badge-new">1</span>' in panel
    assert re.search(rf'<span id="unread-{ana_chat.id}" class="badge badge-new" hidden>', panel)

    # Without JavaScript the tab is a link to the room page; with htmx the panel alone is swapped in.
    panel = panel_of(text(maria.get(f"{world.room_path(world.group)}?with={ben_booking.id}")))
    assert re.search(r'aria-current="true">Ben Brown[ <]', panel)
    assert f'id="messages-{ben_chat.id}"' in panel and "Can we look at my serve?" in panel
    fragment = maria.get(f"{world.room_path(world.group)}/panel?with={ben_booking.id}", headers=HX)
    assert fragment.status_code == 200
    body = text(fragment)
    assert "<html" not in body and body.lstrip().startswith("<aside")
    assert f'id="messages-{ben_chat.id}"' in body and f"/notes/{ben_booking.id}" in body
    # The fragment's URL opened as a page goes to the room page showing that athlete.
    plain = maria.get(f"{world.room_path(world.group)}/panel?with={ben_booking.id}")
    assert plain.status_code == 302 and f"with={ben_booking.id}" in plain.headers["Location"]

    # An athlete of the group sees their own conversation with the coach only, and never another's.
    ben_page = panel_of(text(browser_of(app, world.ben).get(f"{world.room_path(world.group)}?with={ana_booking.id}")))
    assert f'id="messages-{ben_chat.id}"' in ben_page and "room-panel-tabs" not in ben_page
    assert str(ana_chat.id) not in ben_page


def test_a_message_sent_from_the_panel_without_javascript_lands_and_returns_to_the_room(app, world):
    ana = browser_of(app, world.ana)
    page = text(ana.get(world.room_path(world.one)))
    conversation = conversation_of(world, world.maria, world.ana)
    back = world.room_path(world.one)
    response = ana.post(f"/o/river/chat/{conversation.id}/messages", data={
        "csrf_token": csrf_of(page), "type": "send", "conversation": str(conversation.id),
        "client_id": str(uuid.uuid4()), "body": "Joining from the hotel wifi", "next": back + "#room-chat"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(back + "#room-chat")
    tenancy.activate(world.org.id)
    db.session.expire_all()
    assert [r.body for r in chat.history_rows(conversation)] == ["Joining from the hotel wifi"]
    assert "Joining from the hotel wifi" in panel_of(text(ana.get(back)))

    # A next that leaves the organization (or the site) is not followed: the conversation's page instead.
    for foreign in ("https://evil.example/o/river/", "//evil.example/x", f"/o/hill/sessions/{world.hill_session_id}/room"):
        response = ana.post(f"/o/river/chat/{conversation.id}/messages", data={
            "csrf_token": csrf_of(page), "body": "again", "client_id": str(uuid.uuid4()), "next": foreign})
        assert response.status_code == 303
        assert response.headers["Location"].endswith(f"/o/river/chat/{conversation.id}#composer")


# --- the coach's notes ----------------------------------------------------------------------------------

def test_notes_saved_by_htmx_answer_with_the_saved_line_and_land_in_the_draft(app, world):
    booking = world.bookings[world.one.id][0]
    maria = browser_of(app, world.maria)
    token = csrf_of(text(maria.get(world.room_path(world.one))))
    response = maria.post(notes_path(world, world.one, booking), headers=HX,
                          data={"csrf_token": token, "notes": "Strong **first serve**"})
    assert response.status_code == 200
    body = text(response)
    assert "<html" not in body and f'id="notes-status-{booking.id}"' in body and "Saved" in body
    [draft] = record_rows(world, booking)
    assert draft.status == DRAFT and draft.notes_md == "Strong **first serve**"
    assert "<strong>first serve</strong>" in draft.notes_html

    # Typing on: the same draft, the newest text.
    response = maria.post(notes_path(world, world.one, booking), headers=HX,
                          data={"csrf_token": token, "notes": "Strong **first serve**, weak return"})
    assert response.status_code == 200
    [draft] = record_rows(world, booking)
    assert draft.notes_md == "Strong **first serve**, weak return"


def test_notes_saved_without_javascript_redirect_to_the_room_showing_them(app, world):
    booking = world.bookings[world.one.id][0]
    maria = browser_of(app, world.maria)
    token = csrf_of(text(maria.get(world.room_path(world.one))))
    response = maria.post(notes_path(world, world.one, booking), data={"csrf_token": token, "notes": "Footwork drill"})
    assert response.status_code == 303
    location = response.headers["Location"]
    assert world.room_path(world.one) in location and location.endswith("#room-notes")
    [draft] = record_rows(world, booking)
    assert draft.notes_md == "Footwork drill"
    panel = panel_of(text(maria.get(location)))
    assert ">Footwork drill</textarea>" in panel
    assert re.search(r'id="room-notes"[^>]* open', panel)  # back with the notes open


def test_notes_keep_what_the_full_record_holds(app, world):
    """The panel writes the notes alone: the homework written on the record's page stays."""
    booking = world.bookings[world.one.id][0]
    tenancy.activate(world.org.id)
    draft = records.start(booking, world.maria, live=True)
    records.save_draft(draft, world.maria, notes_md="old", homework_md="Shadow swings, 10 minutes a day")
    db.session.commit()
    maria = browser_of(app, world.maria)
    token = csrf_of(text(maria.get(world.room_path(world.one))))
    assert maria.post(notes_path(world, world.one, booking), headers=HX,
                      data={"csrf_token": token, "notes": "new"}).status_code == 200
    [draft] = record_rows(world, booking)
    assert (draft.notes_md, draft.homework_md) == ("new", "Shadow swings, 10 minutes a day")


def test_a_signed_record_is_read_only_in_the_panel(app, world):
    booking = world.bookings[world.one.id][0]
    tenancy.activate(world.org.id)
    draft = records.start(booking, world.maria, live=True)
    records.save_notes(draft, world.maria, "Signed *words*")
    records.sign(draft, world.maria)
    db.session.commit()
    maria = browser_of(app, world.maria)
    page = text(maria.get(world.room_path(world.one)))
    panel = panel_of(page)
    assert "signed off and locked" in panel and "<em>words</em>" in panel
    assert 'name="notes"' not in panel and "Open the full record" in panel

    # A save that gets past the page (an old tab) is refused and changes nothing.
    token = csrf_of(page)
    response = maria.post(notes_path(world, world.one, booking), headers=HX, data={"csrf_token": token, "notes": "x"})
    assert response.status_code == 409 and "signed off" in text(response) and "<html" not in text(response)
    response = maria.post(notes_path(world, world.one, booking), data={"csrf_token": token, "notes": "x"})
    assert response.status_code == 303
    assert [(r.status, r.notes_md) for r in record_rows(world, booking)] == [(SIGNED, "Signed *words*")]


def test_notes_that_are_too_long_or_without_a_token_are_refused_with_a_message(app, world):
    booking = world.bookings[world.one.id][0]
    maria = browser_of(app, world.maria)
    token = csrf_of(text(maria.get(world.room_path(world.one))))
    response = maria.post(notes_path(world, world.one, booking), headers=HX,
                          data={"csrf_token": token, "notes": "x" * (records.NOTES_MAX + 1)})
    assert response.status_code == 422 and "at most 20,000 characters" in text(response)
    response = maria.post(notes_path(world, world.one, booking), headers=HX, data={"notes": "no token"})
    assert response.status_code in (400, 422)
    assert record_rows(world, booking) == []


def test_only_the_sessions_coach_writes_notes(app, world):
    booking = world.bookings[world.one.id][0]
    ana = browser_of(app, world.ana)
    token = csrf_of(text(ana.get(world.room_path(world.one))))
    assert ana.post(notes_path(world, world.one, booking), data={"csrf_token": token, "notes": "mine"}).status_code == 403
    cleo = browser_of(app, world.cleo)  # booked on nothing
    token = csrf_of(text(cleo.get("/o/river/chat")))
    assert cleo.post(notes_path(world, world.one, booking), data={"csrf_token": token, "notes": "x"}).status_code == 403
    admin = browser_of(app, world.admin)  # an admin is not in the room either
    token = csrf_of(text(admin.get("/o/river/chat")))
    assert admin.post(notes_path(world, world.one, booking), data={"csrf_token": token, "notes": "x"}).status_code == 403
    # Before the room opens the coach cannot write from it either.
    maria = browser_of(app, world.maria)
    later = world.bookings[world.later.id][0]
    token = csrf_of(text(maria.get(world.room_path(world.one))))
    assert maria.post(notes_path(world, world.later, later), data={"csrf_token": token, "notes": "x"}).status_code == 403
    # A booking of another session, through this session's URL: not found.
    assert maria.post(notes_path(world, world.one, later), data={"csrf_token": token, "notes": "x"}).status_code == 404
    assert record_rows(world, booking) == [] and record_rows(world, later) == []


def test_another_organizations_session_is_not_found(app, world):
    maria = browser_of(app, world.maria)
    token = csrf_of(text(maria.get(world.room_path(world.one))))
    hill_room = f"/o/river/sessions/{world.hill_session_id}/room"
    booking = world.bookings[world.one.id][0]
    assert maria.post(f"{hill_room}/notes/{booking.id}", data={"csrf_token": token, "notes": "x"}).status_code == 404
    assert maria.get(f"{hill_room}/panel", headers=HX).status_code == 404
    assert maria.get(f"{world.room_path(world.one)}/panel?with=nonsense", headers=HX).status_code == 200
    assert maria.get("/o/river/sessions/not-a-uuid/room/panel", headers=HX).status_code == 404
    # Hill's members are not River's: the whole organization is not found for them.
    yara = logged_in(app, "yara@example.com")  # (her membership is Hill's: not readable under River)
    assert yara.get(f"{world.room_path(world.one)}/panel", headers=HX).status_code == 404


def test_the_panels_statements_do_not_grow_with_the_number_of_messages(app, world):
    conversation = conversation_of(world, world.maria, world.ana)
    say(world, conversation, world.ana, "first")
    maria = browser_of(app, world.maria)
    path = world.room_path(world.one)
    maria.get(path)  # warm: the conversation exists, the caches are filled
    few = statements_for(app, maria, path)
    tenancy.activate(world.org.id)
    for n in range(45):
        chat.send(conversation, world.ana if n % 2 else world.maria, f"message {n}")
    db.session.commit()
    many = statements_for(app, maria, path)
    assert many == few
    panel = panel_of(text(maria.get(path)))
    assert panel.count('<article class="message') == 30 and "message 44" in panel and "message 14" not in panel
    assert "Earlier messages in chat" in panel
