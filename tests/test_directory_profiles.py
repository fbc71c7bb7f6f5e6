"""Coach profiles: every field's limits, HTML kept as text, the bio sanitised, media and terms of the organization
only, verification by admins (audited), the editor's preview writing nothing (live and without JavaScript), another
organization's profile out of reach, and PROFILE_CHANGED in the outbox with each change."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from coach import tenancy
from coach.directory import profiles, reviews, taxonomy
from coach.directory.events import PROFILE_CHANGED
from coach.directory.models import CoachProfile, CoachProfileTerm
from coach.errors import NotAllowed
from coach.extensions import db
from coach.platform.models import AuditEvent, OutboxEvent
from tests.conftest import csrf_from
from tests.directory_support import world  # noqa: F401  (fixture)
from tests.directory_support import logged_in as browser
from tests.factories import add_member, make_user, media_row
from tests.querycount import statements_for

HX = {"HX-Request": "true"}
VALID = {"headline": "Serve and volley coach", "bio": "I teach **serves**.", "languages": ["de", "en"],
         "years_experience": "12", "certifications": "DTB B-Trainer\n\nITF Level 2", "tags": "Serve, Beginners, serve",
         "location": "Berlin", "online": "", "in_person": "y", "listed": "y"}


def outbox(topic: str) -> list[dict]:
    return [e.payload for e in db.session.scalars(select(OutboxEvent).where(OutboxEvent.topic == topic))]


def reload(world, profile_id) -> CoachProfile:
    db.session.rollback()
    tenancy.activate(world.org.id)
    return db.session.scalar(select(CoachProfile).where(CoachProfile.id == profile_id))


def form_values(html: str) -> dict[str, str]:
    """The text inputs and textareas of the page's form, by name (what the browser would send back)."""
    found = {}
    for m in re.finditer(r'<input[^>]*>', html):
        tag = m.group(0)
        name, value = re.search(r'\bname="([^"]+)"', tag), re.search(r'\bvalue="([^"]*)"', tag)
        if name and value and 'type="checkbox"' not in tag:
            found[name.group(1)] = value.group(1)
    for m in re.finditer(r'<textarea[^>]*\bname="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
        found[m.group(1)] = m.group(2).lstrip("\r\n")
    return found


# --- the service ---------------------------------------------------------------------------------------------

def test_first_edit_makes_the_profile_with_a_handle_from_the_name_unique_in_the_organization(world):
    kim = world.kim
    profile = profiles.ensure_profile(kim)
    assert profile.handle == "kim-lee"
    assert profiles.ensure_profile(kim).id == profile.id
    other = add_member(world.org, make_user("kim2@example.com", "Kim Lée"), "coach")
    tenancy.activate(world.org.id)
    assert profiles.ensure_profile(other).handle == "kim-lee-2"
    odd = add_member(world.org, make_user("jp@example.com", "山田"), "coach")
    tenancy.activate(world.org.id)
    assert profiles.ensure_profile(odd).handle == "coach"


def test_save_profile_cleans_every_field_and_renders_the_bio_sanitised(world):
    profile = profiles.ensure_profile(world.kim)
    values = {**VALID, "headline": "  <b>Serve</b>   coach ", "bio": "Hi <script>alert(1)</script> [x](javascript:x)"}
    profiles.save_profile(profile, values, world.kim)
    assert profile.headline == "<b>Serve</b> coach"  # kept as text: templates escape it
    assert "<script>" not in profile.bio_html and 'href="javascript' not in profile.bio_html
    assert "&lt;script&gt;" in profile.bio_html
    assert profile.languages == ["de", "en"]
    assert profile.tags == ["serve", "beginners"]
    assert profile.certifications == "DTB B-Trainer\nITF Level 2"
    assert profile.years_experience == 12 and profile.in_person and not profile.online and profile.listed


@pytest.mark.parametrize("field, value, message", [
    ("headline", "x" * 121, "at most 120"),
    ("bio", "x" * 5001, "at most 5,000"),
    ("certifications", "x" * 1001, "at most 1,000"),
    ("location", "x" * 121, "at most 120"),
    ("years_experience", "81", "between 0 and 80"),
    ("years_experience", "-1", "between 0 and 80"),
    ("years_experience", "ten", "whole number"),
    ("languages", ["en", "xx"], "from the list"),
    ("languages", ["en", "<script>"], "from the list"),
    ("tags", ",".join(f"t{i}" for i in range(21)), "At most 20 tags"),
    ("tags", "y" * 41, "at most 40"),
    ("headline", "nul\x00byte", "NUL"),
    ("bio", "nul\x00byte", "NUL"),
    ("tags", "a\x00b", "NUL"),
])
def test_each_limit_is_refused_with_a_clear_message_and_nothing_changes(world, field, value, message):
    profile = world.jon_profile
    before = (profile.headline, profile.bio_source, profile.languages, profile.tags)
    with pytest.raises(profiles.ProfileError) as refused:
        profiles.save_profile(profile, {**VALID, field: value}, world.jon)
    assert message in refused.value.fields[field]
    db.session.rollback()
    again = reload(world, profile.id)
    assert (again.headline, again.bio_source, again.languages, again.tags) == before
    assert outbox(PROFILE_CHANGED) == []


def test_a_profile_must_be_online_or_in_person(world):
    with pytest.raises(profiles.ProfileError) as refused:
        profiles.save_profile(world.jon_profile, {**VALID, "online": "", "in_person": ""}, world.jon)
    assert "online, in person or both" in refused.value.fields["online"]


def test_media_must_be_the_coachs_own_ready_item_of_the_right_kind(world):
    own_photo = media_row(world.org.id, world.jon, title="Me", audience="staff")
    own_photo.kind, own_photo.content_type = "image", "image/jpeg"
    processing = media_row(world.org.id, world.jon, title="Raw", status="processing")
    someone_elses = media_row(world.org.id, world.maria, title="Maria's", audience="organization")
    someone_elses.kind = "image"
    tenancy.activate(world.hill.id)
    foreign = media_row(world.hill.id, world.yara, title="Hill photo")
    foreign.kind = "image"
    db.session.flush()
    foreign_id = foreign.id
    db.session.commit()
    tenancy.activate(world.org.id)
    profile = world.jon_profile
    for name, item_id, message in (("photo_media_id", foreign_id, "your own media"),
                                   ("photo_media_id", someone_elses.id, "your own media"),
                                   ("photo_media_id", "not-a-uuid", "your own media"),
                                   ("intro_media_id", own_photo.id, "must be a video"),
                                   ("intro_media_id", processing.id, "not ready")):
        with pytest.raises(profiles.ProfileError) as refused:
            profiles.save_profile(profile, {**VALID, name: str(item_id)}, world.jon)
        assert message in refused.value.fields[name]
    profiles.save_profile(profile, {**VALID, "photo_media_id": str(own_photo.id)}, world.jon)
    assert profile.photo_media_id == own_photo.id


def test_terms_of_another_organization_are_refused_with_400_and_a_discipline_follows_its_skill(world):
    tenancy.activate(world.hill.id)
    hill_term = db.session.scalar(select(taxonomy.DirectoryTerm.id).where(
        taxonomy.DirectoryTerm.tenant_id == world.hill.id))
    tenancy.activate(world.org.id)
    with pytest.raises(taxonomy.TaxonomyError) as refused:
        taxonomy.set_profile_terms(world.jon_profile, [world.terms["serve"].id, hill_term], world.jon)
    assert refused.value.status == 400 and "not in this organization" in str(refused.value)
    chosen = taxonomy.set_profile_terms(world.jon_profile, [str(world.terms["aim"].id)], world.jon)
    assert chosen == {world.terms["aim"].id, world.terms["valorant"].id}


def test_only_the_coach_and_staff_edit_a_profile(world):
    with pytest.raises(NotAllowed):
        profiles.save_profile(world.jon_profile, VALID, world.maria)
    with pytest.raises(NotAllowed):
        profiles.save_profile(world.jon_profile, VALID, world.ana)
    profiles.save_profile(world.jon_profile, VALID, world.admin)


def test_every_change_emits_profile_changed_and_bumps_updated_at(world, quiet):
    profile = world.jon_profile
    before = profile.updated_at
    profiles.save_profile(profile, {**VALID, "term_ids": [str(world.terms["serve"].id)]}, world.jon)
    profiles.set_listed(profile, False, world.jon)
    profiles.set_verification(profile, True, "Checked the DTB licence.", world.admin)
    db.session.commit()
    tenancy.activate(world.org.id)
    changes = outbox(PROFILE_CHANGED)
    assert sorted(c["what"] for c in changes) == ["listed", "profile", "verification"]
    assert {c["coach_membership_id"] for c in changes} == {str(world.jon.id)}
    assert reload(world, profile.id).updated_at > before


def test_verification_needs_an_admin_and_a_note_and_is_audited(world):
    profile = world.jon_profile
    with pytest.raises(NotAllowed):
        profiles.set_verification(profile, True, "Looks fine", world.jon)
    with pytest.raises(profiles.ProfileError) as refused:
        profiles.set_verification(profile, True, "   ", world.admin)
    assert "note" in refused.value.fields
    profiles.set_verification(profile, True, "Passport and DTB licence checked.", world.admin)
    assert profile.verified and profile.verified_by_membership_id == world.admin.id
    profiles.set_verification(profile, False, "", world.admin)
    assert not profile.verified and profile.verification_note == ""
    db.session.commit()
    tenancy.activate(world.org.id)
    actions = list(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.tenant_id == world.org.id, AuditEvent.target_id == str(profile.id)).order_by(AuditEvent.created_at)))
    assert actions == ["directory.coach_verified", "directory.verification_removed"]


