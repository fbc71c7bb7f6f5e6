"""``pages``: every main page a member opens day to day, in a small and a large organization, vs a bare route.

The guard rail of issue 23 (section 6): one table of CPU per request, queries per page, p95 and how
the cost grows with the organization's size, for

========================  ==============================================  ======================
page (key)                path                                            opened by
========================  ==============================================  ======================
``home``                  ``/o/<slug>/`` (organization home)              16 athletes
``calendar``              ``/o/<slug>/offerings/<id>?week=`` (week)       16 athletes
``feed``                  ``/o/<slug>/feed`` (home feed, 20 posts)        16 athletes
``space``                 ``/o/<slug>/spaces/<id>`` (a group's feed)      16 athletes
``chat``                  ``/o/<slug>/chat/<id>`` (the group's channel)   16 athletes
``chat_index``            ``/o/<slug>/chat`` (my conversations)           16 athletes
``bookings``              ``/o/<slug>/bookings`` (sessions)               the coach (16 sessions)
``media``                 ``/o/<slug>/media`` (library)                   16 athletes
``notifications``         ``/o/<slug>/notifications``                     16 athletes
``spaces``                ``/o/<slug>/spaces`` (spaces list)              16 athletes
``home_<block>``          ``/o/<slug>/home/<block>`` as htmx asks it      16 athletes (sessions,
                          (one block of the home page, issue 21)          today, messages, spaces,
                                                                          reviews); the coach
                                                                          (requests)
========================  ==============================================  ======================

Two organizations in one database (as tenants share one in production), the large one
``BENCH_PAGES_FACTOR`` times the small one (default 100):

====================================================  ===========  =============
data                                                  small        large (x100)
====================================================  ===========  =============
members (an admin, coaches, athletes)                 50           5,000
coaches (each with an offering and past sessions)     5            50
past sessions per coach                               40           400
posts (6 spaces, 120 days; reactions, comments,       1,000        100,000
every 10th with a photo)
space memberships                                     ~160         ~15,000
channel messages (the group channel the page shows)   200          20,000
direct conversations (2 per member, 5 messages each)  100          10,000
notifications (20 per member)                         1,000        100,000
media items (2 per member, plus the posts' photos)    200          20,000
====================================================  ===========  =============

What each measured person has is the same in both: the 16 athletes are in the club news, the
sprint group and one to three other groups, have four direct conversations, 20 notifications and
two media items of their own; the coach's week calendar and sessions are :mod:`bench.calendar`'s.
The organization, its admin, spaces, channels, the coach's hours, offerings and bookings are made
through the services; the bulk (users, memberships, posts, reactions, comments, media,
conversations, messages, notifications, past sessions) in SQL as the owner role (under FORCE RLS
too, so the transaction sets ``app.tenant_id``), rows as the services would write them; then
``VACUUM (ANALYZE)``, the state autovacuum keeps.

Measured (``gunicorn --config gunicorn.conf.py``, as every page benchmark): per round the bare route
(``bench/baseline_app.py``), then every page in both organizations, small then large, each a
closed-loop run of ``BENCH_CLIENTS`` (16) logged-in clients for ``BENCH_PAGE_SECONDS`` (default
0.8 x ``BENCH_SECONDS``, 8 s) after ``BENCH_PAGE_WARMUP`` (default half of ``BENCH_WARMUP``, 1 s);
``BENCH_PAGE_ROUNDS`` times (default half of ``BENCH_ROUNDS``, rounded up: 1; later rounds alternate
which size goes first). One longer run per page and size rather than several short ones: the loader
counts the requests that start and end inside a window, so each window's edges lose up to one request
per client. ``CPU ms/req`` is gunicorn + PostgreSQL + Valkey CPU per request
(:func:`bench.harness.cpu_ms_per_request` with ``in_flight=clients``: the requests under way as a
window opens finish inside it and are served in it too); a run that measured fewer than two requests
per client (a page slower than the window) is run again in a window four times as long (at most
40 s). ``growth`` = large ÷ small. With the defaults the whole benchmark takes about 6 minutes,
seeding (about 80 s) included.

Queries per page: one request of each page through the app in this process, as the page's first
login, counted with ``tests/querycount.py`` (SQLAlchemy's ``before_cursor_execute``) after one
request to warm up, in both organizations: a page whose count differs between them sends a query
per row (``tests/test_page_queries.py`` holds the same pages to fixed counts). The same client then
times nine requests: ``app CPU ms`` is this process's CPU for one, their median: the app's Python alone
(no PostgreSQL, no server), steadier than the load figures on a shared machine.

Last line: ``worst_page=... worst_cpu_ms=... worst_growth=... worst_growth_page=...
baseline_cpu_ms_per_req=... cpu_ms_per_req_<page>=... growth_<page>=...``, where
``cpu_ms_per_req_<page>``, ``worst_page`` and ``worst_cpu_ms`` are the small organization's (the size
section 1 of the issue measured at), ``growth_<page>`` the large one's cost over it and ``worst_growth``
the highest of those; a page with no request measured is ``nan`` and left out of ``worst_*``.
"""
from __future__ import annotations

