"""Spaces service: spaces and membership, posting rules, mentions, editing, comments, reactions,
flags and moderation, feeds (keyset pages, pinned posts, a fixed number of queries, other tenants).

Services are called directly in an app context; each step commits like a view would, after
``tenancy.activate(org.id)``. Tests that read outbox rows use ``quiet`` so the relay does not
deliver (and delete) them first.
"""
from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, select

from coach import tenancy
from coach.extensions import db
from coach.orgs.models import Membership
from coach.platform.models import AuditEvent, OutboxEvent
from coach.spaces import service
from coach.spaces.models import Flag, Post, PostMention, PostRevision, Reaction, Space, SpaceMember
from coach.spaces.service import NotAllowed, SpaceError
from tests.factories import add_member, make_org, make_user
from tests.test_spaces_markdown import Markup, problems

UTC = timezone.utc


# --- helpers ---------------------------------------------------------------------------------------

def real_now() -> datetime:
    return datetime.now(UTC)


def member_url(member: Membership) -> str:
    return f"/members/{member.id}"


class World:
    """One organization: an admin, two coaches, four athletes (names chosen for their @handles)."""

    def __init__(self, prefix: str = "w", slug: str | None = None):
        self.prefix = prefix
        self.org = make_org(make_user(f"{prefix}-admin@example.com", "Ada Admin"), slug=slug)
        tenancy.activate(self.org.id)
        self.admin = db.session.scalar(select(Membership).where(Membership.tenant_id == self.org.id,
                                                                Membership.role == "admin"))
        self.coach = self.add("coach", "Carla Coach", "coach")
        self.coach2 = self.add("coach2", "Colin Coach", "coach")
        self.maria = self.add("maria", "Maria Santos")
        self.arno = self.add("arno", "Arno Athlete")
        self.bea = self.add("bea", "Bea Athlete")
        self.cleo = self.add("cleo", "Cleo Athlete")

    def add(self, who: str, name: str, role: str = "athlete") -> Membership:
        return add_member(self.org, make_user(f"{self.prefix}-{who}@example.com", name), role)

    def do(self, fn, *args, **kwargs):
        """Call a service for this organization and commit, as a view would."""
        tenancy.activate(self.org.id)
        result = fn(*args, **kwargs)
        db.session.commit()
        return result

    def refused(self, error, fn, *args, match: str | None = None, **kwargs):
        """The service refuses with ``error``; nothing it did is kept."""
        tenancy.activate(self.org.id)
        with pytest.raises(error, match=match) as info:
            fn(*args, **kwargs)
        db.session.rollback()
        return info.value

    def space(self, name: str = "Goalkeepers", visibility: str = "open", creator=None) -> Space:
        return self.do(service.create_space, self.org, creator or self.coach, name, "", visibility)

    def post(self, space, author, text="Hello", **kwargs) -> Post:
        return self.do(service.create_post, space, author, text, mention_url=member_url, **kwargs)

    def read(self, model, *where):
        tenancy.activate(self.org.id)
        return list(db.session.scalars(select(model).where(*where)))


@pytest.fixture()
def w(ctx):
    return World()


@pytest.fixture()
def club(w):
    """An open space hosted by the coach, with Maria, Arno, Bea and Cleo in it."""
    space = w.space()
    for m in (w.maria, w.arno, w.bea, w.cleo):
        w.do(service.join, space, m)
    return space


def outbox(topic: str) -> list[OutboxEvent]:
    return list(db.session.scalars(select(OutboxEvent).where(OutboxEvent.topic == topic)
                                   .order_by(OutboxEvent.created_at)))


def audit_of(action: str, target_id=None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action)
    if target_id is not None:
        query = query.where(AuditEvent.target_id == str(target_id))
    return list(db.session.scalars(query))


def feed_ids(page) -> list[uuid.UUID]:
    return [p.id for p in page.posts]


# --- spaces ----------------------------------------------------------------------------------------

def test_a_coach_creates_a_space_and_is_its_first_host(w):
    space = w.space("Goalkeepers", "open")
    assert (space.name, space.visibility, space.visibility_label) == ("Goalkeepers", "open", "Open")
    sm = service.space_membership(space, w.coach)
    assert sm is not None and sm.role == "host"
    assert service.access(space, w.coach).host
    [row] = audit_of("space.created", space.id)
    assert row.actor_user_id == w.coach.user_id
    assert row.details == {"name": "Goalkeepers", "visibility": "open"}


def test_an_admin_creates_private_and_announcement_spaces(w):
    private = w.space("Staff room", "private", creator=w.admin)
    news = w.space("News", "announcement", creator=w.admin)
    assert (private.visibility_label, news.visibility_label) == ("Private", "Announcements")


def test_an_athlete_cannot_create_a_space(w):
    w.refused(NotAllowed, service.create_space, w.org, w.maria, "My space", "", "open")
    assert w.read(Space) == []


@pytest.mark.parametrize("second", ["goalkeepers", "  GOALKEEPERS  ", "GoalKeepers"])
def test_space_names_are_unique_whatever_the_case(w, second):
    w.space("Goalkeepers")
    tenancy.activate(w.org.id)
    with pytest.raises(SpaceError, match="exists already"):
        service.create_space(w.org, w.coach2, second, "", "open")
    # The refusal leaves the transaction usable (a savepoint), as a form re-render needs.
    service.create_space(w.org, w.coach2, "Strikers", "", "open")
    db.session.commit()
    assert sorted(s.name for s in w.read(Space)) == ["Goalkeepers", "Strikers"]


def test_the_same_name_is_fine_in_another_organization(w):
    w.space("Goalkeepers")
    other = World("o")
    other.space("Goalkeepers")
    assert [s.name for s in other.read(Space)] == ["Goalkeepers"]


