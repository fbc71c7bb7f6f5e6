"""The one-click unsubscribe links of notification emails: no login, the signed token is the proof.

A blueprint of its own (``notification_links``), outside ``/o/<slug>``: a mail client opens it with no
session, and RFC 8058's one-click POST carries no CSRF token of ours.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app

from coach import tenancy
from coach.extensions import csrf, db
from coach.htmx import render
from coach.notifications import service
from coach.notifications.models import KINDS
from coach.orgs.models import Membership, Organization
from coach.platform.ratelimit import limiter

links = Blueprint("notification_links", __name__)
csrf.exempt(links)  # RFC 8058: mail clients POST "List-Unsubscribe=One-Click" with no token of ours


def _from_token(token: str):
    """The organization, member and kind of a genuine token, with RLS set to that organization."""
    found = service.read_unsubscribe_token(token)
    if found is None:
        abort(400, "This unsubscribe link is not valid. Open your notification settings to change what we email you.")
    tenant_id, member_id, kind = found
    tenancy.activate(tenant_id)
    org = db.session.get(Organization, tenant_id)
    member = db.session.get(Membership, member_id)
    # The member must be of the token's organization (their own memberships elsewhere are readable to them).
    if org is None or member is None or member.tenant_id != tenant_id:
        abort(404, "This link is for a membership that no longer exists, so nothing will be emailed for it.")
    return org, member, kind


def _what(kind: str) -> str:
    return "the daily digest" if kind == "digest" else f"“{KINDS[kind].label}”"


@links.get("/unsubscribe/<token>")
def unsubscribe(token: str):
    """Ask before acting: a link opened by a mail scanner must change nothing."""
    org, member, kind = _from_token(token)
    return render("notifications/unsubscribe.html", org=org, member=member, what=_what(kind), token=token, done=None)


@links.post("/unsubscribe/<token>")
@limiter.limit("30 per minute")
def unsubscribe_now(token: str):
    """One click (the form, or a mail client's RFC 8058 POST): no more emails of this kind."""
    org, member, kind = _from_token(token)
    changed = service.unsubscribe(member, kind)
    db.session.commit()
    current_app.logger.info("unsubscribed membership %s from %s emails (%s)", member.id, kind, ",".join(changed))
    return render("notifications/unsubscribe.html", org=org, member=member, what=_what(kind), token=token, done=True)
