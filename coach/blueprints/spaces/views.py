"""Spaces: the list, a space's feed, the home feed, posts with comments and reactions, flags, moderation."""
from __future__ import annotations

from datetime import datetime

from flask import abort, flash, g, make_response, request, url_for
from wtforms.fields.choices import SelectChoice

from coach import clock
from coach.blueprints.forms import ActionForm, attempt, require_action_form, org_path
from coach.blueprints.spaces import bp, fragments
from coach.blueprints.spaces.forms import AddMemberForm, CommentForm, FlagForm, PostForm, SpaceForm, SuspendForm
from coach.chat import realtime
from coach.extensions import db
from coach.htmx import load_at, redirect_after_post, render, swap_or_redirect, trigger
from coach.ids import parse_uuid
from coach.media import service as media_service
from coach.orgs import service as orgs
from coach.orgs.models import COACH
from coach.platform.idempotency import idempotent
from coach.spaces import service
from coach.spaces.models import REACTIONS
from coach.tenancy import role_required


def mention_url(member) -> str:
    return url_for("booking.coach_page", slug=g.org.slug, coach_id=member.id) if member.role == COACH \
        else url_for("spaces.feed", slug=g.org.slug)


# --- loaders: the object and what I may do with it, or 404 -------------------------------------------

def load_space(space_id: str):
    found = service.space_with_access(g.org, g.membership, space_id)
    if found is None or not found[1].read:
        abort(404)  # a private space is invisible to outsiders
    return found


def load_post(post_id: str):
    found = service.post_with_access(g.org, g.membership, post_id)
    if found is None or not found[2].read:
        abort(404)
    post, space, acc = found
    if (post.deleted_at or post.removed_at or post.hidden_at) and not acc.host:
        abort(404)
    return found


def load_comment(comment_id: str):
    comment = service.get_comment(g.org, comment_id)
    if comment is None:
        abort(404)
    post, space, acc = load_post(str(comment.post_id))
    return comment, post, space, acc


def load_member(membership_id: str):
    member = orgs.get_membership(g.org, parse_uuid(membership_id))
    if member is None:
        abort(404)
    return member


# --- answers the fragment rule (coach.htmx) does not have yet ----------------------------------------

# --- spaces ------------------------------------------------------------------------------------------

@bp.get("/spaces")
@role_required()
def index():
    """Every space I can see, with what is new in each since my last visit."""
    return render("spaces/index.html", org=g.org, spaces=service.spaces_for(g.org, g.membership),
                  can_create=service.may_create_spaces(g.org, g.membership),
                  space_url_pattern=fragments.url_pattern("spaces.space", space_id="space"))


@bp.route("/spaces/new", methods=["GET", "POST"])
@role_required()
@idempotent
def create():
    """Create a space; I become its host (who may is the organization's setting)."""
    if not service.may_create_spaces(g.org, g.membership):
        abort(403, "This organization's admins decided who creates spaces, and it is not your role.")
    form = SpaceForm()
    made = form.validate_on_submit() and attempt(form, service.create_space, g.org, g.membership, form.name.data,
                                                 form.description.data or "", form.visibility.data)
    if made:
        db.session.commit()
        return redirect_after_post(url_for("spaces.space", space_id=made.value.id))
    return render("spaces/new.html", "form", status=422 if form.errors else 200, org=g.org, form=form)


def _next_path() -> str | None:
    """Where a plain (no JavaScript) form of this page comes back to; ``None`` when the page answers a POST."""
    return request.full_path.rstrip("?") if request.method == "GET" else None


def _feed_context(space=None, acc=None) -> dict:
    page = service.feed_page(g.org, g.membership, space, request.args.get("after"))
    values = fragments.page_values(_next_path())

    def articles(posts):
        return fragments.post_articles(posts, page.attachments, page.counts, page.mine, in_space=space is not None,
                                       can_react=acc.comment if acc else True, values=values)

    return dict(org=g.org, space=space, acc=acc, page=page, posts_html=articles(page.posts),
                pinned_html=articles(page.pinned),
                # The composer's media: only the first page has a composer.
                attachable=media_service.attachable(g.org, g.membership)
                if acc and acc.post and not request.args.get("after") else [],
                loaded_at=clock.now().isoformat(), me=g.membership, **values)