@pytest.mark.parametrize("name, visibility", [
    ("Fine", "public"), ("Fine", ""), ("Fine", "PRIVATE"), ("", "open"), ("   ", "open"), ("x" * 81, "open"),
    ("Nul\x00name", "open"),
])
def test_bad_names_and_visibilities_are_refused(w, name, visibility):
    w.refused(SpaceError, service.create_space, w.org, w.coach, name, "", visibility)
    assert w.read(Space) == []


def test_members_join_open_and_announcement_spaces_but_not_private_ones(w):
    open_space = w.space("Open", "open")
    news = w.space("News", "announcement")
    private = w.space("Private", "private")
    assert w.do(service.join, open_space, w.maria).role == "member"
    assert w.do(service.join, news, w.maria).role == "member"
    w.refused(NotAllowed, service.join, private, w.maria, match="private")
    assert service.space_membership(private, w.maria) is None
    # Joining twice is harmless.
    again = w.do(service.join, open_space, w.maria)
    assert len(w.read(SpaceMember, SpaceMember.space_id == open_space.id, SpaceMember.membership_id == w.maria.id)) == 1
    assert again.role == "member"


def test_hosts_add_members_to_a_private_space_and_others_cannot(w):
    private = w.space("Private", "private")
    assert not service.access(private, w.maria).read
    w.refused(NotAllowed, service.add_member, private, w.coach2, w.maria)
    w.refused(NotAllowed, service.add_member, private, w.arno, w.maria)
    w.do(service.add_member, private, w.coach, w.maria)
    acc = service.access(private, w.maria)
    assert acc.read and acc.joined and acc.post and not acc.host
    # An admin may add too (admins host every space), and may make a host.
    w.do(service.add_member, private, w.admin, w.coach2, "host")
    assert service.access(private, w.coach2).host
    assert [a.action for a in audit_of("space.member_added", private.id)] == ["space.member_added"] * 2


def test_a_member_of_another_organization_cannot_be_added(w):
    private = w.space("Private", "private")
    other = World("o")
    stranger = other.maria
    tenancy.activate(other.org.id)
    assert stranger.tenant_id == other.org.id  # loaded while B is active; A cannot read it
    w.refused(SpaceError, service.add_member, private, w.coach, stranger)
    assert [m.membership_id for m in w.read(SpaceMember)] == [w.coach.id]


def test_leaving_a_space_and_the_only_host_cannot_leave(w, club):
    w.do(service.leave, club, w.maria)
    assert service.space_membership(club, w.maria) is None
    w.refused(SpaceError, service.leave, club, w.coach, match="only host")
    assert service.space_membership(club, w.coach).role == "host"
    w.do(service.add_member, club, w.coach, w.coach2, "host")
    w.do(service.leave, club, w.coach)
    assert service.space_membership(club, w.coach) is None
    # Leaving a space one is not in is harmless.
    w.do(service.leave, club, w.maria)


def test_the_only_host_cannot_be_demoted_or_removed_either(w, club):
    w.refused(SpaceError, service.add_member, club, w.admin, w.coach, "member", match="only host")
    w.refused(SpaceError, service.remove_member, club, w.admin, w.coach, match="only host")
    assert service.space_membership(club, w.coach).role == "host"
    w.do(service.add_member, club, w.admin, w.coach2, "host")
    w.do(service.add_member, club, w.admin, w.coach, "member")
    assert service.space_membership(club, w.coach).role == "member"


def test_spaces_for_shows_open_spaces_and_own_private_ones_and_admins_see_all(w):
    w.space("Open", "open")
    w.space("News", "announcement")
    hers = w.space("Hers", "private")
    w.space("Secret", "private")
    w.do(service.add_member, hers, w.coach, w.maria)

    def names(member):
        tenancy.activate(w.org.id)
        return {s.space.name: (s.joined, s.role) for s in service.spaces_for(w.org, member)}

    assert names(w.maria) == {"Open": (False, None), "News": (False, None), "Hers": (True, "member")}
    assert names(w.arno) == {"Open": (False, None), "News": (False, None)}
    assert set(names(w.admin)) == {"Open", "News", "Hers", "Secret"}
    assert names(w.coach) == {n: (True, "host") for n in ("Open", "News", "Hers", "Secret")}


def test_spaces_for_lists_joined_spaces_first(w):
    w.space("Alpha")
    b = w.space("Beta")
    w.do(service.join, b, w.maria)
    tenancy.activate(w.org.id)
    assert [s.space.name for s in service.spaces_for(w.org, w.maria)] == ["Beta", "Alpha"]


def test_spaces_for_counts_posts_by_others_since_the_last_visit(w, club):
    other = w.space("Other")
    w.do(service.join, other, w.maria)
    for i in range(3):
        w.post(club, w.coach, f"News {i}")
    w.post(club, w.maria, "My own post does not count")
    gone = w.post(club, w.arno, "Deleted posts do not count")
    w.do(service.delete_post, gone, w.arno)
    w.post(other, w.coach, "Elsewhere")

    def counts(member):
        tenancy.activate(w.org.id)
        return {s.space.name: s.new_posts for s in service.spaces_for(w.org, member)}

    assert counts(w.maria) == {"Goalkeepers": 3, "Other": 1}
    assert counts(w.coach) == {"Goalkeepers": 1, "Other": 0}
    assert counts(w.coach2) == {"Goalkeepers": 0, "Other": 0}  # not joined: nothing is "new"

    w.do(service.mark_seen, club, w.maria)
    assert counts(w.maria) == {"Goalkeepers": 0, "Other": 1}
    w.post(club, w.bea, "After the visit")
    assert counts(w.maria) == {"Goalkeepers": 1, "Other": 1}


# --- posting rules ---------------------------------------------------------------------------------

