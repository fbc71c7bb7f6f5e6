"""An organization's export (constraints: migration 0016). A person's own export is ``accounts.models.AccountExport``
(a person is not an organization's)."""
from __future__ import annotations

import uuid

from sqlalchemy.orm import Mapped, mapped_column

from coach.accounts.models import ExportColumns
from coach.dbutil import TenantScoped
from coach.extensions import db


class OrgExport(ExportColumns, TenantScoped, db.Model):
    """An organization's export of all its data, asked for by an admin (a tenant table under forced RLS). The
    member who asked is cleared, alone, if they leave."""

    __tablename__ = "org_exports"

    requested_by_membership_id: Mapped[uuid.UUID | None] = mapped_column()
