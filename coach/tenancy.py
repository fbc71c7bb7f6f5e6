"""Which organization a request acts for: ``/o/<slug>`` resolved to the organization and the member's
role, the role checks, and the blueprint that fills in the slug.

How PostgreSQL is told (the ``after_begin`` hook, :func:`activate`, :func:`acting_for`) lives in
:mod:`coach.platform.tenant_context`; it is re-exported here for the layers above.
"""
from __future__ import annotations

from functools import wraps

from flask import Blueprint, abort, g
from flask_login import current_user

from coach.extensions import login_manager
from coach.orgs.service import membership_for, org_by_slug
from coach.platform.tenant_context import acting_for, activate, deactivate

__all__ = ["acting_for", "activate", "deactivate", "current_org", "current_membership", "role_required",
           "enter_org", "org_blueprint"]


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
    """Resolve ``/o/<slug>`` for this request: the organization, the user's membership, RLS.

    Unknown organizations and organizations the user does not belong to are both 404,
    so URLs reveal nothing about other tenants.
    """
    if not current_user.is_authenticated:
        return  # role_required sends the visitor to log in
    org = org_by_slug(slug) if slug and len(slug) <= 40 else None
    if org is None:
        abort(404)
    activate(None, current_user.id)
    membership = membership_for(org, current_user)
    if membership is None:
        abort(404)
    g.org = org
    g.membership = membership
    activate(org.id, current_user.id)


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

