"""``flask --app coach`` commands: seed-demo, create-admin, platform-admin (``db upgrade`` comes from Flask-Migrate)."""
from __future__ import annotations

import subprocess
import tempfile
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import imageio_ffmpeg
from flask import Flask, current_app
from sqlalchemy import select

from coach import clock, tenancy
from coach.accounts.service import AccountError, create_user, find_user_by_email
from coach.booking import service as booking
from coach.booking.models import Booking, CoachingSession
from coach.chat import service as chat
from coach.directory import profiles as directory_profiles
from coach.directory import projection, taxonomy
from coach.directory import reviews as directory_reviews
from coach.extensions import db
from coach.governance import branding, operator
from coach.governance import settings as org_settings
from coach.media import service as media
from coach.orgs.models import ADMIN, ATHLETE, COACH, SCHEDULER, Membership
from coach.orgs.service import OrgError, create_organization, org_by_slug
from coach.payments import catalog
from coach.progress import athletes as progress_athletes
from coach.progress import days, exercises, frameworks, goals, habits, programs, readiness, records, timeline
from coach.progress.models import GoalValue, HabitCheckin, ReadinessCheckin
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
    ("scheduler@northside.example", "Riley Ortiz", SCHEDULER),  # so every role's home page is on the demo
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


# Sam's development in the demo: two example frameworks, three past sessions with Maria with signed records, a
# goal with values and milestones, two habits and three weeks of readiness check-ins, and a four-week program
# (started last week, partly logged) shared with Priya; today's check-in and workout are left for Sam to do.
DEMO_EXERCISES = [
    ("Split squat", "Rear foot elevated; front knee tracks the toes."),
    ("Lateral bounds", "Stick each landing for a second."),
    ("Medicine-ball rotational throw", "From the hips, as in a forehand."),
    ("Plank", "Ribs down, squeeze the glutes."),
    ("Shadow swings", "Full stroke, no ball: rhythm and balance."),
]
DEMO_WEEK = [
    (1, "Lower-body strength", [("Split squat", dict(sets="4", reps="8", load_kg="20", rest="1:30")),
                                ("Plank", dict(sets="3", duration="0:45", rest="0:30"))]),
    (3, "Power and agility", [("Lateral bounds", dict(sets="4", reps="6", rest="1:00")),
                              ("Medicine-ball rotational throw", dict(sets="4", reps="8", load_kg="4"))]),
    (5, "Stroke rhythm", [("Shadow swings", dict(sets="3", reps="20", tempo="2-0-1")),
                          ("Plank", dict(sets="3", duration="1:00"))]),
]


def _past_booking(coach: Membership, athlete: Membership, starts_at):
    """An ended session of the past, written directly (the booking rules only book the future)."""
    offering = booking.offerings_of(coach)[0]
    ends_at = starts_at + timedelta(minutes=offering.duration_minutes)
    session = CoachingSession(tenant_id=coach.tenant_id, coach_membership_id=coach.id, offering_id=offering.id,
                              starts_at=starts_at, ends_at=ends_at, busy_from=starts_at, busy_until=ends_at,
                              capacity=1, live_seats=0)
    db.session.add(session)
    db.session.flush()
    row = Booking(tenant_id=coach.tenant_id, session_id=session.id, offering_id=offering.id,
                  coach_membership_id=coach.id, athlete_membership_id=athlete.id, booked_by_membership_id=athlete.id,
                  starts_at=starts_at, ends_at=ends_at, status="ended", confirmed_at=starts_at - timedelta(days=2),
                  status_changed_at=ends_at)
    db.session.add(row)
    db.session.flush()
    return row


