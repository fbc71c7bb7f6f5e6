"""``flask --app coach`` commands: seed-demo, create-admin (``db upgrade`` comes from Flask-Migrate)."""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import click
import imageio_ffmpeg
from flask import Flask, current_app
from sqlalchemy import select

from coach import tenancy
from coach.accounts.service import AccountError, create_user, find_user_by_email
from coach.booking import service as booking
from coach.extensions import db
from coach.media import service as media
from coach.orgs.models import ADMIN, ATHLETE, COACH, Membership
from coach.orgs.service import OrgError, create_organization, org_by_slug
from coach.payments import catalog
from coach.spaces import service as spaces

DEMO_SLUG = "northside"
DEMO_PASSWORD = "coach-demo-2026"
DEMO_PEOPLE = [
    ("admin@northside.example", "Alex Admin", ADMIN),
    ("maria.coach@northside.example", "Maria Santos", COACH),
    ("jonas.coach@northside.example", "Jonas Berg", COACH),
    ("sam@northside.example", "Sam Lee", ATHLETE),
    ("priya@northside.example", "Priya Nair", ATHLETE),
    ("tom@northside.example", "Tom Okafor", ATHLETE),
]


# Weekly hours (weekdays Monday = 0) and offerings of the demo coaches.
DEMO_SCHEDULES = {
    "maria.coach@northside.example": {
        "hours": {d: [(9 * 60, 12 * 60), (14 * 60, 18 * 60)] for d in range(5)},
        "offerings": [
            dict(title="1:1 technique session", duration_minutes=60, price_minor=6000, location="Court 2",
                 description="Footwork, serve and stroke technique with video feedback.", buffer_after_minutes=15),
            dict(title="Group conditioning", duration_minutes=90, price_minor=2000, capacity=8, auto_confirm=True,
                 location="Main hall", description="Strength and conditioning in a small group."),
        ],
    },
    "jonas.coach@northside.example": {
        "hours": {d: [(7 * 60, 11 * 60)] for d in (0, 2, 4, 5)},
        "offerings": [
            dict(title="Video review call", duration_minutes=30, price_minor=2500,
                 meeting_url="https://meet.example.com/jonas", description="We go through your last match."),
        ],
    },
}


def _seed_schedules(memberships: dict) -> None:
    for email, plan in DEMO_SCHEDULES.items():
        coach = memberships[email]
        booking.set_coach_timezone(coach, "Europe/Berlin", coach)
        for weekday, intervals in plan["hours"].items():
            for start, end in intervals:
                booking.add_rule(coach, weekday, start, end, coach)
        for values in plan["offerings"]:
            booking.save_offering(coach, {"min_notice_minutes": 120, "horizon_days": 60, **values}, coach)


# The demo organization's money: euros, 15 % commission, German VAT included in prices, receipts' seller.
DEMO_BILLING = dict(currency="EUR", commission_bps=1500, tax_rate_bps=1900, tax_label="VAT",
                    seller_name="Northside Athletics e.V.", seller_address="Sportallee 12\n10115 Berlin\nGermany",
                    seller_tax_id="DE123456789", dispute_window_hours=48, grace_days=7, coaches_may_refund=False)


def _seed_billing(org, memberships: dict) -> None:
    """Billing settings, and a 5-pack and a monthly plan of Maria's covering her offerings."""
    admin = db.session.scalar(select(Membership).where(Membership.tenant_id == org.id, Membership.role == ADMIN))
    catalog.save_settings(org.id, DEMO_BILLING, admin)
    maria = memberships["maria.coach@northside.example"]
    offerings = [str(o.id) for o in booking.offerings_of(maria)]
    catalog.save_product(maria, dict(kind="pack", title="5-pack: technique and conditioning", price="270.00",
                                     credits="5", validity_days="120", offering_ids=offerings,
                                     description="Five sessions of your choice, 10 % off single prices."), maria)
    catalog.save_product(maria, dict(kind="plan", title="Monthly training", price="99.00", credits="2",
                                     interval="month", rollover="", weekly_limit="1", offering_ids=offerings,
                                     description="Two sessions a month; unused ones lapse."), maria)