@bp.get("/spaces/<space_id>")
@role_required()
def space(space_id: str):
    """A space's feed: pinned posts first, then newest first; older pages load as I scroll."""
    space, acc = load_space(space_id)
    block = "page" if request.args.get("after") else None
    context = _feed_context(space, acc)
    response = render("spaces/space.html", block, post_form=PostForm(formdata=None), **context)
    if not request.args.get("after") and service.saw_news(acc, context["page"]):
        # After rendering: the commit expires every loaded row, and reloading them one by one is N+1.
        service.mark_seen(space, g.membership)
        db.session.commit()
    return response


@bp.get("/feed")
@role_required()
def feed():
    """The home feed: every space I joined, newest first."""
    context = _feed_context()
    return render("spaces/feed.html", "page" if request.args.get("after") else None, **context)


@bp.get("/spaces/<space_id>/new-posts")
@bp.get("/feed/new-posts")
@role_required()
def new_posts(space_id: str | None = None):
    """The "N new posts" bar: 204 (nothing to swap) while nothing new arrived since the page loaded."""
    space = load_space(space_id)[0] if space_id else None
    try:
        since = datetime.fromisoformat(request.args.get("since", ""))
    except ValueError:
        abort(400, "since must be a time.")
    if since.tzinfo is None:
        abort(400, "since must be a time with its zone.")
    count = service.newer_posts(g.org, g.membership, since, space)
    if not count:
        return make_response("", 204)
    href = url_for("spaces.space", space_id=space.id) if space else url_for("spaces.feed")
    return render("spaces/new_posts.html", "bar", org=g.org, count=count, href=href)


@bp.post("/spaces/<space_id>/<any(join, leave):action>")
@role_required()
@idempotent
def membership(space_id: str, action: str):
    """Join an open space, or leave one."""
    space, _ = load_space(space_id)
    require_action_form()
    service.join(space, g.membership) if action == "join" else service.leave(space, g.membership)
    db.session.commit()
    flash(f"You joined {space.name}." if action == "join" else f"You left {space.name}.", "success")
    return redirect_after_post(url_for("spaces.space", space_id=space.id))


@bp.route("/spaces/<space_id>/members", methods=["GET", "POST"])
@role_required()
@idempotent
def members(space_id: str):
    """Members of a space; hosts add, remove and suspend."""
    space, acc = load_space(space_id)
    form = AddMemberForm()
    form.member.choices = [SelectChoice(str(m.id), f"{m.user.display_name} ({m.role})") for m in orgs.members(g.org)]
    if request.method == "POST":
        if not acc.host:
            abort(403)
        if form.validate_on_submit():
            member = load_member(form.member.data)
            service.add_member(space, g.membership, member, form.role.data)
            db.session.commit()
            flash(f"{member.user.display_name} added.", "success")
            return redirect_after_post(url_for("spaces.members", space_id=space.id))
    return render("spaces/members.html", org=g.org, space=space, acc=acc, form=form, action_form=ActionForm(),
                  suspend_form=SuspendForm(formdata=None), people=service.members_of(space),
                  now=clock.now())


@bp.post("/spaces/<space_id>/members/<membership_id>/<any(remove, suspend):action>")
@role_required()
@idempotent
def member_action(space_id: str, membership_id: str, action: str):
    """Remove someone from the space, or suspend them from posting there for some days."""
    space, acc = load_space(space_id)
    member = load_member(membership_id)
    if action == "remove":
        require_action_form()
        service.remove_member(space, g.membership, member)
    else:
        form = SuspendForm()
        if not form.validate_on_submit():
            abort(422, "Suspend for 1 to 365 days.")
        service.suspend(space, g.membership, member, clock.now() + service.suspension_period(form.days.data))
    db.session.commit()
    flash(f"{member.user.display_name} {'removed' if action == 'remove' else 'suspended'}.", "success")
    return redirect_after_post(request.form.get("next") if _safe(request.form.get("next"))
                               else url_for("spaces.members", space_id=space.id))


def _safe(target: str | None) -> bool:
    return org_path(target, g.org.slug)