import math
import os
import secrets
import statistics
import time
import uuid
from dataclasses import dataclass, field

from bench import harness, load
from bench.calendar import _log_in, next_monday
from bench.calendar import _seed as seed_calendar
from bench.feed import LISTS, MIDDLES, OPENERS

SMALL_MEMBERS, SMALL_POSTS = 50, 1000
PAST_PER_COACH = 40  # times sqrt(factor) in the large organization
CHANNEL_MESSAGES, OTHER_CHANNEL_MESSAGES = 200, 20
NOTIFICATIONS_PER_MEMBER = 20
LOGGED_IN = 16
MAX_SECONDS = 40.0  # the longest measured window a slow page gets
SPACES = [("Club news", "announcement", "admin"), ("Sprint group", "open", "coach01"),
          ("Distance group", "open", "coach02"), ("Jumps and throws", "open", "coach03"),
          ("Masters", "open", "coach04"), ("Coaches' room", "private", "coach05")]
SPACE_WEIGHTS = [0.06, 0.24, 0.24, 0.18, 0.16, 0.12]
# The home page's blocks (issue 21) as htmx asks them once the shell is in: an athlete's, and the coach's requests.
HOME_BLOCKS = ["home_sessions", "home_today", "home_messages", "home_spaces", "home_reviews", "home_requests"]
ALL_PAGES = ["home", "calendar", "feed", "space", "chat", "chat_index", "bookings", "media", "notifications",
             "spaces"] + HOME_BLOCKS


def _selected_pages() -> list[str]:
    """``BENCH_PAGES_ONLY`` (comma-separated keys) measures some pages only, e.g. while working on one."""
    wanted = [p.strip() for p in os.environ.get("BENCH_PAGES_ONLY", "").split(",") if p.strip()]
    unknown = sorted(set(wanted) - set(ALL_PAGES))
    if unknown:
        raise SystemExit(f"BENCH_PAGES_ONLY: unknown page(s) {', '.join(unknown)}; known: {', '.join(ALL_PAGES)}")
    return [p for p in ALL_PAGES if p in wanted] if wanted else list(ALL_PAGES)


PAGES = _selected_pages()
LABELS = {"home": "organization home", "calendar": "week calendar", "feed": "home feed", "space": "space page",
          "chat": "chat conversation", "chat_index": "chat index", "bookings": "bookings list (coach)",
          "media": "media library", "notifications": "notifications", "spaces": "spaces list",
          **{block: f"home block: {block.removeprefix('home_')}" for block in HOME_BLOCKS}}
NOTIFICATION_KINDS = ["comment", "mention", "booking_confirmed", "booking_reminder", "media_ready", "review_comment",
                      "channel_message", "message"]


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@dataclass
class Seeded:
    """One organization as the benchmark uses it."""

    size: str
    org: harness.Org
    counts: dict
    seconds: dict
    paths: dict = field(default_factory=dict)  # page → path
    logins: dict = field(default_factory=dict)  # page → [{"email", "password"}]


# --- seeding ---------------------------------------------------------------------------------------


def _people(slug: str, members: int, coaches: int) -> list[tuple[str, str, str]]:
    """(email, display name, role): the admin, the coaches, the athletes."""
    people = [(f"admin@{slug}.example", "Bench Admin", "admin")]
    people += [(f"coach{i:02d}@{slug}.example", f"Coach {i:02d}", "coach") for i in range(1, coaches + 1)]
    people += [(f"athlete{i:02d}@{slug}.example", f"Athlete {i:02d}", "athlete") for i in range(1, members - coaches)]
    return people


def _bodies() -> list[tuple[str, str]]:
    """A dozen post texts (Markdown) and their HTML, rendered by the app's renderer as a post's would be."""
    from coach.spaces import markdown

    sources = []
    for n in range(12):
        text = f"{OPENERS[n % len(OPENERS)]} {MIDDLES[(n * 3) % len(MIDDLES)]}"
        if n % 2:
            text += " " + MIDDLES[(n * 5 + 1) % len(MIDDLES)]
        sources.append(text + LISTS[n % len(LISTS)])
    return [(s, markdown.render(s)) for s in sources]


