"""An organization's branding: an accent colour and a logo, served as a stylesheet and an image of their own.

The accent colour must carry readable button text: its contrast (WCAG 2 relative luminance) against white and
against the stylesheet's dark text (``--ink``) is computed, the better one of them becomes the button text if it
reaches AA (4.5:1), and a colour where neither does is refused with both ratios in the message.

A logo (uploaded, or an image of the organization's media library) is decoded and checked by Pillow, reduced to at
most 256×256, stripped of its metadata and stored as PNG under the organization's prefix. Every change raises
``branding_version``: the stylesheet's and the logo's URLs carry it, so both are cached for good and a new
version is a new URL.
"""
from __future__ import annotations

import io
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flask import current_app, has_request_context, url_for
from PIL import Image, UnidentifiedImageError
from sqlalchemy import select

from coach.errors import DomainError, NotAllowed
from coach.extensions import db
from coach.media.models import MediaItem
from coach.media.storage import StorageError, get_storage
from coach.orgs.models import ADMIN, Membership, Organization
from coach.platform import audit, mail

WHITE = "#ffffff"
DARK_TEXT = "#1d2433"  # --ink in coach/static/css/app.css
AA = 4.5
LOGO_MAX_BYTES = 5 * 1024 * 1024
LOGO_SIZE = (256, 256)
# A logo's PNG is at most 256×256 RGBA: well under this once compressed (the route reads this much at most).
LOGO_READ_LIMIT = 1024 * 1024
# Pillow refuses larger pictures as decompression bombs before decoding them.
MAX_PIXELS = 40_000_000
ACCEPTED_FORMATS = {"PNG", "JPEG", "GIF", "WEBP"}


class BrandingError(DomainError):
    """A colour or a logo the organization cannot have."""


@dataclass(frozen=True)
class Accent:
    """A checked accent colour and the text colour buttons carry on it."""

    color: str
    ink: str
    ratio: float

    @property
    def light(self) -> bool:
        """Dark text on it: the colour itself is too light for text on a white page (links use the ink)."""
        return self.ink == DARK_TEXT


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(color: str) -> float:
    """WCAG 2 relative luminance of ``#rrggbb``."""
    r, g_, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g_) + 0.0722 * _channel(b)


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two colours, 1 to 21."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def normalize_color(value: str | None) -> str:
    """``#RRGGBB`` or ``RRGGBB`` (spaces around allowed) → ``#rrggbb``; anything else is refused."""
    text = (value or "").strip().lower()
    if not text.startswith("#"):
        text = "#" + text
    if len(text) != 7 or any(ch not in "0123456789abcdef" for ch in text[1:]):
        raise BrandingError(f"{(value or '').strip()!r} is not a colour: write it as #rrggbb, e.g. #1f6f5c.")
    return text


def check_accent(value: str | None) -> Accent:
    """The accent colour with its button text colour (white or the dark ink, whichever contrasts more).

    :raises BrandingError: not ``#rrggbb``, or neither text colour reaches 4.5:1 on it (both ratios named).
    """
    color = normalize_color(value)
    on_white, on_dark = contrast(color, WHITE), contrast(color, DARK_TEXT)
    ink, ratio = (WHITE, on_white) if on_white >= on_dark else (DARK_TEXT, on_dark)
    if ratio < AA:
        raise BrandingError(
            f"{color} is too hard to read text on: white text has a contrast of {on_white:.2f}:1 and dark text "
            f"{on_dark:.2f}:1, and buttons need at least {AA}:1 (WCAG AA). Choose a darker or a lighter colour.")
    return Accent(color, ink, round(ratio, 2))


def accent_of(org: Organization) -> Accent | None:
    return check_accent(org.accent_color) if org.accent_color else None


def has_branding(org: Organization | None) -> bool:
    return org is not None and bool(org.accent_color or org.logo_key)


def _require_admin(org: Organization, actor: Membership) -> None:
    if actor.role != ADMIN or actor.tenant_id != org.id:
        raise NotAllowed("Only the organization's admins change its branding.")