# --- the pages -----------------------------------------------------------------------------------------------

def test_every_member_sees_the_profile_with_its_facts_and_a_book_link(app, world):
    ben = browser(app, "ben@example.com")
    page = ben.get(f"/o/river/coaches/{world.maria.id}/profile")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Valorant aim coach for ranked climbers" in html
    assert "crosshair placement" in html
    assert "English, Spanish" in html and "Verified" in html
    assert "Aim" in html and "Controller" in html
    assert f"/o/river/offerings/{world.aim.id}" in html and ">Book<" in html
    assert "Identity and coaching certificate checked." not in html  # the note is for admins
    assert "Edit profile" not in html
    admin_html = browser(app, "ada@example.com").get(f"/o/river/coaches/{world.maria.id}/profile").get_data(
        as_text=True)
    assert "Identity and coaching certificate checked." in admin_html and "Remove verification" in admin_html


def test_the_profile_page_gives_the_public_address_or_says_why_there_is_none(app, world):
    """Members see a listed coach's public address; the coach and staff also see why an unlisted one is not there
    (no headline, opted out, the organization does not list), and other members see nothing of it."""
    w = world
    public = "http://localhost/coaches/river/maria-santos"
    maria = browser(app, "maria@example.com")
    html = maria.get(f"/o/river/coaches/{w.maria.id}/profile").get_data(as_text=True)
    assert f'<a href="/coaches/river/maria-santos">{public}</a>' in html
    assert 'href="/coaches/river/maria-santos">its public address</a>' in maria.get("/o/river/profile").get_data(
        as_text=True)
    assert public in browser(app, "ben@example.com").get(f"/o/river/coaches/{w.maria.id}/profile").get_data(
        as_text=True)
    kim = browser(app, "kim@example.com").get(f"/o/river/coaches/{w.kim.id}/profile").get_data(as_text=True)
    assert "the profile needs a headline" in kim
    profiles.set_listed(w.jon_profile, False, w.jon)
    db.session.commit()
    ada = browser(app, "ada@example.com")
    assert "the coach chose to stay out of it" in ada.get(f"/o/river/coaches/{w.jon.id}/profile").get_data(
        as_text=True)
    ben_sees = browser(app, "ben@example.com").get(f"/o/river/coaches/{w.jon.id}/profile").get_data(as_text=True)
    assert "Public directory" not in ben_sees and "/coaches/river/jon-berg" not in ben_sees
    w.org.listed_publicly = False
    db.session.commit()
    html = maria.get(f"/o/river/coaches/{w.maria.id}/profile").get_data(as_text=True)
    assert "River Academy does not list its coaches" in html and public not in html