def test_a_member_posts_and_the_space_records_when(w, club):
    now = real_now()
    post = w.post(club, w.maria, "**Match** on Sunday", now=now)
    assert post.created_at == now
    assert post.body_source == "**Match** on Sunday"
    assert "<strong>Match</strong>" in post.body_html
    assert db.session.get(Space, club.id).last_post_at == now
    assert post.author.user.display_name == "Maria Santos"


def test_a_post_and_its_event_commit_together(w, club, quiet):
    post = w.post(club, w.maria, "Hello")
    [ev] = outbox("space.post_created")
    assert ev.tenant_id == w.org.id
    assert ev.payload == {"post_id": str(post.id), "space_id": str(club.id),
                          "author_membership_id": str(w.maria.id)}


def test_a_non_member_cannot_post(w, club):
    w.refused(NotAllowed, service.create_post, club, w.coach2, "Hi", match="Join the space")
    assert w.read(Post) == []


def test_a_suspended_member_cannot_post_or_comment_but_can_still_read(w, club):
    post = w.post(club, w.arno, "Before")
    now = real_now()
    until = now + timedelta(days=3)
    w.do(service.suspend, club, w.coach, w.maria, until, "Spam")
    w.refused(NotAllowed, service.create_post, club, w.maria, "Spam again", now=now, match="suspended")
    w.refused(NotAllowed, service.add_comment, post, w.maria, "Spam again", now=now, match="suspended")
    acc = service.access(club, w.maria, now=now)
    assert acc.read and acc.joined and not acc.post and not acc.comment
    assert acc.suspended_until == until
    tenancy.activate(w.org.id)
    assert feed_ids(service.feed_page(w.org, w.maria, club)) == [post.id]
    [row] = audit_of("space.member_suspended", club.id)
    assert row.actor_user_id == w.coach.user_id
    assert row.details["member"] == w.maria.user.email and row.details["reason"] == "Spam"
    # Once the time has passed she posts again.
    later = w.post(club, w.maria, "Sorry", now=until + timedelta(minutes=1))
    assert later.author_membership_id == w.maria.id
    assert service.access(club, w.maria, now=until + timedelta(minutes=1)).post


def test_a_suspended_member_cannot_edit_their_earlier_posts(w, club):
    post = w.post(club, w.maria, "Original")
    now = real_now()
    w.do(service.suspend, club, w.coach, w.maria, now + timedelta(days=1), "Spam")
    w.refused(NotAllowed, service.edit_post, post, w.maria, "Sneaky edit", now=now, match="suspended")
    assert [p.body_source for p in w.read(Post, Post.id == post.id)] == ["Original"]
    assert w.read(PostRevision) == []


def test_only_hosts_suspend_and_nobody_suspends_themselves(w, club):
    until = real_now() + timedelta(days=1)
    w.refused(NotAllowed, service.suspend, club, w.arno, w.maria, until)
    w.refused(SpaceError, service.suspend, club, w.coach, w.coach, until)
    w.refused(SpaceError, service.suspend, club, w.coach, w.coach2, until, match="Not a member")
    assert service.access(club, w.maria).post


def test_in_an_announcement_space_only_hosts_coaches_and_admins_post(w):
    news = w.space("News", "announcement")
    for m in (w.maria, w.coach2, w.admin):
        w.do(service.join, news, m)
    w.refused(NotAllowed, service.create_post, news, w.maria, "Me too", match="announcement")
    assert w.post(news, w.coach, "From the host").id
    assert w.post(news, w.coach2, "From another coach").id
    assert w.post(news, w.admin, "From the admin").id
    # Athletes still comment and react there.
    post = w.read(Post, Post.body_source == "From the host")[0]
    w.do(service.add_comment, post, w.maria, "Thanks!")
    assert w.do(service.toggle_reaction, post, w.maria, "like") is True


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t \n", "\r\n\r\n", None])
def test_an_empty_post_is_refused(w, club, text):
    w.refused(SpaceError, service.create_post, club, w.maria, text, match="Write something")
    assert w.read(Post) == []


def test_a_post_has_at_most_20000_characters(w, club):
    w.refused(SpaceError, service.create_post, club, w.maria, "x" * 20_001, match="20,001")
    post = w.post(club, w.maria, "x" * 20_000)
    assert len(db.session.scalar(select(Post.body_source).where(Post.id == post.id))) == 20_000


def test_windows_line_endings_count_once(w, club):
    text = "ab\r\n" * 5000  # 20,000 characters with \r\n, 15,000 with \n
    post = w.post(club, w.maria, text)
    assert post.body_source == "ab\n" * 5000


def test_a_nul_character_is_refused_not_a_server_error(w, club):
    w.refused(SpaceError, service.create_post, club, w.maria, "a\x00b")
    post = w.post(club, w.arno, "fine")
    w.refused(SpaceError, service.add_comment, post, w.maria, "a\x00b")
    w.refused(SpaceError, service.flag, post, w.maria, "a\x00b")


def test_the_stored_html_is_sanitised(w, club):
    source = ('<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) '
              '<div hx-get="/x" data-hx-post="/y" style="color:red">z</div> <!-- c --> <iframe src="//e"></iframe>')
    post = w.post(club, w.maria, source)
    stored = db.session.scalar(select(Post.body_html).where(Post.id == post.id))
    assert problems(stored) == []
    assert "&lt;script&gt;" in stored  # shown as text
    assert db.session.scalar(select(Post.body_source).where(Post.id == post.id)) == source


# --- mentions --------------------------------------------------------------------------------------

def mention_links(html: str) -> list[str]:
    return [a["href"] for a in Markup(html).links() if a.get("class") == "mention"]


