"""Organization admin: the settings page and the branding page; the organization's stylesheet and logo."""
from __future__ import annotations

from flask import Response, abort, flash, g, render_template, request, url_for
from flask_wtf.file import FileField
from wtforms import BooleanField, HiddenField, IntegerField, RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from coach.blueprints.admin import bp
from coach.blueprints.forms import ActionForm, BaseForm, TimezoneField, attempt, require_action_form
from coach.extensions import db
from coach.governance import branding
from coach.governance import settings as org_settings
from coach.htmx import redirect_after_post, render
from coach.ids import parse_uuid
from coach.media import service as media
from coach.orgs.models import ADMIN
from coach.payments.settings import billing_settings
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required

IMMUTABLE = "public, max-age=31536000, immutable"


def _retention_field(label: str, bounds: tuple[int, int], hint: str) -> IntegerField:
    low, high = bounds
    return IntegerField(label, description=hint, validators=[
        Optional(), NumberRange(low, high, message=f"Between {low:,} and {high:,} days, or empty to keep everything.")])


LOCALE_CHOICES = [SelectChoice(tag, label) for tag, label in org_settings.LOCALES.items()]
POLICY_CHOICES = [SelectChoice(policy, label) for policy, label in org_settings.LATE_CANCEL_POLICIES.items()]
CREATOR_CHOICES = [SelectChoice(rule, label) for rule, label in org_settings.SPACE_CREATION_LABELS.items()]


class SettingsForm(BaseForm):
    name = StringField("Name", validators=[DataRequired(message="Enter the organization's name."),
                                           Length(max=120, message="At most 120 characters.")])
    timezone = TimezoneField(description="Schedules, the audit trail and reports read in this zone.")
    locale = SelectField("Language and number format", choices=LOCALE_CHOICES,
                         validate_choice=False, description="The pages' language tag, and how amounts are written.")
    space_creation = RadioField("Who may create spaces", choices=CREATOR_CHOICES,
                                validate_choice=False)
    listed_publicly = BooleanField("List our coaches in the public coach directory")
    require_two_factor = BooleanField("Require two-factor sign-in (an authenticator app or a passkey) for admins "
                                      "and coaches")
    chat_retention_days = _retention_field("Keep chat messages for (days)", org_settings.CHAT_RETENTION,
                                           "Empty: kept forever. Older messages are deleted every night.")
    audit_retention_days = _retention_field("Keep the audit trail for (days)", org_settings.AUDIT_RETENTION,
                                            "Empty: kept forever. At least 30 days.")
    recording_retention_days = _retention_field(
        "Keep session recordings for (days)", org_settings.RECORDING_RETENTION,
        "Empty: kept forever. Counted from the end of each recording; a coach or an admin can keep one.")

    default_cancellation_window_hours = IntegerField(
        "Free cancellation until (hours before)", description="New offerings start with this; each keeps its own.",
        validators=[InputRequired(message="Enter the hours (0: cancelling is always late)."),
                    NumberRange(*org_settings.CANCELLATION_WINDOW, message="Between 0 and 720 hours.")])
    default_late_cancel_policy = SelectField("A later cancellation or a no-show", choices=POLICY_CHOICES,
                                             validate_choice=False)
    default_late_cancel_fee_percent = IntegerField("Late-cancel fee (%)", validators=[
        InputRequired(message="Enter the fee (0 for none)."),
        NumberRange(0, 100, message="A fee between 0 and 100 per cent.")])

    def values(self) -> dict:
        return {name: getattr(self, name).data for name in org_settings.FIELDS}


class AccentForm(BaseForm):
    accent_color = StringField("Accent colour", validators=[Length(max=20)],
                               description="Buttons and links use it. Empty: Coach's own green.")
    # The colour picker, and the colour it was shown with: without JavaScript the picker does not fill the text
    # field, so a picker moved away from what it showed (with the text left as it was) is the choice.
    accent_picker = StringField(validators=[Optional(), Length(max=20)])
    accent_shown = HiddenField(validators=[Optional(), Length(max=20)])

    def chosen(self, current: str | None) -> str:
        text = (self.accent_color.data or "").strip()
        picker = (self.accent_picker.data or "").strip().lower()
        moved = picker and picker != (self.accent_shown.data or "").strip().lower()
        if moved and (not text or text.lower() == (current or "")):
            return picker
        return text


class LogoForm(BaseForm):
    logo = FileField("Upload a picture", description="PNG, JPEG, GIF or WebP, at most 5 MB; shown at most "
                                                     "256×256 pixels.")
    media_id = StringField("Or an image of the media library", validators=[Optional(), Length(max=40)])