def test_the_coach_page_links_the_profile(app, world):
    html = browser(app, "ben@example.com").get(f"/o/river/coaches/{world.maria.id}").get_data(as_text=True)
    assert f"/o/river/coaches/{world.maria.id}/profile" in html


def test_html_typed_into_plain_fields_shows_as_text(app, world):
    profiles.save_profile(world.jon_profile, {**VALID, "headline": "<img src=x onerror=alert(1)>",
                                              "tags": "<b>bold</b>"}, world.jon)
    db.session.commit()
    html = browser(app, "ben@example.com").get(f"/o/river/coaches/{world.jon.id}/profile").get_data(as_text=True)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>bold</b>" not in html


def test_another_organizations_profile_is_404_by_url(app, world):
    tenancy.activate(world.hill.id)
    yara = world.yara.id
    tenancy.activate(world.org.id)
    ana = browser(app, "ana@example.com")
    assert ana.get(f"/o/river/coaches/{yara}/profile").status_code == 404
    assert ana.get(f"/o/hill/coaches/{yara}/profile").status_code == 404
    assert ana.get("/o/river/coaches/not-a-uuid/profile").status_code == 404
    ada = browser(app, "ada@example.com")
    assert ada.get(f"/o/river/coaches/{yara}/profile/edit").status_code == 404
    assert ada.get(f"/o/river/coaches/{world.jon.id}/profile").status_code == 200


