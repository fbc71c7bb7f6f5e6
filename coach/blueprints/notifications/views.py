"""Notifications: the list (mark read, mark all read), opening one, and preferences per kind.

The nav's bell and chat badges are rendered with every full page (:func:`nav_badges`) and
updated live over the chat socket (``notify`` events, :mod:`coach.chat.hub`).
"""
from __future__ import annotations

from flask import abort, current_app, flash, g, redirect, request, url_for

from coach.blueprints.forms import attempt
from coach.blueprints.notifications import bp
from coach.blueprints.templating import nav_badges
from coach.extensions import db
from coach.htmx import redirect_after_post, render, swap_or_redirect
from coach.notifications import service
from coach.notifications.models import CHANNELS, KINDS, TIMINGS
from coach.platform.idempotency import idempotent
from coach.tenancy import role_required

INDEX = "notifications/index.html"


def _commit_and_push() -> None:
    db.session.commit()
    members = service.take_pushed()
    if members:
        service.publish_counts(g.org.id, members)


def _load(notification_id: str):
    """One of my notifications, or 404."""
    notification = service.get(g.membership, notification_id)
    if notification is None:
        abort(404)
    return notification


# --- the list --------------------------------------------------------------------------------------

@bp.get("")
@role_required()
def index():
    """Newest first, unread ones marked; older ones page in as the end of the list shows."""
    unread_only = request.args.get("show") == "unread"
    before = request.args.get("before")
    page = service.page(g.membership, before=before, unread_only=unread_only)
    # The unread count is the nav's bell's too (one query for both); the next page of rows shows neither.
    unread = None if before else nav_badges()["notifications"]
    return render(INDEX, "page" if before else None, org=g.org, rows=page.rows, cursor=page.next_cursor,
                  paging=bool(before), unread_only=unread_only, unread=unread, base=url_for("notifications.index"))


@bp.get("/<notification_id>")
@role_required()
def open_one(notification_id: str):
    """Mark it read and go to the thing it is about."""
    notification = _load(notification_id)
    target = notification.url
    service.mark_read(g.membership, [notification.id])
    _commit_and_push()
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("notifications.index")  # only ever a path of this app
    return redirect(target, 303)


@bp.post("/<notification_id>/read")
@role_required()
def mark_one(notification_id: str):
    """Mark one read: htmx gets its row again (and the bell's count), a plain form goes back."""
    notification = _load(notification_id)
    service.mark_read(g.membership, [notification.id])
    _commit_and_push()
    # Only a row swapped in place answers with the row; a plain form (or boosted one) navigates back.
    back = request.referrer if _same_origin(request.referrer) else url_for("notifications.index")

    def row() -> dict:
        db.session.refresh(notification)
        return {"n": notification, "oob_bell": True, "unread": service.unread_count(g.membership),
                "base": url_for("notifications.index")}

    return swap_or_redirect(INDEX, "item", back, context=row)


@bp.post("/read-all")
@role_required()
@idempotent
def mark_all():
    """Mark every notification of mine read."""
    changed = service.mark_read(g.membership)
    _commit_and_push()
    flash("All notifications marked read." if changed else "Nothing was unread.", "success")
    return redirect_after_post(url_for("notifications.index"))


def _same_origin(url: str | None) -> bool:
    return bool(url) and url.startswith(request.host_url)


# --- preferences -----------------------------------------------------------------------------------

@bp.route("/preferences", methods=["GET", "POST"])
@role_required()
def preferences():
    """How to be told about each kind: in the app, also by email (right away or daily), or not at all."""
    errors: list[str] = []
    if request.method == "POST":
        choices, unknown = _choices(request.form)
        if unknown:
            abort(400, f"Unknown notification kind: “{unknown[0]}”. Reload the page and try again.")
        saved = attempt(None, service.set_preferences, g.membership, choices)
        if saved:
            db.session.commit()
            flash("Notification settings saved.", "success")
            return redirect_after_post(url_for("notifications.preferences"))
        errors.append(str(saved.error))
    prefs = service.preferences_for(g.membership)
    if errors:  # show what was sent, not what is stored
        choices, _ = _choices(request.form)
        prefs = {k: service.Preference(k, *choices.get(k, (p.channel, p.timing))) for k, p in prefs.items()}
    return render("notifications/preferences.html", status=422 if errors else 200, org=g.org, prefs=prefs,
                  groups=_grouped(prefs), channels=CHANNELS, timings=TIMINGS, errors=errors, kinds=KINDS,
                  message_delay=current_app.config["NOTIFY_MESSAGE_EMAIL_DELAY_SECONDS"],
                  digest_minute=service.DIGEST_HOUR * 60)


def _grouped(prefs: dict) -> list[tuple[str, list]]:
    """``[(group, [preference, ...]), ...]`` in the page's order (Jinja's ``groupby`` would sort the groups)."""
    groups: dict[str, list] = {}
    for pref in prefs.values():
        groups.setdefault(pref.group, []).append(pref)
    return list(groups.items())


def _choices(form) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """``{kind: (channel, timing)}`` from ``channel-<kind>`` / ``timing-<kind>`` fields, and unknown kinds."""
    choices: dict[str, tuple[str, str]] = {}
    unknown: list[str] = []
    for key in form:
        prefix, _, kind = key.partition("-")
        if prefix not in ("channel", "timing"):
            continue
        if kind not in KINDS:
            unknown.append(kind[:40])
            continue
        if kind not in choices:
            choices[kind] = (form.get(f"channel-{kind}", ""), form.get(f"timing-{kind}", "immediate"))
    return choices, unknown