def test_a_mentioned_member_gets_a_mention_row_and_an_event(w, club, quiet):
    post = w.post(club, w.coach, "Great save @maria.santos!")
    assert mention_links(post.body_html) == [member_url(w.maria)]
    assert [m.membership_id for m in w.read(PostMention, PostMention.post_id == post.id)] == [w.maria.id]
    [ev] = outbox("space.mentioned")
    assert ev.tenant_id == w.org.id
    assert ev.payload["post_id"] == str(post.id)
    assert ev.payload["membership_id"] == str(w.maria.id)
    assert ev.payload["author_membership_id"] == str(w.coach.id)
    assert ev.payload["excerpt"] == "Great save @maria.santos!"


def test_a_member_of_the_organization_not_in_the_space_is_mentioned_in_an_open_space(w, club, quiet):
    post = w.post(club, w.coach, "cc @colin.coach")
    assert [m.membership_id for m in w.read(PostMention, PostMention.post_id == post.id)] == [w.coach2.id]
    assert len(outbox("space.mentioned")) == 1


def test_someone_in_another_organization_is_not_mentioned(w, club, quiet):
    other = World("o")
    other.add("olga", "Olga Other")
    post = w.post(club, w.coach, "Ask @olga.other and @nobody.at.all")
    assert mention_links(post.body_html) == []
    assert "@olga.other" in post.body_html
    assert w.read(PostMention) == []
    assert outbox("space.mentioned") == []


def test_mentioning_yourself_sends_nothing(w, club, quiet):
    post = w.post(club, w.maria, "Note to self, @maria.santos")
    assert mention_links(post.body_html) == [member_url(w.maria)]
    assert w.read(PostMention) == []
    assert outbox("space.mentioned") == []


def test_each_person_is_notified_once_per_post(w, club, quiet):
    w.post(club, w.coach, "@maria.santos @Maria.Santos and @arno.athlete, @maria.santos!")
    assert sorted(str(e.payload["membership_id"]) for e in outbox("space.mentioned")) == sorted(
        [str(w.maria.id), str(w.arno.id)])


def test_a_mention_in_a_comment_announces_the_comment(w, club, quiet):
    post = w.post(club, w.coach, "Drill of the week")
    comment = w.do(service.add_comment, post, w.arno, "@maria.santos look, and @arno.athlete too",
                   mention_url=member_url)
    assert mention_links(comment.body_html) == [member_url(w.maria), member_url(w.arno)]
    [ev] = outbox("space.mentioned")  # not the commenter themselves
    assert ev.payload["membership_id"] == str(w.maria.id)
    assert ev.payload["comment_id"] == str(comment.id) and ev.payload["post_id"] == str(post.id)
    assert ev.payload["excerpt"] == "@maria.santos look, and @arno.athlete too"


def test_a_comment_in_a_private_space_announces_only_to_its_readers(w, quiet):
    private = w.space("Staff", "private")
    w.do(service.add_member, private, w.coach, w.coach2)
    post = w.post(private, w.coach, "Plans")
    w.do(service.add_comment, post, w.coach2, "@maria.santos and @carla.coach", mention_url=member_url)
    assert [e.payload["membership_id"] for e in outbox("space.mentioned")] == [str(w.coach.id)]


def test_a_mention_in_code_or_a_link_notifies_nobody(w, club, quiet):
    post = w.post(club, w.coach, "Use `@maria.santos` or\n\n```\n@arno.athlete\n```\n\n[@bea.athlete](https://e.com)")
    assert mention_links(post.body_html) == []
    assert w.read(PostMention) == []
    assert outbox("space.mentioned") == []


def test_a_member_with_an_accented_name_can_be_mentioned(w, club, quiet):
    jose = w.add("jose", "José García")
    post = w.post(club, w.coach, "Bravo @josé.garcía!")
    assert mention_links(post.body_html) == [member_url(jose)]
    assert [m.membership_id for m in w.read(PostMention)] == [jose.id]


def test_in_a_private_space_only_people_who_can_read_it_are_notified(w, quiet):
    private = w.space("Staff", "private")
    w.do(service.add_member, private, w.coach, w.maria)
    w.post(private, w.coach, "Private talk about @arno.athlete with @maria.santos")
    # Arno cannot open the post: no email with an excerpt of it.
    assert [e.payload["membership_id"] for e in outbox("space.mentioned")] == [str(w.maria.id)]
    assert [m.membership_id for m in w.read(PostMention)] == [w.maria.id]


def test_the_mentioned_member_receives_an_email(w, club, mailbox):
    post = w.post(club, w.coach, "Great save @maria.santos, see you **Sunday**!")
    message = mailbox.wait_for(w.maria.user.email, timeout=20)
    assert message["Subject"] == "Carla Coach mentioned you in Goalkeepers"
    text = mailbox.text(message)
    assert "Great save @maria.santos, see you Sunday!" in text
    assert f"/o/{w.org.slug}/posts/{post.id}" in text
    assert mailbox.to(w.coach.user.email) == []


def test_a_mention_in_a_comment_emails_a_link_to_that_comment(w, club, mailbox):
    post = w.post(club, w.coach, "Drill of the week")
    comment = w.do(service.add_comment, post, w.arno, "What do you think, @maria.santos?", mention_url=member_url)
    text = mailbox.text(mailbox.wait_for(w.maria.user.email, timeout=20))
    assert "Arno Athlete mentioned you in a comment in Goalkeepers" in text
    assert f"/o/{w.org.slug}/posts/{post.id}#comment-{comment.id}" in text


# --- editing and deleting --------------------------------------------------------------------------

def test_editing_keeps_the_previous_text_as_a_revision(w, club, quiet):
    post = w.post(club, w.maria, "First *draft*")
    old_html = post.body_html
    edited_at = real_now()
    w.do(service.edit_post, post, w.maria, "Second draft, cc @arno.athlete", mention_url=member_url, now=edited_at)
    assert post.body_source == "Second draft, cc @arno.athlete"
    assert mention_links(post.body_html) == [member_url(w.arno)]
    assert post.edited_at == edited_at
    [rev] = service.revisions(post)
    assert (rev.body_source, rev.body_html, rev.edited_by_membership_id) == ("First *draft*", old_html, w.maria.id)
    assert len(outbox("space.mentioned")) == 1
    # Saving the same text changes nothing; an edit that keeps the mention does not notify again.
    w.do(service.edit_post, post, w.maria, "Second draft, cc @arno.athlete")
    assert len(service.revisions(post)) == 1
    w.do(service.edit_post, post, w.maria, "Third draft, cc @arno.athlete")
    assert len(service.revisions(post)) == 2
    assert len(outbox("space.mentioned")) == 1