def _bump(org: Organization, action: str, actor: Membership, before, after) -> None:
    org.branding_version += 1
    db.session.flush()
    audit.record(action, actor=actor.user, target_type="organization", target_id=org.id, tenant_id=org.id,
                 details={"before": before, "after": after, "version": org.branding_version})


def set_accent(org: Organization, value: str | None, actor: Membership) -> Accent | None:
    """Set (or with an empty value, remove) the accent colour. :raises BrandingError: see :func:`check_accent`."""
    _require_admin(org, actor)
    accent = check_accent(value) if (value or "").strip() else None
    color = accent.color if accent else None
    if color != org.accent_color:
        before, org.accent_color = org.accent_color, color
        _bump(org, "branding.accent_changed" if color else "branding.accent_removed", actor, before, color)
    return accent


# --- the logo --------------------------------------------------------------------------------------------

def _logo_png(source: BinaryIO) -> tuple[bytes, tuple[int, int]]:
    """The picture in ``source`` as a PNG of at most 256×256 without metadata, and its size.

    :raises BrandingError: not an image Pillow can read (or one of a format we do not take), or too large.
    """
    refused = BrandingError("That file is not an image we can use as a logo: upload a PNG, JPEG, GIF or WebP.")
    try:
        with Image.open(source) as probe:
            if probe.format not in ACCEPTED_FORMATS:
                raise refused
            if probe.width * probe.height > MAX_PIXELS:
                raise BrandingError("That picture has too many pixels for a logo (at most 40 megapixels).")
            probe.verify()
        source.seek(0)
        with Image.open(source) as image:
            image.seek(0)  # an animated GIF or WebP: its first frame
            image.load()
            picture = image.convert("RGBA")
    except BrandingError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise refused from exc
    picture.thumbnail(LOGO_SIZE, Image.Resampling.LANCZOS)
    # A fresh image from the pixels alone: no EXIF, ICC profile, text chunks or GPS of the original.
    clean = Image.new("RGBA", picture.size)
    clean.paste(picture)
    out = io.BytesIO()
    clean.save(out, format="PNG", optimize=True)
    return out.getvalue(), clean.size


def logo_key(org: Organization, version: int) -> str:
    return f"{org.id}/branding/logo-{version}-{uuid.uuid4().hex[:8]}.png"


def _store(org: Organization, png: bytes) -> str:
    key = logo_key(org, org.branding_version + 1)
    with tempfile.TemporaryDirectory(prefix="coach-logo-") as folder:
        path = Path(folder) / "logo.png"
        path.write_bytes(png)
        try:
            get_storage().upload_file(path, key, "image/png")
        except StorageError as exc:
            raise BrandingError("The logo could not be stored just now. Try again in a moment.", status=503) from exc
    return key


def _replace_logo(org: Organization, key: str | None, actor: Membership, details: dict | None = None) -> None:
    """Point the organization at ``key``; the old object is deleted once the change has committed
    (:func:`collect_garbage`), so a rolled-back change still finds its logo."""
    old = org.logo_key
    org.logo_key = key
    org.branding_version += 1
    db.session.flush()
    audit.record("branding.logo_changed" if key else "branding.logo_removed", actor=actor.user,
                 target_type="organization", target_id=org.id, tenant_id=org.id,
                 details={"before": old, "after": key, "version": org.branding_version, **(details or {})})
    if old:
        db.session.info.setdefault("logo_garbage", []).append(old)


def set_logo(org: Organization, source: BinaryIO, actor: Membership, *, origin: str = "upload") -> tuple[int, int]:
    """Make the picture in ``source`` the organization's logo (resized, stripped, stored as PNG).

    :returns: the stored logo's size in pixels.
    :raises BrandingError: not an image, too large, or the storage would not take it (nothing changes).
    """
    _require_admin(org, actor)
    head = source.read(LOGO_MAX_BYTES + 1)
    if len(head) > LOGO_MAX_BYTES:
        raise BrandingError("That file is larger than 5 MB: a logo is shown at most 256 pixels wide.", status=413)
    if not head:
        raise BrandingError("Choose a picture to upload.")
    png, size = _logo_png(io.BytesIO(head))
    _replace_logo(org, _store(org, png), actor, {"width": size[0], "height": size[1], "from": origin})
    return size


