"""A coach's profile inside the organization: the page every member sees, the editor (the coach's own, or any
coach's for staff) with its live preview, and admins' verification."""
from __future__ import annotations

from flask import abort, current_app, flash, g, request, url_for
from wtforms import BooleanField, HiddenField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from coach.blueprints.directory import bp
from coach.blueprints.forms import BaseForm, attempt
from coach.booking.access import offerings_of
from coach.booking.availability import coach_timezone
from coach.directory import profiles, reviews, stats, taxonomy
from coach.directory.models import BIO_MAX, CERTIFICATIONS_MAX, HEADLINE_MAX, LANGUAGES_MAX, LOCATION_MAX
from coach.errors import DomainError
from coach.extensions import db
from coach.htmx import redirect_after_post, render
from coach.orgs.models import ADMIN, COACH
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required

REVIEWS_SHOWN = 5  # the newest on the profile; the reviews page has the rest
EDITOR = "directory/profile_edit.html"
PAGE = "directory/profile.html"
LANGUAGE_CHOICES = [SelectChoice(code, name) for code, name in profiles.LANGUAGES.items()]


class ProfileForm(BaseForm):
    """The editor's fields; the limits are the service's (it says what is wrong with each), the browser's
    ``maxlength`` a first hint."""

    headline = StringField("Headline", description="One line athletes see under your name.",
                           render_kw={"maxlength": HEADLINE_MAX})
    bio = TextAreaField("About you", render_kw={"rows": 8, "maxlength": BIO_MAX},
                        description="Markdown: **bold**, *italic*, lists and links.")
    languages = SelectMultipleField("Languages you coach in", choices=LANGUAGE_CHOICES, validate_choice=False)
    years_experience = StringField("Years of coaching experience",
                                   render_kw={"type": "number", "min": 0, "max": profiles.YEARS_MAX,
                                              "inputmode": "numeric"})
    certifications = TextAreaField("Certifications", description="One per line.",
                                   render_kw={"rows": 3, "maxlength": CERTIFICATIONS_MAX})
    tags = StringField("Tags", description="Separated by commas, e.g. vod review, beginners (up to 20).")
    location = StringField("Where you coach in person", description="A city or a venue.",
                           render_kw={"maxlength": LOCATION_MAX})
    online = BooleanField("I coach online")
    in_person = BooleanField("I coach in person")
    listed = BooleanField("List me in the public coach directory")
    photo_media_id = SelectField("Photo", validate_choice=False)
    intro_media_id = SelectField("Intro video", validate_choice=False)
    term_ids = SelectMultipleField("What you coach", validate_choice=False)

    def values(self) -> dict:
        return {name: self[name].data for name in (
            "headline", "bio", "languages", "years_experience", "certifications", "tags", "location", "online",
            "in_person", "listed", "photo_media_id", "intro_media_id", "term_ids")}


class VerificationForm(BaseForm):
    note = TextAreaField("What was checked", validators=[Optional(), Length(max=profiles.NOTE_MAX)],
                         render_kw={"rows": 2, "maxlength": profiles.NOTE_MAX})
    action = HiddenField()


# --- loaders ------------------------------------------------------------------------------------------

def load_coach(coach_id: str):
    return profiles.get_coach(g.org, coach_id) or abort(404)


def load_editable(coach):
    if not profiles.may_edit(g.membership, coach):
        abort(403, "Only the coach and the organization's staff edit this profile.")
    return coach


def _form_data(coach, profile) -> dict:
    if profile is None:
        return {"online": True, "listed": True, "term_ids": []}
    return {"headline": profile.headline, "bio": profile.bio_source, "languages": profile.languages,
            "years_experience": "" if profile.years_experience is None else str(profile.years_experience),
            "certifications": profile.certifications, "tags": ", ".join(profile.tags), "location": profile.location,
            "online": profile.online, "in_person": profile.in_person, "listed": profile.listed,
            "photo_media_id": str(profile.photo_media_id or ""), "intro_media_id": str(profile.intro_media_id or ""),
            "term_ids": [str(i) for i in taxonomy.profile_term_ids(profile)]}


