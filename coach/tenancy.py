"""Which organization a request or job acts for, and how PostgreSQL is told.

Row-level security policies compare ``tenant_id`` with the transaction-local
setting ``app.tenant_id``. The setting is made in exactly one place: the
``after_begin`` hook below, from ``g.tenant_id`` / ``g.user_id``. With no
organization resolved nothing is set, and the policies show nothing.
"""
from __future__ import annotations

import uuid
from contextlib import contextmanager
from functools import wraps

from flask import abort, g, has_app_context
from flask_login import current_user
from sqlalchemy import event, text
from sqlalchemy.orm import Session

_SET_BOTH = text(
    "SELECT set_config('app.tenant_id', :tenant_id, true), set_config('app.user_id', :user_id, true)"
)


def _context_values() -> tuple[str, str]:
    if not has_app_context():
        return "", ""
    tenant_id = g.get("tenant_id")
    user_id = g.get("user_id")
    return (str(tenant_id) if tenant_id else ""), (str(user_id) if user_id else "")


@event.listens_for(Session, "after_begin")
def _apply_tenant_settings(session, transaction, connection):
    """Tell PostgreSQL, for this transaction only, whose rows are visible."""
    tenant_id, user_id = _context_values()
    if tenant_id or user_id:
        connection.execute(_SET_BOTH, {"tenant_id": tenant_id, "user_id": user_id})


def _apply_now() -> None:
    """Re-apply the settings inside a transaction that is already open."""
    from coach.extensions import db

    session = db.session()
    if session.in_transaction():
        tenant_id, user_id = _context_values()
        session.execute(_SET_BOTH, {"tenant_id": tenant_id, "user_id": user_id})


def activate(tenant_id: uuid.UUID | None, user_id: uuid.UUID | None = None) -> None:
    """Act for ``tenant_id`` (and ``user_id``) from now on, in this request or job.

    :param tenant_id: the organization, or ``None`` to see no tenant rows.
    :param user_id: the acting user; memberships of this user stay visible
        across organizations (the organization picker needs them).
    """
    before = (g.get("tenant_id"), g.get("user_id"))
    g.tenant_id = tenant_id
    if user_id is not None:
        g.user_id = user_id
    if (g.tenant_id, g.get("user_id")) != before:  # a round trip only when something changed
        _apply_now()


@contextmanager
def acting_for(tenant_id: uuid.UUID | None, user_id: uuid.UUID | None = None):
    """Act for ``tenant_id`` (and ``user_id``) inside the block, then restore what was in force."""
    saved = (g.get("tenant_id"), g.get("user_id"))
    g.tenant_id, g.user_id = tenant_id, user_id
    _apply_now()
    try:
        yield
    finally:
        g.tenant_id, g.user_id = saved
        _apply_now()


def deactivate() -> None:
    """Stop acting for any organization."""
    g.tenant_id = None
    _apply_now()


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
                from coach.extensions import login_manager

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
    from coach.orgs.service import membership_for, org_by_slug

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
    from flask import Blueprint

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

