"""Organization admin: the dashboard (members, activity, bookings, storage, top coaches)."""
from __future__ import annotations

from flask import g

from coach.blueprints.admin import bp
from coach.blueprints.templating import orgtime
from coach.governance import dashboard as figures
from coach.htmx import render
from coach.orgs.models import ADMIN
from coach.tenancy import role_required


@bp.get("/dashboard")
@role_required(ADMIN)
def dashboard():
    """The organization at a glance: charts over the last 26 weeks, each with its table (figures kept for up to
    a minute, :func:`coach.governance.dashboard.shown`)."""
    board = figures.shown(g.org)
    as_of = orgtime(board.as_of, g.org, "%H:%M")  # on the admin's own clock
    return render("admin/dashboard.html", org=g.org, board=board, weeks=figures.WEEKS,
                  top_days=figures.TOP_COACH_DAYS, as_of=as_of, upkeep=figures.upkeep(g.org))
