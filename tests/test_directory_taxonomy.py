"""The organization's taxonomy: admins add, rename, reorder and delete sports or games and their skills, roles
and levels (each audited, each re-projecting the listings); names are checked; deleting a discipline takes its
terms and the profiles' links with it; coaches and other organizations cannot touch it."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from coach import tenancy
from coach.directory import taxonomy
from coach.directory.events import LISTING_CHANGED
from coach.directory.models import CoachProfileTerm, DirectoryTerm
from coach.errors import NotAllowed
from coach.extensions import db
from coach.platform.models import AuditEvent, OutboxEvent
from tests.conftest import csrf_from
from tests.directory_support import world  # noqa: F401  (fixture)
from tests.directory_support import logged_in as browser

PAGE = "/o/river/admin/taxonomy"


def names(org) -> list[str]:
    return [d.term.name for d in taxonomy.terms_tree(org)]


def test_admin_builds_the_taxonomy_and_each_change_is_audited_and_reprojects(world, quiet):
    cs = taxonomy.add_term(world.org, "discipline", "  Counter-Strike   2 ", world.admin)
    assert (cs.name, cs.slug) == ("Counter-Strike 2", "counter-strike-2")
    awp = taxonomy.add_term(world.org, "role", "AWPer", world.admin, parent_id=str(cs.id))
    taxonomy.rename_term(awp, "Sniper", world.admin)
    taxonomy.move_term(cs, -1, world.admin)
    db.session.commit()
    tenancy.activate(world.org.id)
    tree = taxonomy.terms_tree(world.org)
    # Terms of equal position read by name (Tennis, Valorant); the new one came last and moved up one place.
    assert [d.term.name for d in tree] == ["Tennis", "Counter-Strike 2", "Valorant"]
    assert [t.name for t in tree[1].children["role"]] == ["Sniper"]
    actions = sorted(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.tenant_id == world.org.id, AuditEvent.action.like("directory.%"))))
    assert actions == ["directory.term_added", "directory.term_added", "directory.term_moved",
                       "directory.term_renamed"]
    events = [e.payload for e in db.session.scalars(select(OutboxEvent).where(OutboxEvent.topic == LISTING_CHANGED))]
    assert len(events) == 4 and all(e["coach_membership_id"] is None for e in events)


@pytest.mark.parametrize("kind, name, parent, message", [
    ("discipline", "", None, "Enter a name"),
    ("discipline", "x" * 61, None, "at most 60"),
    ("discipline", "Val\x00orant", None, "NUL"),
    ("discipline", "valorant", None, "already"),
    ("skill", "Aim", "valorant", "already"),
    ("skill", "Footwork", None, "sport or game it belongs to"),
    ("skill", "Footwork", "aim", "sport or game it belongs to"),
    ("weapon", "AK", None, "Choose a sport"),
])
def test_bad_terms_are_refused_with_a_message(world, kind, name, parent, message):
    parent_id = world.terms[parent].id if parent else None
    with pytest.raises(taxonomy.TaxonomyError) as refused:
        taxonomy.add_term(world.org, kind, name, world.admin, parent_id=parent_id)
    assert message in str(refused.value)


def test_the_same_skill_name_may_live_under_two_disciplines(world):
    footwork = taxonomy.add_term(world.org, "skill", "Footwork", world.admin, parent_id=world.terms["tennis"].id)
    again = taxonomy.add_term(world.org, "skill", "Footwork", world.admin, parent_id=world.terms["valorant"].id)
    assert footwork.slug == again.slug == "footwork"


def test_only_admins_edit_the_taxonomy(world):
    with pytest.raises(NotAllowed):
        taxonomy.add_term(world.org, "discipline", "Chess", world.maria)
    with pytest.raises(NotAllowed):
        taxonomy.delete_term(world.terms["aim"], world.maria)


def test_deleting_a_discipline_removes_its_terms_and_the_profiles_links(world):
    valorant = world.terms["valorant"]
    assert taxonomy.usage(world.org, valorant) == 1
    taxonomy.delete_term(valorant, world.admin)
    db.session.commit()
    tenancy.activate(world.org.id)
    assert names(world.org) == ["Tennis"]
    assert taxonomy.profile_term_ids(world.maria_profile) == set()
    assert taxonomy.profile_term_ids(world.jon_profile) == {world.terms["tennis"].id, world.terms["serve"].id}
    tenancy.activate(world.hill.id)
    assert db.session.scalar(select(func.count()).select_from(DirectoryTerm).where(
        DirectoryTerm.tenant_id == world.hill.id)) == 2  # the other club's Valorant stays


def test_admin_pages_add_rename_and_delete_with_a_confirmation(app, world):
    ada = browser(app, "ada@example.com")
    page = ada.get(PAGE)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Valorant" in html and "Controller" in html
    token = csrf_from(html)
    added = ada.post(PAGE, data={"csrf_token": token, "kind": "level", "name": "Immortal",
                                 "parent_id": str(world.terms["valorant"].id)})
    assert added.status_code == 303
    duplicate = ada.post(PAGE, data={"csrf_token": token, "kind": "discipline", "name": "TENNIS"})
    assert duplicate.status_code == 422 and "already a sport or game “TENNIS”" in duplicate.get_data(as_text=True)
    aim = world.terms["aim"].id
    renamed = ada.post(f"{PAGE}/{aim}/rename", data={"csrf_token": token, "name": "Aim & crosshair"})
    assert renamed.status_code == 303
    confirm = ada.get(f"{PAGE}/{world.terms['valorant'].id}/delete").get_data(as_text=True)
    assert "1 coach profile lists it" in confirm and "Aim &amp; crosshair" in confirm and "Immortal" in confirm
    valorant = world.terms["valorant"].id
    deleted = ada.post(f"{PAGE}/{valorant}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    after = ada.get(PAGE).get_data(as_text=True)
    assert "Deleted “Valorant”." in after and f'id="term-{valorant}"' not in after and "Tennis" in after
    db.session.rollback()
    tenancy.activate(world.org.id)
    assert db.session.scalar(select(func.count()).select_from(CoachProfileTerm).where(
        CoachProfileTerm.profile_id == world.maria_profile.id)) == 0


def test_coaches_get_403_and_other_organizations_terms_404(app, world):
    assert browser(app, "maria@example.com").get(PAGE).status_code == 403
    tenancy.activate(world.hill.id)
    hill_term = db.session.scalar(select(DirectoryTerm.id).where(DirectoryTerm.tenant_id == world.hill.id))
    tenancy.activate(world.org.id)
    ada = browser(app, "ada@example.com")
    assert ada.get(f"{PAGE}/{hill_term}/delete").status_code == 404
    token = csrf_from(ada.get(PAGE).get_data(as_text=True))
    assert ada.post(f"{PAGE}/{hill_term}/rename", data={"csrf_token": token, "name": "Mine"}).status_code == 404
    assert ada.post(f"{PAGE}/not-a-uuid/delete", data={"csrf_token": token}).status_code == 404
    long = ada.post(PAGE, data={"csrf_token": token, "kind": "discipline", "name": "x" * 10_000})
    assert long.status_code == 422


def test_the_editor_groups_terms_by_discipline(app, world):
    html = browser(app, "kim@example.com").get("/o/river/profile").get_data(as_text=True)
    assert html.index("Tennis") < html.index("Serve") < html.index("Valorant") < html.index("Aim") < html.index(
        "Controller")
    assert html.count('name="term_ids"') == 5
