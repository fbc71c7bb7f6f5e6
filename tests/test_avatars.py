"""Avatars and reactions (issue 21): initials on a stable colour next to each person's name (posts, comments,
chat, the members table, the booking list, the account menu), decorative where the name is written beside them;
reaction buttons that say what they are in words, with or without an emoji font."""
from __future__ import annotations

import re

import lxml.html
import pytest

from coach import tenancy
from coach.blueprints.avatars import PALETTE_SIZE, avatar_parts, colour, initials
from coach.chat import service as chat
from coach.extensions import db
from coach.spaces import service as spaces
from tests.conftest import Auth
from tests.factories import add_member, make_org, make_user


@pytest.mark.parametrize("name,expected", [
    ("Maria Lopez", "ML"), ("sam", "S"), ("Jean-Luc de la Tour", "JT"), ("Émile Zola", "ÉZ"),
    ("E\u0301mile Zola", "ÉZ"),  # a combining accent stays with its letter
    ("Ødegaard", "Ø"), ("李 小龙", "李小"), ("Zoë 🙂", "Z"), ("  ", "?"), (None, "?"), ("🙂 🎉", "?"),
    ("ana maría", "AM"), ("Renée O'Neil", "RO"),
])
def test_initials_are_one_or_two_letters_from_the_first_and_last_words(name, expected):
    assert initials(name) == expected


def test_the_colour_is_stable_and_spread_over_the_palette():
    assert colour("Maria Lopez") == colour("Maria Lopez")
    names = [f"Person {n}" for n in range(200)]
    assert {colour(name) for name in names} == set(range(PALETTE_SIZE))
    # The same person reads alike whether the page has their user, their membership or only their name.
    class User:
        display_name, id = "Maria Lopez", "u1"

    class Member:
        user, id = User(), "m1"

    assert avatar_parts(User()) == avatar_parts(Member()) == avatar_parts(name="Maria Lopez")


@pytest.fixture()
def world(ctx):
    ada = make_user("ada@example.com", "Ada Admin")
    org = make_org(ada, slug="harbour", name="Harbour Rowing")
    carla = add_member(org, make_user("carla@example.com", "Carla Coach"), "coach")
    sam = add_member(org, make_user("sam@example.com", "Sam Sculler"), "athlete")
    tenancy.activate(org.id)
    space = spaces.create_space(org, carla, "Squad", "", "open")
    spaces.join(space, sam)
    post = spaces.create_post(space, carla, "Morning row at six")
    spaces.add_comment(post, carla, "Bring water")
    conversation = chat.direct_with(org, sam, carla)
    chat.send(conversation, carla, "See you there")
    db.session.commit()
    return {"org": org, "space": space, "post": post, "conversation": conversation}


def as_user(app, email):
    browser = app.test_client()
    assert Auth(browser).login(email).status_code == 303
    return browser


def avatars(html: str, within: str = "//main") -> list[tuple[str, str | None, str]]:
    """(initials, aria-hidden, colour class) of every avatar under ``within``."""
    tree = lxml.html.document_fromstring(html)
    found = []
    for root in tree.xpath(within):
        for span in root.xpath('.//span[contains(concat(" ", @class, " "), " avatar ")]'):
            palette = re.search(r"avatar-c\d", span.get("class"))
            found.append((span.text_content(), span.get("aria-hidden"), palette and palette.group(0)))
    return found


def test_posts_comments_chat_members_and_coaches_show_initials_beside_the_name(app, world):
    carla_colour = f"avatar-c{colour('Carla Coach')}"
    sam = as_user(app, "sam@example.com")
    post_page = sam.get(f"/o/harbour/posts/{world['post'].id}").get_data(as_text=True)
    assert avatars(post_page, '//*[@class="post-head"]') == [("CC", "true", carla_colour)]
    assert avatars(post_page, '//*[@class="comment-head"]') == [("CC", "true", carla_colour)]
    chat_page = sam.get(f"/o/harbour/chat/{world['conversation'].id}").get_data(as_text=True)
    assert ("CC", "true", carla_colour) in avatars(chat_page, '//*[contains(@class, "message-meta")]')
    assert avatars(sam.get("/o/harbour/chat").get_data(as_text=True), '//ul[@class="conversation-list"]') == [
        ("CC", "true", carla_colour)]
    book = sam.get("/o/harbour/book").get_data(as_text=True)
    assert ("CC", "true", carla_colour) in avatars(book)
    members = as_user(app, "ada@example.com").get("/o/harbour/admin/members").get_data(as_text=True)
    assert [a[0] for a in avatars(members, "//table")] == ["AA", "CC", "SS"]
    # The account menu's summary: the signed-in person's initials, their name written beside.
    assert avatars(post_page, '//details[contains(@class, "menu-account")]/summary') == [
        ("SS", "true", f"avatar-c{colour('Sam Sculler')}")]


def test_reaction_buttons_are_named_in_words_and_the_emoji_is_decoration(app, world):
    sam = as_user(app, "sam@example.com")
    page = sam.get(f"/o/harbour/posts/{world['post'].id}").get_data(as_text=True)
    tree = lxml.html.document_fromstring(page)
    buttons = tree.xpath('//div[@class="reactions"]//button')
    assert len(buttons) == 5
    names = []
    for button in buttons:
        emoji = button.xpath('./span[@class="reaction-emoji"]')[0]
        assert emoji.get("aria-hidden") == "true"
        label = button.xpath('./span[@class="reaction-label"]')[0]
        # A visible word (not a screen-reader-only one): it renders without any emoji font.
        assert "sr-only" not in (label.get("class") or "") and label.text_content().isalpha()
        names.append(label.text_content())
    assert names == ["Like", "Celebrate", "Support", "Insightful", "Funny"]