def _seed_progress(org, memberships: dict) -> None:
    maria = memberships["maria.coach@northside.example"]
    sam = memberships["sam@northside.example"]
    priya = memberships["priya@northside.example"]
    tennis = frameworks.seed_examples(org)[0]
    skills = {s.title: s for area in frameworks.structure(tennis).areas for s in area.skills}
    now = clock.now()
    today = days.local_today(sam)
    zone = days.zone_of(sam)
    # Three weekly sessions with Maria, each signed off, the serve improving.
    for weeks_ago, levels, notes in (
            (3, {"Flat serve": 2, "Split step": 1, "Topspin rally ball": 2}, "Toss drifting right; grip fixed."),
            (2, {"Flat serve": 2, "Kick serve": 1, "Split step": 2}, "First kick serves landing in."),
            (1, {"Flat serve": 3, "Kick serve": 2, "Split step": 3, "Topspin rally ball": 3},
             "Serve much steadier. **Homework:** 50 kick serves twice a week.")):
        day = today - timedelta(days=7 * weeks_ago)
        starts = datetime.combine(day, time(17, 0), zone).astimezone(timezone.utc)
        record = records.start(_past_booking(maria, sam, starts), maria, tennis.id)
        records.save_draft(record, maria, framework_id=tennis.id, notes_md=notes,
                           levels={str(skills[title].id): str(level) for title, level in levels.items()})
        records.sign(record, maria)
    # A measurable goal with a few values and milestones.
    goal = goals.create_goal(sam, maria, dict(
        title="First-serve percentage to 65 %", description="Counted over 40 serves at each Friday practice.",
        target_date=(today + timedelta(days=75)).isoformat(), metric_unit="%", metric_start="48",
        metric_target="65"))
    for days_ago, value in ((21, "49"), (14, "53"), (7, "55"), (2, "58")):
        db.session.add(GoalValue(tenant_id=org.id, goal_id=goal.id, value=Decimal(value),
                                 logged_on=today - timedelta(days=days_ago), logged_by_membership_id=sam.id))
    first = goals.add_milestone(goal, sam, maria, "55 % in a practice set")
    goals.add_milestone(goal, sam, maria, "60 % in a match")
    goals.set_milestone(goal, sam, maria, first, True)
    # Habits ticked most days, and three weeks of readiness.
    stretch = habits.create_habit(sam, sam, dict(title="Stretch for 10 minutes", frequency="daily",
                                                 reminder="20:00"))
    habits.create_habit(sam, sam, dict(title="Strength session", frequency="weekly", times_per_week="3"))
    for days_ago in (1, 2, 3, 5, 6, 7, 8, 10, 11):
        db.session.add(HabitCheckin(tenant_id=org.id, habit_id=stretch.id, on_date=today - timedelta(days=days_ago)))
    for days_ago in range(21, 0, -1):
        sleep, energy, mood, stress, soreness = ((7.5, 4, 4, 2, 2) if days_ago % 5 else (6.0, 3, 3, 3, 3))
        if days_ago == 1:
            sleep, energy, mood, stress, soreness = 5.0, 2, 2, 4, 4  # a rough day before today
        score = readiness.score(Decimal(str(sleep)), energy, mood, stress, soreness)
        row = ReadinessCheckin(tenant_id=org.id, athlete_membership_id=sam.id, on_date=today - timedelta(days=days_ago),
                               sleep_hours=Decimal(str(sleep)), energy=energy, mood=mood, stress=stress,
                               soreness=soreness, score=score)
        db.session.add(row)
        db.session.flush()
        timeline.record(org.id, sam.id, "readiness", row.id, now - timedelta(days=days_ago),
                        f"Readiness {score:.1f} / 5")
    # The exercise library and a four-week program, started last week for Sam and Priya.
    library = {title: exercises.save_exercise(maria, dict(title=title, description=text))
               for title, text in DEMO_EXERCISES}
    program = programs.create_program(maria, dict(title="Pre-season strength", weeks="4",
                                                  description="Three short sessions a week around your tennis."))
    for day, title, lines in DEMO_WEEK:
        workout = programs.add_workout(maria, program, dict(week="1", day=str(day), title=title))
        for exercise, values in lines:
            programs.add_line(maria, program, workout, dict(exercise_id=str(library[exercise].id), **values))
    for week in (2, 3, 4):
        programs.copy_week(maria, program, 1, week)
    assigned = programs.assign(maria, program, athlete_ids=[str(sam.id), str(priya.id)],
                               start=(today - timedelta(days=7)).isoformat())
    mine = next(a for a in assigned if a.athlete_membership_id == sam.id)
    for item in programs.schedule(sam, mine.start_date, mine.start_date + timedelta(days=6))[:2]:
        programs.log_workout(sam, str(mine.id), str(item.workout.id),
                             dict(status="done" if item.workout.day == 1 else "partial", rpe="7",
                                  note="Legs heavy at the end."))
    progress_athletes.add_note(maria, sam, "Talked about school exams: keep sessions short until June.")


