from wtforms import SelectField
from wtforms.fields.choices import SelectChoice

from coach.blueprints.forms import BaseForm, email_field
from coach.orgs.models import ROLE_LABELS

ROLE_CHOICES = [SelectChoice(value, label) for value, label in ROLE_LABELS.items()]


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _stripped(unbound_field):
    """The same field, with surrounding spaces (a pasted address) removed before it is validated."""
    unbound_field.kwargs["filters"] = [*unbound_field.kwargs.get("filters", ()), _strip]
    return unbound_field


class InviteForm(BaseForm):
    email = _stripped(email_field())
    role = SelectField("Role", choices=ROLE_CHOICES, default="athlete")


class RoleForm(BaseForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


class ActionForm(BaseForm):
    """Just the CSRF token: remove, resend and revoke are buttons."""
