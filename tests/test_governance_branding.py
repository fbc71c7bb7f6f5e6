"""Branding: the accent colour (contrast checked), the logo (uploaded or from the media library; checked, resized,
stripped), the organization's stylesheet and logo URLs, emails that carry them, and nothing of it elsewhere."""
from __future__ import annotations

import io
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from coach import tenancy
from coach.extensions import db
from coach.governance import branding
from coach.media.models import MediaItem
from coach.media.storage import get_storage
from coach.orgs.models import Organization
from coach.orgs.service import membership_for
from tests.conftest import Auth, csrf_from
from tests.factories import add_member, make_org, make_user

BRANDING = "/o/harbour/admin/branding"


@pytest.fixture()
def world(ctx):
    ada = make_user("ada@example.com", "Ada Admin")
    org = make_org(ada, slug="harbour", name="Harbour Club")
    tenancy.activate(org.id)
    add_member(org, make_user("carl@example.com", "Carl Coach"), "coach")
    other_admin = make_user("zed@example.com", "Zed Stranger")
    make_org(other_admin, slug="hill", name="Hill Club")
    tenancy.activate(org.id)
    return org


def browser(app, email: str = "ada@example.com"):
    client = app.test_client()
    assert Auth(client).login(email).status_code == 303
    return client


def org_row(slug: str = "harbour") -> Organization:
    db.session.rollback()
    return db.session.scalar(select(Organization).where(Organization.slug == slug))


def picture(fmt: str = "PNG", size=(800, 400), exif: bool = False) -> bytes:
    image = Image.new("RGB", size, (200, 40, 40))
    out = io.BytesIO()
    if exif:
        data = Image.Exif()
        data[0x010F] = "SecretCam"  # Make
        image.save(out, format=fmt, exif=data)
    else:
        image.save(out, format=fmt)
    return out.getvalue()


def post_accent(client, color: str):
    token = csrf_from(client.get(BRANDING).get_data(as_text=True))
    return client.post(f"{BRANDING}/accent", data={"csrf_token": token, "accent_color": color})


def post_logo(client, data: bytes, filename: str = "logo.png", content_type: str = "image/png"):
    token = csrf_from(client.get(BRANDING).get_data(as_text=True))
    return client.post(f"{BRANDING}/logo", content_type="multipart/form-data",
                       data={"csrf_token": token, "logo": (io.BytesIO(data), filename, content_type)})


def stylesheet_href(page: str) -> str | None:
    match = re.search(r'<link rel="stylesheet" href="(/o/[^"]+/brand-\d+\.css)">', page)
    return match.group(1) if match else None


def stored_logo(org: Organization) -> Image.Image:
    return Image.open(io.BytesIO(get_storage().read_head(org.logo_key, 2_000_000)))


# --- the accent colour ------------------------------------------------------------------------------

def test_contrast_is_the_wcag_ratio():
    assert round(branding.contrast("#ffffff", "#000000"), 2) == 21.0
    assert round(branding.contrast("#777777", "#ffffff"), 2) == 4.48


def test_a_colour_text_cannot_be_read_on_is_refused_with_its_ratios(app, world):
    ada = browser(app)
    response = post_accent(ada, "#808080")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "white text has a contrast of 3.95:1" in page and "dark text 3.93:1" in page and "4.5:1" in page
    assert org_row().accent_color is None
    assert post_accent(ada, "teal-ish").status_code == 422
    assert org_row().accent_color is None


