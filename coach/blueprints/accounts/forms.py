from wtforms import PasswordField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from coach.blueprints.forms import NAME_RULES, BaseForm, TimezoneField, email_field, new_password_field


def printable_text(form, field) -> None:
    """Refuse control characters: PostgreSQL cannot store NUL, and a name never needs a tab or newline."""
    if field.data and not field.data.isprintable():
        raise ValidationError("Use letters, digits, spaces and punctuation only.")


class SignupForm(BaseForm):
    display_name = StringField("Your name", validators=[*NAME_RULES, printable_text])
    email = email_field()
    password = new_password_field()
    timezone = TimezoneField(default="UTC")


class LoginForm(BaseForm):
    email = email_field()
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password."), Length(max=128)])


class ForgotPasswordForm(BaseForm):
    email = email_field()


class SignInLinkForm(BaseForm):
    email = email_field()


class ResetPasswordForm(BaseForm):
    password = new_password_field("New password")
    confirm = PasswordField("Repeat new password",
                            validators=[EqualTo("password", message="The passwords do not match.")])


class ProfileForm(BaseForm):
    display_name = StringField("Name", validators=[*NAME_RULES, printable_text])
    timezone = TimezoneField()
    hour_cycle = RadioField("Clock", coerce=int, default=24, choices=[
        SelectChoice(24, "24-hour (14:30)"), SelectChoice(12, "12-hour (2:30 pm)")])


class ChangePasswordForm(BaseForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=128)])
    password = new_password_field("New password")
    confirm = PasswordField("Repeat new password",
                            validators=[EqualTo("password", message="The passwords do not match.")])
