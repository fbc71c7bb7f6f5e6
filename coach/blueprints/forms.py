"""Form pieces shared by several blueprints."""
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField
from wtforms.validators import DataRequired, Email, Length, ValidationError

from coach.timezones import is_valid_timezone, timezone_choices

PASSWORD_RULES = [DataRequired(), Length(min=10, max=128, message="Use between 10 and 128 characters.")]


def email_field(label: str = "Email") -> EmailField:
    return EmailField(label, validators=[
        DataRequired(message="Enter your email address."),
        Length(max=254, message="An email address has at most 254 characters."),
        Email(message="Enter a valid email address.", check_deliverability=False),
    ])


def new_password_field(label: str = "Password") -> PasswordField:
    return PasswordField(label, validators=PASSWORD_RULES)


class TimezoneField(SelectField):
    def __init__(self, label="Time zone", **kwargs):
        super().__init__(label, choices=timezone_choices, validate_choice=False, **kwargs)

    def pre_validate(self, form):
        if not self.data or not is_valid_timezone(self.data):
            raise ValidationError("Choose a time zone from the list.")


class BaseForm(FlaskForm):
    """All forms: CSRF from Flask-WTF."""
