"""Reviews: writing and editing one's review of an ended session, the coach's reply, flags, "helpful" votes,
the admins' moderation queue, and pages of a coach's reviews (for members, and for the public directory).

Also the booking page's "Review this session" link (``booking_review_link``) and the partials' capability test
(``review_caps``), as template globals.
"""
from __future__ import annotations

from flask import abort, current_app, flash, g, request, url_for
from jinja2_fragments.flask import render_block
from wtforms import RadioField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from coach.blueprints.directory import bp
from coach.blueprints.forms import ActionForm, BaseForm, attempt, org_path, require_action_form
from coach.booking import service as booking_service
from coach.directory import reviews
from coach.directory.models import FLAG_REASON_MAX, REPLY_MAX, REVIEW_BODY_MAX
from coach.extensions import db
from coach.htmx import redirect_after_post, render, swap_or_redirect, wants_fragment
from coach.ids import parse_uuid
from coach.orgs import service as orgs
from coach.orgs.models import COACH
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required

STAR_CHOICES = [(str(n), f"{n} star{'s' if n != 1 else ''}") for n in range(5, 0, -1)]
PAGE = 5


def _one_to_five(form, field) -> None:
    if field.data not in {"1", "2", "3", "4", "5"}:
        raise ValidationError("Choose between 1 and 5 stars.")


class ReviewForm(BaseForm):
    # The choices are checked by ``_one_to_five`` (one message for a missing, a forged or an odd value).
    stars = RadioField("Your rating", choices=STAR_CHOICES, validate_choice=False, validators=[_one_to_five])
    body = TextAreaField("Your review", validators=[Length(
        max=REVIEW_BODY_MAX, message=f"A review has at most {REVIEW_BODY_MAX:,} characters.")],
        description=f"Optional. What went well, what could be better. At most {REVIEW_BODY_MAX:,} characters.")


class ReplyForm(BaseForm):
    body = TextAreaField("Your public reply", validators=[
        DataRequired(message="Write the reply first."),
        Length(max=REPLY_MAX, message=f"A reply has at most {REPLY_MAX:,} characters.")])


class ReasonForm(BaseForm):
    reason = StringField("Reason", validators=[
        DataRequired(message="Say what is wrong with it."),
        Length(max=FLAG_REASON_MAX, message=f"A reason has at most {FLAG_REASON_MAX} characters.")])


# --- loaders: the object, or 404 ------------------------------------------------------------------------

def load_booking(booking_id: str):
    booking = booking_service.get_booking(g.org, booking_id)
    if booking is None or not booking_service.may_view(g.membership, booking):
        abort(404)
    return booking


def load_review(review_id: str):
    """A review of this organization; a hidden one only for admins and its author."""
    review = reviews.get_review(g.org.id, review_id)
    if review is None:
        abort(404)
    if review.status == "hidden" and not (reviews.may_moderate(g.membership)
                                          or g.membership.id == review.athlete_membership_id):
        abort(404)
    return review


def _back(default: str) -> str:
    """Where a plain form returns to: its ``next`` when it is a path of this organization, else ``default``."""
    target = request.values.get("next")
    return target if org_path(target, g.org.slug) else default


def _review_url(review) -> str:
    return url_for("directory.coach_reviews", coach_id=review.coach_membership_id) + f"#review-{review.id}"


# --- template globals ------------------------------------------------------------------------------------

def review_caps(review, member) -> dict:
    """What ``member`` may do with ``review`` on a list (no query): the partials' buttons."""
    if member is None:
        return {}
    return {"edit": reviews.editable(review, member), "reply": reviews.may_reply(review, member),
            "flag": reviews.may_flag(review, member), "vote": reviews.may_vote(review, member),
            "moderate": reviews.may_moderate(member)}


def reviewer_name(review, member) -> str:
    """How a review's author is named: in full to the organization's members, by first name and initial to the
    public, and "A former athlete" once their account was erased."""
    user = review.athlete.user
    if getattr(user, "erased_at", None) is not None:
        return "A former athlete"
    return user.display_name if member is not None else reviews.public_name(user.display_name)


