"""Directory test support: a listed esports and tennis club with profiled coaches, and an unlisted club.

Profiles and terms are written directly (the profile editor is under test elsewhere); organizations, members,
weekly hours and offerings go through the services. ``publish()`` runs the projection for both clubs, as its
consumers would.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from coach import clock, tenancy
from coach.booking.models import Booking, CoachingSession
from coach.directory.models import CoachProfile, CoachProfileTerm, DirectoryTerm
from coach.extensions import db
from coach.orgs.models import ATHLETE, COACH
from coach.orgs.service import membership_for
from coach.spaces.markdown import render as render_markdown
from tests.booking_support import make_offering, open_every_day
from tests.conftest import Auth
from tests.factories import add_member, make_org, make_user


class DirectoryWorld:
    """River Academy (slug ``river``, listed publicly): Ada Admin; coaches Maria Santos (Valorant: aim and the
    Controller role; English and Spanish; online; verified; 1:1 "Aim review" at EUR 45, 60 min, with weekly hours
    09-17 Berlin every day) and Jon Berg (Tennis: serve; German; in person in Berlin; "Serve clinic" EUR 80);
    Kim Lee, a coach without a profile; athletes Ana Alves and Ben Brown. ``ended`` is Ana's 1:1 with Maria that
    ended an hour ago (reviewable). Hill Club (``hill``, not listed): Zed Stranger (admin) and Yara Young (a
    Valorant aim coach with a profile and hours: she must never appear in the public directory).
    """

    def __init__(self):
        ada = make_user("ada@example.com", "Ada Admin")
        self.org = make_org(ada, slug="river", name="River Academy")
        tenancy.activate(self.org.id)
        self.org.listed_publicly = True
        self.admin = membership_for(self.org, ada)
        self.maria = add_member(self.org, make_user("maria@example.com", "Maria Santos"), COACH)
        self.jon = add_member(self.org, make_user("jon@example.com", "Jon Berg"), COACH)
        self.kim = add_member(self.org, make_user("kim@example.com", "Kim Lee"), COACH)
        self.ana = add_member(self.org, make_user("ana@example.com", "Ana Alves"), ATHLETE)
        self.ben = add_member(self.org, make_user("ben@example.com", "Ben Brown"), ATHLETE)
        open_every_day(self.maria, tz="Europe/Berlin")
        open_every_day(self.jon, tz="Europe/Berlin")
        self.aim = make_offering(self.maria, title="Aim review", duration_minutes=60, price_minor=4500,
                                 meeting_url="https://meet.example.com/maria")
        self.serve = make_offering(self.jon, title="Serve clinic", duration_minutes=60, price_minor=8000,
                                   location="Court 3, Berlin")
        tenancy.activate(self.org.id)
        valorant = self.term(self.org, "discipline", "Valorant")
        tennis = self.term(self.org, "discipline", "Tennis")
        self.terms = {"valorant": valorant, "tennis": tennis,
                      "aim": self.term(self.org, "skill", "Aim", valorant),
                      "controller": self.term(self.org, "role", "Controller", valorant),
                      "serve": self.term(self.org, "skill", "Serve", tennis)}
        self.maria_profile = self.profile(
            self.maria, "maria-santos", "Valorant aim coach for ranked climbers",
            "Immortal player. I fix **crosshair placement** and aim routines.", ["en", "es"],
            ["valorant", "aim", "controller"], tags=["vod review"], years=6, online=True, in_person=False,
            verified_by=self.admin)
        self.jon_profile = self.profile(
            self.jon, "jon-berg", "Tennis serve specialist", "Former club pro: serve and return.", ["de"],
            ["tennis", "serve"], years=12, online=False, in_person=True, location="Berlin")
        now = clock.now().replace(microsecond=0)
        self.ended = self.write_booking(self.maria, self.aim, self.ana, now - timedelta(hours=2), "ended")
        db.session.commit()
        self.other_club()
        tenancy.activate(self.org.id)  # River Academy is the one tests mostly look at

    def term(self, org, kind: str, name: str, parent: DirectoryTerm | None = None) -> DirectoryTerm:
        row = DirectoryTerm(tenant_id=org.id, kind=kind, name=name, slug=name.lower(),
                            parent_id=parent.id if parent else None)
        db.session.add(row)
        db.session.flush()
        return row

    def profile(self, coach, handle: str, headline: str, bio: str, languages: list[str], terms: list[str],
                tags: list[str] | None = None, years: int | None = None, online: bool = True, in_person: bool = False,
                location: str = "", verified_by=None, terms_of: dict | None = None) -> CoachProfile:
        """A profile row for ``coach`` teaching ``terms`` (keys of ``terms_of``, default ``self.terms``)."""
        tenancy.activate(coach.tenant_id)
        row = CoachProfile(tenant_id=coach.tenant_id, coach_membership_id=coach.id, handle=handle, headline=headline,
                           bio_source=bio, bio_html=render_markdown(bio), languages=languages, tags=tags or [],
                           years_experience=years, online=online, in_person=in_person, location=location)
        if verified_by is not None:
            row.verified_at, row.verified_by_membership_id = clock.now(), verified_by.id
            row.verification_note = "Identity and coaching certificate checked."
        db.session.add(row)
        db.session.flush()
        for key in terms:
            db.session.add(CoachProfileTerm(tenant_id=coach.tenant_id, profile_id=row.id,
                                            term_id=(terms_of or self.terms)[key].id))
        db.session.flush()
        return row

    def write_booking(self, coach, offering, athlete, starts_at, status: str, minutes: int = 60) -> Booking:
        """A 1:1 booking written directly (the booking rules only book the future)."""
        tenancy.activate(coach.tenant_id)
        ends_at = starts_at + timedelta(minutes=minutes)
        live = status in ("confirmed", "active")
        session = CoachingSession(tenant_id=coach.tenant_id, coach_membership_id=coach.id, offering_id=offering.id,
                                  starts_at=starts_at, ends_at=ends_at, busy_from=starts_at, busy_until=ends_at,
                                  capacity=1, live_seats=1 if live else 0)
        db.session.add(session)
        db.session.flush()
        booking = Booking(tenant_id=coach.tenant_id, session_id=session.id, offering_id=offering.id,
                          coach_membership_id=coach.id, athlete_membership_id=athlete.id,
                          booked_by_membership_id=athlete.id, starts_at=starts_at, ends_at=ends_at, status=status,
                          confirmed_at=starts_at - timedelta(days=1), status_changed_at=clock.now())
        db.session.add(booking)
        db.session.flush()
        return booking

    def other_club(self):
        zed = make_user("zed@example.com", "Zed Stranger")
        self.hill = make_org(zed, slug="hill", name="Hill Club")
        tenancy.activate(self.hill.id)
        self.zed = membership_for(self.hill, zed)
        self.yara = add_member(self.hill, make_user("yara@example.com", "Yara Young"), COACH)
        open_every_day(self.yara, tz="Europe/Berlin")
        self.yara_offering = make_offering(self.yara, title="Valorant aim", duration_minutes=60, price_minor=3000)
        tenancy.activate(self.hill.id)
        game = self.term(self.hill, "discipline", "Valorant")
        hill_terms = {"valorant": game, "aim": self.term(self.hill, "skill", "Aim", game)}
        self.yara_profile = self.profile(self.yara, "yara-young", "Valorant aim coach (hill)", "Aim, aim, aim.",
                                         ["en"], ["valorant", "aim"], terms_of=hill_terms)
        db.session.commit()

    def publish(self):
        """Project both clubs into the public directory, as the projection's consumers would."""
        from coach.directory import projection

        for org in (self.org, self.hill):
            tenancy.activate(org.id)
            projection.refresh_org(org.id)
        db.session.commit()
        tenancy.activate(self.org.id)


@pytest.fixture()
def world(ctx):
    """A :class:`DirectoryWorld` for each test of a module that imports this fixture."""
    return DirectoryWorld()


def logged_in(app, email: str):
    """A test client signed in through the real login form as ``email`` (the world's password)."""
    client = app.test_client()
    assert Auth(client).login(email).status_code == 303
    return client
