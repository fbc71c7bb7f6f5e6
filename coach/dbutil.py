"""Small database helpers the domain services share."""
from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import ForeignKeyConstraint
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, mapped_column, relationship

from coach.extensions import db


def insert_or_raise(row, error: Exception, sqlstates: Iterable[str] = ("23505",)) -> None:
    """Insert ``row`` in a savepoint; if PostgreSQL refuses it with one of ``sqlstates``, raise ``error``.

    For the races a check before the insert cannot close (two requests taking the same name or
    time at once): the savepoint is rolled back and the caller's transaction can go on.
    """
    try:
        with db.session.begin_nested():
            db.session.add(row)
            db.session.flush()
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in tuple(sqlstates):
            raise error from exc
        raise


def tenant_relationship(owner: str, column: str, target: str = "Membership", innerjoin: bool = True):
    """A read-only many-to-one from ``owner.column`` to ``target`` over the composite key (tenant_id, id).

    Tenant tables reference each other by (tenant_id, id), so the join says both; loaded with
    the row (joined) because every page that shows the row shows its target too.
    """
    return relationship(
        target,
        primaryjoin=f"and_({owner}.tenant_id == {target}.tenant_id, {owner}.{column} == {target}.id)",
        foreign_keys=f"[{owner}.tenant_id, {owner}.{column}]", viewonly=True, lazy="joined", innerjoin=innerjoin)


class TenantScoped:
    """Declarative mixin for tenant tables: a UUID ``id`` and the ``tenant_id`` that row-level security
    filters on (the schema, with the unique ``(tenant_id, id)`` other rows reference, is the migrations'
    ``rls.tenant_columns``). Models reference each other through :func:`tenant_fk` and
    :func:`tenant_relationship`, both over ``(tenant_id, id)``."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column()


def tenant_fk(column: str, target: str, name: str, ondelete: str = "CASCADE") -> ForeignKeyConstraint:
    """A foreign key over ``(tenant_id, column)`` to ``target``'s ``(tenant_id, id)``: two organizations'
    rows can never point at each other."""
    return ForeignKeyConstraint(["tenant_id", column], [f"{target}.tenant_id", f"{target}.id"], name=name,
                                ondelete=ondelete)
