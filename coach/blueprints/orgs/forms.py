from wtforms import StringField
from wtforms.validators import DataRequired, Length, ValidationError

from coach.blueprints.forms import NAME_RULES, BaseForm, TimezoneField, new_password_field


def printable(form, field) -> None:
    """Reject control characters (PostgreSQL cannot store NUL; the rest only garble a name)."""
    if field.data and any(ord(ch) < 32 or ord(ch) == 127 for ch in field.data):
        raise ValidationError("Use letters, digits, spaces and punctuation only.")


class CreateOrganizationForm(BaseForm):
    name = StringField("Organization name", validators=[DataRequired(message="Enter a name."),
                                                       Length(max=120, message="Use at most 120 characters."),
                                                       printable])
    slug = StringField("Web address", validators=[DataRequired(message="Choose a web address."),
                                                  Length(max=40, message="Use at most 40 characters.")],
                       description="Lowercase letters, digits and hyphens: /o/your-club")
    timezone = TimezoneField(default="UTC")


class InvitationSignupForm(BaseForm):
    display_name = StringField("Your name", validators=[*NAME_RULES, printable])
    password = new_password_field()
    timezone = TimezoneField(default="UTC")