def test_only_the_author_edits(w, club):
    post = w.post(club, w.maria, "Mine")
    for other in (w.arno, w.coach, w.admin):
        w.refused(NotAllowed, service.edit_post, post, other, "Changed")
    assert db.session.scalar(select(Post.body_source).where(Post.id == post.id)) == "Mine"
    assert w.read(PostRevision) == []


def test_an_edit_follows_the_same_text_rules(w, club):
    post = w.post(club, w.maria, "Mine")
    w.refused(SpaceError, service.edit_post, post, w.maria, "  ")
    w.refused(SpaceError, service.edit_post, post, w.maria, "x" * 20_001)
    w.do(service.delete_post, post, w.maria)
    w.refused(NotAllowed, service.edit_post, post, w.maria, "Back from the dead")


@pytest.mark.parametrize("who", ["maria", "coach", "admin"])
def test_the_author_a_host_or_an_admin_deletes_a_post(w, club, who):
    post = w.post(club, w.maria, "Oops")
    w.do(service.delete_post, post, getattr(w, who))
    assert post.deleted_at is not None and not post.visible
    assert w.read(Post, Post.id == post.id)  # soft: the row stays
    tenancy.activate(w.org.id)
    assert feed_ids(service.feed_page(w.org, w.maria, club)) == []
    # Deleting someone else's post is audited; one's own is not.
    assert len(audit_of("post.deleted", post.id)) == (0 if who == "maria" else 1)


@pytest.mark.parametrize("who", ["arno", "coach2"])
def test_others_cannot_delete_a_post(w, club, who):
    post = w.post(club, w.maria, "Mine")
    w.refused(NotAllowed, service.delete_post, post, getattr(w, who))
    assert w.read(Post, Post.id == post.id)[0].deleted_at is None


def test_only_hosts_and_admins_pin(w, club):
    post = w.post(club, w.maria, "Rules of the space")
    for other in (w.maria, w.arno, w.coach2):
        w.refused(NotAllowed, service.set_pinned, post, other, True)
    assert w.read(Post, Post.id == post.id)[0].pinned_at is None
    w.do(service.set_pinned, post, w.coach, True)
    assert post.pinned_at is not None
    w.do(service.set_pinned, post, w.admin, False)
    assert post.pinned_at is None


# --- comments --------------------------------------------------------------------------------------

def comment_count(post) -> int:
    return db.session.scalar(select(Post.comment_count).where(Post.id == post.id))


def test_comments_have_one_level_of_replies(w, club, quiet):
    post = w.post(club, w.maria, "Question")
    t0 = real_now()
    first = w.do(service.add_comment, post, w.arno, "Answer", now=t0)
    reply = w.do(service.add_comment, post, w.bea, "Reply", parent=first, now=t0 + timedelta(seconds=1))
    deeper = w.do(service.add_comment, post, w.cleo, "Reply to the reply", parent=reply,
                  now=t0 + timedelta(seconds=2))
    second = w.do(service.add_comment, post, w.coach, "Another", now=t0 + timedelta(seconds=3))
    assert reply.parent_id == first.id
    assert deeper.parent_id == first.id  # attached to the top-level comment
    tenancy.activate(w.org.id)
    thread = service.comments_of(post)
    assert [(c.id, [r.id for r in rs]) for c, rs in thread] == [(first.id, [reply.id, deeper.id]), (second.id, [])]
    assert comment_count(post) == 4
    events = outbox("space.commented")
    assert len(events) == 4
    assert events[0].payload["post_author_membership_id"] == str(w.maria.id)


def test_a_reply_must_belong_to_the_same_post(w, club):
    a = w.post(club, w.maria, "A")
    b = w.post(club, w.maria, "B")
    on_a = w.do(service.add_comment, a, w.arno, "On A")
    w.refused(SpaceError, service.add_comment, b, w.bea, "Wrong thread", parent=on_a)
    assert comment_count(b) == 0


def test_commenting_rules(w, club):
    post = w.post(club, w.maria, "Post")
    w.refused(NotAllowed, service.add_comment, post, w.coach2, "Not a member", match="Join")
    w.refused(SpaceError, service.add_comment, post, w.arno, " \n ")
    w.refused(SpaceError, service.add_comment, post, w.arno, "x" * 5_001)
    assert w.do(service.add_comment, post, w.arno, "x" * 5_000).id
    w.do(service.delete_post, post, w.maria)
    w.refused(NotAllowed, service.add_comment, post, w.arno, "Too late", match="not available")


def test_comment_count_follows_deletes_removals_and_restores(w, club):
    post = w.post(club, w.maria, "Post")
    a = w.do(service.add_comment, post, w.arno, "A")
    b = w.do(service.add_comment, post, w.bea, "B")
    c = w.do(service.add_comment, post, w.cleo, "C")
    assert comment_count(post) == 3
    w.do(service.delete_comment, a, w.arno)
    w.do(service.delete_comment, a, w.arno)  # twice counts once
    assert comment_count(post) == 2
    w.do(service.remove, b, w.coach)
    assert comment_count(post) == 1
    w.do(service.delete_comment, b, w.bea)  # deleting a removed comment does not count it off again
    assert comment_count(post) == 1
    w.do(service.remove, c, w.coach)
    assert comment_count(post) == 0
    w.do(service.restore, c, w.coach)  # a restored comment counts again
    assert comment_count(post) == 1