def _seed_home(org, memberships: dict) -> None:
    """What makes each role's home lively right after seeding: Maria's next open times booked (Priya confirmed,
    Tom confirmed, Sam's request waiting for her answer), Sam's question Maria has not read yet and Jonas's note
    Sam has not. Times come from Maria's real calendar, so they are bookable whatever day it is."""
    maria = memberships["maria.coach@northside.example"]
    one_to_one = booking.offerings_of(maria)[0]
    start = clock.now()
    slots = booking.available_slots(one_to_one, start, start + timedelta(days=7))
    picked = [slot for n, slot in enumerate(slots) if n % 3 == 0][:3]  # spread out, not back to back
    people = ("priya@northside.example", "tom@northside.example", "sam@northside.example")
    for slot, email in zip(picked, people):
        athlete = memberships[email]
        made = booking.request_booking(one_to_one, athlete, slot.starts_at, "", athlete)
        if email != "sam@northside.example":
            booking.transition(made, "confirm", maria)
    sam, jonas = memberships["sam@northside.example"], memberships["jonas.coach@northside.example"]
    talk = chat.direct_with(org, sam, maria)
    chat.send(talk, maria, "How did Saturday's match go?")
    chat.send(talk, sam, "Could we look at my second serve on Thursday? I filmed the match.")
    chat.send(chat.direct_with(org, jonas, sam), jonas, "I watched your clip: bring it to our review call.")


def _seed_administration(org, admin_user) -> None:
    """The organization's accent colour, and the demo admin as a platform admin (the console at /platform/;
    a local demo only: seed-demo refuses production)."""
    tenancy.activate(org.id, admin_user.id)
    admin = db.session.scalar(select(Membership).where(Membership.tenant_id == org.id,
                                                       Membership.user_id == admin_user.id))
    branding.set_accent(org, "#0f766e", admin)
    admin_user.platform_admin = True