# --- posts -------------------------------------------------------------------------------------------

@bp.post("/spaces/<space_id>/posts")
@role_required()
@idempotent
def create_post(space_id: str):
    """Publish a post in the space."""
    space, acc = load_space(space_id)
    form = PostForm()
    status = 422 if acc.post else 403  # not joined, suspended, or an announcement space: the composer says why
    if acc.post and form.validate_on_submit():
        posted = attempt(form, _publish, space, form)
        if posted:
            db.session.commit()
            # Members with the app open hear of it over their socket (their "new posts" bar asks at once).
            realtime.publish(space.tenant_id, {"type": "posts", "tenant_id": str(space.tenant_id),
                                               "space_id": str(space.id), "post_id": str(posted.value.id),
                                               "author_id": str(g.membership.id)})
            flash("Posted.", "success")
            return redirect_after_post(url_for("spaces.space", space_id=space.id))
        status = posted.status
    return render("spaces/space.html", "composer", status=status, post_form=form, **_feed_context(space, acc))


def _publish(space, form: PostForm):
    attachments = media_service.for_attachment(g.org, g.membership, request.form.getlist("attachments"))
    return service.create_post(space, g.membership, form.body.data, mention_url, attachments=attachments)


@bp.get("/posts/<post_id>")
@role_required()
def post(post_id: str):
    """A post with its comments and replies."""
    post, space, acc = load_post(post_id)
    return render("spaces/post.html", **_post_context(post, space, acc, CommentForm(formdata=None)))


def _post_context(post, space, acc, comment_form) -> dict:
    counts, mine = service.reaction_summary(g.org.id, [post.id], g.membership)
    values = fragments.page_values(_next_path())
    post_html = fragments.post_articles([post], service.attachments_of(g.org.id, [post.id]), counts, mine,
                                        in_space=True, can_react=acc.comment, values=values)
    return dict(org=g.org, post=post, space=space, acc=acc, post_html=post_html, comments=service.comments_of(post),
                comment_form=comment_form, me=g.membership,
                revisions=service.revisions(post) if acc.host and post.edited_at else [], **values)


@bp.route("/posts/<post_id>/edit", methods=["GET", "POST"])
@role_required()
@idempotent
def edit_post(post_id: str):
    """The author edits their post (earlier versions stay visible to hosts)."""
    post, space, acc = load_post(post_id)
    if post.author_membership_id != g.membership.id:
        abort(403)
    form = PostForm()
    if request.method == "GET":
        form.body.data = post.body_source
    elif form.validate_on_submit() and attempt(form, service.edit_post, post, g.membership, form.body.data,
                                               mention_url):
        db.session.commit()
        flash("Saved.", "success")
        return redirect_after_post(url_for("spaces.post", post_id=post.id))
    return render("spaces/edit.html", "form", status=422 if form.errors else 200, org=g.org, post=post,
                  space=space, form=form)


@bp.post("/posts/<post_id>/<any(delete, pin, unpin):action>")
@role_required()
@idempotent
def post_action(post_id: str, action: str):
    """Delete a post (author, host, admin), or pin and unpin it (hosts)."""
    post, space, _ = load_post(post_id)
    require_action_form()
    if action == "delete":
        service.delete_post(post, g.membership)
    else:
        service.set_pinned(post, g.membership, action == "pin")
    db.session.commit()
    flash({"delete": "Post deleted.", "pin": "Pinned to the top.", "unpin": "Unpinned."}[action], "success")
    return redirect_after_post(url_for("spaces.space", space_id=space.id))


@bp.post("/posts/<post_id>/react/<kind>")
@role_required()
@idempotent
def react(post_id: str, kind: str):
    """Toggle one of my reactions; the post's reaction bar swaps in place."""
    post, space, acc = load_post(post_id)
    require_action_form()
    if kind not in REACTIONS:
        abort(422, "Unknown reaction.")
    service.toggle_reaction(post, g.membership, kind)
    db.session.commit()
    back = request.form.get("next") if _safe(request.form.get("next")) else url_for("spaces.post", post_id=post.id)
    counts, mine = service.reaction_summary(g.org.id, [post.id], g.membership)
    return swap_or_redirect("spaces/_post.html", "reactions", back, post=post, counts=counts, mine=mine,
                             reactions=REACTIONS, can_react=acc.comment, **fragments.page_values(None))


