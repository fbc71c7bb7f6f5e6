"""Forms of the chat pages. Limits match the service and the database."""
from __future__ import annotations

import uuid

from wtforms import HiddenField, SearchField, TextAreaField
from wtforms.validators import UUID, Length, Optional

from coach.blueprints.forms import BaseForm
from coach.chat.models import BODY_MAX


class MessageForm(BaseForm):
    # No DataRequired: a message with media may have no text; the service says when text is needed.
    body = TextAreaField("Message", validators=[
        Length(max=BODY_MAX, message=f"Messages can be up to {BODY_MAX:,} characters.")])
    # The message's own id, made with the page (chat.js makes the next ones): a form posted twice, or
    # sent over the socket and then posted, is stored once.
    client_id = HiddenField(default=lambda: str(uuid.uuid4()), validators=[
        Optional(), UUID(message="The app could not read that. Reload the page and send it again.")])


class StartForm(BaseForm):
    """Open my conversation with a member (a button per member found)."""

    member = HiddenField()


class MemberSearchForm(BaseForm):
    """Find someone to write to (a GET form: no CSRF token)."""

    class Meta:
        csrf = False

    q = SearchField("Write to", validators=[Optional(), Length(max=100, message="Use at most 100 characters.")])
