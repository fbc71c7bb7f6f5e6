"""Forms of the spaces pages. Limits match the service and the database."""
from __future__ import annotations

from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from coach.blueprints.forms import BaseForm
from coach.spaces.models import HOST, MEMBER
from coach.spaces.service import COMMENT_MAX, POST_MAX


class SpaceForm(BaseForm):
    name = StringField("Name", validators=[DataRequired(message="Give the space a name."), Length(max=80)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=500)])
    visibility = SelectField("Who can see and join it", default="open", choices=[
        SelectChoice("open", "Open: every member of the organization can join"),
        SelectChoice("private", "Private: hosts add members"),
        SelectChoice("announcement", "Announcements: only hosts and coaches post; everyone reads and comments"),
    ])


class PostForm(BaseForm):
    body = TextAreaField("Post",
                         description="Markdown: **bold**, _italic_, lists, links; @name.surname mentions someone.",
                         validators=[DataRequired(message="Write something before you post."),
                                     Length(max=POST_MAX, message=f"A post has at most {POST_MAX:,} characters.")])


class CommentForm(BaseForm):
    body = TextAreaField("Comment", validators=[
        DataRequired(message="Write something before you comment."),
        Length(max=COMMENT_MAX, message=f"A comment has at most {COMMENT_MAX:,} characters.")])
    parent = StringField(validators=[Optional(), Length(max=40)])


class FlagForm(BaseForm):
    reason = TextAreaField("What is wrong with it?", validators=[
        DataRequired(message="Say what is wrong with it."), Length(max=500)])


class AddMemberForm(BaseForm):
    member = SelectField("Member", validate_choice=False)
    role = SelectField("Role", choices=[SelectChoice(MEMBER, "Member"), SelectChoice(HOST, "Host")])


class SuspendForm(BaseForm):
    days = IntegerField("Days", default=7, validators=[
        InputRequired(), NumberRange(1, 365, message="Suspend for 1 to 365 days.")])

