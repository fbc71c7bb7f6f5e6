"""The web app manifest and ``/favicon.ico``: what a phone needs to put Coach on its home screen, and the icon
browsers ask for at the root whatever the page links."""
from __future__ import annotations

from flask import current_app, jsonify, redirect

from coach.blueprints.core import bp

# The brand green and the page background of the light theme (coach/static/css/app.css).
THEME_COLOUR = "#1f6f5c"
BACKGROUND_COLOUR = "#f5f7fa"
ICONS = (("icons/icon-192.png", "192x192", "any"), ("icons/icon-512.png", "512x512", "any"),
         ("icons/icon-maskable-512.png", "512x512", "maskable"))


def _static(filename: str) -> str:
    """The fingerprinted URL when the static build made one (cached for good), else the plain one."""
    return current_app.extensions["static_digest"].static_url_for("static", filename=filename)


@bp.get("/manifest.webmanifest")
def web_manifest():
    """The manifest (``application/manifest+json``): name, start page, standalone display, colours, icons."""
    response = jsonify(
        name="Coach", short_name="Coach", description="Coaching: sessions, feeds, chat and video review.",
        id="/", start_url="/", scope="/", display="standalone", theme_color=THEME_COLOUR,
        background_color=BACKGROUND_COLOUR,
        icons=[{"src": _static(path), "sizes": sizes, "type": "image/png", "purpose": purpose}
               for path, sizes, purpose in ICONS])
    response.mimetype = "application/manifest+json"
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


@bp.get("/favicon.ico")
def favicon():
    """Browsers and crawlers ask here without reading the page: the static file (fingerprinted, cached)."""
    response = redirect(_static("icons/favicon.ico"), 301)
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response
