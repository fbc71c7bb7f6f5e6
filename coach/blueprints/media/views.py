"""Media: the library with direct-to-storage uploads, an item's page (player, status, review comments).

The upload itself is a small JSON exchange with ``static/js/media.js``: an intent returns
signed part URLs, the browser sends the parts to storage, then asks to finalize. Everything
else is HTML, and works without JavaScript (the upload needs it: the bytes skip our servers).
"""
from __future__ import annotations

from flask import abort, current_app, flash, g, jsonify, request, url_for

from coach.blueprints.forms import attempt, require_action_form
from coach.blueprints.json_answers import answers_json
from coach.blueprints.media import bp
from coach.blueprints.media.forms import DetailsForm, ReviewCommentForm, UploadForm
from coach.extensions import db
from coach.htmx import fragment_status, redirect_after_post, render, swap_or_redirect
from coach.media import service
from coach.media.models import AUDIENCES
from coach.media.service import BadMoment
from coach.platform.idempotency import idempotent
from coach.platform.ratelimit import UPLOADS_PER_USER, limiter, user_key
from coach.tenancy import role_required

ITEM_PAGE = "media/item.html"
# A library tile's thumbnail: its one signed URL (not every rendition's, as ``media_urls`` signs).
bp.add_app_template_global(service.thumb_url, "media_thumb_url")


# --- loaders ---------------------------------------------------------------------------------------

def load_item(media_id: str, manage: bool = False):
    """The item if I may see it (and manage it, with ``manage``); 404 otherwise, so ids reveal nothing."""
    item = service.get_item(g.org, media_id)
    if item is None or not service.can_view(item, g.membership):
        abort(404)
    if manage and not service.can_manage(item, g.membership):
        abort(403)
    return item


def load_comment(item, comment_id: str):
    """A review comment of the item; 404 when there is none with that id."""
    comment = service.get_review_comment(item, comment_id)
    if comment is None:
        abort(404)
    return comment


# --- library and uploads ---------------------------------------------------------------------------

@bp.get("")
@role_required()
def library():
    """My media and what is shared with me, newest first, with the upload form and the room left."""
    mine = request.args.get("show") == "mine"
    page = service.library(g.org, g.membership, mine_only=mine, after=request.args.get("after"))
    return render("media/library.html", "page" if request.args.get("after") else None, org=g.org, page=page,
                  mine=mine, form=UploadForm(formdata=None), usage=service.shown_usage(g.org),
                  max_bytes=current_app.config["MEDIA_MAX_BYTES"], human_size=service.human_size, me=g.membership)


@bp.post("/uploads")
@role_required()
@idempotent
@limiter.limit(UPLOADS_PER_USER, key_func=user_key, scope="media-uploads")
@answers_json
def start_upload():
    """JSON: an upload intent (name, size, type) → the item and its signed part URLs."""
    if not request.is_json:  # the upload form sent without JavaScript: the bytes cannot go to storage
        flash("Uploading sends the file straight to storage from your browser: turn JavaScript on to upload.",
              "error")
        return redirect_after_post(url_for("media.library"))
    data = request.get_json(silent=True)
    data = data if isinstance(data, dict) else {}  # a JSON list, string or number is no intent either
    item = service.start_upload(g.org, g.membership, str(data.get("filename") or ""), data.get("size"),
                                str(data.get("content_type") or ""), str(data.get("audience") or "staff"),
                                str(data.get("title") or ""))
    plan = service.upload_plan(item)
    db.session.commit()
    return jsonify(plan | _links(item)), 201


def _links(item) -> dict:
    return {"finalize_url": url_for("media.finalize", media_id=item.id),
            "resume_url": url_for("media.resume", media_id=item.id),
            "page_url": url_for("media.item", media_id=item.id)}


@bp.get("/<media_id>/upload")
@role_required()
@answers_json
def resume(media_id: str):
    """JSON: fresh part URLs and the parts storage already has, to go on after a reload."""
    item = load_item(media_id, manage=True)
    return jsonify(service.upload_plan(item) | _links(item))


@bp.post("/<media_id>/finalize")
@role_required()
@answers_json
def finalize(media_id: str):
    """JSON: every part is sent; check the file and hand it to processing."""
    item = service.finalize(load_item(media_id, manage=True), g.membership)
    db.session.commit()
    body = {"status": item.status, "page_url": url_for("media.item", media_id=item.id)}
    if item.status == "failed":
        return jsonify(body | {"error": item.failure_reason}), 422
    return jsonify(body)