def _seed(app, bench, slug: str, factor: int, password: str) -> Seeded:
    """One organization of ``50 * factor`` members and its data (see the module's table)."""
    import psycopg
    from sqlalchemy import select

    from coach import tenancy
    from coach.accounts.models import User
    from coach.accounts.service import create_user
    from coach.chat import service as chat
    from coach.extensions import db
    from coach.orgs.models import Membership, Organization
    from coach.orgs.service import create_organization
    from coach.spaces import service as spaces

    members = SMALL_MEMBERS * factor
    coaches = max(5, members // 100)
    people = _people(slug, members, coaches)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    with app.app_context():
        admin = create_user(people[0][0], password, people[0][1], "Europe/Berlin")
        org = create_organization(admin, f"Bench {slug}", slug, "Europe/Berlin")
        org_id, password_hash = org.id, admin.password_hash
        db.session.commit()
    owner = _plain(bench.stack.owner_url)

    # Users and memberships in SQL (one password hash for all: logging in checks it as for anyone).
    ids = [uuid.uuid4() for _ in people[1:]]
    with psycopg.connect(owner) as conn:
        conn.execute("""
            INSERT INTO users (id, email, password_hash, display_name, timezone)
            SELECT u.id, u.email, %(hash)s, u.name, 'Europe/Berlin'
            FROM unnest(%(ids)s::uuid[], %(emails)s::text[], %(names)s::text[]) AS u(id, email, name)
        """, {"hash": password_hash, "ids": ids, "emails": [p[0] for p in people[1:]],
              "names": [p[1] for p in people[1:]]})
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(org_id),))
        conn.execute("""
            INSERT INTO memberships (id, tenant_id, user_id, role, created_at)
            SELECT gen_random_uuid(), %(org)s, u.id, u.role, now() - interval '400 days'
            FROM unnest(%(ids)s::uuid[], %(roles)s::text[]) AS u(id, role)
        """, {"org": org_id, "ids": ids, "roles": [p[2] for p in people[1:]]})
    seconds["people"] = time.perf_counter() - t0

    # Spaces, their channels, the coach's calendar and bookings: through the services.
    t0 = time.perf_counter()
    harness_org = harness.Org(id=org_id, slug=slug, password=password, members=[(e, r) for e, _, r in people])
    with app.app_context():
        tenancy.activate(org_id)
        org = db.session.get(Organization, org_id)
        rows = db.session.execute(select(Membership.id, User.email).join(User, User.id == Membership.user_id)
                                  .where(Membership.tenant_id == org_id)).all()
        by_email = {email: mid for mid, email in rows}
        member_ids = [by_email[email] for email, _, _ in people]
        creators = {key: db.session.scalar(select(Membership).join(User, User.id == Membership.user_id).where(
            Membership.tenant_id == org_id, User.email == f"{key}@{slug}.example")) for _, _, key in SPACES}
        made = [spaces.create_space(org, creators[key], name, f"{name}: bench space", visibility)
                for name, visibility, key in SPACES]
        space_ids = [s.id for s in made]
        channels = [chat.space_channel(s).id for s in made]
        db.session.commit()
    offering_id, calendar_counts = seed_calendar(app, harness_org)
    seconds["services"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    counts, bulk = _bulk(owner, org_id, slug, people, member_ids, space_ids, channels, factor, coaches)
    seconds.update({f"SQL {k}": v for k, v in bulk.items()})
    counts.update(members=len(people), coaches=coaches, calendar_bookings=calendar_counts["bookings"])

    athletes = [email for email, _, role in people if role == "athlete"][:LOGGED_IN]
    coach = f"coach01@{slug}.example"
    week = next_monday()
    seeded = Seeded(size="", org=harness_org, counts=counts, seconds=seconds)
    seeded.paths = {"home": f"/o/{slug}/", "calendar": f"/o/{slug}/offerings/{offering_id}?week={week.isoformat()}",
                    "feed": f"/o/{slug}/feed", "space": f"/o/{slug}/spaces/{space_ids[1]}",
                    "chat": f"/o/{slug}/chat/{channels[1]}", "chat_index": f"/o/{slug}/chat",
                    "bookings": f"/o/{slug}/bookings", "media": f"/o/{slug}/media",
                    "notifications": f"/o/{slug}/notifications", "spaces": f"/o/{slug}/spaces",
                    **{block: f"hx:/o/{slug}/home/{block.removeprefix('home_')}" for block in HOME_BLOCKS}}
    athlete_logins = [{"email": email, "password": password} for email in athletes]
    seeded.logins = {page: athlete_logins for page in ALL_PAGES}
    seeded.logins["bookings"] = seeded.logins["home_requests"] = [{"email": coach, "password": password}]
    return seeded


def _space_members(people: list, member_ids: list, space_ids: list) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Who is in which space (as :mod:`bench.feed`): everyone in the news; coaches in two groups and the
    coaches' room; athletes in one to three groups; the measured athletes always in the sprint group."""
    news, groups, room = space_ids[0], space_ids[1:5], space_ids[5]
    rows = []
    athlete_n = coach_n = 0
    for (_, _, role), mid in zip(people, member_ids):
        if role == "admin":
            rows.append((room, mid))
            continue
        rows.append((news, mid))
        if role == "coach":
            rows += [(groups[coach_n % 4], mid), (groups[(coach_n + 1) % 4], mid), (room, mid)]
            coach_n += 1
        else:
            picked = {groups[(athlete_n + k) % 4] for k in range(1 + athlete_n % 3)}
            if athlete_n < LOGGED_IN:
                picked.add(groups[0])
            rows += [(g, mid) for g in sorted(picked)]
            athlete_n += 1
    return rows


def _bulk(owner: str, org_id, slug: str, people: list, member_ids: list, space_ids: list, channels: list,
          factor: int, coaches: int) -> tuple[dict, dict]:
    """Everything that grows with the organization, in SQL as the owner (one transaction)."""
    import psycopg

    roles = {mid: role for (_, _, role), mid in zip(people, member_ids)}
    athletes = [mid for mid in member_ids if roles[mid] == "athlete"]
    coach_ids = [mid for mid in member_ids if roles[mid] == "coach"]
    leaders = [mid for mid in member_ids if roles[mid] in ("admin", "coach")]
    joined = _space_members(people, member_ids, space_ids)
    in_space = {s: [m for sp, m in joined if sp == s] for s in space_ids}
    bodies = _bodies()
    posts_total = SMALL_POSTS * factor
    timings: dict[str, float] = {}
    with psycopg.connect(owner) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(org_id),))

        def sql(label: str, query: str, params: dict | None = None):
            t0 = time.perf_counter()
            result = conn.execute(query, params)
            timings[label] = timings.get(label, 0.0) + time.perf_counter() - t0
            return result

        args = {"org": org_id}
        sql("space members", """
            INSERT INTO space_members (id, tenant_id, space_id, membership_id, role, joined_at, last_seen_at)
            SELECT gen_random_uuid(), %(org)s, j.space, j.member, 'member', now() - interval '300 days',
                   now() - interval '2 days'
            FROM unnest(%(spaces)s::uuid[], %(members)s::uuid[]) AS j(space, member)
            ON CONFLICT (tenant_id, space_id, membership_id) DO NOTHING
        """, {**args, "spaces": [s for s, _ in joined], "members": [m for _, m in joined]})
        for n, space in enumerate(space_ids):
            readers = in_space[space]
            posters = [m for m in readers if m in leaders] if n == 0 else readers
            count = round(posts_total * SPACE_WEIGHTS[n])
            space_args = {**args, "space": space, "n": count, "posters": posters, "readers": readers,
                          "sources": [b[0] for b in bodies], "html": [b[1] for b in bodies]}
            # Posts over the last 120 days, authors among those who may post there.
            sql("posts", """
                INSERT INTO posts (id, tenant_id, space_id, author_membership_id, body_source, body_html, created_at,
                                   comment_count, flag_count)
                SELECT x.id, %(org)s, %(space)s,
                       (%(posters)s::uuid[])[1 + (x.i * 7) %% cardinality(%(posters)s::uuid[])],
                       (%(sources)s::text[])[1 + (x.i * 5) %% 12], (%(html)s::text[])[1 + (x.i * 5) %% 12],
                       now() - make_interval(secs => 60 + (x.i - 1) * (120 * 86400.0 / %(n)s) + random() * 30),
                       (abs(hashtext(x.id::text)::bigint) %% 3 = 0)::int, 0  -- the comment made below
                FROM (SELECT gen_random_uuid() AS id, i FROM generate_series(1, %(n)s) AS i) AS x
            """, space_args)
            # Zero to four reactions from distinct members of the space; one comment on every third post.
            sql("reactions", """
                INSERT INTO reactions (id, tenant_id, post_id, membership_id, kind, created_at)
                SELECT gen_random_uuid(), %(org)s, p.id,
                       (%(readers)s::uuid[])[1 + (p.h + r) %% cardinality(%(readers)s::uuid[])],
                       (ARRAY['like', 'celebrate', 'support', 'insightful', 'funny'])[1 + (p.h + r) %% 5],
                       p.created_at + interval '1 hour'
                FROM (SELECT id, created_at, abs(hashtext(id::text)::bigint) AS h FROM posts
                      WHERE tenant_id = %(org)s AND space_id = %(space)s) AS p,
                     LATERAL generate_series(0, p.h %% 5 - 1) AS r
            """, space_args)
            sql("comments", """
                INSERT INTO comments (id, tenant_id, post_id, author_membership_id, body_source, body_html,
                                      created_at, flag_count)
                SELECT gen_random_uuid(), %(org)s, p.id,
                       (%(readers)s::uuid[])[1 + (p.h * 3) %% cardinality(%(readers)s::uuid[])],
                       'Nice work, see you on Saturday.', '<p>Nice work, see you on Saturday.</p>',
                       p.created_at + interval '30 minutes', 0
                FROM (SELECT id, created_at, abs(hashtext(id::text)::bigint) AS h FROM posts
                      WHERE tenant_id = %(org)s AND space_id = %(space)s) AS p
                WHERE p.h %% 3 = 0
            """, space_args)
        sql("posts", """
            UPDATE spaces SET last_post_at = (SELECT max(created_at) FROM posts
                                              WHERE posts.tenant_id = spaces.tenant_id AND posts.space_id = spaces.id)
            WHERE tenant_id = %(org)s
        """, args)

        # A photo (a processed item's row; no file: pages only sign its URLs) on every tenth post.
        media_columns = """id, tenant_id, owner_membership_id, audience, kind, title, filename, content_type, status,
                           declared_bytes, size_bytes, derived_bytes, counted_bytes, part_bytes, part_count,
                           original_key, derived_keys, width, height, duration_ms, processing_attempts, created_at,
                           upload_expires_at, uploaded_at, ready_at"""
        sql("media", """
            CREATE TEMP TABLE bench_photos ON COMMIT DROP AS
            SELECT gen_random_uuid() AS media_id, id AS post_id, author_membership_id AS owner, created_at
            FROM posts WHERE tenant_id = %(org)s AND abs(hashtext(id::text)::bigint) %% 10 = 1
        """, args)
        sql("media", f"""
            INSERT INTO media_items ({media_columns})
            SELECT b.media_id, %(org)s, b.owner, 'organization', 'image', 'Training photo', 'photo.jpg', 'image/jpeg',
                   'ready', 480000, 480000, 60000, 540000, 480000, 1, %(org)s || '/' || b.media_id || '/original',
                   jsonb_build_object('thumb', %(org)s || '/' || b.media_id || '/thumb.webp',
                                      'large', %(org)s || '/' || b.media_id || '/large.webp'),
                   1600, 1200, NULL, 1, b.created_at - interval '5 minutes', b.created_at, b.created_at, b.created_at
            FROM bench_photos AS b
        """, args)
        sql("media", """
            INSERT INTO post_attachments (id, tenant_id, post_id, media_id, position)
            SELECT gen_random_uuid(), %(org)s, post_id, media_id, 0 FROM bench_photos
        """, args)
        # Two items of each member's own: a video and a PDF, for "me and the coaches".
        sql("media", f"""
            INSERT INTO media_items ({media_columns})
            SELECT id, %(org)s, owner, 'staff', kind, 'My ' || kind || ' ' || n, 'file.' || ext, ctype, 'ready',
                   2000000, 2000000, 0, 2000000, 2000000, 1, %(org)s || '/' || id || '/original',
                   CASE WHEN kind = 'video' THEN jsonb_build_object(
                       'poster', %(org)s || '/' || id || '/poster.jpg', 'thumb', %(org)s || '/' || id || '/thumb.webp',
                       'playback', %(org)s || '/' || id || '/playback.mp4') ELSE '{{}}'::jsonb END,
                   NULL, NULL, CASE WHEN kind = 'video' THEN 42000 END, 1, at, at, at, at
            FROM (SELECT gen_random_uuid() AS id, m.id AS owner, n,
                         CASE WHEN n = 1 THEN 'video' ELSE 'pdf' END AS kind,
                         CASE WHEN n = 1 THEN 'mp4' ELSE 'pdf' END AS ext,
                         CASE WHEN n = 1 THEN 'video/mp4' ELSE 'application/pdf' END AS ctype,
                         now() - make_interval(days => n * 3, secs => abs(hashtext(m.id::text)::bigint) %% 86400) AS at
                  FROM unnest(%(members)s::uuid[]) AS m(id), generate_series(1, 2) AS n) AS x
        """, {**args, "members": member_ids})

        # Direct conversations: members i and i+1, i and i+7 (in list order); five messages each, read to 3.
        pairs = set()
        for i, mid in enumerate(member_ids):
            for step in (1, 7):
                pairs.add(tuple(sorted((mid, member_ids[(i + step) % len(member_ids)]))))
        pairs = sorted(pairs)
        sql("conversations", """
            CREATE TEMP TABLE bench_direct ON COMMIT DROP AS
            SELECT gen_random_uuid() AS id, p.low, p.high, p.n,
                   now() - make_interval(hours => (p.n %% 2000)::int) AS at
            FROM unnest(%(low)s::uuid[], %(high)s::uuid[]) WITH ORDINALITY AS p(low, high, n)
        """, {"low": [p[0] for p in pairs], "high": [p[1] for p in pairs]})
        sql("conversations", """
            INSERT INTO conversations (id, tenant_id, kind, member_low_id, member_high_id, last_seq, last_message_at,
                                       created_at)
            SELECT id, %(org)s, 'direct', low, high, 5, at + interval '5 minutes', at FROM bench_direct
        """, args)
        sql("conversations", """
            INSERT INTO messages (id, tenant_id, conversation_id, seq, author_membership_id, body, created_at)
            SELECT gen_random_uuid(), %(org)s, d.id, s, CASE WHEN s %% 2 = 1 THEN d.low ELSE d.high END,
                   'Are we still on for Thursday? ' || s, d.at + make_interval(mins => s)
            FROM bench_direct AS d, generate_series(1, 5) AS s
        """, args)
        sql("conversations", """
            INSERT INTO conversation_reads (id, tenant_id, conversation_id, membership_id, last_read_seq, read_at)
            SELECT gen_random_uuid(), %(org)s, d.id, m, 3, d.at + interval '3 minutes'
            FROM bench_direct AS d, LATERAL unnest(ARRAY[d.low, d.high]) AS m
        """, args)
        # The channels: the sprint group's (the measured page) and the others.
        for n, (space, channel) in enumerate(zip(space_ids, channels)):
            total = (CHANNEL_MESSAGES if n == 1 else OTHER_CHANNEL_MESSAGES) * factor
            authors = in_space[space]
            sql("channel messages", """
                INSERT INTO messages (id, tenant_id, conversation_id, seq, author_membership_id, body, created_at)
                SELECT gen_random_uuid(), %(org)s, %(channel)s, s,
                       (%(authors)s::uuid[])[1 + (s * 7) %% cardinality(%(authors)s::uuid[])],
                       'Track is open from 6, bring lights. Message ' || s,
                       now() - make_interval(secs => (%(n)s - s) * (30 * 86400.0 / %(n)s) + 60)
                FROM generate_series(1, %(n)s) AS s
            """, {**args, "channel": channel, "n": total, "authors": authors})
            sql("channel messages", """
                UPDATE conversations SET last_seq = %(n)s, last_message_at = now() - interval '1 minute'
                WHERE tenant_id = %(org)s AND id = %(channel)s
            """, {**args, "channel": channel, "n": total})

        sql("notifications", """
            INSERT INTO notifications (id, tenant_id, membership_id, kind, dedupe_key, subject_id, title, body, url,
                                       count, created_at, read_at, email_digest)
            SELECT gen_random_uuid(), %(org)s, m.id, (%(kinds)s::text[])[1 + i %% cardinality(%(kinds)s::text[])],
                   'bench:' || i, gen_random_uuid(), 'Coach 01 commented on your post', 'Nice work, see you Saturday.',
                   %(url)s, 1, now() - make_interval(hours => i * 7),
                   CASE WHEN i > 5 THEN now() - make_interval(hours => i * 7 - 1) END, false
            FROM unnest(%(members)s::uuid[]) AS m(id), generate_series(1, %(per)s) AS i
        """, {**args, "members": member_ids, "kinds": NOTIFICATION_KINDS, "per": NOTIFICATIONS_PER_MEMBER,
              "url": f"/o/{slug}/feed"})

        # Every coach's past sessions (one athlete each; ended, a few cancelled or no-shows). Coaches
        # other than coach01 (whose offerings bench.calendar made) get an offering here.
        offerings = dict(sql("bookings", """
            SELECT coach_membership_id, min(id::text)::uuid FROM offerings WHERE tenant_id = %(org)s
            GROUP BY coach_membership_id
        """, args).fetchall())
        missing = [c for c in coach_ids if c not in offerings]
        for offering, coach in sql("bookings", """
            INSERT INTO offerings (id, tenant_id, coach_membership_id, title, description, duration_minutes)
            SELECT gen_random_uuid(), %(org)s, c, 'Private session', 'One to one.', 60 FROM unnest(%(coaches)s::uuid[]) AS c
            RETURNING id, coach_membership_id
        """, {**args, "coaches": missing}).fetchall():
            offerings[coach] = offering
        per_coach = PAST_PER_COACH * round(math.sqrt(factor))
        sql("bookings", """
            CREATE TEMP TABLE bench_past ON COMMIT DROP AS
            SELECT gen_random_uuid() AS id, c.coach, c.offering, c.n AS coach_n, g,
                   date_trunc('hour', now()) - make_interval(days => g, hours => (c.n %% 8)::int) AS starts_at
            FROM unnest(%(coaches)s::uuid[], %(offerings)s::uuid[]) WITH ORDINALITY AS c(coach, offering, n),
                 generate_series(1, %(per)s) AS g
        """, {"coaches": coach_ids, "offerings": [offerings[c] for c in coach_ids], "per": per_coach})
        sql("bookings", """
            INSERT INTO coaching_sessions (id, tenant_id, coach_membership_id, offering_id, starts_at, ends_at,
                                           busy_from, busy_until, capacity, live_seats, created_at)
            SELECT id, %(org)s, coach, offering, starts_at, starts_at + interval '1 hour', starts_at,
                   starts_at + interval '1 hour', 1, 0, starts_at - interval '3 days'
            FROM bench_past
        """, args)
        sql("bookings", """
            INSERT INTO bookings (id, tenant_id, session_id, offering_id, coach_membership_id, athlete_membership_id,
                                  booked_by_membership_id, starts_at, ends_at, status, note, late_cancellation,
                                  cancelled_by_membership_id, confirmed_at, status_changed_at, created_at)
            SELECT gen_random_uuid(), %(org)s, p.id, p.offering, p.coach, a.athlete, a.athlete, p.starts_at,
                   p.starts_at + interval '1 hour', s.status, 'Working on my start', false,
                   CASE WHEN s.status = 'cancelled' THEN a.athlete END,
                   CASE WHEN s.status <> 'cancelled' THEN p.starts_at - interval '2 days' END,
                   p.starts_at + interval '1 hour', p.starts_at - interval '3 days'
            FROM bench_past AS p,
                 LATERAL (SELECT (%(athletes)s::uuid[])[1 + (p.g * 13 + p.coach_n) %% cardinality(%(athletes)s::uuid[])]
                          AS athlete) AS a,
                 LATERAL (SELECT CASE WHEN p.g %% 11 = 0 THEN 'cancelled' WHEN p.g %% 17 = 0 THEN 'no_show'
                                      ELSE 'ended' END AS status) AS s
        """, {**args, "athletes": athletes})

        def count(table: str) -> int:
            return conn.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %(org)s", args).fetchone()[0]

        counts = {table: count(table) for table in ("posts", "reactions", "comments", "space_members", "media_items",
                                                     "conversations", "messages", "notifications", "bookings")}
        conn.commit()
    return counts, timings