def _media_choices(form: ProfileForm, coach, profile) -> None:
    for name, kind, empty in (("photo_media_id", "image", "No photo"), ("intro_media_id", "video", "No video")):
        items = profiles.eligible_media(coach, g.membership, kind, getattr(profile, name, None))
        form[name].choices = [SelectChoice("", empty)] + [SelectChoice(str(m.id), m.title) for m in items]


def _card(coach, shown, chosen_terms=None) -> dict:
    """What the profile card shows: ``shown`` (the saved profile or a preview), its terms, photo and video."""
    if shown is None:
        return {"shown": None}
    terms = (taxonomy.pruned_tree(g.org, chosen_terms) if chosen_terms is not None
             else taxonomy.profile_terms(shown))
    photo, video = profiles.media_of(g.org.id, shown.photo_media_id, shown.intro_media_id)
    return {"shown": shown, "terms": terms, "photo": photo, "video": video,
            "languages": profiles.language_names(shown.languages), "tz": coach_timezone(coach)}


def _editor_page(coach, profile, form: ProfileForm, status: int = 200, preview=None, block=None, **extra):
    _media_choices(form, coach, profile)
    own = coach.id == g.membership.id
    action = url_for("directory.edit_own") if own else url_for("directory.edit_profile", coach_id=coach.id)
    preview_url = (url_for("directory.preview_own") if own
                   else url_for("directory.preview_profile", coach_id=coach.id))
    card = _card(coach, preview, extra.pop("chosen_terms", None)) if preview is not None else _card(coach, profile)
    spoken = [code for code in form.languages.data or () if code in profiles.LANGUAGES]
    language_options = [(code, profiles.LANGUAGES[code]) for code in spoken] + [
        (code, name) for code, name in profiles.LANGUAGES.items() if code not in spoken]
    return render(EDITOR, block, status=status, org=g.org, coach=coach, profile=profile, form=form, own=own,
                  action=action, preview_url=preview_url, tree=taxonomy.terms_tree(g.org),
                  language_options=language_options, languages_max=LANGUAGES_MAX,
                  public=profiles.public_status(g.org, coach, profile),
                  previewing=preview is not None, chosen=set(form.term_ids.data or ()), facts=_saved_facts(coach),
                  **card, **extra)


def _saved_facts(coach):
    """What the card shows from the coach's offerings and bookings (price, answer time, sessions delivered), so
    the preview shows the card athletes will see, not one without them; no next free slot (the card has none)."""
    return stats.coach_facts(g.org.id, [coach.id], with_next_slot=False)[coach.id]


def _expired(form: ProfileForm) -> bool:
    """The form failed on its CSRF token (a 400), not on a value (a 422)."""
    token = getattr(form, "csrf_token", None)
    return bool(token is not None and token.errors)


def _field_errors(form: ProfileForm, error: DomainError | None) -> None:
    for name, message in getattr(error, "fields", {}).items():
        if name in form:
            form[name].errors = [message]


def _save(coach, values: dict):
    profile = profiles.ensure_profile(coach)
    return profiles.save_profile(profile, values, g.membership)


def _preview(coach, profile, form: ProfileForm, block: str | None):
    """The page (or its preview block) with the form's values shown, nothing written."""
    values = form.values()
    try:
        shown = profiles.preview(coach, profile, values, g.membership)
        chosen = taxonomy.check_term_ids(g.org, values["term_ids"])
    except DomainError as exc:
        db.session.rollback()
        form.form_errors.append(str(exc))
        _field_errors(form, exc)
        return _editor_page(coach, profile, form, exc.status, block=block, preview_error=str(exc))
    return _editor_page(coach, profile, form, preview=shown, chosen_terms=chosen, block=block)


def _editor(coach):
    profile = profiles.profile_of(g.org, coach)
    if request.method == "GET":
        return _editor_page(coach, profile, ProfileForm(formdata=None, data=_form_data(coach, profile)))
    form = ProfileForm()
    if not form.validate():
        return _editor_page(coach, profile, form, 400 if _expired(form) else 422)
    if "preview" in request.form:
        return _preview(coach, profile, form, None)
    saved = attempt(form, _save, coach, form.values())
    if not saved:
        _field_errors(form, saved.error)
        return _editor_page(coach, profile, form, saved.status)
    db.session.commit()
    flash("Profile saved.", "success")
    return redirect_after_post(url_for("directory.profile_page", coach_id=coach.id))


