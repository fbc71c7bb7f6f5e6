"""Forms of the media pages. Limits match the service and the database."""
from __future__ import annotations

from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from coach.blueprints.forms import BaseForm
from coach.media.models import AUDIENCES
from coach.media.service import COMMENT_MAX, TITLE_MAX


class UploadForm(BaseForm):
    """Only its CSRF token and choices travel as a form: the file goes to storage from the browser."""

    title = StringField("Title", validators=[Optional(), Length(max=TITLE_MAX)],
                        description="Optional; the file name otherwise.")
    audience = SelectField("Who can see it", default="staff",
                           choices=[SelectChoice(k, v) for k, v in AUDIENCES.items()])


class DetailsForm(BaseForm):
    title = StringField("Title", validators=[DataRequired(message="Give it a title."), Length(max=TITLE_MAX)])
    audience = SelectField("Who can see it", choices=[SelectChoice(k, v) for k, v in AUDIENCES.items()])


class ReviewCommentForm(BaseForm):
    at = StringField("At", validators=[Optional(), Length(max=12)], description="minutes:seconds")
    body = TextAreaField("Comment", validators=[
        DataRequired(message="Write a comment first."),
        Length(max=COMMENT_MAX, message=f"A comment has at most {COMMENT_MAX:,} characters.")])
    parent = StringField(validators=[Optional(), Length(max=40)])
