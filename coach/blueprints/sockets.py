"""What every WebSocket route shares (chat's socket, a room's signaling socket): whose pages may open one,
and the handshake's extensions."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, request


def same_origin(origin: str | None) -> bool:
    """Whether a handshake's ``Origin`` is this app's own (a foreign page must not ride the cookie)."""
    if not origin:
        return False
    allowed = {urlsplit(current_app.config["APP_BASE_URL"]).netloc.lower(), request.host.lower()}
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() in allowed


def decline_extensions() -> None:
    """No permessage-deflate, whatever the browser offers: simple-websocket would then compress every frame
    once per socket and keep a compressor of about 100 KB per socket, to save a few hundred bytes of small
    frames (and the hub's pre-framed pushes rely on frames going out as they are)."""
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