# --- the public coach directory ----------------------------------------------------------------------------
# Northside lists its coaches publicly; two more listed organizations (an esports academy and an endurance club)
# make /coaches worth searching. Each organization: its taxonomy (discipline -> kind -> names), its coaches'
# profiles (with the terms they teach), hours and offerings, and reviews of sessions that ended (with replies).
DIRECTORY_TAXONOMIES = {
    DEMO_SLUG: {
        "Tennis": {"skill": ["Serve", "Footwork", "Return", "Forehand"], "level": ["Beginner", "Club", "Tournament"]},
        "Strength and conditioning": {"skill": ["Speed", "Strength", "Mobility"]},
    },
    "pixel-academy": {
        "Valorant": {"skill": ["Aim", "Game sense", "Communication"], "role": ["Duelist", "Controller", "Sentinel"],
                     "level": ["Iron to Gold", "Platinum and up"]},
        "League of Legends": {"skill": ["Laning", "Macro"], "role": ["Jungle", "Mid lane", "Support"]},
        "Counter-Strike 2": {"skill": ["Aim", "Utility"]},
    },
    "harbour-endurance": {
        "Swimming": {"skill": ["Freestyle", "Open water", "Turns"], "level": ["Beginner", "Masters"]},
        "Running": {"skill": ["Marathon", "Intervals", "Trail"]},
        "Triathlon": {},
    },
}
# Per coach: profile fields, the terms taught ("Discipline" or "Discipline/Term"), and whether the admin verified.
DIRECTORY_PROFILES = {
    "maria.coach@northside.example": dict(
        headline="Tennis technique coach: serve, footwork and match play",
        bio="Former tournament player, coaching juniors and adults for twelve years.\n\n"
            "I film your strokes, we look at them together and fix **one thing at a time**: a steady toss, "
            "a split step on time, a forehand that holds up under pressure.",
        languages=["en", "es", "de"], years_experience="12", location="Berlin Mitte", in_person="y",
        certifications="DTB B-Trainer\nITF Level 2 Coaching Course", tags="video feedback, juniors",
        terms=["Tennis/Serve", "Tennis/Footwork", "Tennis/Forehand", "Tennis/Club", "Tennis/Tournament",
               "Strength and conditioning/Speed"], verified="DTB licence and ITF certificate checked."),
    "jonas.coach@northside.example": dict(
        headline="Match analysis over video calls for club players",
        bio="Send me a match; we go through it on a call: *where the points were won and lost*, and one drill "
            "for the week.", languages=["de", "en"], years_experience="6", online="y",
        tags="video analysis, tactics", terms=["Tennis/Return", "Tennis/Beginner", "Tennis/Club"]),
    "lena@pixel-academy.example": dict(
        headline="Valorant aim coach: crosshair placement and duelist habits",
        bio="Radiant duelist. We build an aim routine that fits your week and review your VODs for **crosshair "
            "placement**, peeks and trades.", languages=["en", "de", "ko"], years_experience="5", online="y",
        tags="vod review, aim training", verified="Identity and tournament record checked.",
        terms=["Valorant/Aim", "Valorant/Duelist", "Valorant/Platinum and up"]),
    "diego@pixel-academy.example": dict(
        headline="Controller and jungle coach for ranked climbers",
        bio="Smokes that win rounds and jungle paths that win games: macro first, mechanics second.",
        languages=["es", "en"], years_experience="4", online="y", tags="ranked, shotcalling",
        terms=["Valorant/Controller", "Valorant/Game sense", "Valorant/Iron to Gold", "League of Legends/Jungle",
               "League of Legends/Macro"]),
    "sofia@pixel-academy.example": dict(
        headline="League of Legends mid lane and macro coach",
        bio="Lane states, wave management and roaming windows, explained on your own replays.",
        languages=["it", "en"], years_experience="7", online="y", tags="replay review",
        terms=["League of Legends/Laning", "League of Legends/Macro", "League of Legends/Mid lane"]),
    "omar@pixel-academy.example": dict(
        headline="Counter-Strike 2 aim and utility coach",
        bio="Lineups for every map in the pool, and an aim warm-up that takes fifteen minutes.",
        languages=["en", "fr", "ar"], years_experience="8", online="y", tags="lineups, warm-up",
        terms=["Counter-Strike 2/Aim", "Counter-Strike 2/Utility"]),
    "eva@harbour-endurance.example": dict(
        headline="Swim technique coach for adults and triathletes",
        bio="Video from above and below the water, then drills for a calmer, longer freestyle stroke. "
            "Open-water sessions in summer.", languages=["sv", "en", "de"], years_experience="10",
        location="Stockholm, Eriksdalsbadet", in_person="y", online="y", tags="video analysis, adult beginners",
        verified="Swim coach licence checked.",
        terms=["Swimming/Freestyle", "Swimming/Open water", "Swimming/Masters", "Triathlon"]),
    "noah@harbour-endurance.example": dict(
        headline="Running coach: from your first marathon to sub-3",
        bio="Plans built around your week, intervals that make sense and a taper you can trust.",
        languages=["en"], years_experience="9", online="y", tags="training plans, marathon",
        terms=["Running/Marathon", "Running/Intervals", "Running/Trail"]),
}
# The other listed organizations: slug, name, time zone, people (email, name, role), and each coach's weekly
# hours (weekdays, from, to in hours) and offerings.
DIRECTORY_ORGS = [
    ("pixel-academy", "Pixel Academy", "Europe/Amsterdam", [
        ("admin@pixel-academy.example", "Pim Admin", ADMIN),
        ("lena@pixel-academy.example", "Lena Park", COACH),
        ("diego@pixel-academy.example", "Diego Ruiz", COACH),
        ("sofia@pixel-academy.example", "Sofia Rossi", COACH),
        ("omar@pixel-academy.example", "Omar Haddad", COACH),
        ("mia@pixel-academy.example", "Mia Chen", ATHLETE),
        ("kai@pixel-academy.example", "Kai Weber", ATHLETE),
    ]),
    ("harbour-endurance", "Harbour Endurance", "Europe/Stockholm", [
        ("admin@harbour-endurance.example", "Hanna Admin", ADMIN),
        ("eva@harbour-endurance.example", "Eva Lind", COACH),
        ("noah@harbour-endurance.example", "Noah Reid", COACH),
        ("ola@harbour-endurance.example", "Ola Nordin", ATHLETE),
    ]),
]
DIRECTORY_SCHEDULES = {
    "lena@pixel-academy.example": ((0, 1, 2, 3, 4, 5), 16, 22, [
        dict(title="1:1 aim session", duration_minutes=60, price_minor=3500, meeting_url="https://meet.example.com/lena",
             description="Aim routine and a live deathmatch review."),
        dict(title="VOD review", duration_minutes=45, price_minor=2500, meeting_url="https://meet.example.com/lena",
             description="Bring a ranked match; we go through it round by round.")]),
    "diego@pixel-academy.example": ((1, 3, 5, 6), 18, 23, [
        dict(title="Ranked coaching", duration_minutes=60, price_minor=3000,
             meeting_url="https://meet.example.com/diego", description="Live comms coaching while you play.")]),
    "sofia@pixel-academy.example": ((0, 2, 4), 17, 21, [
        dict(title="Mid lane masterclass", duration_minutes=90, price_minor=5500,
             meeting_url="https://meet.example.com/sofia", description="Laning and roaming on your replays.")]),
    "omar@pixel-academy.example": ((5, 6), 12, 18, [
        dict(title="CS2 utility session", duration_minutes=60, price_minor=2800,
             meeting_url="https://meet.example.com/omar", description="Smokes, flashes and mollies for two maps.")]),
    "eva@harbour-endurance.example": ((0, 1, 2, 3, 4), 6, 9, [
        dict(title="Freestyle technique", duration_minutes=45, price_minor=6500, location="Eriksdalsbadet, lane 1",
             description="Filmed above and below the water, with drills to take home.")]),
    "noah@harbour-endurance.example": ((0, 2, 4, 6), 7, 10, [
        dict(title="Training plan call", duration_minutes=30, price_minor=2000,
             meeting_url="https://meet.example.com/noah", description="Your next four weeks, planned together.")]),
}
# Reviews of sessions that ended: athlete, coach, days ago, stars, text, the coach's reply (or None).
DIRECTORY_REVIEWS = [
    ("sam@northside.example", "maria.coach@northside.example", 4, 5,
     "Maria spotted my toss drifting right within five minutes. My first serve is finally steady.",
     "Thank you, Sam! Keep the kick-serve homework going."),
    ("priya@northside.example", "maria.coach@northside.example", 9, 4,
     "Clear drills and honest feedback. Sessions sometimes run a few minutes over.", None),
    ("tom@northside.example", "jonas.coach@northside.example", 6, 5,
     "The video review showed me exactly why I lose the long rallies.", None),
    ("mia@pixel-academy.example", "lena@pixel-academy.example", 3, 5,
     "Went from Gold to Platinum in three weeks with Lena's aim routine.", "So proud of you, Mia. Diamond next!"),
    ("kai@pixel-academy.example", "lena@pixel-academy.example", 5, 5,
     "Best VOD review I have had: calm, concrete, and she noticed my crosshair height straight away.", None),
    ("mia@pixel-academy.example", "lena@pixel-academy.example", 12, 4, "Good session, a little rushed at the end.",
     None),
    ("kai@pixel-academy.example", "diego@pixel-academy.example", 4, 4,
     "Diego's smokes guide alone was worth it. Comms coaching is intense but it works.", None),
    ("mia@pixel-academy.example", "sofia@pixel-academy.example", 8, 5,
     "I finally understand wave management.", "Thanks Mia, see you next week."),
    ("kai@pixel-academy.example", "sofia@pixel-academy.example", 10, 3,
     "Useful, but a lot of theory for one session.", None),
    ("ola@harbour-endurance.example", "eva@harbour-endurance.example", 2, 5,
     "After two sessions my stroke is longer and I breathe on both sides.", "Lovely to hear, Ola!"),
    ("ola@harbour-endurance.example", "noah@harbour-endurance.example", 7, 4,
     "A realistic plan that fits around work. Looking forward to the marathon.", None),
]