def test_the_author_a_host_or_an_admin_deletes_a_comment_and_others_cannot(w, club):
    post = w.post(club, w.maria, "Post")
    comments = [w.do(service.add_comment, post, w.arno, f"C{i}") for i in range(3)]
    w.refused(NotAllowed, service.delete_comment, comments[0], w.bea)
    w.refused(NotAllowed, service.delete_comment, comments[0], w.maria)  # the post's author is not a host
    for comment, who in zip(comments, (w.arno, w.coach, w.admin)):
        w.do(service.delete_comment, comment, who)
        assert comment.deleted_at is not None
    assert comment_count(post) == 0


# --- reactions -------------------------------------------------------------------------------------

def test_reactions_toggle_and_are_summarised(w, club):
    post = w.post(club, w.maria, "Goal!")
    assert w.do(service.toggle_reaction, post, w.arno, "like") is True
    assert w.do(service.toggle_reaction, post, w.bea, "like") is True
    assert w.do(service.toggle_reaction, post, w.arno, "celebrate") is True
    tenancy.activate(w.org.id)
    counts, mine = service.reaction_summary(w.org.id, [post.id], w.arno)
    assert counts == {post.id: {"like": 2, "celebrate": 1}}
    assert mine == {post.id: {"like", "celebrate"}}
    assert w.do(service.toggle_reaction, post, w.arno, "like") is False
    tenancy.activate(w.org.id)
    counts, mine = service.reaction_summary(w.org.id, [post.id], w.arno)
    assert counts == {post.id: {"like": 1, "celebrate": 1}}
    assert mine == {post.id: {"celebrate"}}
    assert service.reaction_summary(w.org.id, [], w.arno) == ({}, {})


def test_an_unknown_reaction_and_outsiders_are_refused(w, club):
    post = w.post(club, w.maria, "Goal!")
    w.refused(SpaceError, service.toggle_reaction, post, w.arno, "angry")
    w.refused(SpaceError, service.toggle_reaction, post, w.arno, "")
    w.refused(NotAllowed, service.toggle_reaction, post, w.coach2, "like")
    assert w.read(Reaction) == []


# --- flags and moderation --------------------------------------------------------------------------

def test_you_cannot_flag_your_own_post_or_flag_twice(w, club):
    post = w.post(club, w.maria, "Mine")
    w.refused(SpaceError, service.flag, post, w.maria, "Hmm", match="yourself")
    w.refused(SpaceError, service.flag, post, w.arno, "   ")
    w.refused(SpaceError, service.flag, post, w.arno, "x" * 501)
    assert w.do(service.flag, post, w.arno, "Rude") is False
    w.refused(SpaceError, service.flag, post, w.arno, "Still rude", match="already")
    assert len(w.read(Flag)) == 1
    assert db.session.scalar(select(Post.flag_count).where(Post.id == post.id)) == 1


def test_who_cannot_read_a_private_post_cannot_flag_it(w):
    private = w.space("Staff", "private")
    post = w.post(private, w.coach, "Internal")
    w.refused(NotAllowed, service.flag, post, w.maria, "Spam")
    assert w.read(Flag) == []


def test_the_third_distinct_flag_hides_a_post_pending_review(w, club):
    post = w.post(club, w.maria, "Spam spam spam")
    other = w.post(club, w.maria, "Fine post")
    assert w.do(service.flag, post, w.arno, "Spam") is False
    assert w.do(service.flag, post, w.bea, "Spam") is False
    tenancy.activate(w.org.id)
    assert post.id in feed_ids(service.feed_page(w.org, w.arno, club))
    assert w.do(service.flag, post, w.cleo, "Spam") is True
    assert post.hidden_at is not None and not post.visible
    tenancy.activate(w.org.id)
    assert feed_ids(service.feed_page(w.org, w.arno, club)) == [other.id]
    [row] = audit_of("post.hidden_by_flags", post.id)
    assert row.actor_label == "system" and row.details == {"flags": 3} and row.tenant_id == w.org.id
    # A fourth flag neither hides again nor audits again.
    assert w.do(service.flag, post, w.coach2, "Spam") is False
    assert len(audit_of("post.hidden_by_flags", post.id)) == 1


def test_comments_are_flagged_and_hidden_the_same_way(w, club):
    post = w.post(club, w.maria, "Post")
    comment = w.do(service.add_comment, post, w.arno, "Rude comment")
    for m in (w.maria, w.bea):
        assert w.do(service.flag, comment, m, "Rude") is False
    assert w.do(service.flag, comment, w.cleo, "Rude") is True
    assert not comment.visible
    assert audit_of("comment.hidden_by_flags", comment.id)


def test_the_moderation_queue_shows_hosts_their_spaces_and_admins_all(w, club):
    other = w.space("Strikers", creator=w.coach2)
    w.do(service.join, other, w.maria)
    w.do(service.join, other, w.arno)
    in_club = w.post(club, w.maria, "In club")
    in_other = w.post(other, w.maria, "In other")
    comment = w.do(service.add_comment, in_club, w.bea, "A comment")
    w.do(service.flag, in_club, w.arno, "Off topic")
    w.do(service.flag, in_other, w.arno, "Off topic")
    w.do(service.flag, comment, w.maria, "Rude")

    def queue(member):
        tenancy.activate(w.org.id)
        return {(i.kind, i.target.id, i.space.id, len(i.flags)) for i in service.moderation_queue(w.org, member)}

    assert queue(w.coach) == {("post", in_club.id, club.id, 1), ("comment", comment.id, club.id, 1)}
    assert queue(w.coach2) == {("post", in_other.id, other.id, 1)}
    assert queue(w.admin) == queue(w.coach) | queue(w.coach2)
    assert queue(w.maria) == set()