def _seed_spaces(org, memberships: dict) -> None:
    maria = memberships["maria.coach@northside.example"]
    jonas = memberships["jonas.coach@northside.example"]
    news = spaces.create_space(org, maria, "Club news", "Announcements from the coaches.", "announcement")
    squad = spaces.create_space(org, jonas, "Match analysis", "Share clips and questions about your matches.",
                                "open")
    for email in ("sam@northside.example", "priya@northside.example", "tom@northside.example"):
        spaces.join(news, memberships[email])
        spaces.join(squad, memberships[email])
    spaces.join(news, jonas)
    welcome = spaces.create_post(news, maria, "**Welcome to Northside!** Book sessions under *Book*; "
                                              "@jonas.berg runs the match analysis space.")
    spaces.set_pinned(welcome, maria, True)
    question = spaces.create_post(squad, memberships["sam@northside.example"],
                                  "How do I stop rushing my second serve under pressure?")
    spaces.add_comment(question, jonas, "Slow the routine down: same bounce count every time. "
                                        "Bring a clip to our next review call.")
    spaces.toggle_reaction(question, memberships["priya@northside.example"], "support")
    clip = _seed_media(org, jonas)
    if clip is not None:
        spaces.create_post(squad, jonas, "Drill of the week: watch the split step, then add your questions "
                                         "at the moment you mean on the video's page.", attachments=[clip])


def _seed_media(org, owner):
    """A short generated clip for the demo (the media worker makes it playable); None if ffmpeg fails."""
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "split-step-drill.mp4"
        try:
            subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "lavfi",
                            "-i", "testsrc2=size=960x540:rate=30", "-f", "lavfi", "-i", "sine=frequency=330",
                            "-t", "12", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast",
                            "-c:a", "aac", str(clip)], check=True, capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            click.echo(f"Skipped the demo video: {exc}", err=True)
            return None
        return media.import_file(org, owner, clip, "video/mp4", "organization", "Split-step drill")


def register_cli(app: Flask) -> None:
    @app.cli.command("seed-demo")
    @click.option("--if-empty", is_flag=True, help="Do nothing when the demo organization exists.")
    def seed_demo(if_empty: bool):
        """Create the demo organization (an admin, two coaches, three athletes) and print the logins."""
        if current_app.config["COACH_ENV"] == "production":
            raise click.ClickException("seed-demo creates accounts with a published password; "
                                       "it does not run in production (COACH_ENV=production).")
        if org_by_slug(DEMO_SLUG) is not None:
            if not if_empty:
                raise click.ClickException("The demo organization already exists.")
        else:
            people = []
            for email, name, role in DEMO_PEOPLE:
                user = find_user_by_email(email) or create_user(email, DEMO_PASSWORD, name, "Europe/Berlin")
                people.append((user, role))
            org = create_organization(people[0][0], "Northside Athletics", DEMO_SLUG, "Europe/Berlin")
            memberships = {}
            for user, role in people[1:]:
                memberships[user.email] = Membership(tenant_id=org.id, user_id=user.id, role=role)
                db.session.add(memberships[user.email])
            db.session.flush()
            _seed_schedules(memberships)
            _seed_billing(org, memberships)
            _seed_spaces(org, memberships)
            db.session.commit()
            click.echo("Seeded the demo organization 'Northside Athletics' (/o/northside/).")
        click.echo(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for email, name, role in DEMO_PEOPLE:
            click.echo(f"  {role:<8} {email}  ({name})")

    @app.cli.command("create-admin")
    @click.option("--email", required=True)
    @click.option("--name", "display_name", required=True)
    @click.option("--org-slug", required=True, help="Existing organization, or the slug of a new one.")
    @click.option("--org-name", help="Name for a new organization.")
    @click.option("--timezone", "tz", default="UTC", show_default=True)
    @click.password_option(help="Asked for when not given.")
    def create_admin(email, display_name, org_slug, org_name, tz, password):
        """Make someone admin of an organization, creating the account and organization as needed."""
        try:
            user = find_user_by_email(email) or create_user(email, password, display_name, tz)
            org = org_by_slug(org_slug)
            if org is None:
                create_organization(user, org_name or org_slug, org_slug, tz)
            else:
                tenancy.activate(org.id, user.id)
                membership = db.session.scalar(
                    select(Membership).where(Membership.tenant_id == org.id, Membership.user_id == user.id))
                if membership is None:
                    db.session.add(Membership(tenant_id=org.id, user_id=user.id, role=ADMIN))
                else:
                    membership.role = ADMIN
        except (AccountError, OrgError) as exc:
            db.session.rollback()
            raise click.ClickException(str(exc)) from exc
        db.session.commit()
        click.echo(f"{email} is admin of /o/{org_slug}/.")