def _directory_profiles(org, admin: Membership, coaches: dict) -> None:
    """The organization's taxonomy, and a profile for each of ``coaches`` (email -> membership)."""
    terms = {}
    for discipline, kinds in DIRECTORY_TAXONOMIES[org.slug].items():
        parent = taxonomy.add_term(org, "discipline", discipline, admin)
        terms[discipline] = parent.id
        for kind, names in kinds.items():
            for name in names:
                terms[f"{discipline}/{name}"] = taxonomy.add_term(org, kind, name, admin, parent_id=parent.id).id
    for email, coach in coaches.items():
        values = dict(DIRECTORY_PROFILES[email])
        note = values.pop("verified", None)
        values.update(listed="y", term_ids=[str(terms[name]) for name in values.pop("terms")])
        profile = directory_profiles.save_profile(directory_profiles.ensure_profile(coach), values, coach)
        if note:
            directory_profiles.set_verification(profile, True, note, admin)


def _directory_reviews(memberships: dict) -> None:
    """Reviews (and replies) of sessions that ended, in the organization of ``memberships`` (email -> membership)."""
    for athlete_email, coach_email, days_ago, stars, body, answer in DIRECTORY_REVIEWS:
        if athlete_email not in memberships:
            continue
        athlete, coach = memberships[athlete_email], memberships[coach_email]
        zone = ZoneInfo(booking.coach_timezone(coach))
        day = clock.now().astimezone(zone).date() - timedelta(days=days_ago)
        ended = _past_booking(coach, athlete, datetime.combine(day, time(11, 0), zone).astimezone(timezone.utc))
        written = ended.ends_at + timedelta(hours=3)
        review = directory_reviews.write_review(ended, athlete, stars, body, now=written)
        if answer:
            directory_reviews.reply(review, coach, answer, now=written + timedelta(hours=5))