@bp.post("/posts/<post_id>/comments")
@role_required()
@idempotent
def comment(post_id: str):
    """Comment on a post, or reply to a comment."""
    post, space, acc = load_post(post_id)
    form = CommentForm()
    if form.validate_on_submit():
        parent = service.get_comment(g.org, form.parent.data) if form.parent.data else None
        if form.parent.data and parent is None:
            abort(404)
        created = service.add_comment(post, g.membership, form.body.data, parent, mention_url)
        db.session.commit()
        trigger("comments-changed")
        return load_at(url_for("spaces.post", post_id=post.id) + f"#comment-{created.id}")
    # Without JavaScript this is the whole post page again: with its comments, not "No comments yet".
    return render("spaces/post.html", "comment_form", status=422, **_post_context(post, space, acc, form))


@bp.post("/comments/<comment_id>/delete")
@role_required()
@idempotent
def delete_comment(comment_id: str):
    """Delete a comment (author, host, admin)."""
    comment, post, space, _ = load_comment(comment_id)
    require_action_form()
    service.delete_comment(comment, g.membership)
    db.session.commit()
    flash("Comment deleted.", "success")
    return redirect_after_post(url_for("spaces.post", post_id=post.id))


# --- flags and moderation ----------------------------------------------------------------------------

@bp.route("/<any(posts, comments):kind>/<target_id>/flag", methods=["GET", "POST"])
@role_required()
@idempotent
def flag(kind: str, target_id: str):
    """Flag a post or comment for the hosts, with a reason."""
    if kind == "posts":
        target, _, _ = load_post(target_id)
        back = url_for("spaces.post", post_id=target.id)
    else:
        target, post, _, _ = load_comment(target_id)
        back = url_for("spaces.post", post_id=post.id)
    form = FlagForm()
    flagged = form.validate_on_submit() and attempt(form, service.flag, target, g.membership, form.reason.data)
    if flagged:
        db.session.commit()
        hidden = flagged.value
        flash("Thank you: the hosts will review it." + (" It is hidden until then." if hidden else ""), "success")
        if hidden and kind == "posts":  # the post's page is 404 for its readers now: back to its space
            back = url_for("spaces.space", space_id=target.space_id)
        return redirect_after_post(back)
    return render("spaces/flag.html", "form", status=422 if form.errors else 200, org=g.org, form=form,
                  kind=kind, target=target, back=back)


@bp.get("/moderation")
@role_required()
def moderation():
    """Flagged and hidden posts and comments in the spaces I host (all of them for admins)."""
    return render("spaces/moderation.html", org=g.org, items=service.moderation_queue(g.org, g.membership),
                  action_form=ActionForm(), suspend_form=SuspendForm(formdata=None))


@bp.post("/moderation/<any(posts, comments):kind>/<target_id>/<any(restore, remove):action>")
@role_required()
@idempotent
def moderate(kind: str, target_id: str, action: str):
    """Restore flagged content, or remove it."""
    target = service.get_post(g.org, target_id) if kind == "posts" else service.get_comment(g.org, target_id)
    if target is None:
        abort(404)
    require_action_form()
    (service.restore if action == "restore" else service.remove)(target, g.membership)
    db.session.commit()
    flash("Restored." if action == "restore" else "Removed.", "success")
    return redirect_after_post(url_for("spaces.moderation"))


@bp.get("/spaces/<space_id>/mentions")
@role_required()
def mention_suggestions(space_id: str):
    """Who ``@…`` at the end of the text may mean: a small list for the composer."""
    load_space(space_id)
    # Only printable text can name someone (a NUL would reach the database's LIKE and fail it).
    text = "".join(ch for ch in request.args.get("body", "")[-80:] if ch.isprintable() or ch.isspace())
    word = text.rsplit(None, 1)[-1] if text.strip() else ""
    people = service.mention_candidates(g.org, word) if word.startswith("@") and len(word) > 1 else []
    return render("spaces/mentions.html", "list", org=g.org, people=people)