def set_logo_from_media(org: Organization, item: MediaItem, actor: Membership) -> tuple[int, int]:
    """Make a ready image of the organization's media library its logo."""
    _require_admin(org, actor)
    if item.tenant_id != org.id or item.kind != "image" or item.status != "ready":
        raise BrandingError("Choose a ready image of this organization's media library.")
    if (item.size_bytes or 0) > 50 * LOGO_MAX_BYTES:
        raise BrandingError("That image is too large to make a logo of.")
    with tempfile.TemporaryDirectory(prefix="coach-logo-") as folder:
        path = Path(folder) / "original"
        try:
            get_storage().download(item.original_key, path)
        except StorageError as exc:
            raise BrandingError("The image could not be read from storage just now. Try again.", status=503) from exc
        with path.open("rb") as source:
            png, size = _logo_png(source)
    _replace_logo(org, _store(org, png), actor, {"width": size[0], "height": size[1], "from": f"media {item.id}"})
    return size


def remove_logo(org: Organization, actor: Membership) -> bool:
    """Remove the logo; whether there was one."""
    _require_admin(org, actor)
    if not org.logo_key:
        return False
    _replace_logo(org, None, actor)
    return True


def logo_candidates(org: Organization, limit: int = 24) -> list[MediaItem]:
    """The organization's ready images, newest first: what the branding page offers as a logo."""
    return list(db.session.scalars(select(MediaItem).where(
        MediaItem.tenant_id == org.id, MediaItem.kind == "image", MediaItem.status == "ready")
        .order_by(MediaItem.created_at.desc(), MediaItem.id.desc()).limit(limit)))


def collect_garbage() -> None:
    """Delete the logo objects the committed changes replaced (call after the commit; a failure leaves them)."""
    keys = db.session.info.pop("logo_garbage", [])
    if keys:
        try:
            get_storage().delete(keys)
        except StorageError:
            current_app.logger.warning("old logos %s could not be deleted", keys)


def read_logo(org: Organization) -> bytes | None:
    """The stored logo's bytes (None: no logo, or the object is gone)."""
    if not org.logo_key:
        return None
    try:
        return get_storage().read_head(org.logo_key, LOGO_READ_LIMIT) or None
    except StorageError:
        return None


# --- where they are served --------------------------------------------------------------------------------

def _path(endpoint: str, **values) -> str:
    """The app's path for ``endpoint``, in a request or not (emails are queued by jobs too: an export's)."""
    if has_request_context():
        return url_for(endpoint, **values)
    return current_app.url_map.bind("localhost", script_name=current_app.config["APPLICATION_ROOT"]).build(
        endpoint, values)


def stylesheet_path(org: Organization) -> str:
    return _path("admin.brand_css", slug=org.slug, version=org.branding_version)


def logo_path(org: Organization) -> str | None:
    return _path("admin.brand_logo", slug=org.slug, version=org.branding_version) if org.logo_key else None


def mail_brand(context: dict) -> None:
    """Emails about an organization (``org`` in their context) carry its logo and colour."""
    org = context.get("org")
    if not isinstance(org, Organization) or not has_branding(org):
        return
    accent = accent_of(org)
    logo = logo_path(org)
    context.setdefault("brand", {
        "name": org.name,
        "accent": accent.color if accent else None,
        "ink": accent.ink if accent else None,
        "link": (DARK_TEXT if accent.light else accent.color) if accent else None,
        "logo_url": current_app.config["APP_BASE_URL"].rstrip("/") + logo if logo else None,
    })


mail.context_processor(mail_brand)
