"""Which organization a request acts for: ``/o/<slug>`` resolved to the organization and the member's
role, the role checks, and the blueprint that fills in the slug.

How PostgreSQL is told (the ``after_begin`` hook, :func:`activate`, :func:`acting_for`) lives in
:mod:`coach.platform.tenant_context`; it is re-exported here for the layers above.
"""
from __future__ import annotations

from functools import wraps

from flask import Blueprint, abort, flash, g, url_for
from flask_login import current_user
from sqlalchemy import select

from coach.accounts.loader import cookie_session_id, found_session
from coach.accounts.twofactor import has_second_factor
from coach.extensions import db, login_manager
from coach.htmx import redirect_after_post
from coach.orgs.models import ADMIN, COACH, Membership, Organization
from coach.orgs.service import member_context
from coach.platform.tenant_context import acting_for, activate, deactivate, first_statement

__all__ = ["acting_for", "activate", "deactivate", "current_org", "current_membership", "role_required",
           "enter_org", "enter_org_if_member", "org_blueprint"]


def current_org():
    """The organization resolved for this request (or ``None``)."""
    return g.get("org")


def current_membership():
    """The signed-in user's membership in the current organization (or ``None``)."""
    return g.get("membership")


def role_required(*roles: str):
    """Allow the view only to members of the current organization with one of ``roles``.

    Anonymous users are sent to log in; members without the role get the 403 page.
    """

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            membership = current_membership()
            if membership is None:
                abort(404)
            if roles and membership.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def enter_org(slug: str) -> None:
    """Resolve ``/o/<slug>`` for this request: the signed-in user, the organization, the user's membership
    and RLS, in the request's first statement (:func:`coach.orgs.service.member_context`).

    Unknown organizations and organizations the user does not belong to are both 404,
    so URLs reveal nothing about other tenants. Nothing is cached between requests: a revoked session or a
    removed membership is refused on the next request.
    """
    session_id = cookie_session_id()
    if session_id is not None and slug and len(slug) <= 40:
        found = first_statement(lambda: member_context(session_id, slug))
        found_session(session_id, found and (found.user, found.last_seen))
        if found is not None and found.membership is not None:
            g.org = found.org
            g.membership = found.membership
            # The organization's row came with the statement: the check costs nothing while the requirement is off.
            if found.org.require_two_factor and second_factor_missing(found.membership, found.user):
                abort(to_enrolment(found.org))
            return
    if not current_user.is_authenticated:
        return  # role_required sends the visitor to log in
    abort(404)


def enter_org_if_member(slug: str) -> None:
    """Like :func:`enter_org` for an error page (a URL under ``/o/<slug>/`` that no route matched never resolved
    its organization): a member gets the organization's navigation; anyone else is left as they are, refused
    nothing more and told nothing about the organization."""
    session_id = cookie_session_id()
    if session_id is None or not slug or len(slug) > 40:
        return
    found = member_context(session_id, slug)
    if found is not None and found.membership is not None and not (
            found.org.require_two_factor and second_factor_missing(found.membership, found.user)):
        g.org = found.org
        g.membership = found.membership


# Who must have a second factor where an organization requires it (``require_two_factor``).
SECOND_FACTOR_ROLES = (ADMIN, COACH)


def second_factor_missing(membership, user) -> bool:
    """Whether ``membership``'s organization requires a second factor of its role and ``user`` has none."""
    return membership.role in SECOND_FACTOR_ROLES and not has_second_factor(user)


def second_factor_required_by(user) -> Organization | None:
    """An organization requiring a second factor of ``user``'s role there while ``user`` has none (the first by
    name), else ``None``: after signing in, such a person goes straight to enrolment."""
    with acting_for(None, user.id):  # the own-memberships policy shows a user their memberships
        org = db.session.scalar(
            select(Organization).join(Membership, Membership.tenant_id == Organization.id)
            .where(Membership.user_id == user.id, Membership.role.in_(SECOND_FACTOR_ROLES),
                   Organization.require_two_factor.is_(True))
            .order_by(Organization.name).limit(1))
    return org if org is not None and not has_second_factor(user) else None


def to_enrolment(org):
    """The answer that takes a person lacking the second factor ``org`` requires to two-factor set-up."""
    flash(f"{org.name} requires two-factor authentication (or a passkey) for admins and coaches. "
          "Set it up to continue.", "info")
    return redirect_after_post(url_for("accounts.two_factor_setup"))


def org_blueprint(name: str, import_name: str, url_prefix: str, enter=None):
    """A blueprint whose URLs start with ``/o/<slug>``: the slug resolves the organization (:func:`enter_org`,
    or ``enter(endpoint, slug)``) before any view, and ``url_for`` fills it in from the current one.
    """
    bp = Blueprint(name, import_name, url_prefix=url_prefix)

    @bp.url_value_preprocessor
    def _resolve_org(endpoint, values):
        slug = values.pop("slug")
        if enter is not None:
            enter(endpoint, slug)
        else:
            enter_org(slug)

    @bp.url_defaults
    def _add_slug(endpoint, values):
        if "slug" not in values and g.get("org") is not None:
            values["slug"] = g.org.slug

    return bp