def test_the_queue_lists_hidden_content_first(w, club):
    a = w.post(club, w.maria, "Once flagged")
    b = w.post(club, w.maria, "Hidden")
    w.do(service.flag, a, w.arno, "Meh")
    for m in (w.arno, w.bea, w.cleo):
        w.do(service.flag, b, m, "Spam")
    tenancy.activate(w.org.id)
    assert [i.target.id for i in service.moderation_queue(w.org, w.coach)] == [b.id, a.id]


def test_restore_shows_the_post_again_closes_its_flags_and_is_audited(w, club):
    post = w.post(club, w.maria, "Misunderstood")
    for m in (w.arno, w.bea, w.cleo):
        w.do(service.flag, post, m, "Spam")
    w.refused(NotAllowed, service.restore, post, w.arno)
    w.do(service.restore, post, w.coach)
    assert post.visible
    tenancy.activate(w.org.id)
    assert feed_ids(service.feed_page(w.org, w.arno, club)) == [post.id]
    assert all(f.resolved_at is not None for f in w.read(Flag))
    assert service.moderation_queue(w.org, w.coach) == []
    [row] = audit_of("post.restored", post.id)
    assert row.actor_user_id == w.coach.user_id
    # The moderator's decision stands: one new flag does not hide it again, three new ones do.
    assert w.do(service.flag, post, w.coach2, "Still spam") is False
    assert post.visible
    assert service.moderation_queue(w.org, w.coach)[0].target.id == post.id


def test_remove_takes_the_post_away_for_everyone_and_is_audited(w, club):
    post = w.post(club, w.maria, "Against the rules")
    w.do(service.flag, post, w.arno, "Abuse")
    w.refused(NotAllowed, service.remove, post, w.coach2)
    w.do(service.remove, post, w.admin)
    assert post.removed_at is not None and not post.visible
    tenancy.activate(w.org.id)
    assert feed_ids(service.feed_page(w.org, w.maria, club)) == []
    assert service.moderation_queue(w.org, w.admin) == []
    [row] = audit_of("post.removed", post.id)
    assert row.actor_user_id == w.admin.user_id and row.details == {"author": w.maria.user.email}


# --- feeds -----------------------------------------------------------------------------------------

