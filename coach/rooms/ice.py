"""The ICE servers a room page's browser uses to find a path to the others: STUN to learn its public address,
TURN to relay media when no direct path exists (strict NATs, firewalls that allow only 443).

TURN credentials follow the TURN REST API scheme that coturn implements (``use-auth-secret`` with
``static-auth-secret``): the username is ``"<expiry as unix time>:<member id>"`` and the password the base64 of
HMAC-SHA1(secret, username). The TURN server checks it with the shared secret alone (nothing is stored per user)
and refuses it after the expiry, so a credential copied out of a page is worth a few hours at most.

With nothing configured the list is empty: browsers then offer host candidates only, which connect on one
machine and on a LAN (development, tests).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import uuid
from datetime import datetime

from flask import current_app

from coach import clock

log = logging.getLogger(__name__)


def turn_credential(secret: str, username: str) -> str:
    """The password coturn expects for ``username`` under ``static-auth-secret = secret``."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def ice_servers(member_id: uuid.UUID, now: datetime | None = None) -> list[dict]:
    """The ``RTCIceServer`` dictionaries for ``member_id``'s browser, as ``RTCPeerConnection`` takes them."""
    config = current_app.config
    servers: list[dict] = []
    if config["ROOM_STUN_URLS"]:
        servers.append({"urls": list(config["ROOM_STUN_URLS"])})
    if config["ROOM_TURN_URLS"]:
        secret = config["ROOM_TURN_SECRET"]
        if not secret:
            log.warning("ROOM_TURN_URLS is set without ROOM_TURN_SECRET: TURN is not offered")
            return servers
        expiry = int((now or clock.now()).timestamp()) + int(config["ROOM_TURN_TTL_SECONDS"])
        username = f"{expiry}:{member_id}"
        servers.append({"urls": list(config["ROOM_TURN_URLS"]), "username": username,
                        "credential": turn_credential(secret, username)})
    return servers