def booking_review_link(booking) -> dict | None:
    """The booking page's link for its athlete once the session ended: write, edit or read their review (one
    statement, only for an ended booking of the athlete)."""
    me = g.get("membership")
    if me is None or booking.status != "ended" or me.id != booking.athlete_membership_id:
        return None
    review = reviews.review_for_booking(booking)
    url = url_for("directory.review_form", booking_id=booking.id)
    if review is None:
        return {"url": url, "label": "Review this session"}
    if reviews.editable(review, me):
        return {"url": url, "label": "Edit your review"}
    return {"url": _review_url(review), "label": "Your review"}


bp.add_app_template_global(review_caps, "review_caps")
bp.add_app_template_global(booking_review_link, "booking_review_link")
bp.add_app_template_global(reviewer_name, "reviewer_name")


# --- writing and editing ---------------------------------------------------------------------------------

def _form_state(booking):
    """The booking's review and whether I may write or edit it now, or the 403/409 that says why not."""
    me = g.membership
    if me.id != booking.athlete_membership_id:
        abort(403, "Only the athlete of this session can review it.")
    if booking.status != "ended":
        abort(409, "You can review a session once it has ended.")
    review = reviews.review_for_booking(booking)
    if review is not None and not reviews.editable(review, me):
        abort(409, "A review can be edited for a limited time after it is written; this one can no longer be "
                   "changed.")
    return review


@bp.route("/bookings/<booking_id>/review", methods=["GET", "POST"])
@role_required()
@idempotent
def review_form(booking_id: str):
    """Write, or edit while it is editable, my review of a session that ended."""
    booking = load_booking(booking_id)
    review = _form_state(booking)
    form = ReviewForm(obj=None if request.method == "POST" else review)
    if review is not None and request.method == "GET":
        form.stars.data = str(review.stars)
    done = None
    if form.validate_on_submit():
        if review is None:
            done = attempt(form, reviews.write_review, booking, g.membership, form.stars.data, form.body.data)
        else:
            done = attempt(form, reviews.edit_review, review, g.membership, form.stars.data, form.body.data)
        if done:
            db.session.commit()
            flash("Thank you: your review is published." if review is None else "Your review is updated.",
                  "success")
            return redirect_after_post(url_for("booking.detail", booking_id=booking.id))
    status = done.status if done is not None else (422 if form.errors else 200)
    return render("directory/review_form.html", "form", status=status, org=g.org, booking=booking, review=review,
                  form=form, body_max=REVIEW_BODY_MAX, edit_days=current_app.config["REVIEW_EDIT_DAYS"])


# --- one review, and acting on it -------------------------------------------------------------------------

def _one(review, **extra) -> dict:
    page = reviews.ReviewPage([review], None, "newest", *reviews.marks_of(g.org.id, g.membership.id, [review.id]))
    return dict(org=g.org, review=review, member=g.membership, reviews_page=page, coach_name=_coach_name(review),
                reply_form=ReplyForm(formdata=None), back=_back(_review_url(review)), **extra)


def _coach_name(review) -> str:
    coach = orgs.get_membership(g.org, review.coach_membership_id)
    return coach.user.display_name if coach is not None else "the coach"


@bp.get("/reviews/<review_id>")
@role_required()
def review(review_id: str):
    """One review with its reply and what I may do with it."""
    return render("directory/review.html", "review", **_one(load_review(review_id)))


@bp.post("/reviews/<review_id>/reply")
@role_required()
@idempotent
def reply(review_id: str):
    """The reviewed coach's one public reply."""
    found = load_review(review_id)
    form = ReplyForm()
    done = form.validate_on_submit() and attempt(form, reviews.reply, found, g.membership, form.body.data)
    if done:
        db.session.commit()
        return swap_or_redirect("directory/review.html", "review", _back(_review_url(found)),
                                "Your reply is published.", context=lambda: _one(found))
    status = done.status if done is not False else 422
    return render("directory/review.html", "review", status=status, **{**_one(found), "reply_form": form})


