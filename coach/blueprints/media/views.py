"""Media: the library with direct-to-storage uploads, an item's page (player, status, review comments).

The upload itself is a small JSON exchange with ``static/js/media.js``: an intent returns
signed part URLs, the browser sends the parts to storage, then asks to finalize. Everything
else is HTML, and works without JavaScript (the upload needs it: the bytes skip our servers).
"""
from __future__ import annotations

from flask import abort, flash, g, jsonify, request, url_for

from coach.blueprints.media.forms import DetailsForm, ReviewCommentForm, UploadForm
from coach.extensions import db
from coach.htmx import redirect_after_post, render, wants_fragment
from coach.media import service
from coach.media.models import AUDIENCES
from coach.media.service import BadMoment, MediaError
from coach.platform.ratelimit import UPLOADS_PER_USER, limiter, user_key
from coach.tenancy import role_required
from coach.blueprints.media import bp



# --- loaders ---------------------------------------------------------------------------------------

def load_item(media_id: str, manage: bool = False):
    """The item if I may see it (and manage it, with ``manage``); 404 otherwise, so ids reveal nothing."""
    item = service.get_item(g.org, media_id)
    if item is None or not service.can_view(item, g.membership):
        abort(404)
    if manage and not service.can_manage(item, g.membership):
        abort(403)
    return item


def _refused(exc: MediaError):
    db.session.rollback()
    return jsonify(error=str(exc)), exc.status


# --- library and uploads ---------------------------------------------------------------------------

@bp.get("")
@role_required()
def library():
    """My media and what is shared with me, newest first, with the upload form and the room left."""
    mine = request.args.get("show") == "mine"
    page = service.library(g.org, g.membership, mine_only=mine, after=request.args.get("after"))
    return render("media/library.html", "page" if request.args.get("after") else None, org=g.org, page=page,
                  mine=mine, form=UploadForm(formdata=None), usage=service.usage(g.org),
                  max_bytes=service._cfg("MEDIA_MAX_BYTES"), human_size=service.human_size, me=g.membership)


@bp.post("/uploads")
@role_required()
@limiter.limit(UPLOADS_PER_USER, key_func=user_key, scope="media-uploads")
def start_upload():
    """JSON: an upload intent (name, size, type) → the item and its signed part URLs."""
    if not request.is_json:  # the upload form sent without JavaScript: the bytes cannot go to storage
        flash("Uploading sends the file straight to storage from your browser: turn JavaScript on to upload.",
              "error")
        return redirect_after_post(url_for("media.library"))
    data = request.get_json(silent=True)
    data = data if isinstance(data, dict) else {}  # a JSON list, string or number is no intent either
    try:
        item = service.start_upload(g.org, g.membership, str(data.get("filename") or ""), data.get("size"),
                                    str(data.get("content_type") or ""), str(data.get("audience") or "staff"),
                                    str(data.get("title") or ""))
        plan = service.upload_plan(item)
    except MediaError as exc:
        return _refused(exc)
    db.session.commit()
    return jsonify(plan | _links(item)), 201


def _links(item) -> dict:
    return {"finalize_url": url_for("media.finalize", media_id=item.id),
            "resume_url": url_for("media.resume", media_id=item.id),
            "page_url": url_for("media.item", media_id=item.id)}


@bp.get("/<media_id>/upload")
@role_required()
def resume(media_id: str):
    """JSON: fresh part URLs and the parts storage already has, to go on after a reload."""
    item = load_item(media_id, manage=True)
    try:
        return jsonify(service.upload_plan(item) | _links(item))
    except MediaError as exc:
        return _refused(exc)


@bp.post("/<media_id>/finalize")
@role_required()
def finalize(media_id: str):
    """JSON: every part is sent; check the file and hand it to processing."""
    item = load_item(media_id, manage=True)
    try:
        item = service.finalize(item, g.membership)
    except MediaError as exc:
        return _refused(exc)
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
    return render("media/item.html", **_item_context(load_item(media_id)))


@bp.get("/<media_id>/status")
@role_required()
def status(media_id: str):
    """The polled status block; 286 (htmx: stop polling) once processing is over."""
    item = load_item(media_id)
    response = render("media/item.html", "status", **_item_context(item))
    if item.status != "processing" and wants_fragment():
        response.status_code = 286
    return response


@bp.post("/<media_id>")
@role_required()
def update(media_id: str):
    """Rename the item or change who can see it."""
    item = load_item(media_id, manage=True)
    form = DetailsForm()
    if form.validate_on_submit():
        try:
            service.update_details(item, g.membership, form.title.data, form.audience.data)
        except MediaError as exc:
            db.session.rollback()
            form.title.errors.append(str(exc))
        else:
            db.session.commit()
            flash("Saved.", "success")
            return redirect_after_post(url_for("media.item", media_id=item.id))
    return render("media/item.html", "details", status=422, **_item_context(item, details_form=form))


@bp.post("/<media_id>/delete")
@role_required()
def delete(media_id: str):
    """Delete the item; its files are removed in the background and its room given back."""
    item = load_item(media_id, manage=True)
    try:
        service.delete_item(item, g.membership)
    except MediaError as exc:
        db.session.rollback()
        abort(exc.status, str(exc))
    db.session.commit()
    flash(f"Deleted “{item.title}”.", "success")
    return redirect_after_post(url_for("media.library"))


# --- review comments -------------------------------------------------------------------------------

@bp.post("/<media_id>/comments")
@role_required()
def comment(media_id: str):
    """Add a comment at a moment of the video, or a reply to one."""
    item = load_item(media_id)
    form = ReviewCommentForm()
    if form.validate_on_submit():
        parent = service.get_review_comment(item, form.parent.data) if form.parent.data else None
        if form.parent.data and parent is None:
            abort(404)
        try:
            service.add_review_comment(item, g.membership, service.parse_moment(form.at.data), form.body.data,
                                       parent)
        except MediaError as exc:
            db.session.rollback()
            (form.at if isinstance(exc, BadMoment) else form.body).errors.append(str(exc))
        else:
            db.session.commit()
            return _after_comment(item)
    return render("media/item.html", "review", status=422, **_item_context(item, comment_form=form))


def _after_comment(item):
    if wants_fragment():
        return render("media/item.html", "review", **_item_context(item))
    return redirect_after_post(url_for("media.item", media_id=item.id) + "#review")


@bp.post("/<media_id>/comments/<comment_id>/delete")
@role_required()
def delete_comment(media_id: str, comment_id: str):
    """Delete a review comment (its author, the video's owner or an admin)."""
    item = load_item(media_id)
    comment = service.get_review_comment(item, comment_id)
    if comment is None:
        abort(404)
    try:
        service.delete_review_comment(comment, g.membership)
    except MediaError as exc:
        db.session.rollback()
        abort(exc.status, str(exc))
    db.session.commit()
    return _after_comment(item)
