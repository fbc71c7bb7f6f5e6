from wtforms import SelectField
from wtforms.fields.choices import SelectChoice

from coach.blueprints.forms import BaseForm, email_field
from coach.orgs.models import ROLE_LABELS

ROLE_CHOICES = [SelectChoice(value, label) for value, label in ROLE_LABELS.items()]


class InviteForm(BaseForm):
    email = email_field()
    role = SelectField("Role", choices=ROLE_CHOICES, default="athlete")


class RoleForm(BaseForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


class ActionForm(BaseForm):
    """Just the CSRF token: remove, resend and revoke are buttons."""
