"""Skill frameworks: the scale (2–10 labels), areas and skills in order with required levels, archive and restore,
the rules that keep records meaningful (a used level or an observed skill stays), CSV export and import (the
format round-trips; wrong columns, bad levels, too many rows, non-UTF-8 and empty files are refused with the
line and nothing is written), the demo examples; the pages (staff edit, athletes read, schedulers and another
organization see nothing)."""
from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from coach import tenancy
from coach.extensions import db
from coach.progress import frameworks, records
from coach.progress.access import ProgressError
from coach.progress.models import Skill, SkillArea, SkillFramework
from tests.conftest import csrf_from
from tests.test_progress_records import World, form_of


@pytest.fixture()
def w(ctx, app, owner_db):
    return World(app, owner_db)


def count(model, org) -> int:
    tenancy.activate(org.id)
    return db.session.scalar(select(func.count()).select_from(model).where(model.tenant_id == org.id))


# --- the service -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale,message", [
    ("Only one", "2 to 10 levels"), ("\n".join(f"L{i}" for i in range(11)), "2 to 10 levels"),
    ("Same\nsame", "same label"), ("A\n" + "x" * 41, "at most 40")])
def test_a_scale_has_two_to_ten_distinct_short_labels(w, scale, message):
    with pytest.raises(ProgressError, match=message):
        frameworks.create_framework(w.org.id, w.admin, "Golf", "", scale)


def test_titles_are_unique_among_frameworks_in_use_and_an_archived_one_frees_its_title(w):
    with pytest.raises(ProgressError) as taken:
        frameworks.create_framework(w.org.id, w.coach, "tennis", "")
    assert taken.value.status == 409
    frameworks.archive(w.framework, w.coach)
    again = frameworks.create_framework(w.org.id, w.coach, "Tennis", "")
    assert again.scale == ["Introduced", "Practised", "Competent", "Proficient"]
    with pytest.raises(ProgressError, match="exists already"):
        frameworks.restore(w.framework, w.coach)


def test_athletes_and_schedulers_cannot_change_frameworks(w):
    for member in (w.athlete, w.scheduler):
        with pytest.raises(ProgressError) as refused:
            frameworks.create_framework(w.org.id, member, "Mine", "")
        assert refused.value.status == 403


def test_required_level_must_be_on_the_scale(w):
    area = frameworks.add_area(w.framework, w.coach, "Volley")
    for level in ("0", "5", "two"):
        with pytest.raises(ProgressError, match="1 to 4"):
            frameworks.add_skill(w.framework, area, w.coach, "Drop volley", "", level)


def test_a_scale_cannot_lose_a_level_in_use_but_can_grow_and_be_renamed(w):
    with pytest.raises(ProgressError, match="needs at least 3"):
        frameworks.update_framework(w.framework, w.coach, "Tennis", "", "A\nB")
    frameworks.update_framework(w.framework, w.coach, "Tennis", "", "Seen\nTried\nCan do\nMastered\nTeaches it")
    assert w.framework.top_level == 5


def test_an_observed_skill_and_its_area_stay(w):
    record = records.start(w.booking(), w.coach, w.framework.id)
    records.save_draft(record, w.coach, framework_id=w.framework.id, levels={str(w.flat.id): "2"})
    with pytest.raises(ProgressError) as refused:
        frameworks.remove_skill(w.framework, w.flat, w.coach)
    assert refused.value.status == 409
    area = db.session.get(SkillArea, w.flat.area_id)
    with pytest.raises(ProgressError, match="stays"):
        frameworks.remove_area(w.framework, area, w.coach)
    frameworks.remove_skill(w.framework, w.kick, w.coach)  # never observed: it goes
    assert count(Skill, w.org) == 2


def test_moving_areas_and_skills_reorders_them(w):
    view = frameworks.structure(w.framework)
    movement = view.areas[1].area
    frameworks.move(w.framework, movement, w.coach, -1)
    frameworks.move(w.framework, w.kick, w.coach, -1)
    view = frameworks.structure(w.framework)
    assert [a.area.title for a in view.areas] == ["Movement", "Serve"]
    assert [s.title for s in view.areas[1].skills] == ["Kick serve", "Flat serve"]