def test_a_passing_colour_is_served_in_the_organizations_stylesheet(app, world, owner_db):
    ada = browser(app)
    assert stylesheet_href(ada.get("/o/harbour/").get_data(as_text=True)) is None  # no branding, no stylesheet
    assert post_accent(ada, "#0B5FFF").status_code == 303
    assert org_row().accent_color == "#0b5fff"
    href = stylesheet_href(ada.get("/o/harbour/").get_data(as_text=True))
    assert href == "/o/harbour/admin/brand-1.css"
    css = app.test_client().get(href)  # public: no session needed
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert "--brand: #0b5fff; --brand-ink: #ffffff;" in css.get_data(as_text=True)
    assert "immutable" in css.headers["Cache-Control"] and "max-age=31536000" in css.headers["Cache-Control"]
    # A light colour: buttons carry the dark text instead, and links keep the ink.
    assert post_accent(ada, "#ffd24a").status_code == 303
    new_href = stylesheet_href(ada.get("/o/harbour/").get_data(as_text=True))
    assert new_href == "/o/harbour/admin/brand-2.css" != href
    assert "--brand-ink: #1d2433;" in app.test_client().get(new_href).get_data(as_text=True)
    assert app.test_client().get(href).status_code == 404  # the old version is gone, not changed
    owner_db.execute("SELECT set_config('app.tenant_id', id::text, false) FROM organizations WHERE slug = 'harbour'")
    actions = [r[0] for r in owner_db.execute("SELECT action FROM audit_events WHERE action LIKE 'branding.%' "
                                              "ORDER BY created_at")]
    assert actions == ["branding.accent_changed", "branding.accent_changed"]


def test_no_inline_style_anywhere_on_the_branded_pages(app, world):
    ada = browser(app)
    post_accent(ada, "#0b5fff")
    for path in ("/o/harbour/", BRANDING, "/o/harbour/admin/settings"):
        page = ada.get(path).get_data(as_text=True)
        assert "style=" not in page and "<style" not in page


def test_only_admins_brand_the_organization(app, world):
    carl = browser(app, "carl@example.com")
    assert carl.get(BRANDING).status_code == 403
    token = csrf_from(carl.get("/profile").get_data(as_text=True))
    assert carl.post(f"{BRANDING}/accent", data={"csrf_token": token, "accent_color": "#0b5fff"}).status_code == 403
    assert org_row().accent_color is None


# --- the logo -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, size, expected", [("PNG", (800, 400), (256, 128)), ("JPEG", (300, 900), (85, 256)),
                                                  ("PNG", (64, 48), (64, 48))])
def test_a_picture_becomes_a_png_logo_of_at_most_256_pixels(app, world, fmt, size, expected):
    ada = browser(app)
    response = post_logo(ada, picture(fmt, size, exif=fmt == "JPEG"), f"logo.{fmt.lower()}", f"image/{fmt.lower()}")
    assert response.status_code == 303
    org = org_row()
    assert org.logo_key.startswith(f"{org.id}/branding/logo-1-")
    stored = stored_logo(org)
    assert stored.format == "PNG" and stored.size == expected
    assert not stored.getexif() and "exif" not in stored.info
    # The header shows it, served publicly under a versioned URL.
    page = ada.get("/o/harbour/").get_data(as_text=True)
    assert '<img src="/o/harbour/admin/logo-1.png" alt="Harbour Club">' in page
    served = app.test_client().get("/o/harbour/admin/logo-1.png")
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert Image.open(io.BytesIO(served.data)).size == expected
    assert "immutable" in served.headers["Cache-Control"]


def test_a_text_file_named_png_is_refused(app, world):
    response = post_logo(browser(app), b"just some words, not a picture\n" * 10, "logo.png")
    assert response.status_code == 422
    assert "not an image we can use as a logo" in response.get_data(as_text=True)
    assert org_row().logo_key is None and org_row().branding_version == 0


@pytest.mark.parametrize("megabytes", [6, 50])
def test_an_oversized_upload_is_refused_cleanly(app, world, megabytes):
    response = post_logo(browser(app), b"\x89PNG" + b"\0" * (megabytes * 1024 * 1024), "huge.png")
    assert response.status_code == 413
    assert "larger than allowed" in response.get_data(as_text=True)
    assert org_row().logo_key is None


