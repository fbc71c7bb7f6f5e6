"""Forms of the chat pages. Limits match the service and the database."""
from __future__ import annotations

from wtforms import SelectField, TextAreaField
from wtforms.validators import DataRequired, Length

from coach.blueprints.forms import BaseForm
from coach.chat.models import BODY_MAX


class MessageForm(BaseForm):
    body = TextAreaField("Message", validators=[
        DataRequired(message="Write a message first."),
        Length(max=BODY_MAX, message=f"Messages can be up to {BODY_MAX:,} characters.")])


class StartForm(BaseForm):
    member = SelectField("Write to", validate_choice=False)
