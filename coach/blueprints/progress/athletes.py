"""The athlete pages: "Today" for an athlete and the athlete list for staff (``progress.index``), one athlete's
page with its charts, timeline and private coach notes (``progress.athlete``), the timeline a page at a time,
and the notes form."""
from __future__ import annotations

from flask import current_app, flash, g, request, url_for
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from coach.blueprints.forms import BaseForm, attempt
from coach.blueprints.progress import bp
from coach.extensions import db
from coach.htmx import redirect_after_post, render, trigger, wants_fragment
from coach.orgs.models import ADMIN, ATHLETE, COACH
from coach.platform.idempotency import idempotent
from coach.progress import athletes, programs
from coach.progress.access import is_staff, load_athlete
from coach.tenancy import role_required

INDEX, TODAY, ATHLETE_PAGE, TIMELINE = ("progress/index.html", "progress/index_athlete.html",
                                        "progress/athlete.html", "progress/athlete_timeline.html")

# Where a timeline entry links to: the page (its URL rule, GET) of what the entry is about, with the entry's
# subject as the rule's one variable besides the organization (a report: the athlete's reports page). A rule
# that is not registered leaves the entry without a link.
ENTRY_RULES = {
    "session": "/o/<slug>/bookings/<booking_id>",
    "record": "/o/<slug>/progress/records/<record_id>",
    "review": "/o/<slug>/media/<media_id>",
    "goal": "/o/<slug>/progress/goals/<goal_id>",
    "workout": "/o/<slug>/progress/workouts/logs/<log_id>",
    "report": "/o/<slug>/progress/athletes/<athlete_id>/reports",
}


# The athlete's other pages, linked from the athlete page's header: (label, URL rule, query string).
ATHLETE_LINKS = (
    ("Goals", "/o/<slug>/progress/athletes/<athlete_id>/goals", {}),
    ("Habits", "/o/<slug>/progress/athletes/<athlete_id>/habits", {}),
    ("Readiness", "/o/<slug>/progress/athletes/<athlete_id>/readiness", {}),
    ("Workouts", "/o/<slug>/progress/workouts/calendar", {"athlete_id": True}),
    ("Reports", "/o/<slug>/progress/athletes/<athlete_id>/reports", {}),
)


def _get_rules() -> dict:
    """URL rule → its GET rule, read once per app from its URL map."""
    found = current_app.extensions.get("progress_get_rules")
    if found is None:
        found = {rule.rule: rule for rule in current_app.url_map.iter_rules() if "GET" in (rule.methods or ())}
        current_app.extensions["progress_get_rules"] = found
    return found


def _entry_endpoints() -> dict[str, tuple[str, str]]:
    """kind → (endpoint, its variable) of each registered rule of ``ENTRY_RULES`` (once per app)."""
    found = current_app.extensions.get("progress_entry_links")
    if found is None:
        found = {}
        for kind, pattern in ENTRY_RULES.items():
            rule = _get_rules().get(pattern)
            variables = sorted(set(rule.arguments) - {"slug"}) if rule is not None else []
            if len(variables) == 1:
                found[kind] = (rule.endpoint, variables[0])
        current_app.extensions["progress_entry_links"] = found
    return found


def athlete_links(athlete) -> list[tuple[str, str]]:
    """(label, URL) of the athlete's other pages that are installed."""
    links = []
    for label, pattern, query in ATHLETE_LINKS:
        rule = _get_rules().get(pattern)
        if rule is not None:
            values = {name: athlete.id for name in (*rule.arguments, *query) if name != "slug"}
            links.append((label, url_for(rule.endpoint, **values)))
    return links


class NoteForm(BaseForm):
    body = TextAreaField("New note", validators=[
        DataRequired(message="Write the note first."),
        Length(max=athletes.NOTE_MAX, message=f"Use at most {athletes.NOTE_MAX:,} characters.")],
        description="Only the organization's coaches and admins read notes. Markdown works.")


def entry_url(entry) -> str | None:
    """The page of what a timeline entry is about, when there is one."""
    link = _entry_endpoints().get(entry.kind)
    if link is None:
        return None
    subject = entry.athlete_membership_id if entry.kind == "report" else entry.subject_id
    return url_for(link[0], **{link[1]: subject})


def _timeline_url(athlete, cursor: str | None) -> str | None:
    return url_for("progress.timeline", athlete_id=athlete.id, before=cursor) if cursor else None


def _notes_context(athlete, form: NoteForm | None = None, notes=None) -> dict:
    return {"org": g.org, "athlete": athlete, "staff": is_staff(g.membership),
            "form": form or NoteForm(formdata=None),
            "notes": athletes.recent_notes(g.membership, athlete) if notes is None else notes}


def _athlete_context(athlete, form: NoteForm | None = None) -> dict:
    data = athletes.overview(g.membership, athlete)
    return {**_notes_context(athlete, form, data.notes), "data": data, "entry_url": entry_url,
            "more_url": _timeline_url(athlete, data.timeline.next_cursor),
            "links": athlete_links(athlete)}


@bp.get("", endpoint="index")
@role_required(ADMIN, COACH, ATHLETE)
def index():
    """An athlete's "Today"; for coaches and admins, their athletes at a glance (with search)."""
    if not is_staff(g.membership):
        return render(TODAY, org=g.org, data=athletes.today_for(g.membership), prescription=programs.prescription)
    search = request.args.get("q", "")
    return render(INDEX, "athlete_rows", org=g.org, search=search, limit=athletes.LIST_LIMIT,
                  rows=athletes.athlete_list(g.membership, search))


@bp.get("/athletes/<athlete_id>", endpoint="athlete")
@role_required(ADMIN, COACH, ATHLETE)
def athlete_page(athlete_id: str):
    """One athlete: matrix, goals and habits, readiness and compliance charts, timeline, notes."""
    return render(ATHLETE_PAGE, **_athlete_context(load_athlete(g.membership, athlete_id)))


@bp.get("/athletes/<athlete_id>/timeline", endpoint="timeline")
@role_required(ADMIN, COACH, ATHLETE)
def timeline(athlete_id: str):
    """The athlete's timeline after a cursor: the next entries for htmx's "More", a page of its own without JS."""
    athlete = load_athlete(g.membership, athlete_id)
    page = athletes.timeline_page(g.membership, athlete, request.args.get("before"))
    return render(TIMELINE, "entries", org=g.org, athlete=athlete, page=page, entry_url=entry_url,
                  more_url=_timeline_url(athlete, page.next_cursor))


@bp.post("/athletes/<athlete_id>/notes", endpoint="add_note")
@role_required(ADMIN, COACH)
@idempotent
def add_note(athlete_id: str):
    """Write a private note about the athlete (coaches and admins only)."""
    athlete = load_athlete(g.membership, athlete_id)
    form = NoteForm()
    done = attempt(form, athletes.add_note, g.membership, athlete, form.body.data) if form.validate_on_submit() \
        else None
    if done:
        db.session.commit()
        if wants_fragment():
            trigger("timeline-changed")
            return render(ATHLETE_PAGE, "notes", **_notes_context(athlete))
        flash("Note saved. Only coaches and admins see it.", "success")
        return redirect_after_post(url_for("progress.athlete", athlete_id=athlete.id) + "#notes")
    status = done.status if done is not None else 422
    if wants_fragment():
        return render(ATHLETE_PAGE, "notes", status=status, **_notes_context(athlete, form))
    return render(ATHLETE_PAGE, status=status, **_athlete_context(athlete, form))