def test_a_new_logo_replaces_the_old_object_and_removing_it_deletes_it(app, world):
    ada = browser(app)
    post_logo(ada, picture())
    first = org_row().logo_key
    post_logo(ada, picture("PNG", (100, 100)))
    second = org_row()
    assert second.logo_key != first and second.branding_version == 2
    second_key = second.logo_key
    assert get_storage().size_of(first) is None
    token = csrf_from(ada.get(BRANDING).get_data(as_text=True))
    assert ada.post(f"{BRANDING}/logo/remove", data={"csrf_token": token}).status_code == 303
    assert org_row().logo_key is None and get_storage().size_of(second_key) is None
    assert "admin/logo-" not in ada.get("/o/harbour/").get_data(as_text=True)
    assert app.test_client().get("/o/harbour/admin/logo-2.png").status_code == 404


def test_an_image_of_the_media_library_becomes_the_logo(app, world, tmp_path):
    org = world
    admin = membership_for(org, _user("ada@example.com"))
    key = f"{org.id}/{uuid.uuid4()}/original"
    path = Path(tmp_path) / "crest.jpg"
    path.write_bytes(picture("JPEG", (1000, 1000)))
    get_storage().upload_file(path, key, "image/jpeg")
    tenancy.activate(org.id)
    item = MediaItem(tenant_id=org.id, owner_membership_id=admin.id, audience="organization", kind="image",
                     title="Club crest", filename="crest.jpg", content_type="image/jpeg", status="ready",
                     declared_bytes=10, size_bytes=path.stat().st_size, counted_bytes=10, part_bytes=10, part_count=1,
                     original_key=key, derived_keys={}, upload_expires_at=datetime.now(timezone.utc))
    db.session.add(item)
    db.session.commit()
    ada = browser(app)
    page = ada.get(BRANDING).get_data(as_text=True)
    assert "Club crest" in page
    token = csrf_from(page)
    assert ada.post(f"{BRANDING}/logo", data={"csrf_token": token, "media_id": str(item.id)}).status_code == 303
    assert stored_logo(org_row()).size == (256, 256)
    # Another organization's media id is not a choice.
    bad = ada.post(f"{BRANDING}/logo", data={"csrf_token": token, "media_id": str(uuid.uuid4())})
    assert bad.status_code == 422 and "Choose one of the images shown." in bad.get_data(as_text=True)


def _user(email: str):
    from coach.accounts.service import find_user_by_email

    return find_user_by_email(email)


# --- emails and other organizations -----------------------------------------------------------------------

def test_an_email_about_the_organization_carries_its_logo_and_colour(app, world, mailbox, job_runner):
    ada = browser(app)
    post_accent(ada, "#0b5fff")
    post_logo(ada, picture())
    page = ada.get("/o/harbour/admin/members").get_data(as_text=True)
    with job_runner.paused():
        response = ada.post("/o/harbour/admin/invitations",
                            data={"csrf_token": csrf_from(page), "email": "new@example.com", "role": "athlete"})
        assert response.status_code == 303
        job_runner.drain()
    message = mailbox.wait_for("new@example.com")
    html = message.get_body(preferencelist=("html",)).get_content()
    base = app.config["APP_BASE_URL"].rstrip("/")
    assert f'<img src="{base}/o/harbour/admin/logo-2.png" alt="Harbour Club"' in html
    assert "background: #0b5fff" in html
    assert app.test_client().get("/o/harbour/admin/logo-2.png").status_code == 200


def test_another_organizations_pages_show_none_of_the_branding(app, world):
    ada = browser(app)
    post_accent(ada, "#0b5fff")
    post_logo(ada, picture())
    zed = browser(app, "zed@example.com")
    for path in ("/o/hill/", "/o/hill/admin/settings", "/o/hill/admin/branding"):
        page = zed.get(path).get_data(as_text=True)
        assert "/admin/brand-" not in page and "harbour" not in page and "/admin/logo-" not in page
    # And the other organization, without branding, has no stylesheet: the same 404 as an address that is no
    # organization, so the URL tells a stranger nothing.
    assert app.test_client().get("/o/hill/admin/brand-0.css").status_code == 404
    assert app.test_client().get("/o/no-such-club/admin/brand-0.css").status_code == 404