def _live_preview(coach):
    profile = profiles.profile_of(g.org, coach)
    form = ProfileForm()
    if not form.validate():
        expired = _expired(form)
        return _editor_page(coach, profile, form, 400 if expired else 422, block="preview",
                            preview_error="Reload the page: this form expired." if expired
                            else "Some fields need attention.")
    return _preview(coach, profile, form, "preview")


def _page_context(coach, profile, verify_form: VerificationForm) -> dict:
    """Everything the profile page shows: the card, the facts, the offerings, and the rating and newest reviews
    (the context of the reviews' partials, ``_rating_chart.html`` and ``_reviews.html``)."""
    page = reviews.reviews_page(g.org.id, coach.id, "newest", None, REVIEWS_SHOWN, member=g.membership)
    # The reviews' own page (its "More" continues there) belongs to the reviews' routes of this blueprint.
    reviews_url = (url_for("directory.coach_reviews", coach_id=coach.id)
                   if "directory.coach_reviews" in current_app.view_functions else None)
    more_url = (f"{reviews_url}?order=newest&cursor={page.next_cursor}" if reviews_url and page.next_cursor
                else None)
    return dict(org=g.org, coach=coach, profile=profile, facts=stats.coach_facts(g.org.id, [coach.id])[coach.id],
                offerings=offerings_of(coach), may_edit=profiles.may_edit(g.membership, coach),
                is_admin=g.membership.role == ADMIN, verify_form=verify_form,
                rating=reviews.rating_of(g.org.id, coach.id), reviews_page=page, reviews_url=reviews_url,
                more_url=more_url, coach_name=coach.user.display_name, member=g.membership,
                public=profiles.public_status(g.org, coach, profile), **_card(coach, profile))


# --- views --------------------------------------------------------------------------------------------

@bp.get("/coaches/<coach_id>/profile")
@role_required()
def profile_page(coach_id: str):
    """A coach's profile, as members of the organization see it."""
    coach = load_coach(coach_id)
    return render(PAGE, **_page_context(coach, profiles.profile_of(g.org, coach), VerificationForm(formdata=None)))


@bp.route("/profile", methods=["GET", "POST"])
@role_required(COACH)
@idempotent
def edit_own():
    """The signed-in coach's profile editor (a plain POST saves; ``preview`` shows it unsaved)."""
    return _editor(g.membership)


@bp.route("/coaches/<coach_id>/profile/edit", methods=["GET", "POST"])
@role_required()
@idempotent
def edit_profile(coach_id: str):
    """Staff edit any coach's profile (a coach, their own)."""
    return _editor(load_editable(load_coach(coach_id)))


@bp.post("/profile/preview")
@role_required(COACH)
def preview_own():
    """The live preview of the coach's own editor (writes nothing, so it needs no idempotency key)."""
    return _live_preview(g.membership)


@bp.post("/coaches/<coach_id>/profile/preview")
@role_required()
def preview_profile(coach_id: str):
    """The live preview of a coach's editor for staff (writes nothing)."""
    return _live_preview(load_editable(load_coach(coach_id)))


@bp.post("/coaches/<coach_id>/profile/verification")
@role_required(ADMIN)
@idempotent
def verification(coach_id: str):
    """Verify a coach with a note, or remove the verification (admins; audited)."""
    coach = load_coach(coach_id)
    form = VerificationForm()
    if not form.validate_on_submit() or form.action.data not in ("verify", "remove"):
        abort(400, "This form was incomplete or expired. Reload the page and try again.")
    verify = form.action.data == "verify"
    done = attempt(form, lambda: profiles.set_verification(profiles.ensure_profile(coach), verify, form.note.data,
                                                           g.membership))
    if not done:
        return render(PAGE, "verification", status=done.status,
                      **_page_context(coach, profiles.profile_of(g.org, coach), form))
    db.session.commit()
    flash("Coach verified." if verify else "Verification removed.", "success")
    return redirect_after_post(url_for("directory.profile_page", coach_id=coach.id))
