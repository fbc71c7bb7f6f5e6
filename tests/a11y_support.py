"""The accessibility sweep (tests/e2e/test_accessibility*.py): the demo's data, the main pages of each role, and
axe-core run in the page.

- :func:`seed` runs ``flask seed-demo`` (Northside with an admin, two coaches, three athletes, spaces, media,
  progress, billing, reviews; two more organizations) and adds what the demo lacks for a sweep: a scheduler,
  sessions ahead (one requested, one confirmed), a conversation with messages, a review comment on the video.
- :func:`pages_for` names each role's main pages as (name, path).
- :func:`sweep` opens each page once, waits for its lazily loaded fragments, and runs axe at 1280x800 and 390x844
  with every WCAG 2.0/2.1 A and AA rule in the light scheme; in the dark scheme only the colour rules run (the
  scheme changes colours, nothing else), which keeps a role's sweep to about a minute.
  It returns every serious or critical violation as readable lines (page, width, scheme, rule, impact, targets).

axe-core comes from npm (package.json's devDependencies, installed by ``make setup``); it is handed to the page
with ``page.evaluate`` because the strict CSP refuses an injected ``<script>``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from coach import tenancy
from coach.booking import service as booking
from coach.chat import service as chat
from coach.extensions import db
from coach.media import service as media
from coach.media.models import MediaItem
from coach.orgs.models import Membership
from coach.orgs.service import org_by_slug
from coach.spaces.models import Post, Space

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# The rules a colour scheme can change.
COLOUR_RULES = ["color-contrast", "link-in-text-block"]
SIZES = {"1280": {"width": 1280, "height": 800}, "390": {"width": 390, "height": 844}}
BLOCKING = ("serious", "critical")
PASSWORD = "coach-demo-2026"
SLUG = "northside"
LOGINS = {"admin": "admin@northside.example", "coach": "maria.coach@northside.example",
          "athlete": "sam@northside.example", "scheduler": "sched@northside.example"}


@dataclass
class World:
    """Ids of the demo rows the pages need (plain strings)."""

    maria: str
    sam: str
    space: str
    post: str
    video: str
    offering: str
    requested: str
    confirmed: str
    conversation: str
    free: str  # a free start of the offering, as ?start= takes it
    goal: str
    habit: str
    program: str


def _member(org, email: str) -> Membership:
    from coach.accounts.service import find_user_by_email

    user = find_user_by_email(email)
    return db.session.scalar(select(Membership).where(Membership.tenant_id == org.id,
                                                      Membership.user_id == user.id))


def seed(app, job_runner) -> World:
    """The demo, plus a scheduler, sessions ahead, a conversation and a comment at a moment of the video."""
    from coach.accounts.service import create_user
    from coach.progress.models import Goal, Habit, Program

    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    job_runner.drain(timeout=60)  # the video's processing, the projection
    with app.test_request_context():
        org = org_by_slug(SLUG)
        tenancy.activate(org.id)
        maria, jonas = _member(org, LOGINS["coach"]), _member(org, "jonas.coach@northside.example")
        sam, priya = _member(org, LOGINS["athlete"]), _member(org, "priya@northside.example")
        scheduler = create_user(LOGINS["scheduler"], PASSWORD, "Robin Rota", "Europe/Berlin")
        db.session.add(Membership(tenant_id=org.id, user_id=scheduler.id, role="scheduler"))
        offering = booking.offerings_of(maria)[0]
        start = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        slots = booking.available_slots(offering, start, start + timedelta(days=14))
        assert len(slots) >= 2, "Maria has free time in the next two weeks"
        requested = booking.request_booking(offering, sam, slots[0].starts_at, "Second serve, please.", sam)
        confirmed = booking.request_booking(offering, priya, slots[-1].starts_at, "", priya, confirm=True)
        direct = chat.direct_with(org, maria, sam)
        chat.send(direct, sam, "Can we look at my toss on Thursday?")
        chat.send(direct, maria, "Yes: bring a clip of ten serves.")
        video = db.session.scalar(select(MediaItem).where(MediaItem.tenant_id == org.id, MediaItem.kind == "video"))
        assert video is not None, "the demo has a video"
        if video.status == "ready":
            media.add_review_comment(video, jonas, 3000, "Split step lands as the ball is struck: good.")
        space = db.session.scalar(select(Space).where(Space.tenant_id == org.id, Space.name == "Match analysis"))
        post = db.session.scalar(select(Post).where(Post.tenant_id == org.id, Post.space_id == space.id)
                                 .order_by(Post.created_at))
        world = World(
            maria=str(maria.id), sam=str(sam.id), space=str(space.id), post=str(post.id), video=str(video.id),
            offering=str(offering.id), requested=str(requested.id), confirmed=str(confirmed.id),
            conversation=str(direct.id), free=slots[len(slots) // 2].starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            goal=str(db.session.scalar(select(Goal.id).where(Goal.tenant_id == org.id))),
            habit=str(db.session.scalar(select(Habit.id).where(Habit.tenant_id == org.id))),
            program=str(db.session.scalar(select(Program.id).where(Program.tenant_id == org.id))))
        db.session.commit()
    job_runner.drain(timeout=30)
    return world


def pages_for(role: str, w: World) -> list[tuple[str, str]]:
    """The main pages ``role`` opens in the demo organization, as (name, path)."""
    o = f"/o/{SLUG}"
    everyone = [
        ("home", f"{o}/"), ("feed", f"{o}/feed"), ("spaces", f"{o}/spaces"), ("space", f"{o}/spaces/{w.space}"),
        ("post", f"{o}/posts/{w.post}"), ("chat", f"{o}/chat"), ("media library", f"{o}/media"),
        ("media item", f"{o}/media/{w.video}"), ("sessions", f"{o}/bookings"), ("book", f"{o}/book"),
        ("coach page", f"{o}/coaches/{w.maria}"), ("week calendar", f"{o}/offerings/{w.offering}"),
        ("notifications", f"{o}/notifications"), ("notification settings", f"{o}/notifications/preferences"),
        ("directory search", f"{o}/coaches"), ("coach profile", f"{o}/coaches/{w.maria}/profile"),
        ("account profile", "/profile"), ("account security", "/account/security"),
        ("account privacy", "/account/privacy"), ("organizations", "/orgs"),
    ]
    athlete = [
        ("progress", f"{o}/progress"), ("conversation", f"{o}/chat/{w.conversation}"), ("book page", f"{o}/offerings/{w.offering}/book?start={w.free}"),
        ("booking", f"{o}/bookings/{w.requested}"), ("goals", f"{o}/progress/goals"),
        ("goal", f"{o}/progress/goals/{w.goal}"), ("habits", f"{o}/progress/habits"),
        ("habit", f"{o}/progress/habits/{w.habit}"), ("readiness", f"{o}/progress/readiness"),
        ("workouts", f"{o}/progress/workouts"), ("workout calendar", f"{o}/progress/workouts/calendar"),
        ("my billing", f"{o}/billing/mine"), ("shop", f"{o}/billing/coaches/{w.maria}"),
    ]
    coach = [
        ("progress", f"{o}/progress"), ("conversation", f"{o}/chat/{w.conversation}"), ("booking", f"{o}/bookings/{w.requested}"),
        ("schedule", f"{o}/schedule"), ("availability", f"{o}/coaches/{w.maria}/schedule"),
        ("offering editor", f"{o}/offerings/{w.offering}/edit"),
        ("new offering", f"{o}/coaches/{w.maria}/offerings/new"), ("profile editor", f"{o}/profile"),
        ("athlete overview", f"{o}/progress/athletes/{w.sam}"),
        ("athlete goals", f"{o}/progress/athletes/{w.sam}/goals"),
        ("athlete habits", f"{o}/progress/athletes/{w.sam}/habits"),
        ("programs", f"{o}/progress/programs"), ("program", f"{o}/progress/programs/{w.program}"),
        ("frameworks", f"{o}/progress/frameworks"), ("exercises", f"{o}/progress/exercises"),
        ("earnings", f"{o}/billing/earnings"), ("products", f"{o}/billing/products"),
        ("reviews", f"{o}/coaches/{w.maria}/reviews"),
    ]
    # A scheduler books for others and runs the coaches' calendars.
    scheduler = [
        ("booking", f"{o}/bookings/{w.confirmed}"), ("availability", f"{o}/coaches/{w.maria}/schedule"),
        ("book for an athlete", f"{o}/offerings/{w.offering}/book?start={w.free}"), ("moderation", f"{o}/moderation"),
    ]
    admin = scheduler + [
        ("progress", f"{o}/progress"), ("admin dashboard", f"{o}/admin/dashboard"),
        ("members", f"{o}/admin/members"), ("payments", f"{o}/billing/payments"),
        ("settings", f"{o}/admin/settings"), ("audit", f"{o}/admin/audit"), ("system", f"{o}/admin/system"),
        ("branding", f"{o}/admin/branding"), ("taxonomy", f"{o}/admin/taxonomy"),
        ("review moderation", f"{o}/moderation/reviews"), ("billing settings", f"{o}/billing/settings"),
        ("payouts", f"{o}/billing/payouts"), ("organization privacy", f"{o}/privacy"),
        ("frameworks", f"{o}/progress/frameworks"),
    ]
    return everyone + {"athlete": athlete, "coach": coach, "scheduler": scheduler, "admin": admin}[role]


VISITOR_PAGES = [("welcome", "/"), ("log in", "/login"), ("sign up", "/signup"),
                 ("forgot password", "/password/forgot"), ("coach directory", "/coaches"),
                 ("directory search", "/coaches?q=tennis"), ("public profile", "/coaches/northside/maria-santos"),
                 ("public reviews", "/coaches/northside/maria-santos/reviews"),
                 ("public booking", "/coaches/northside/maria-santos/book?offering={offering}&start={free}")]


def visitor_pages(w: World) -> list[tuple[str, str]]:
    return [(name, path.format(offering=w.offering, free=w.free)) for name, path in VISITOR_PAGES]


def log_in(page, live_server: str, role: str) -> None:
    page.goto(f"{live_server}/login")
    page.get_by_label("Email", exact=True).fill(LOGINS[role])
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def settle(page) -> None:
    """Wait until the page's lazily loaded fragments are in (htmx requests done, nothing swapping)."""
    try:
        page.wait_for_load_state("networkidle", timeout=5000)
    except Exception:  # a page that polls never idles; the htmx check below still holds
        pass
    # Up to 20 s: on a loaded machine a lazily loaded fragment can take longer than Playwright's 5 s.
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')",
                           timeout=20_000)