def _settings_page(form: SettingsForm, status: int = 200):
    return render("admin/settings.html", "form", status=status, org=g.org, form=form,
                  billing=billing_settings(g.org.id), locales=org_settings.LOCALES)


@bp.route("/settings", methods=["GET", "POST"])
@role_required(ADMIN)
@idempotent
def org_settings_page():
    """The organization's settings (admins)."""
    form = SettingsForm(obj=g.org) if request.method == "GET" else SettingsForm()
    if not form.validate_on_submit():
        return _settings_page(form, 422 if form.is_submitted() else 200)
    saved = attempt(form, org_settings.save_settings, g.org, form.values(), g.membership)
    if not saved:
        return _settings_page(form, saved.status)
    db.session.commit()
    flash("Settings saved." if saved.value else "Nothing changed.", "success")
    return redirect_after_post(url_for("admin.org_settings_page"))


def _branding_page(status: int = 200, accent_form: AccentForm | None = None, logo_form: LogoForm | None = None,
                   block: str | None = None):
    return render("admin/branding.html", block, status=status, org=g.org,
                  accent=branding.accent_of(g.org),
                  accent_form=accent_form or AccentForm(formdata=None, accent_color=g.org.accent_color or ""),
                  logo_form=logo_form or LogoForm(formdata=None), action_form=ActionForm(formdata=None),
                  images=branding.logo_candidates(g.org), thumb_url=media.thumb_url,
                  logo_url=branding.logo_path(g.org))


@bp.get("/branding")
@role_required(ADMIN)
def branding_page():
    """The organization's accent colour and logo (admins)."""
    return _branding_page()


@bp.post("/branding/accent")
@role_required(ADMIN)
@idempotent
def branding_accent():
    """Set or clear the accent colour (refused, with the contrast ratios, when text on it is hard to read)."""
    form = AccentForm()
    if form.validate_on_submit() and attempt(form, branding.set_accent, g.org, form.chosen(g.org.accent_color),
                                             g.membership):
        db.session.commit()
        flash("Accent colour saved." if g.org.accent_color else "Accent colour removed.", "success")
        return redirect_after_post(url_for("admin.branding_page"))
    return _branding_page(422, accent_form=form, block="accent")


@bp.post("/branding/logo")
@role_required(ADMIN)
@idempotent
def branding_logo():
    """A new logo: an uploaded picture, or an image of the media library."""
    form = LogoForm()
    if form.validate_on_submit():
        upload = form.logo.data
        if upload is not None and getattr(upload, "filename", ""):
            done = attempt(form, branding.set_logo, g.org, upload.stream, g.membership)
        elif form.media_id.data:
            item = media.get_item(g.org, parse_uuid(form.media_id.data)) if parse_uuid(form.media_id.data) else None
            done = (attempt(form, branding.set_logo_from_media, g.org, item, g.membership) if item is not None
                    else None)
            if item is None:
                form.media_id.errors = ["Choose one of the images shown."]
        else:
            done = None
            form.logo.errors = ["Choose a picture to upload, or an image of the media library."]
        if done:
            db.session.commit()
            branding.collect_garbage()
            flash("Logo saved.", "success")
            return redirect_after_post(url_for("admin.branding_page"))
        status = done.status if done is not None else 422
    else:
        status = 422
    return _branding_page(status, logo_form=form, block="logo")


@bp.post("/branding/logo/remove")
@role_required(ADMIN)
@idempotent
def branding_logo_remove():
    """Remove the logo."""
    require_action_form()
    if branding.remove_logo(g.org, g.membership):
        db.session.commit()
        branding.collect_garbage()
        flash("Logo removed.", "success")
    return redirect_after_post(url_for("admin.branding_page"))


@bp.get("/brand-<int:version>.css")
def brand_css(version: int):
    """The organization's stylesheet: its accent over the design tokens. Public, cached for good: a new
    version is a new URL (an old one is a 404)."""
    org = g.brand_org
    # Nothing to serve for an organization without branding: a 404 then, so the URL does not tell a stranger
    # which addresses are organizations.
    if version != org.branding_version or not branding.has_branding(org):
        abort(404)
    body = render_template("admin/brand.css", accent=branding.accent_of(org), dark=branding.DARK_TEXT)
    return Response(body, mimetype="text/css", headers={"Cache-Control": IMMUTABLE})


@bp.get("/logo-<int:version>.png")
def brand_logo(version: int):
    """The organization's logo (for its pages and its emails). Public, cached for good like the stylesheet."""
    org = g.brand_org
    data = branding.read_logo(org) if version == org.branding_version else None
    if data is None:
        abort(404)
    return Response(data, mimetype="image/png", headers={"Cache-Control": IMMUTABLE})
