from wtforms import DateField, HiddenField, SelectField, StringField
from wtforms.validators import Length, Optional
from wtforms.fields.choices import SelectChoice

from coach.blueprints.forms import BaseForm, email_field
from coach.orgs.models import ATHLETE, ROLE_LABELS

ROLE_CHOICES = [SelectChoice(value, label) for value, label in ROLE_LABELS.items()]


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _stripped(unbound_field):
    """The same field, with surrounding spaces (a pasted address) removed before it is validated."""
    unbound_field.kwargs["filters"] = [*unbound_field.kwargs.get("filters", ()), _strip]
    return unbound_field


class InviteForm(BaseForm):
    email = _stripped(email_field())
    role = SelectField("Role", choices=ROLE_CHOICES, default=ATHLETE)


class RoleForm(BaseForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


class AuditFilterForm(BaseForm):
    """Filters of the audit page (a GET form: no CSRF token)."""

    class Meta:
        csrf = False

    actor = StringField("Actor email", validators=[Optional(), Length(max=254)])
    action = StringField("Action", validators=[Optional(), Length(max=64)])
    since = DateField("From", validators=[Optional()])
    until = DateField("Until (inclusive)", validators=[Optional()])
    after = HiddenField(validators=[Optional(), Length(max=200)])