def _seed_directory(org, memberships: dict) -> None:
    """Northside lists its coaches publicly: profiles (Maria verified), taxonomy, reviews with a reply."""
    admin = db.session.scalar(select(Membership).where(Membership.tenant_id == org.id, Membership.role == ADMIN))
    org_settings.save_settings(org, {"listed_publicly": True}, admin)
    _directory_profiles(org, admin, {e: m for e, m in memberships.items() if m.role == COACH})
    _directory_reviews(memberships)


def _seed_directory_orgs() -> list:
    """The other listed demo organizations (skipped when their address is taken); the ones made."""
    made = []
    for slug, name, tz, people in DIRECTORY_ORGS:
        if org_by_slug(slug) is not None:
            continue
        users = [(find_user_by_email(email) or create_user(email, DEMO_PASSWORD, display, tz), role)
                 for email, display, role in people]
        org = create_organization(users[0][0], name, slug, tz)
        tenancy.activate(org.id)
        admin = db.session.scalar(select(Membership).where(Membership.tenant_id == org.id, Membership.role == ADMIN))
        memberships = {}
        for user, role in users[1:]:
            memberships[user.email] = Membership(tenant_id=org.id, user_id=user.id, role=role)
            db.session.add(memberships[user.email])
        db.session.flush()
        for email, coach in memberships.items():
            if email not in DIRECTORY_SCHEDULES:
                continue
            weekdays, start, end, offerings = DIRECTORY_SCHEDULES[email]
            booking.set_coach_timezone(coach, tz, coach)
            for weekday in weekdays:
                booking.add_rule(coach, weekday, start * 60, end * 60, coach)
            for values in offerings:
                booking.save_offering(coach, {"min_notice_minutes": 120, "horizon_days": 60, **values}, coach)
        org_settings.save_settings(org, {"listed_publicly": True}, admin)
        _directory_profiles(org, admin, {e: m for e, m in memberships.items() if m.role == COACH})
        _directory_reviews(memberships)
        made.append(org)
    return made