def make_posts(w, space, n: int, start: datetime | None = None, authors=None) -> list[Post]:
    """``n`` posts, newest first in the returned list; every three share a timestamp (ties broken by id)."""
    start = start or real_now() - timedelta(days=1)
    authors = authors or [w.maria, w.arno, w.bea]
    tenancy.activate(w.org.id)
    made = [service.create_post(space, authors[i % len(authors)], f"Post {i}", now=start + timedelta(minutes=i // 3))
            for i in range(n)]
    db.session.commit()
    return sorted(made, key=lambda p: (p.created_at, p.id.hex), reverse=True)


def all_pages(w, member, space=None, limit=20) -> list[list[Post]]:
    pages, cursor = [], None
    while True:
        tenancy.activate(w.org.id)
        page = service.feed_page(w.org, member, space, after=cursor, limit=limit)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 20, "pagination does not end"


def test_keyset_pages_cover_every_post_once_newest_first(w, club):
    made = make_posts(w, club, 45)
    pages = all_pages(w, w.maria, club)
    assert [len(p.posts) for p in pages] == [20, 20, 5]
    shown = [p.id for page in pages for p in page.posts]
    assert shown == [p.id for p in made]  # newest first, ties by id, no duplicates, no gaps
    assert all(page.pinned == [] for page in pages)


def test_a_post_written_while_paging_does_not_shift_the_next_page(w, club):
    made = make_posts(w, club, 25)
    tenancy.activate(w.org.id)
    first = service.feed_page(w.org, w.maria, club)
    w.post(club, w.coach, "Brand new")
    tenancy.activate(w.org.id)
    second = service.feed_page(w.org, w.maria, club, after=first.next_cursor)
    assert feed_ids(first) + feed_ids(second) == [p.id for p in made]


def test_pinned_posts_come_first_on_the_first_page_only_and_are_not_repeated(w, club):
    made = make_posts(w, club, 45)
    old, recent = made[30], made[5]
    w.do(service.set_pinned, old, w.coach, True, now=real_now())
    w.do(service.set_pinned, recent, w.coach, True, now=real_now() + timedelta(seconds=1))
    pages = all_pages(w, w.maria, club)
    assert [p.id for p in pages[0].pinned] == [recent.id, old.id]  # latest pinned first
    assert all(page.pinned == [] for page in pages[1:])
    shown = [p.id for p in pages[0].pinned] + [p.id for page in pages for p in page.posts]
    assert len(shown) == len(set(shown)) == 45
    assert [p.id for page in pages for p in page.posts] == [p.id for p in made if p not in (old, recent)]
    assert [len(p.posts) for p in pages] == [20, 20, 3]


def test_the_home_feed_has_the_spaces_a_member_joined_and_no_pinned_section(w, club):
    other = w.space("Strikers", creator=w.coach2)
    private = w.space("Staff", "private")
    in_club = make_posts(w, club, 3)
    in_other = make_posts(w, other, 2, authors=[w.coach2])
    make_posts(w, private, 2, authors=[w.coach])
    w.do(service.set_pinned, in_club[-1], w.coach, True)
    tenancy.activate(w.org.id)
    home = service.feed_page(w.org, w.maria)
    assert set(feed_ids(home)) == {p.id for p in in_club}
    assert home.pinned == []
    assert set(home.spaces) == {club.id}
    w.do(service.join, other, w.maria)
    tenancy.activate(w.org.id)
    home = service.feed_page(w.org, w.maria)
    assert set(feed_ids(home)) == {p.id for p in in_club + in_other}
    assert set(home.spaces) == {club.id, other.id}
    ordered = [(p.created_at, p.id.hex) for p in home.posts]
    assert ordered == sorted(ordered, reverse=True)
    # The host of the private space sees it at home; an admin who did not join does not.
    tenancy.activate(w.org.id)
    assert len(service.feed_page(w.org, w.coach).posts) == 3 + 2
    assert service.feed_page(w.org, w.admin).posts == []


@pytest.mark.parametrize("cursor", ["", "garbage", "!!!", "a" * 500, "ü", "MjAyNi0wMS0wMXx4", "bm90fGF8Y3Vyc29y",
                                    # a valid-looking cursor with a naive time
                                    "MjAyNi0wMS0wMVQwMDowMDowMHwwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA",
                                    # an aware time with a broken id
                                    "MjAyNi0wMS0wMVQwMDowMDowMCswMDowMHx6eno"])
def test_a_malformed_cursor_is_the_first_page(w, club, cursor):
    made = make_posts(w, club, 25)
    tenancy.activate(w.org.id)
    page = service.feed_page(w.org, w.maria, club, after=cursor)
    assert feed_ids(page) == [p.id for p in made[:20]]
    assert page.next_cursor is not None


def test_the_page_reports_reactions_and_spaces(w, club):
    made = make_posts(w, club, 3)
    w.do(service.toggle_reaction, made[0], w.arno, "like")
    w.do(service.toggle_reaction, made[0], w.maria, "funny")
    tenancy.activate(w.org.id)
    page = service.feed_page(w.org, w.maria, club)
    assert page.counts[made[0].id] == {"like": 1, "funny": 1}
    assert page.counts[made[1].id] == {}
    assert page.mine[made[0].id] == {"funny"}
    assert page.spaces == {club.id: club.name}


def test_another_organizations_posts_never_appear(w, club):
    own = [p.id for p in make_posts(w, club, 2)]
    other = World("o")
    b_space = other.space("Goalkeepers")
    other.do(service.join, b_space, other.maria)
    b_post = other.post(b_space, other.maria, "Secret of B")
    b_post_id, b_space_id = b_post.id, b_space.id  # read while B is active: A cannot load them

    tenancy.activate(w.org.id)
    assert service.get_post(w.org, b_post_id) is None
    assert service.get_space(w.org, b_space_id) is None
    # RLS, not only the service's filter: a query with no tenant condition sees nothing of B.
    assert db.session.scalar(select(Post).where(Post.id == b_post_id)) is None
    assert db.session.scalar(select(func.count()).select_from(Post)) == 2
    assert set(feed_ids(service.feed_page(w.org, w.maria))) == set(own)
    assert set(feed_ids(service.feed_page(w.org, w.maria, club))) == set(own)
    # Even asking for B's space by its object shows nothing from A's side.
    tenancy.activate(other.org.id)
    b_space = service.get_space(other.org, b_space_id)
    tenancy.activate(w.org.id)
    assert service.feed_page(w.org, w.maria, b_space).posts == []
    assert {s.space.id for s in service.spaces_for(w.org, w.maria)} == {club.id}
    # And the other way round.
    tenancy.activate(other.org.id)
    assert feed_ids(service.feed_page(other.org, other.maria)) == [b_post_id]
    assert service.get_post(other.org, own[0]) is None


def test_malformed_ids_load_nothing(w, club):
    tenancy.activate(w.org.id)
    for bad in ("", "not-a-uuid", None, "1' OR '1'='1", str(uuid.uuid4())):
        assert service.get_post(w.org, bad) is None
        assert service.get_space(w.org, bad) is None
        assert service.get_comment(w.org, bad) is None


def count_statements(fn) -> tuple[int, object]:
    """How many SQL statements this thread sends while ``fn`` runs."""
    me = threading.get_ident()
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if threading.get_ident() == me:
            seen.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        result = fn()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen), result


def render_like_a_template(page) -> list[str]:
    """What the feed template reads from every post (authors, spaces, reactions)."""
    out = []
    for p in page.pinned + page.posts:
        out.append(f"{p.author_name} {p.space_name} {page.spaces[p.space_id]} {p.created_at} {p.edited_at} "
                   f"{p.body_html} {p.comment_count} {sorted(page.counts[p.id].items())} {sorted(page.mine[p.id])}")
    return out


@pytest.mark.parametrize("home", [False, True], ids=["space", "home"])
def test_a_feed_page_costs_the_same_queries_for_5_or_20_posts(w, quiet, home):
    small, big = w.space("Small"), w.space("Big")
    members = [w.maria, w.arno, w.bea, w.cleo, w.coach2]
    for space in (small, big):
        for m in members:
            w.do(service.join, space, m)
    for space, n in ((small, 5), (big, 20)):
        posts = make_posts(w, space, n, authors=members + [w.coach])
        for i, p in enumerate(posts):
            w.do(service.toggle_reaction, p, members[i % 5], "like")
            w.do(service.add_comment, p, members[(i + 1) % 5], "Nice")
        w.do(service.set_pinned, posts[-1], w.coach, True)
    viewer = w.add("viewer", "Vera Viewer")

    def measure(space):
        tenancy.activate(w.org.id)
        if home:
            for s in (small, big):
                service.leave(s, viewer)
            service.join(space, viewer)
        org, member = w.org, viewer
        db.session.commit()
        # Objects are expired by the commit: load what a view has in hand before the page.
        tenancy.activate(w.org.id)
        org.id, member.id, space.id, member.user.display_name  # noqa: B018
        n, page = count_statements(lambda: render_like_a_template(
            service.feed_page(org, member, None if home else space)))
        return n, page

    measure(big)  # warm-up: first-use work is not the page's
    n_small, page_small = measure(small)
    n_big, page_big = measure(big)
    assert len(page_small) == 5 and len(page_big) == 20
    # The posts (with their authors' and spaces' names, and a space's pinned posts), the reactions (counts and
    # mine), the attachments.
    assert n_small == n_big == 3