def _vacuum(bench) -> float:
    import psycopg

    t0 = time.perf_counter()
    with psycopg.connect(_plain(bench.stack.owner_url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    return time.perf_counter() - t0


# --- queries per page, in this process ------------------------------------------------------------------


class _AsHtmx:
    """A test client whose GETs carry ``HX-Request`` (a home block's fragment, not its page)."""

    def __init__(self, client):
        self.client = client

    def get(self, path: str):
        return self.client.get(path, headers={"HX-Request": "true"})


def _queries(app, seeded: Seeded, timed: int = 9) -> dict:
    """Statements and bytes of one request of each page as its first login (after one to warm up), and the
    CPU this process spends on a request, the median of ``timed`` more (the app's share only: no PostgreSQL,
    no server; CPU time, and a median, so steadier than the load figures on a shared machine)."""
    from tests.querycount import statements_for

    found = {}
    clients = {}
    for page in PAGES:
        email = seeded.logins[page][0]["email"]
        if email not in clients:
            clients[email] = app.test_client()
            _log_in(clients[email], email, seeded.org.password)
        client, path = clients[email], seeded.paths[page]
        if path.startswith(load.HX_PREFIX):  # a fragment, asked as htmx asks it
            client, path = _AsHtmx(client), path.removeprefix(load.HX_PREFIX)
        statements_for(app, client, path)  # warm up: first-request work is not the page's
        n = statements_for(app, client, path)
        size = len(client.get(path).get_data())
        times = []
        for _ in range(timed):
            c0 = time.process_time()
            client.get(path)
            times.append((time.process_time() - c0) * 1000)
        found[page] = {"queries": n, "bytes": size, "cpu": statistics.median(times)}
    return found


# --- the benchmark ----------------------------------------------------------------------------------------


def run() -> str:
    clients = harness.env_int("BENCH_CLIENTS", 16)
    # One longer run per page and size rather than BENCH_ROUNDS short ones: a run counts only the requests
    # that start and end inside its window, so each run's edges cost up to one request per client.
    rounds = max(1, harness.env_int("BENCH_PAGE_ROUNDS", math.ceil(harness.env_int("BENCH_ROUNDS", 2) / 2)))
    factor = max(2, harness.env_int("BENCH_PAGES_FACTOR", 100))
    seconds = harness.env_float("BENCH_PAGE_SECONDS", 0.8 * harness.bench_seconds())
    warmup = harness.env_float("BENCH_PAGE_WARMUP", harness.warmup_seconds() / 2)
    harness.header("pages")
    print(f"each page: {seconds:g}s measured after {warmup:g}s warm-up, {clients} clients, {rounds} rounds; "
          f"large organization = {factor} x small")
    started = time.perf_counter()
    base_runs: list[dict] = []
    page_runs: dict[tuple[str, str], list[dict]] = {}
    extended: list[str] = []
    with harness.running_stack() as bench:
        os.environ.update({k: bench.env[k] for k in ("RATELIMIT_ENABLED", "SESSION_COOKIE_SECURE")})
        app = harness.make_app()
        password = secrets.token_urlsafe(12)
        orgs = {}
        for size, slug, f in (("small", "bench-small", 1), ("large", "bench-large", factor)):
            harness.say(f"seeding the {size} organization ({SMALL_MEMBERS * f:,} members, "
                        f"{SMALL_POSTS * f:,} posts)")
            orgs[size] = _seed(app, bench, slug, f, password)
            orgs[size].size = size
        vacuum_s = _vacuum(bench)
        harness.say("counting each page's statements in this process")
        queries = {size: _queries(app, seeded) for size, seeded in orgs.items()}
        seed_s = time.perf_counter() - started

        baseline = bench.start_gunicorn("baseline", "bench.baseline_app:app", ready_path="/")
        web = bench.start_gunicorn("app", "wsgi:app", ready_path="/health/ready")
        services = bench.service_pids()
        load_started = time.perf_counter()
        for n in range(1, rounds + 1):
            harness.say(f"round {n}/{rounds}: baseline GET / with {clients} clients")
            base_runs.append(harness.run_load(port=baseline.port, path="/", clients=clients, seconds=seconds,
                                              warmup=warmup, meter={"server": baseline.process.pid, **services}))
            for page in PAGES:
                for size in (("small", "large") if n % 2 else ("large", "small")):
                    seeded = orgs[size]
                    harness.say(f"round {n}/{rounds}: {page} ({size}) GET {seeded.paths[page]}")
                    result = harness.run_load(
                        port=web.port, path=seeded.paths[page], clients=clients, logins=seeded.logins[page],
                        seconds=seconds, warmup=warmup, meter={"server": web.process.pid, **services})
                    if result["requests"] < 2 * clients:
                        # Too slow for the window to hold a couple of requests per client: once more, longer.
                        longer = min(MAX_SECONDS, 4 * seconds)
                        harness.say(f"{page} ({size}): {result['requests']} requests measured; again for {longer:g}s")
                        extended.append(f"{page} ({size}) {longer:g}s")
                        result = harness.run_load(
                            port=web.port, path=seeded.paths[page], clients=clients, logins=seeded.logins[page],
                            seconds=longer, warmup=warmup, meter={"server": web.process.pid, **services})
                    page_runs.setdefault((page, size), []).append(result)
        load_s = time.perf_counter() - load_started

    def pooled(results: list[dict]) -> dict:
        requests = sum(r["requests"] for r in results)
        measured = sum(r["seconds"] for r in results)
        latencies = sorted(v for r in results for v in r["latencies_ms"])
        return {"rps": requests / measured if measured else float("nan"), "requests": requests,
                "p95": harness.percentile(latencies, 95),
                "cpu": harness.cpu_ms_per_request(results, in_flight=clients),
                "errors": sum(sum(r["errors"].values()) for r in results),
                "others": sum(r["cpu"].get("others", 0.0) for r in results) / max(1, len(results))}

    base = pooled(base_runs)
    figures = {key: pooled(results) for key, results in page_runs.items()}
    print()
    for size, seeded in orgs.items():
        c = seeded.counts
        print(f"{size}: {c['members']:,} members ({c['coaches']} coaches), {c['posts']:,} posts, "
              f"{c['reactions']:,} reactions, {c['comments']:,} comments, {c['space_members']:,} space memberships, "
              f"{c['media_items']:,} media items, {c['conversations']:,} conversations, {c['messages']:,} messages, "
              f"{c['notifications']:,} notifications, {c['bookings']:,} bookings; seeded in "
              + ", ".join(f"{k} {v:.0f} s" for k, v in seeded.seconds.items()))
    print(f"VACUUM (ANALYZE) {vacuum_s:.0f} s; seeding and counting {seed_s:.0f} s, load {load_s:.0f} s")
    print()
    rows = [["bare route GET / (baseline)", "-", "-", "-", str(base["requests"]), base["rps"], "", base["p95"], "",
             f"{base['cpu']:.2f}", "", "", base["errors"], f"{base['others']:.2f}"]]
    for page in PAGES:
        s, lg = figures[(page, "small")], figures[(page, "large")]
        qs, ql = queries["small"][page]["queries"], queries["large"][page]["queries"]
        kb = f"{queries['small'][page]['bytes'] / 1024:.0f}/{queries['large'][page]['bytes'] / 1024:.0f}"
        inproc = f"{queries['small'][page]['cpu']:.1f}/{queries['large'][page]['cpu']:.1f}"
        rows.append([LABELS[page], f"{qs}/{ql}" + (" N+1?" if qs != ql else ""), kb, inproc,
                     f"{s['requests']}/{lg['requests']}", s["rps"], lg["rps"], s["p95"],
                     lg["p95"], f"{s['cpu']:.2f}", f"{lg['cpu']:.2f}", f"{lg['cpu'] / s['cpu']:.2f}",
                     s["errors"] + lg["errors"], f"{(s['others'] + lg['others']) / 2:.2f}"])
    harness.print_table(["page", "queries s/l", "KB s/l", "app CPU ms s/l", "measured s/l", "req/s small", "req/s large", "p95 ms small",
                         "p95 ms large", "CPU ms/req small", "CPU ms/req large", "growth", "errors", "others"], rows)
    print(f"'queries': SQL statements of one request (in-process; small/large organization); 'app CPU ms': this "
          f"process's CPU per request through the test client (the app's Python only); 'measured': requests "
          f"wholly inside the measured windows; 'CPU ms/req': gunicorn + PostgreSQL + Valkey CPU per request served "
          f"in the windows (those measured and the {clients} under way as each opened); "
          f"'growth' = large / small; 'others': CPU no process of this benchmark used (cores of {os.cpu_count()}, "
          f"mean of the runs): read it before trusting a figure.")

    cpu = {page: figures[(page, "small")]["cpu"] for page in PAGES}
    growth = {page: figures[(page, "large")]["cpu"] / cpu[page] for page in PAGES}
    if extended:
        print(f"Measured again in a longer window (fewer than {2 * clients} requests in the first): "
              + ", ".join(extended))
    unmeasured = [f"{p} ({size})" for p in PAGES for size in ("small", "large") if not figures[(p, size)]["requests"]]
    if unmeasured:
        print(f"No request of {', '.join(unmeasured)} started and ended inside a measured window: the page is "
              f"slower than the window allows; raise BENCH_PAGE_SECONDS (figures 'nan', left out of worst_*).")
    worst = max((p for p in PAGES if not math.isnan(cpu[p])), key=lambda p: cpu[p], default="none")
    worst_growth = max((p for p in PAGES if not math.isnan(growth[p])), key=lambda p: growth[p], default="none")
    cpu["none"] = growth["none"] = float("nan")
    return harness.key_values(worst_page=worst, worst_cpu_ms=cpu[worst], worst_growth=growth[worst_growth],
                              worst_growth_page=worst_growth, baseline_cpu_ms_per_req=base["cpu"],
                              **{f"cpu_ms_per_req_{p}": cpu[p] for p in PAGES},
                              **{f"growth_{p}": growth[p] for p in PAGES})