def _project(orgs: list) -> None:
    """Build the listed organizations' public listings now (the projection's consumers would, a moment later)."""
    for org in orgs:
        tenancy.activate(org.id)
        projection.refresh_org(org.id)


def register_cli(app: Flask) -> None:
    @app.cli.command("seed-demo")
    @click.option("--if-empty", is_flag=True, help="Do nothing when the demo organization exists.")
    def seed_demo(if_empty: bool):
        """Create the demo organization (an admin, two coaches, three athletes), two more organizations listed in the
        public coach directory, and print the logins."""
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
            _seed_progress(org, memberships)
            _seed_home(org, memberships)
            _seed_administration(org, people[0][0])
            _seed_directory(org, memberships)
            _project([org, *_seed_directory_orgs()])
            db.session.commit()
            click.echo("Seeded the demo organization 'Northside Athletics' (/o/northside/).")
        click.echo(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for email, name, role in DEMO_PEOPLE:
            click.echo(f"  {role:<8} {email}  ({name})")
        click.echo(f"  {DEMO_PEOPLE[0][0]} is also a platform admin: the operators' console is /platform/.")
        click.echo("The public coach directory (/coaches) lists Northside's coaches and those of (same password):")
        for slug, name, _, people in DIRECTORY_ORGS:
            click.echo(f"  {name} (/o/{slug}/): {', '.join(email for email, _, _ in people)}")

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

    @app.cli.group("platform-admin")
    def platform_admin():
        """Who may open the operators' console (/platform): grant, revoke, list."""

    @platform_admin.command("grant")
    @click.argument("email")
    def platform_admin_grant(email):
        """Let the account with EMAIL open the operators' console."""
        _set_platform_admin(email, True)

    @platform_admin.command("revoke")
    @click.argument("email")
    def platform_admin_revoke(email):
        """Take the operators' console away from the account with EMAIL."""
        _set_platform_admin(email, False)

    @platform_admin.command("list")
    def platform_admin_list():
        """The accounts that may open the operators' console."""
        admins = operator.platform_admins()
        for user in admins:
            click.echo(user.email)
        if not admins:
            click.echo("No platform admins.", err=True)


def _set_platform_admin(email: str, granted: bool) -> None:
    try:
        user, changed = operator.set_platform_admin(email, granted, actor_label="cli")
    except operator.OperatorError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    state = "is a platform admin" if granted else "is not a platform admin"
    click.echo(f"{user.email} {state}{'' if changed else ' (unchanged)'}.")