def test_an_archived_framework_is_read_only(w):
    frameworks.archive(w.framework, w.coach)
    with pytest.raises(ProgressError) as refused:
        frameworks.add_area(w.framework, w.coach, "Return")
    assert refused.value.status == 409
    with pytest.raises(ProgressError, match="archived"):
        records.start(w.booking(), w.coach, w.framework.id)


# --- CSV -------------------------------------------------------------------------------------------------

def test_export_then_import_gives_the_same_framework(w):
    frameworks.add_skill(w.framework, frameworks.structure(w.framework).areas[0].area, w.coach, "=cmd|' /C calc'!A0",
                         "Spreadsheet, beware", "")
    data = frameworks.export_csv(w.framework)
    assert data.splitlines()[0] == "scale,Introduced,Practised,Competent,Proficient"
    assert data.splitlines()[1] == "area,skill,description,required_level"
    assert "'=cmd" in data  # shown as text by a spreadsheet, never run as a formula
    copy = frameworks.import_csv(w.org.id, w.coach, "Tennis copy", data.encode())
    original, imported = frameworks.structure(w.framework), frameworks.structure(copy)
    assert copy.scale == w.framework.scale
    shape = [[(s.title, s.description, s.required_level) for s in a.skills] for a in original.areas]
    assert [[(s.title, s.description, s.required_level) for s in a.skills] for a in imported.areas] == shape
    assert imported.areas[0].skills[-1].title == "=cmd|' /C calc'!A0"


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"   \n\n", "empty"),
    (b"\xff\xfearea,skill\n", "not UTF-8"),
    (b"area,skill,level\nServe,Flat,2\n", "the columns must be area,skill,description,required_level"),
    (b"area,skill,description,required_level\n", "no skills"),
    (b"area,skill,description,required_level\nServe,Flat,,5\n", "Line 2: The required level must be a level from 1 to 4"),
    (b"scale,A,B\narea,skill,description,required_level\nServe,Flat,,3\n", "Line 3: The required level"),
    (b"scale,Solo\narea,skill,description,required_level\n", "Line 1 (the scale)"),
    (b"area,skill,description,required_level\nServe,,,\n", "Line 2: Give the skill a title"),
    (b"area,skill,description,required_level\nServe,Flat,,\nserve,flat,,\n", "Line 3: “flat” is already"),
    (b"area,skill,description,required_level\nServe,Flat,,,surprise\n", "Line 2: too many cells"),
])
def test_a_bad_file_is_refused_with_the_reason_and_nothing_is_written(w, data, message):
    before = (count(SkillFramework, w.org), count(SkillArea, w.org), count(Skill, w.org))
    with pytest.raises(ProgressError) as refused:
        frameworks.import_csv(w.org.id, w.coach, "Imported", data)
    assert message in str(refused.value)
    assert 400 <= refused.value.status < 500
    db.session.rollback()
    assert (count(SkillFramework, w.org), count(SkillArea, w.org), count(Skill, w.org)) == before


def test_too_many_rows_is_refused(w):
    rows = "".join(f"Area,Skill {i},,\n" for i in range(frameworks.MAX_CSV_ROWS + 1))
    with pytest.raises(ProgressError, match="at most 500"):
        frameworks.import_csv(w.org.id, w.coach, "Huge", ("area,skill,description,required_level\n" + rows).encode())


def test_seed_examples_makes_two_frameworks_once(w):
    made = frameworks.seed_examples(w.org)
    assert [f.title for f in made] == ["Tennis fundamentals", "Valorant aim & game sense"]
    assert frameworks.seed_examples(w.org) == []
    view = frameworks.structure(made[0])
    assert [a.area.title for a in view.areas] == ["Serve", "Forehand", "Movement"]
    assert all(s.required_level is None or s.required_level <= len(made[0].scale) for s in view.skills())


# --- the pages -------------------------------------------------------------------------------------------