def still(page) -> None:
    """Let CSS transitions end: a button's colours fade after a switch of scheme or width, and axe would measure
    a mix of the two."""
    # A paused or endless animation never finishes: wait a second at most.
    page.evaluate("""() => Promise.race([new Promise(done => setTimeout(done, 1000)),
        Promise.all(document.getAnimations().filter(a => a.playState === 'running')
            .map(a => a.finished.catch(() => null)))])""")


def axe(page, rules: list[str] | None = None) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    options = ({"runOnly": {"type": "rule", "values": rules}} if rules
               else {"runOnly": {"type": "tag", "values": TAGS}})
    found = page.evaluate("""async (options) => {
        const result = await axe.run(document, options);
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary || ''}))}));
    }""", options)
    return [v for v in found if v["impact"] in BLOCKING]


def sweep(page, live_server: str, pages: list[tuple[str, str]]) -> list[str]:
    """Open each page, run axe at both widths in light and dark; return the problems as lines (none = pass)."""
    problems: list[str] = []
    for name, path in pages:
        page.set_viewport_size(SIZES["1280"])
        page.emulate_media(color_scheme="light")
        response = page.goto(f"{live_server}{path}")
        if response is None or response.status >= 400:
            problems.append(f"{name} ({path}): HTTP {response.status if response else 'no response'}")
            continue
        settle(page)
        # Unstyled, a page passes the colour rules on the browser's defaults: a missing stylesheet is a failure.
        unstyled = page.evaluate("""() => [...document.querySelectorAll('link[rel=stylesheet]')]
            .filter(l => !l.sheet || l.sheet.cssRules.length === 0).map(l => l.getAttribute('href'))""")
        if unstyled:
            problems.append(f"{name} ({path}): stylesheet not loaded: {', '.join(unstyled)}")
            continue
        for size in ("1280", "390"):
            page.set_viewport_size(SIZES[size])
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                still(page)
                for v in axe(page, None if scheme == "light" else COLOUR_RULES):
                    targets = "; ".join(f"{n['target']}" for n in v["nodes"][:6])
                    more = f" (+{len(v['nodes']) - 6} more)" if len(v["nodes"]) > 6 else ""
                    detail = v["nodes"][0]["summary"].replace("\n", " ")[:300] if v["nodes"] else ""
                    problems.append(f"{name} ({path}) {size}px {scheme}: {v['id']} [{v['impact']}] {v['help']}"
                                    f" -- {targets}{more} -- {detail}")
    return problems


def report(problems: list[str]) -> str:
    return f"{len(problems)} serious or critical accessibility problem(s):\n" + "\n".join(problems)