@bp.route("/reviews/<review_id>/flag", methods=["GET", "POST"])
@role_required()
@idempotent
def flag(review_id: str):
    """Flag a review for the organization's moderators, with a reason."""
    found = load_review(review_id)
    form = ReasonForm()
    done = form.validate_on_submit() and attempt(form, reviews.flag, found, g.membership, form.reason.data)
    if done:
        db.session.commit()
        flash("Thank you: the moderators will look at it.", "success")
        return redirect_after_post(_back(_review_url(found)))
    status = done.status if done is not False else (422 if form.errors else 200)
    return render("directory/review_flag.html", "form", status=status, org=g.org, review=found, form=form,
                  back=_back(_review_url(found)), coach_name=_coach_name(found))


@bp.post("/reviews/<review_id>/helpful")
@role_required()
@idempotent
def helpful(review_id: str):
    """Count the review helpful, or take that back."""
    found = load_review(review_id)
    require_action_form()
    voted = reviews.vote_helpful(found, g.membership)
    db.session.commit()
    return swap_or_redirect("directory/review.html", "review", _back(_review_url(found)),
                            "Marked as helpful." if voted else "No longer marked as helpful.",
                            context=lambda: _one(found))


@bp.route("/reviews/<review_id>/hide", methods=["GET", "POST"])
@role_required()
@idempotent
def hide(review_id: str):
    """Hide a review (admins), with the reason, audited."""
    found = load_review(review_id)
    if not reviews.may_moderate(g.membership):
        abort(403, "Only the organization's admins moderate reviews.")
    form = ReasonForm()
    done = form.validate_on_submit() and attempt(form, reviews.hide, found, g.membership, form.reason.data)
    if done:
        db.session.commit()
        flash("The review is hidden: it no longer counts in the coach's rating.", "success")
        return redirect_after_post(_back(url_for("directory.moderation_reviews")))
    status = done.status if done is not False else (422 if form.errors else 200)
    return render("directory/review_hide.html", "form", status=status, org=g.org, review=found, form=form,
                  back=_back(url_for("directory.moderation_reviews")), coach_name=_coach_name(found))


@bp.post("/reviews/<review_id>/restore")
@role_required()
@idempotent
def restore(review_id: str):
    """Show a hidden review again, or keep a flagged one (admins): its flags are resolved."""
    found = load_review(review_id)
    require_action_form()
    was_hidden = found.status == "hidden"
    reviews.restore(found, g.membership)
    db.session.commit()
    flash("The review is shown again." if was_hidden else "The review stays; its flags are resolved.", "success")
    return redirect_after_post(_back(url_for("directory.moderation_reviews")))


@bp.get("/moderation/reviews")
@role_required()
def moderation_reviews():
    """Flagged and hidden reviews, for the organization's admins."""
    if not reviews.may_moderate(g.membership):
        abort(403, "Only the organization's admins moderate reviews.")
    flagged, hidden = reviews.moderation_queue(g.org.id)
    flags = reviews.open_flags_of(g.org.id, [r.id for r in flagged])
    coaches = reviews.names_of(g.org.id, {r.coach_membership_id for r in flagged + hidden})
    return render("directory/moderation_reviews.html", org=g.org, flagged=flagged, hidden=hidden, flags=flags,
                  coaches=coaches, action_form=ActionForm(), reason_form=ReasonForm(formdata=None))


# --- pages of a coach's reviews --------------------------------------------------------------------------

def _list_or_rows(template: str, **context):
    """The page, or for htmx's "More" and the order switch only the list's rows (``_reviews.html``'s block)."""
    if wants_fragment():
        return render_block("directory/_reviews.html", "review_rows", **context)
    return render(template, **context)


@bp.get("/coaches/<coach_id>/reviews")
@role_required()
def coach_reviews(coach_id: str):
    """A coach's reviews with the rating chart, newest or most helpful first, a page at a time."""
    coach = orgs.get_membership(g.org, parse_uuid(coach_id))
    if coach is None or coach.role != COACH:
        abort(404)
    page = reviews.reviews_page(g.org.id, coach.id, request.args.get("order", "newest"),
                                request.args.get("cursor"), PAGE, member=g.membership)
    return _list_or_rows("directory/reviews.html", org=g.org, coach=coach, coach_name=coach.user.display_name,
                         rating=reviews.rating_of(g.org.id, coach.id), reviews_page=page, member=g.membership,
                         reviews_url=url_for("directory.coach_reviews", coach_id=coach.id),
                         action_form=ActionForm(), reply_form=ReplyForm(formdata=None))
