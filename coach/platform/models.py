from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from coach.extensions import db


class Email(db.Model):
    """Every email the app sends, with its delivery outcome.

    Without SMTP configured (development) the row is the delivery: ``/dev/mail`` shows it.
    """

    __tablename__ = "emails"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    transport: Mapped[str] = mapped_column(String(16), default="smtp")
    error: Mapped[str | None] = mapped_column(Text)