def test_coach_creates_a_framework_adds_an_area_and_a_skill_without_javascript(w):
    coach = w.client(w.coach)
    html = form_of(coach, w.url("/frameworks/new"))
    made = coach.post(w.url("/frameworks/new"), data={"csrf_token": csrf_from(html), "title": "Padel",
                                                      "description": "", "scale": "Low\nMid\nHigh"})
    assert made.status_code == 303
    page_url = made.headers["Location"]
    html = form_of(coach, page_url)
    token = csrf_from(html)
    assert coach.post(page_url + "/areas", data={"csrf_token": token, "title": "Net play"}).status_code == 303
    html = form_of(coach, page_url)
    tenancy.activate(w.org.id)
    area = db.session.scalar(select(SkillArea).where(SkillArea.tenant_id == w.org.id, SkillArea.title == "Net play"))
    added = coach.post(page_url + f"/areas/{area.id}/skills",
                       data={"csrf_token": token, "title": "Bandeja", "required_level": "2", "description": ""})
    assert added.status_code == 303
    html = form_of(coach, page_url)
    assert "Bandeja" in html and "2 · Mid" in html
    bad = coach.post(page_url + f"/areas/{area.id}/skills",
                     data={"csrf_token": token, "title": "Vibora", "required_level": "9"})
    assert bad.status_code == 422 and "1 to 3" in bad.get_data(as_text=True)


def test_import_through_the_page_and_a_wrong_file_is_a_422_with_the_reason(w):
    coach = w.client(w.coach)
    html = form_of(coach, w.url("/frameworks/import"))
    token = csrf_from(html)
    wrong = coach.post(w.url("/frameworks/import"), content_type="multipart/form-data", data={
        "csrf_token": token, "title": "Wrong", "file": (io.BytesIO(b"name,level\nx,1\n"), "wrong.csv")})
    assert wrong.status_code == 422 and "the columns must be" in wrong.get_data(as_text=True)
    good = coach.post(w.url("/frameworks/import"), content_type="multipart/form-data", data={
        "csrf_token": token, "title": "Right",
        "file": (io.BytesIO(frameworks.export_csv(w.framework).encode()), "right.csv")})
    assert good.status_code == 303
    exported = coach.get(w.url(f"/frameworks/{w.framework.id}/export.csv"))
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    assert "Flat serve" in exported.get_data(as_text=True)


def test_athletes_read_frameworks_but_cannot_change_them(w):
    athlete = w.client(w.athlete)
    html = form_of(athlete, w.url(f"/frameworks/{w.framework.id}"))
    assert "Flat serve" in html and "Add an area" not in html
    token = csrf_from(form_of(athlete, "/profile"))
    assert athlete.post(w.url(f"/frameworks/{w.framework.id}/areas"),
                        data={"csrf_token": token, "title": "Mine"}).status_code == 403
    assert athlete.get(w.url("/frameworks/new")).status_code == 403
    assert w.client(w.scheduler).get(w.url("/frameworks")).status_code == 403


def test_another_organization_cannot_open_or_change_a_framework(w, app, owner_db):
    framework_id, area_id = w.framework.id, w.flat.area_id
    other = World(app, owner_db)
    admin = other.client(other.admin)
    token = csrf_from(form_of(admin, other.url("/frameworks")))
    for path in (f"/frameworks/{framework_id}", f"/frameworks/{framework_id}/edit",
                 f"/frameworks/{framework_id}/export.csv"):
        assert admin.get(other.url(path)).status_code == 404
    assert admin.post(other.url(f"/frameworks/{framework_id}/areas/{area_id}/delete"),
                      data={"csrf_token": token}).status_code == 404
    assert admin.post(other.url(f"/frameworks/{framework_id}/archive"), data={"csrf_token": token}).status_code == 404
    listing = form_of(admin, other.url("/frameworks"))
    assert str(framework_id) not in listing


@pytest.mark.parametrize("value", ["²", "٣", "9" * 5000, "\x00", "-0", " 2 x"])
def test_odd_level_values_are_refused_with_the_scale_not_a_server_error(w, value):
    area = frameworks.structure(w.framework).areas[0].area
    with pytest.raises(ProgressError, match="1 to 4"):
        frameworks.add_skill(w.framework, area, w.coach, "Odd", "", value)