def test_coach_saves_their_profile_and_sees_it(app, world):
    kim = browser(app, "kim@example.com")
    token = csrf_from(kim.get("/o/river/profile").get_data(as_text=True))
    response = kim.post("/o/river/profile", data={"csrf_token": token, **VALID,
                                                  "term_ids": [str(world.terms["serve"].id)]})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/o/river/coaches/{world.kim.id}/profile")
    html = kim.get(response.headers["Location"]).get_data(as_text=True)
    assert "Serve and volley coach" in html and "<strong>serves</strong>" in html
    assert "Tennis" in html and "German, English" in html and "#beginners" in html


def test_invalid_values_come_back_422_with_field_messages_and_nothing_saved(app, world):
    jon = browser(app, "jon@example.com")
    token = csrf_from(jon.get("/o/river/profile").get_data(as_text=True))
    response = jon.post("/o/river/profile", data={"csrf_token": token, **VALID, "headline": "h" * 200,
                                                  "years_experience": "200"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Headline: at most 120 characters" in html and "between 0 and 80" in html
    assert reload(world, world.jon_profile.id).headline == "Tennis serve specialist"
    foreign = jon.post("/o/river/profile", data={"csrf_token": token, **VALID, "term_ids": ["not-a-term"]})
    assert foreign.status_code == 400 and "not in this organization" in foreign.get_data(as_text=True)


def test_coach_without_profile_cannot_edit_another_coachs_but_staff_can(app, world):
    maria = browser(app, "maria@example.com")
    assert maria.get(f"/o/river/coaches/{world.jon.id}/profile/edit").status_code == 403
    assert browser(app, "ben@example.com").get("/o/river/profile").status_code == 403
    ada = browser(app, "ada@example.com")
    page = ada.get(f"/o/river/coaches/{world.jon.id}/profile/edit")
    assert page.status_code == 200 and "Tennis serve specialist" in page.get_data(as_text=True)
    token = csrf_from(page.get_data(as_text=True))
    saved = ada.post(f"/o/river/coaches/{world.jon.id}/profile/edit", data={"csrf_token": token, **VALID})
    assert saved.status_code == 303
    assert reload(world, world.jon_profile.id).headline == "Serve and volley coach"


def test_live_preview_renders_the_card_and_writes_nothing(app, world, quiet):
    jon = browser(app, "jon@example.com")
    token = csrf_from(jon.get("/o/river/profile").get_data(as_text=True))
    db.session.rollback()
    tenancy.activate(world.org.id)
    events = db.session.scalar(select(func.count()).select_from(OutboxEvent))
    response = jon.post("/o/river/profile/preview", headers=HX,
                        data={"csrf_token": token, **VALID, "headline": "Unsaved headline",
                              "term_ids": [str(world.terms["serve"].id)]})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert "Unsaved headline" in html and "Preview: not saved yet" in html and "<strong>serves</strong>" in html
    assert "Serve" in html
    bad = jon.post("/o/river/profile/preview", headers=HX, data={"csrf_token": token, **VALID, "headline": "h" * 300})
    assert bad.status_code == 422 and "at most 120" in bad.get_data(as_text=True)
    assert reload(world, world.jon_profile.id).headline == "Tennis serve specialist"
    assert db.session.scalar(select(func.count()).select_from(OutboxEvent)) == events
    assert db.session.scalar(select(func.count()).select_from(CoachProfileTerm).where(
        CoachProfileTerm.profile_id == world.jon_profile.id)) == 2


def test_preview_without_javascript_keeps_the_form_values(app, world):
    kim = browser(app, "kim@example.com")
    token = csrf_from(kim.get("/o/river/profile").get_data(as_text=True))
    response = kim.post("/o/river/profile", data={"csrf_token": token, **VALID, "bio": "Line *one*",
                                                  "preview": "1"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in html
    assert "Preview: not saved yet" in html and "<em>one</em>" in html
    values = form_values(html)
    assert values["headline"] == "Serve and volley coach" and values["bio"] == "Line *one*"
    assert values["tags"] == "Serve, Beginners, serve" and values["location"] == "Berlin"
    assert 'name="languages" value="de" checked' in html  # the language ticked stays ticked
    db.session.rollback()
    tenancy.activate(world.org.id)
    assert profiles.profile_of(world.org, world.kim) is None  # nothing made, nothing saved


def test_verification_pages_are_admin_only_and_audited(app, world):
    url = f"/o/river/coaches/{world.jon.id}/profile/verification"
    jon = browser(app, "jon@example.com")
    token = csrf_from(jon.get("/o/river/profile").get_data(as_text=True))
    assert jon.post(url, data={"csrf_token": token, "action": "verify", "note": "me"}).status_code == 403
    ada = browser(app, "ada@example.com")
    token = csrf_from(ada.get(f"/o/river/coaches/{world.jon.id}/profile").get_data(as_text=True))
    empty = ada.post(url, data={"csrf_token": token, "action": "verify", "note": ""})
    assert empty.status_code == 422 and "Say what you checked" in empty.get_data(as_text=True)
    done = ada.post(url, data={"csrf_token": token, "action": "verify", "note": "DTB licence seen"})
    assert done.status_code == 303
    profile = reload(world, world.jon_profile.id)
    assert profile.verified and profile.verification_note == "DTB licence seen"
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "directory.coach_verified", AuditEvent.tenant_id == world.org.id)) == 1


def test_the_profile_shows_the_rating_and_the_newest_reviews(app, world):
    reviews.write_review(world.ended, world.ana, 4, "Sharp notes on my crosshair placement.")
    db.session.commit()
    html = browser(app, "ben@example.com").get(f"/o/river/coaches/{world.maria.id}/profile").get_data(as_text=True)
    assert "Sharp notes on my crosshair placement." in html
    assert "4 out of 5 stars" in html and "rating-chart" in html
    assert f'<a href="/o/river/coaches/{world.maria.id}/reviews">All reviews (1)</a>' in html


def test_the_profile_page_sends_as_many_statements_whatever_the_profile_teaches(app, world):
    ben = browser(app, "ben@example.com")
    path = f"/o/river/coaches/{world.maria.id}/profile"
    before = statements_for(app, ben, path)
    tenancy.activate(world.org.id)
    valorant = world.terms["valorant"]
    extra = [taxonomy.add_term(world.org, kind, f"{kind} {n}", world.admin, parent_id=valorant.id)
             for kind in ("skill", "role", "level") for n in range(3)]
    taxonomy.set_profile_terms(world.maria_profile, [valorant.id, *[t.id for t in extra]], world.maria)
    db.session.commit()
    assert statements_for(app, ben, path) == before


def test_a_photo_chosen_by_an_admin_stays_when_the_coach_saves_the_form(app, world):
    photo = media_row(world.org.id, world.admin, title="Jon on court")
    photo.kind, photo.content_type = "image", "image/jpeg"
    db.session.commit()
    tenancy.activate(world.org.id)
    with pytest.raises(profiles.ProfileError):  # but Maria cannot take the admin's picture for herself
        profiles.save_profile(world.maria_profile, {**VALID, "photo_media_id": str(photo.id)}, world.maria)
    db.session.rollback()
    tenancy.activate(world.org.id)
    profiles.save_profile(world.jon_profile, {**VALID, "photo_media_id": str(photo.id)}, world.admin)
    db.session.commit()
    jon = browser(app, "jon@example.com")
    page = jon.get("/o/river/profile").get_data(as_text=True)
    assert f'<option selected value="{photo.id}">Jon on court</option>' in page
    data = {**VALID, **form_values(page), "photo_media_id": str(photo.id)}
    assert jon.post("/o/river/profile", data=data).status_code == 303
    assert reload(world, world.jon_profile.id).photo_media_id == photo.id


HOSTILE = ["x" * 10_000, "a\x00b", "İ" * 40, "\u202eevil\u202c", "99999999999999999999999999999", "1e309", "-0",
           "'; DROP TABLE coach_profiles; --", "<script>alert(1)</script>", "😀" * 130, ""]


@pytest.mark.parametrize("field", ["headline", "bio", "languages", "years_experience", "certifications", "tags",
                                   "location", "photo_media_id", "intro_media_id", "term_ids", "online"])
def test_hostile_values_in_any_field_get_a_message_never_a_500(app, world, field):
    jon = browser(app, "jon@example.com")
    token = csrf_from(jon.get("/o/river/profile").get_data(as_text=True))
    for value in HOSTILE:
        for headers in ({}, HX):
            for url in ("/o/river/profile", "/o/river/profile/preview"):
                response = jon.post(url, headers=headers, data={"csrf_token": token, **VALID, field: value})
                assert response.status_code in (200, 204, 303, 400, 422), (field, value[:20], url, response.status_code)
    db.session.rollback()
    tenancy.activate(world.org.id)
    saved = db.session.get(CoachProfile, world.jon_profile.id)
    assert "\x00" not in saved.headline and len(saved.headline) <= 120 and len(saved.tags) <= 20