# --- an item ---------------------------------------------------------------------------------------

def _item_context(item, comment_form=None, details_form=None) -> dict:
    return dict(org=g.org, item=item, me=g.membership, urls=service.urls(item),
                can_manage=service.can_manage(item, g.membership), audiences=AUDIENCES,
                comments=service.review_comments(item) if item.kind == "video" and item.ready else [],
                comment_form=comment_form or ReviewCommentForm(formdata=None),
                details_form=details_form or DetailsForm(formdata=None, obj=item),
                start_at=service.parse_moment(request.args.get("t")) if request.args.get("t") else None,
                human_size=service.human_size)


@bp.get("/<media_id>")
@role_required()
def item(media_id: str):
    """The item: player or image, its status while processing, and review comments on videos."""
    return render(ITEM_PAGE, **_item_context(load_item(media_id)))


@bp.get("/<media_id>/status")
@role_required()
def status(media_id: str):
    """The polled status block; 286 (htmx: stop polling) once processing is over."""
    item = load_item(media_id)
    # 286 means something only to htmx's polling: the same URL loaded as a page stays a 200.
    status = fragment_status(ITEM_PAGE, "status", 286) if item.status != "processing" else 200
    return render(ITEM_PAGE, "status", status=status, **_item_context(item))


@bp.post("/<media_id>")
@role_required()
@idempotent
def update(media_id: str):
    """Rename the item or change who can see it."""
    item = load_item(media_id, manage=True)
    form = DetailsForm()
    if form.validate_on_submit() and attempt(form, service.update_details, item, g.membership, form.title.data,
                                             form.audience.data):
        db.session.commit()
        flash("Saved.", "success")
        return redirect_after_post(url_for("media.item", media_id=item.id))
    return render(ITEM_PAGE, "details", status=422, **_item_context(item, details_form=form))


@bp.post("/<media_id>/delete")
@role_required()
@idempotent
def delete(media_id: str):
    """Delete the item; its files are removed in the background and its room given back."""
    item = load_item(media_id, manage=True)
    service.delete_item(item, g.membership)
    db.session.commit()
    flash(f"Deleted “{item.title}”.", "success")
    return redirect_after_post(url_for("media.library"))


@bp.post("/<media_id>/keep")
@role_required()
@idempotent
def keep(media_id: str):
    """Keep an item the retention would delete (a session recording): its owner or an admin; audited."""
    item = load_item(media_id, manage=True)
    require_action_form()
    service.keep(item, g.membership)
    db.session.commit()
    flash(f"“{item.title}” is kept until someone deletes it.", "success")
    return redirect_after_post(url_for("media.item", media_id=item.id))


# --- review comments -------------------------------------------------------------------------------

@bp.post("/<media_id>/comments")
@role_required()
@idempotent
def comment(media_id: str):
    """Add a comment at a moment of the video, or a reply to one."""
    item = load_item(media_id)
    form = ReviewCommentForm()
    if form.validate_on_submit():
        parent = load_comment(item, form.parent.data) if form.parent.data else None
        done = attempt(None, service.add_review_comment, item, g.membership, service.parse_moment(form.at.data),
                       form.body.data, parent)
        if done:
            db.session.commit()
            return _after_comment(item)
        # The message goes under the field it is about.
        (form.at if isinstance(done.error, BadMoment) else form.body).errors.append(done.error.message)
    return render(ITEM_PAGE, "review", status=422, **_item_context(item, comment_form=form))


def _after_comment(item):
    """With htmx the fresh review block replaces the old one; without, back to the page at the comments."""
    return swap_or_redirect(ITEM_PAGE, "review", url_for("media.item", media_id=item.id) + "#review",
                            context=lambda: _item_context(item))


@bp.post("/<media_id>/comments/<comment_id>/delete")
@role_required()
@idempotent
def delete_comment(media_id: str, comment_id: str):
    """Delete a review comment (its author, the video's owner or an admin)."""
    item = load_item(media_id)
    service.delete_review_comment(load_comment(item, comment_id), g.membership)
    db.session.commit()
    return _after_comment(item)