def test_hostile_form_values_get_a_clear_answer_never_a_server_error(w):
    booking = w.booking()
    record = records.start(booking, w.coach, w.framework.id)
    db.session.commit()
    coach = w.client(w.coach)
    path = w.url(f"/records/{record.id}")
    token = csrf_from(form_of(coach, path))
    hostile = ["\x00", "x" * 30000, "\u202e🎾", "not-a-uuid", "9" * 5000, "../../etc", "<script>", ""]
    for value in hostile:
        for data in ({"framework_id": value}, {f"level-{w.flat.id}": value, "framework_id": str(w.framework.id)},
                     {f"level-{value}": "1", "framework_id": str(w.framework.id)}, {"notes_md": value},
                     {"homework_md": value, "action": value}, {f"note-{w.flat.id}": value,
                                                               "framework_id": str(w.framework.id)}):
            answer = coach.post(path, data={"csrf_token": token, **data})
            assert answer.status_code < 500, (data, answer.status_code)
        for data in ({"media_id": value}, {"media_id": value, "moment": value}, {"label": value}):
            assert coach.post(path + "/media", data={"csrf_token": token, **data}).status_code < 500
        assert coach.post(w.url(f"/frameworks/{w.framework.id}/areas"),
                          data={"csrf_token": token, "title": value}).status_code < 500
        assert coach.post(w.url(f"/frameworks/{w.framework.id}/edit"),
                          data={"csrf_token": token, "title": value, "scale": value}).status_code < 500
        assert coach.post(w.url(f"/records/booking/{booking.id}"),
                          data={"csrf_token": token, "framework_id": value}).status_code < 500
        assert coach.get(w.url(f"/records/{value}")).status_code in (404, 308, 301)


def test_framework_page_is_a_fixed_number_of_statements(w, app):
    from tests.querycount import statements_for
    coach = w.client(w.coach)
    path = w.url(f"/frameworks/{w.framework.id}")
    small = statements_for(app, coach, path)
    tenancy.activate(w.org.id)
    for a in range(3):
        area = frameworks.add_area(w.framework, w.coach, f"Area {a}")
        for s in range(5):
            frameworks.add_skill(w.framework, area, w.coach, f"Skill {a}.{s}", "", "2")
    db.session.commit()
    assert statements_for(app, coach, path) == small
    listing = w.url("/frameworks")
    before = statements_for(app, coach, listing)
    frameworks.create_framework(w.org.id, w.coach, "Second", "")
    db.session.commit()
    assert statements_for(app, coach, listing) == before


def test_every_page_renders_for_the_roles_that_use_it(w):
    from coach.orgs.models import ATHLETE
    ended, upcoming = w.booking(), w.booking(days_ago=-5, status="confirmed")
    record = w.signed(ended, {w.flat: 2})
    draft = records.amend(record, w.coach, "Second look")
    db.session.commit()
    pages = ["/frameworks", f"/frameworks/{w.framework.id}", f"/frameworks/{w.framework.id}/edit",
             f"/frameworks/{w.framework.id}/skills/{w.flat.id}/edit", "/frameworks/new", "/frameworks/import",
             f"/records/booking/{ended.id}", f"/records/booking/{ended.id}/versions", f"/records/{record.id}",
             f"/records/{draft.id}", f"/records/booking/{upcoming.id}"]
    for member in (w.admin, w.coach, w.other_coach, w.athlete):
        browser = w.client(member)
        for path in pages:
            answer = browser.get(w.url(path))
            if member.role == ATHLETE:
                staff_only = ("/edit", "/new", "/import", str(draft.id), str(upcoming.id))
                expected = (403, 404) if any(s in path for s in staff_only) else (200,)
            else:
                expected = (200,)
            assert answer.status_code in expected, (member.role, path, answer.status_code)
    upcoming_page = form_of(w.client(w.coach), w.url(f"/records/booking/{upcoming.id}"))
    assert "once the session has ended" in upcoming_page
