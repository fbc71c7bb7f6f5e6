"""The chat service, called directly: who may talk where, numbering, editing, history and read state.

Rows are read back from PostgreSQL (RLS in force), so "nothing was written" means nothing
reached the database.
"""
from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from coach import tenancy
from coach.chat import service
from coach.chat.models import Conversation, Message
from coach.chat.service import ChatError, NotAllowed
from coach.extensions import db
from coach.media import service as media
from coach.orgs.models import Membership
from coach.orgs.service import remove_member
from coach.platform.models import OutboxEvent
from coach.spaces import service as spaces
from tests.chat_support import last_seq, stored
from tests.chat_support import world  # noqa: F401 (fixtures)

UTC = timezone.utc


def in_threads(app, tenant_id, n: int, work) -> list:
    """Run ``work(i)`` in ``n`` threads started together, each in its own app context acting for
    ``tenant_id`` and committing what it did; each thread's result or exception."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        with app.app_context():
            tenancy.activate(tenant_id)
            try:
                barrier.wait(timeout=10)
                results[i] = work(i)
                db.session.commit()
            except Exception as exc:  # the outcome under test
                db.session.rollback()
                results[i] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results


def member(member_id) -> Membership:
    return db.session.get(Membership, member_id)


def direct_rows(org_id) -> int:
    count = db.session.scalar(select(func.count()).select_from(Conversation).where(
        Conversation.tenant_id == org_id, Conversation.kind == "direct"))
    db.session.rollback()
    return count


# --- direct conversations --------------------------------------------------------------------------

def test_a_pair_has_one_direct_conversation_whoever_opens_it(world):
    first = world.direct(world.ana, world.ben)
    second = world.direct(world.ben, world.ana)
    assert first.id == second.id
    assert {first.member_low_id, first.member_high_id} == {world.ana.id, world.ben.id}
    assert first.other_member_id(world.ana.id) == world.ben.id
    assert first.other_member_id(world.ben.id) == world.ana.id
    assert direct_rows(world.org.id) == 1


def test_two_members_opening_their_conversation_at_once_get_the_same_one(app, world):
    ana_id, ben_id, org = world.ana.id, world.ben.id, world.org

    def open_it(i):
        me, other = (ana_id, ben_id) if i == 0 else (ben_id, ana_id)
        return service.direct_with(db.session.get(type(org), org.id), member(me), member(other)).id

    results = in_threads(app, org.id, 2, open_it)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert results[0] == results[1]
    assert direct_rows(org.id) == 1


def test_nobody_opens_a_conversation_with_themselves(world):
    with pytest.raises(ChatError, match="someone other than yourself"):
        service.direct_with(world.org, world.ana, world.ana)
    db.session.rollback()
    assert direct_rows(world.org.id) == 0


def test_nobody_opens_a_conversation_with_another_organizations_member(world):
    hill = world.other_club()
    with pytest.raises(NotAllowed, match="members of this organization"):
        service.direct_with(world.org, world.ana, hill.yan)
    db.session.rollback()
    assert direct_rows(world.org.id) == 0


def test_a_direct_conversation_is_its_two_members_only(world):
    conversation = world.direct(world.ana, world.ben)
    assert service.access(conversation, world.ana) == service.Access(True, True)
    assert service.access(conversation, world.cleo) == service.Access(False, False)
    assert service.access(conversation, world.admin) == service.Access(False, False)  # admins neither
    with pytest.raises(NotAllowed, match="not yours"):
        service.send(conversation, world.cleo, "Let me in")
    db.session.rollback()
    assert stored(conversation.id) == []


# --- space channels --------------------------------------------------------------------------------

def test_a_space_has_one_channel(world):
    assert world.channel().id == world.channel().id


def test_a_space_channel_is_for_members_who_joined_the_space(world):
    channel = world.channel()
    assert service.access(channel, world.ana) == service.Access(True, True)
    assert service.access(channel, world.cleo) == service.Access(False, False)  # open space, not joined
    with pytest.raises(NotAllowed, match="not yours"):
        service.send(channel, world.cleo, "Hi all")
    db.session.rollback()
    world.say(channel, world.ana, "Hi all")
    assert stored(channel.id) == [(1, "Hi all")]


def test_a_member_suspended_from_the_space_reads_the_channel_but_cannot_write(world):
    channel = world.channel()
    world.say(channel, world.maria, "Practice at six")
    world.suspend(world.ben, datetime.now(UTC) + timedelta(days=1))
    assert service.access(channel, world.ben) == service.Access(True, False)
    with pytest.raises(NotAllowed, match="cannot write here"):
        service.send(channel, world.ben, "But why")
    db.session.rollback()
    assert stored(channel.id) == [(1, "Practice at six")]
    # The suspension ends: Ben writes again.
    assert service.send(channel, world.ben, "Back", now=datetime.now(UTC) + timedelta(days=2)).seq == 2


# --- numbering -------------------------------------------------------------------------------------

def test_messages_are_numbered_one_to_n_without_gaps_when_five_people_send_at_once(app, world):
    channel = world.channel()
    world.act()
    for person in (world.cleo, world.admin):  # with Ana, Ben and Maria (the host): five writers
        spaces.join(world.tennis, person)
    db.session.commit()
    writers = [world.ana.id, world.ben.id, world.cleo.id, world.maria.id, world.admin.id]
    per_writer = 8

    def write(i):
        me = member(writers[i])
        conversation = db.session.get(Conversation, channel.id)
        for n in range(per_writer):
            service.send(conversation, me, f"writer {i} message {n}")
            db.session.commit()  # each message its own transaction, as each request is
        return True

    results = in_threads(app, world.org.id, 5, write)
    assert results == [True] * 5, results
    rows = stored(channel.id)
    assert [seq for seq, _ in rows] == list(range(1, 5 * per_writer + 1))
    assert last_seq(channel.id) == 5 * per_writer
    for i in range(5):  # each writer's messages keep the order they were sent in
        mine = [body for _, body in rows if body.startswith(f"writer {i} ")]
        assert mine == [f"writer {i} message {n}" for n in range(per_writer)]


def test_body_is_stored_trimmed_and_up_to_4000_characters(world):
    conversation = world.direct(world.ana, world.ben)
    world.say(conversation, world.ana, "  hello there \n", "x" * 4000)
    assert stored(conversation.id) == [(1, "hello there"), (2, "x" * 4000)]


def test_bad_messages_are_refused_with_a_reason_and_nothing_is_written(world):
    conversation = world.direct(world.ana, world.ben)
    for body, reason in [("", "Write a message first."), ("   \n\t ", "Write a message first."),
                         ("x" * 4001, "Messages can be up to 4,000 characters."), ("a\x00b", "cannot be stored")]:
        with pytest.raises(ChatError, match=reason):
            service.send(conversation, world.ana, body)
        db.session.rollback()
    assert stored(conversation.id) == []
    assert last_seq(conversation.id) == 0


# --- a message's client id -------------------------------------------------------------------------

def chat_events(conversation_id) -> list[dict]:
    """Payloads of the ``chat.message`` events still in the outbox for a conversation."""
    rows = list(db.session.scalars(select(OutboxEvent.payload).where(
        OutboxEvent.topic == "chat.message", OutboxEvent.payload["conversation_id"].astext == str(conversation_id))))
    db.session.rollback()
    return rows


def test_a_send_repeated_with_its_client_id_returns_the_stored_message(world, quiet):
    conversation = world.direct(world.ana, world.ben)
    client_id = uuid.uuid4()
    world.act()
    first = service.send(conversation, world.ana, "On my way", client_id=client_id)
    db.session.commit()
    world.act()
    again = service.send(conversation, world.ana, "On my way", client_id=client_id)  # a retry after a reconnect
    db.session.commit()
    assert again.id == first.id and again.seq == 1
    assert stored(conversation.id) == [(1, "On my way")]
    assert last_seq(conversation.id) == 1  # no number taken for the repeat
    assert [e["message_id"] for e in chat_events(conversation.id)] == [str(first.id)]  # told once
    world.act()
    later = service.send(conversation, world.ana, "On my way", client_id=uuid.uuid4())  # a new message, same words
    db.session.commit()
    assert later.seq == 2
    assert stored(conversation.id) == [(1, "On my way"), (2, "On my way")]


def test_a_client_id_belongs_to_its_author_and_conversation(world):
    with_ben, with_cleo = world.direct(world.ana, world.ben), world.direct(world.ana, world.cleo)
    client_id = uuid.uuid4()
    world.act()
    mine = service.send(with_ben, world.ana, "from Ana", client_id=client_id)
    bens = service.send(with_ben, world.ben, "from Ben", client_id=client_id)  # cannot swallow Ana's message
    elsewhere = service.send(with_cleo, world.ana, "to Cleo", client_id=client_id)
    db.session.commit()
    assert len({mine.id, bens.id, elsewhere.id}) == 3
    assert stored(with_ben.id) == [(1, "from Ana"), (2, "from Ben")]
    assert stored(with_cleo.id) == [(1, "to Cleo")]


def test_two_sends_of_one_message_at_once_store_it_once(app, world):
    conversation = world.direct(world.ana, world.ben)
    client_id = uuid.uuid4()

    def send(i):
        return service.send(db.session.get(Conversation, conversation.id), member(world.ana.id), "Twice?",
                            client_id=client_id).id

    for _ in range(3):  # the race is won differently each time; every outcome must be one message
        results = in_threads(app, world.org.id, 4, send)
        assert all(not isinstance(r, Exception) for r in results), results
        assert len(set(results)) == 1
        assert stored(conversation.id) == [(1, "Twice?")]
        assert last_seq(conversation.id) == 1


# --- edit and delete -------------------------------------------------------------------------------

def test_the_author_edits_within_ten_minutes_and_the_message_shows_edited(world):
    conversation = world.direct(world.ana, world.ben)
    sent_at = datetime.now(UTC) - timedelta(minutes=9)
    message, = world.say(conversation, world.ana, "See you at 5", now=sent_at)
    service.edit(message, world.ana, "See you at 6")
    db.session.commit()
    assert stored(conversation.id) == [(1, "See you at 6")]
    assert db.session.get(Message, message.id).edited_at is not None


def test_saving_the_same_text_does_not_mark_a_message_edited(world):
    conversation = world.direct(world.ana, world.ben)
    message, = world.say(conversation, world.ana, "Same")
    service.edit(message, world.ana, "  Same ")
    db.session.commit()
    assert db.session.get(Message, message.id).edited_at is None


def test_a_message_cannot_be_edited_after_ten_minutes(world):
    conversation = world.direct(world.ana, world.ben)
    message, = world.say(conversation, world.ana, "Old news", now=datetime.now(UTC) - timedelta(minutes=11))
    assert not service.can_edit(message, world.ana)
    with pytest.raises(ChatError, match="10 minutes"):
        service.edit(message, world.ana, "New news")
    db.session.rollback()
    assert stored(conversation.id) == [(1, "Old news")]


def test_only_the_author_edits_or_deletes_a_message(world):
    conversation = world.direct(world.ana, world.ben)
    message, = world.say(conversation, world.ana, "Mine")
    assert not service.can_edit(message, world.ben)
    with pytest.raises(NotAllowed):
        service.edit(message, world.ben, "Yours now")
    with pytest.raises(NotAllowed):
        service.delete(message, world.ben)
    db.session.rollback()
    assert stored(conversation.id) == [(1, "Mine")]


def test_a_deleted_message_leaves_a_tombstone_without_its_text(world):
    conversation = world.direct(world.ana, world.ben)
    world.say(conversation, world.ana, "first", "oops, secret", "third")
    secret = service.history(conversation)[1]
    service.delete(secret, world.ana)
    db.session.commit()
    assert stored(conversation.id) == [(1, "first"), (2, ""), (3, "third")]
    tombstone = db.session.get(Message, secret.id)
    assert tombstone.deleted_at is not None and tombstone.seq == 2
    with pytest.raises(ChatError, match="deleted"):
        service.edit(tombstone, world.ana, "back")
    db.session.rollback()


# --- history and replay ----------------------------------------------------------------------------

def test_history_pages_backwards_by_seq(world):
    conversation = world.direct(world.ana, world.ben)
    world.say(conversation, world.ana, *[f"m{n}" for n in range(1, 26)])
    assert [m.seq for m in service.history(conversation)] == list(range(1, 26))  # a page is 50
    newest = service.history(conversation, limit=10)
    assert [m.seq for m in newest] == list(range(16, 26))
    older = service.history(conversation, before_seq=newest[0].seq, limit=10)
    assert [m.seq for m in older] == list(range(6, 16))
    oldest = service.history(conversation, before_seq=older[0].seq, limit=10)
    assert [(m.seq, m.body) for m in oldest] == [(n, f"m{n}") for n in range(1, 6)]
    assert service.history(conversation, before_seq=1) == []


def test_messages_after_a_seq_are_what_a_page_is_missing_in_order(world):
    conversation = world.direct(world.ana, world.ben)
    world.say(conversation, world.ben, *[f"m{n}" for n in range(1, 11)])
    assert [m.seq for m in service.messages_after(conversation, 7)] == [8, 9, 10]
    assert [m.seq for m in service.messages_after(conversation, 0, limit=3)] == [1, 2, 3]
    assert service.messages_after(conversation, 10) == []


# --- read state ------------------------------------------------------------------------------------

def test_reading_never_goes_backwards_nor_past_the_newest_message(world):
    conversation = world.direct(world.ana, world.ben)
    world.say(conversation, world.ana, *[f"m{n}" for n in range(1, 6)])
    assert service.mark_read(conversation, world.ben, 3) == 3
    assert service.mark_read(conversation, world.ben, 1) == 3
    assert service.mark_read(conversation, world.ben, 99) == 5
    db.session.commit()
    assert service.read_seq(conversation, world.ben.id) == 5


def test_reading_ahead_in_an_empty_conversation_does_not_hide_later_messages(world):
    conversation = world.direct(world.ana, world.ben)
    assert service.mark_read(conversation, world.ben, 50) == 0
    db.session.commit()
    world.say(conversation, world.ana, "one", "two", "three")
    assert service.unread_total(world.org, world.ben) == 3


def test_unread_counts_add_up_over_direct_conversations_and_channels(world):
    with_ben = world.direct(world.ana, world.ben)
    with_cleo = world.direct(world.ana, world.cleo)
    channel = world.channel()
    world.say(with_ben, world.ben, "b1", "b2", "b3")
    world.say(with_cleo, world.cleo, "c1", "c2")
    world.say(with_cleo, world.ana, "my answer")  # writing means I read up to there
    world.say(with_cleo, world.cleo, "c4")
    world.say(channel, world.maria, "t1", "t2", "t3", "t4")
    service.mark_read(with_ben, world.ana, 1)
    db.session.commit()

    summaries = {s.conversation.id: s for s in service.conversations_for(world.org, world.ana)}
    assert {cid: s.unread for cid, s in summaries.items()} == {with_ben.id: 2, with_cleo.id: 1, channel.id: 4}
    assert summaries[with_ben.id].title == "Ben Brown"
    assert summaries[channel.id].title == "# Tennis"
    assert service.unread_total(world.org, world.ana) == 7
    # Ben sees only his own: the channel and his conversation with Ana (all his messages there are his).
    assert service.unread_total(world.org, world.ben) == 4
    # Cleo is in no space: the channel is not hers.
    assert [s.title for s in service.conversations_for(world.org, world.cleo)] == ["Ana Alves"]
    assert service.unread_total(world.org, world.cleo) == 0


def test_my_conversations_come_most_recent_first(world):
    with_ben = world.direct(world.ana, world.ben)
    with_cleo = world.direct(world.ana, world.cleo)
    channel = world.channel()
    now = datetime.now(UTC)
    world.say(with_cleo, world.cleo, "old", now=now - timedelta(hours=2))
    world.say(channel, world.maria, "middle", now=now - timedelta(hours=1))
    world.say(with_ben, world.ben, "new", now=now)
    assert [s.conversation.id for s in service.conversations_for(world.org, world.ana)] == [
        with_ben.id, channel.id, with_cleo.id]


# --- tenancy ---------------------------------------------------------------------------------------

def test_another_organizations_conversation_is_invisible(world):
    hill = world.other_club()
    assert service.get_conversation(world.org, hill.conversation_id) is None
    # Even asked with the other organization itself: RLS shows only the tenant in force.
    assert service.get_conversation(hill.org, hill.conversation_id) is None
    assert db.session.scalar(select(func.count()).select_from(Message)) == 0
    assert service.get_conversation(world.org, "not-a-uuid") is None


def test_a_member_who_leaves_the_organization_leaves_the_conversation_to_the_other(world):
    conversation = world.direct(world.maria, world.ana)
    world.say(conversation, world.ana, "See you Monday")
    world.say(conversation, world.maria, "Great")
    world.act()
    remove_member(world.org, world.ana, world.admin.user)
    db.session.commit()
    world.act()
    kept = service.get_conversation(world.org, conversation.id)
    assert kept is not None and kept.other_member_id(world.maria.id) is None
    assert [(m.seq, m.author_membership_id, m.body) for m in service.history(kept)] == [
        (1, None, "See you Monday"), (2, world.maria.id, "Great")]
    assert [s.title for s in service.conversations_for(world.org, world.maria)] == ["Former member"]


# --- media in messages -----------------------------------------------------------------------------

def test_a_message_carries_my_media_and_the_other_member_may_then_see_it(world):
    with_ben = world.direct(world.ana, world.ben)
    clip = world.media(world.ana)
    assert not media.can_view(clip, world.ben)  # Ana's own, until she sends it

    message = service.send(with_ben, world.ana, "", attachments=[clip])
    db.session.commit()
    world.act()
    assert message.body == ""  # a clip may go without words
    assert [i.id for i in service.attachments_of(world.org.id, [message.id])[message.id]] == [clip.id]
    assert media.can_view(db.session.get(type(clip), clip.id), world.ben)
    assert not media.can_view(db.session.get(type(clip), clip.id), world.cleo)  # not in the conversation

    service.delete(db.session.get(Message, message.id), world.ana)
    db.session.commit()
    world.act()
    assert not media.can_view(db.session.get(type(clip), clip.id), world.ben)  # deleting unshares it


def test_media_in_a_channel_is_for_the_members_of_its_space(world):
    clip = world.media(world.ana)
    service.send(world.channel(), world.ana, "My serve", attachments=[clip])
    db.session.commit()
    world.act()
    assert media.can_view(db.session.get(type(clip), clip.id), world.ben)
    assert not media.can_view(db.session.get(type(clip), clip.id), world.cleo)  # not in Tennis


def test_only_my_own_media_goes_with_my_message_and_words_are_needed_without_it(world):
    with_ben = world.direct(world.ana, world.ben)
    bens = world.media(world.ben)
    with pytest.raises(NotAllowed, match="Attach your own media only."):
        service.send(with_ben, world.ana, "Look", attachments=[bens])
    db.session.rollback()
    world.act()
    with pytest.raises(ChatError, match="Write a message first."):
        service.send(with_ben, world.ana, "   ", attachments=[])
    db.session.rollback()
    assert stored(with_ben.id) == []
