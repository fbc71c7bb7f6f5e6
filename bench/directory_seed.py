"""A public coach directory of realistic size, written straight into the projection with SQL and ``COPY``.

:func:`seed_listings` adds ``orgs`` listed organizations and ``coaches`` listings spread over them (a few
large academies, many small clubs), plus each organization's ``directory_words``, then ``ANALYZE``. It writes
what :mod:`coach.directory.projection` would publish for such coaches, without the tenant rows behind them
(profiles, memberships, offerings): the directory's search reads only the projection, so that is all its
benchmark (``python -m bench directory``) and an EXPLAIN test need, and it takes seconds instead of the
hours the services would.

The data, from one seeded :class:`random.Random` (same ``seed``, same rows):

- 40 disciplines (esports titles and sports), each organization focused on one to three of them; per
  discipline its skills, roles and levels (all in ``skills``, as the projection does), free tags;
- names from several languages' first and last names; headlines and bio excerpts from templates and word lists;
- one to three languages each, English most (about four in five), then German, Spanish, French, ...;
- prices in EUR, USD or GBP (price bands 0-4; a few free, a few with no offering and so no price);
- ratings skewed as on real marketplaces: about 45% with no review, most of the rest with a handful, a few
  with hundreds; averages mostly between 4 and 5; the Bayesian score computed with the settings' prior;
- about 15% verified; the next free slot spread over the next 30 days, none for about 15%.

The tsvector is built in SQL by :data:`SEARCH_SQL` (the projection's expression over the same fields, with
the organization's text search configuration), ``search_text`` is the lower-case names, headline,
disciplines, skills and tags, as the projection writes them.
"""
from __future__ import annotations

import io
import math
import random
import uuid
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

# The projection's own choices, so the seeded rows are what it would write: the text search configuration of
# a locale, the languages' names (English and the organization's language) that make "spanish" find a coach.
from coach.directory.projection import _language_names, ts_config

# --- vocabulary -----------------------------------------------------------------------------------

_ESPORT_SKILLS = ["game sense", "communication", "vod review", "mental game", "decision making", "positioning",
                  "team play", "macro", "micro", "mechanics"]
_SPORT_SKILLS = ["technique", "conditioning", "strength", "mobility", "tactics", "mental game", "nutrition",
                 "injury prevention", "endurance", "speed"]
# discipline → (esport?, its own skills, its roles)
DISCIPLINES: dict[str, tuple[bool, list[str], list[str]]] = {
    "valorant": (True, ["aim", "crosshair placement", "utility", "peeking", "economy"],
                 ["duelist", "controller", "initiator", "sentinel", "igl"]),
    "league of legends": (True, ["laning", "wave management", "warding", "teamfighting", "champion pool"],
                          ["top", "jungle", "mid", "adc", "support"]),
    "counter-strike 2": (True, ["aim", "spray control", "utility", "clutching", "economy"],
                         ["entry", "awper", "lurker", "support", "igl"]),
    "dota 2": (True, ["last hitting", "map awareness", "drafting", "farming"], ["carry", "mid", "offlane", "support"]),
    "overwatch 2": (True, ["aim", "ultimate tracking", "cooldown management"], ["tank", "damage", "support"]),
    "rocket league": (True, ["aerials", "rotations", "dribbling", "boost management"], ["striker", "goalkeeper"]),
    "fortnite": (True, ["building", "editing", "aim", "endgame"], ["fragger", "igl"]),
    "apex legends": (True, ["aim", "movement", "rotations", "third partying"], ["fragger", "igl", "support"]),
    "rainbow six siege": (True, ["droning", "crosshair placement", "utility"], ["entry", "anchor", "roamer"]),
    "street fighter 6": (True, ["combos", "footsies", "anti-airs", "matchup knowledge"], ["player"]),
    "tekken 8": (True, ["punishment", "movement", "frame data"], ["player"]),
    "super smash bros": (True, ["edgeguarding", "neutral", "recovery"], ["player"]),
    "starcraft ii": (True, ["build orders", "multitasking", "scouting"], ["terran", "zerg", "protoss"]),
    "chess": (False, ["openings", "endgames", "tactics", "calculation", "time management"], ["player"]),
    "pubg": (True, ["aim", "recoil control", "zone play"], ["fragger", "scout"]),
    "call of duty": (True, ["aim", "movement", "map control"], ["slayer", "objective"]),
    "hearthstone": (True, ["deck building", "mulligans", "tempo"], ["player"]),
    "teamfight tactics": (True, ["economy", "positioning", "itemization"], ["player"]),
    "tennis": (False, ["serve", "forehand", "backhand", "volley", "footwork", "return"], ["singles", "doubles"]),
    "padel": (False, ["bandeja", "volley", "lob", "wall play"], ["left side", "right side"]),
    "squash": (False, ["drive", "drop shot", "boast", "movement"], ["player"]),
    "badminton": (False, ["smash", "net play", "footwork", "clear"], ["singles", "doubles"]),
    "table tennis": (False, ["topspin", "serve", "footwork", "blocking"], ["player"]),
    "football": (False, ["dribbling", "finishing", "passing", "first touch", "defending"],
                 ["goalkeeper", "defender", "midfielder", "striker"]),
    "basketball": (False, ["shooting", "ball handling", "defense", "rebounding"],
                   ["point guard", "shooting guard", "forward", "center"]),
    "volleyball": (False, ["serve", "spike", "block", "passing"], ["setter", "libero", "outside hitter"]),
    "handball": (False, ["throwing", "feints", "defense"], ["goalkeeper", "wing", "pivot"]),
    "swimming": (False, ["freestyle", "butterfly", "breaststroke", "backstroke", "turns", "open water"], ["sprinter"]),
    "running": (False, ["marathon", "5k", "trail running", "interval training", "pacing"], ["runner"]),
    "cycling": (False, ["climbing", "time trial", "power training", "bike fit"], ["road", "gravel", "track"]),
    "triathlon": (False, ["transitions", "open water", "pacing", "brick workouts"], ["age grouper"]),
    "golf": (False, ["driving", "short game", "putting", "course management"], ["player"]),
    "boxing": (False, ["footwork", "combinations", "defense", "pad work"], ["amateur", "fitness"]),
    "yoga": (False, ["flexibility", "breathing", "balance", "vinyasa", "yin"], ["teacher"]),
    "climbing": (False, ["bouldering", "lead climbing", "finger strength", "footwork"], ["boulderer", "sport"]),
    "rowing": (False, ["stroke technique", "erg training", "endurance"], ["sculler", "sweep"]),
    "skiing": (False, ["carving", "moguls", "off-piste", "racing"], ["alpine", "freestyle"]),
    "surfing": (False, ["paddling", "pop up", "wave selection", "turns"], ["shortboard", "longboard"]),
    "judo": (False, ["throws", "groundwork", "grips"], ["competitor"]),
    "strength training": (False, ["powerlifting", "olympic lifting", "hypertrophy", "programming"], ["lifter"]),
}
LEVELS = ["beginner", "intermediate", "advanced", "competitive", "pro"]
TAGS = ["kids", "women only", "adults", "seniors", "rehab", "tryouts", "scholarship prep", "ranked climb",
        "vod review", "bootcamp", "weekend", "early morning", "evening", "one to one", "small groups", "english",
        "video analysis", "tournament prep", "fun", "fundamentals", "high performance", "coach of coaches"]
FIRST = ["Maria", "Jon", "Anna", "Lukas", "Sofia", "Mateo", "Emma", "Noah", "Lea", "Ben", "Chloe", "Lucas", "Mia",
         "Elias", "Laura", "Hugo", "Julia", "Leon", "Sara", "Paul", "Ines", "Tom", "Nora", "Finn", "Clara", "David",
         "Alba", "Marco", "Yara", "Ken", "Hana", "Min-jun", "Aiko", "Omar", "Fatima", "Ivan", "Olga", "Piotr",
         "Zofia", "Kim", "Lars", "Ingrid", "Joao", "Beatriz", "Carlos", "Lucia", "Pierre", "Camille", "Ahmed",
         "Amira", "Jack", "Olivia", "Liam", "Ava", "Ethan", "Grace", "Raj", "Priya", "Chen", "Wei", "Sven", "Elif"]
LAST = ["Garcia", "Muller", "Schmidt", "Rossi", "Martin", "Silva", "Kowalski", "Novak", "Jensen", "Smith", "Brown",
        "Lopez", "Fernandez", "Weber", "Fischer", "Bernard", "Dubois", "Costa", "Santos", "Nowak", "Johansson",
        "Nielsen", "Kim", "Park", "Tanaka", "Sato", "Yilmaz", "Kaya", "Ivanov", "Petrov", "Wilson", "Taylor",
        "Moreau", "Romano", "Ricci", "Bauer", "Koch", "Hoffmann", "Patel", "Singh", "Wang", "Li", "Berg",
        "Lindqvist", "Okafor", "Mensah", "Haddad", "Nasser", "O'Brien", "Murphy"]
CLUB_WORDS = ["Academy", "Club", "Performance", "Collective", "Lab", "Institute", "Team", "Squad", "Studio", "Works"]
PLACES = ["River", "Hill", "North", "Harbor", "Summit", "Oak", "Lake", "Stone", "Bright", "Iron", "Falcon", "Nova",
          "Metro", "Coast", "Valley", "Cedar", "Aurora", "Pine", "Atlas", "Zenith"]
CITIES = ["Berlin", "Madrid", "Paris", "London", "Lisbon", "Munich", "Barcelona", "Vienna", "Warsaw", "Amsterdam",
          "Stockholm", "Rome", "Milan", "Hamburg", "Lyon", "Dublin", "Zurich", "Prague", "Copenhagen", "Seville"]
TIMEZONES = {"Berlin": "Europe/Berlin", "Madrid": "Europe/Madrid", "Paris": "Europe/Paris", "London": "Europe/London",
             "Lisbon": "Europe/Lisbon", "Munich": "Europe/Berlin", "Barcelona": "Europe/Madrid",
             "Vienna": "Europe/Vienna", "Warsaw": "Europe/Warsaw", "Amsterdam": "Europe/Amsterdam",
             "Stockholm": "Europe/Stockholm", "Rome": "Europe/Rome", "Milan": "Europe/Rome", "Hamburg": "Europe/Berlin",
             "Lyon": "Europe/Paris", "Dublin": "Europe/Dublin", "Zurich": "Europe/Zurich", "Prague": "Europe/Prague",
             "Copenhagen": "Europe/Copenhagen", "Seville": "Europe/Madrid"}
# (code, name, weight as a coach's first language)
LANGUAGES = [("en", "english", 78), ("de", "german", 7), ("es", "spanish", 5), ("fr", "french", 4),
             ("pt", "portuguese", 2), ("it", "italian", 1.5), ("pl", "polish", 1), ("nl", "dutch", 1),
             ("sv", "swedish", 0.5), ("tr", "turkish", 0.5), ("ja", "japanese", 0.3), ("ko", "korean", 0.2)]
LANGUAGE_NAMES = {code: name for code, name, _ in LANGUAGES}
# Organizations' locales (their listings' text search configuration follows: Polish has none, so 'simple').
LOCALES = [("en", 70), ("de", 12), ("es", 8), ("fr", 6), ("pt", 2), ("pl", 2)]
HEADLINES = ["{Level} {discipline} coach: {skill} and {skill2}", "{discipline} coaching for {level} players",
             "Former {role}, now helping you with {skill}", "{skill} specialist ({discipline})",
             "Climb faster: {discipline} {skill} coaching", "{Discipline} {role} coach, {years} years",
             "Patient {discipline} coach for {level} athletes", "{discipline} {skill}, {skill2} and mindset"]
BIO_WORDS = ["I", "help", "players", "athletes", "improve", "their", "consistency", "with", "clear", "plans",
             "weekly", "feedback", "sessions", "focus", "on", "fundamentals", "review", "every", "match", "together",
             "build", "confidence", "under", "pressure", "train", "smarter", "not", "harder", "goals", "progress",
             "tracking", "drills", "habits", "routine", "competition", "season", "structured", "friendly",
             "experienced", "coach", "team", "tournaments", "results", "students", "from", "all", "levels"]
CURRENCIES = [("EUR", 70), ("USD", 20), ("GBP", 10)]


# The projection's search vector (:func:`coach.directory.projection.search_vector`, there built per row from
# literals) in SQL over a staging row ``s``: A name and headline, B disciplines and skills, C tags and the
# languages' names, D the bio's excerpt, each under the organization's configuration ``s.config`` (stems of its
# language) and then, unless that is 'simple' already, under 'simple' (the words as written), in that order.
_PARTS = {"A": "s.display_name || ' ' || s.headline", "B": "array_to_string(s.disciplines || s.skills, ' ')",
          "C": "array_to_string(s.tags, ' ') || ' ' || s.language_names", "D": "s.excerpt"}
SEARCH_SQL = "\n    || ".join(
    f"setweight(to_tsvector(s.config::regconfig, {part}), '{weight}') || CASE WHEN s.config = 'simple' "
    f"THEN ''::tsvector ELSE setweight(to_tsvector('simple', {part}), '{weight}') END"
    for weight, part in _PARTS.items())
SEARCH_TEXT_SQL = ("lower(s.display_name || ' ' || s.headline || ' ' || "
                   "array_to_string(s.disciplines || s.skills || s.tags, ' '))")

_STAGING = [
    ("id", "uuid"), ("organization_id", "uuid"), ("coach_membership_id", "uuid"), ("org_slug", "text"),
    ("org_name", "text"), ("handle", "text"), ("display_name", "text"), ("headline", "text"), ("excerpt", "text"),
    ("disciplines", "text[]"), ("skills", "text[]"), ("tags", "text[]"), ("languages", "text[]"),
    ("language_names", "text"), ("online", "boolean"), ("in_person", "boolean"), ("location", "text"),
    ("timezone", "text"), ("verified", "boolean"), ("currency", "text"), ("price_min_minor", "integer"),
    ("price_max_minor", "integer"), ("price_band", "smallint"), ("rating_count", "integer"),
    ("rating_avg", "numeric"), ("rating_score", "numeric"), ("next_slot_at", "timestamptz"),
    ("response_minutes", "integer"), ("sessions_delivered", "integer"), ("config", "text"),
]


def _pick(rng: random.Random, weighted: list[tuple]) -> tuple:
    return rng.choices(weighted, weights=[w[-1] for w in weighted])[0]


def _bayesian(count: int, star_sum: int, prior_mean: float, prior_weight: int) -> Decimal:
    value = (Decimal(str(prior_mean)) * prior_weight + star_sum) / (prior_weight + count)
    return value.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def price_band(minor: int | None) -> int | None:
    """The projection's bands, in major units of the listing's currency (all three have two decimals)."""
    if minor is None:
        return None
    if minor == 0:
        return 0
    major = minor / 100
    return 1 if major < 30 else 2 if major < 60 else 3 if major < 100 else 4


def _org_sizes(rng: random.Random, coaches: int, orgs: int) -> list[int]:
    """Coaches per organization: every organization has one, the rest go by a heavy-tailed weight."""
    # Capped so that no academy holds more than 2% of the directory.
    weights = [min(rng.paretovariate(1.3), 60.0) for _ in range(orgs)]
    total = sum(weights)
    sizes = [1 + int((coaches - orgs) * w / total) for w in weights]
    for n in range(coaches - sum(sizes)):  # what rounding left over
        sizes[n % orgs] += 1
    return sizes


def _rating(rng: random.Random) -> tuple[int, int]:
    """(review count, star sum): many coaches have none, most a few, some hundreds."""
    roll = rng.random()
    if roll < 0.45:
        return 0, 0
    count = min(400, int(rng.paretovariate(1.1) * 2)) if roll < 0.97 else rng.randint(100, 600)
    mean = min(5.0, max(1.5, rng.gauss(4.45, 0.45)))
    weights = [max(0.001, 1 - abs(star - mean) / 1.6) ** 2 for star in range(1, 6)]
    stars = rng.choices(range(1, 6), weights=weights, k=count)
    return count, sum(stars)


def generate(coaches: int = 100_000, orgs: int = 1_000, seed: int = 22, now: datetime | None = None,
             prior_mean: float = 3.8, prior_weight: int = 5) -> tuple[list[tuple], list[tuple]]:
    """The organizations ``(id, slug, name, timezone, locale)`` and staging rows (:data:`_STAGING`'s columns)."""
    rng = random.Random(seed)
    now = now or datetime.now(timezone.utc)
    names = list(DISCIPLINES)
    org_rows, rows = [], []
    for o, size in enumerate(_org_sizes(rng, coaches, orgs)):
        org_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        city = rng.choice(CITIES)
        focus = rng.sample(names, rng.choice((1, 1, 2, 3)))
        locale = _pick(rng, LOCALES)[0]
        config = ts_config(locale)
        org_name = f"{rng.choice(PLACES)} {focus[0].title()} {rng.choice(CLUB_WORDS)}"[:120]
        slug = f"org-{o:04d}-{focus[0].split()[0].replace('-', '')}"[:40]
        org_rows.append((org_id, slug, org_name, TIMEZONES[city], locale))
        handles: set[str] = set()
        for _ in range(size):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            name = f"{first} {last}"
            handle = "".join(c for c in name.lower().replace(" ", "-") if c.isalnum() or c == "-")
            base, n = handle, 2
            while handle in handles:
                handle, n = f"{base}-{n}", n + 1
            handles.add(handle)
            disciplines = [rng.choice(focus)] if rng.random() < 0.8 else rng.sample(names, rng.choice((1, 2)))
            esport, own, roles = DISCIPLINES[disciplines[0]]
            pool = own + (_ESPORT_SKILLS if esport else _SPORT_SKILLS)
            skills = rng.sample(pool, min(len(pool), rng.randint(2, 5)))
            extra = rng.sample(roles, min(len(roles), rng.randint(0, 2))) + rng.sample(LEVELS, rng.randint(1, 2))
            level = rng.choice(LEVELS)
            headline = rng.choice(HEADLINES).format(
                Level=level.capitalize(), level=level, discipline=disciplines[0], Discipline=disciplines[0].title(),
                skill=skills[0], skill2=skills[1], role=(roles and rng.choice(roles)) or "player",
                years=rng.randint(2, 20))
            headline = (headline[0].upper() + headline[1:])[:120]
            excerpt = " ".join(rng.choice(BIO_WORDS) for _ in range(rng.randint(15, 45)))
            excerpt = (excerpt[0].upper() + excerpt[1:] + ".")[:300]
            languages = [_pick(rng, LANGUAGES)[0]]
            for _ in range(rng.choice((0, 0, 1, 1, 2))):
                code = _pick(rng, LANGUAGES)[0]
                if code not in languages:
                    languages.append(code)
            if locale != "en" and locale in LANGUAGE_NAMES and locale not in languages and rng.random() < 0.7:
                languages.insert(0, locale)
            in_person = rng.random() < (0.25 if esport else 0.7)
            online = not in_person or rng.random() < 0.5
            roll = rng.random()
            if roll < 0.05:
                currency = low = high = None
            elif roll < 0.07:
                currency, low, high = "EUR", 0, 0
            else:
                currency = _pick(rng, CURRENCIES)[0]
                low = int(rng.lognormvariate(math.log(45), 0.55)) * 100
                high = low + rng.choice((0, 0, 1000, 2000, 5000))
            count, star_sum = _rating(rng)
            slot = None if rng.random() < 0.15 else now + timedelta(minutes=rng.randint(30, 30 * 24 * 60))
            rows.append((
                uuid.UUID(int=rng.getrandbits(128), version=4), org_id, uuid.UUID(int=rng.getrandbits(128), version=4),
                slug, org_name, handle[:60], name, headline, excerpt, disciplines, skills + extra,
                rng.sample(TAGS, rng.randint(0, 3)), languages, " ".join(_language_names(languages, locale)),
                online, in_person, city if in_person else "", TIMEZONES[city], rng.random() < 0.15, currency, low, high,
                price_band(low), count, (Decimal(star_sum) / count).quantize(Decimal("0.01")) if count else None,
                _bayesian(count, star_sum, prior_mean, prior_weight), slot,
                None if rng.random() < 0.3 else int(rng.lognormvariate(math.log(180), 1.0)),
                count * rng.randint(2, 6) + rng.randint(0, 20), config,
            ))
    return org_rows, rows


def _copy_value(value) -> str:
    r"""One field in COPY's text format (``\N`` for NULL, arrays as literals, escapes for the specials)."""
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, list):
        value = "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value) + "}"
    elif isinstance(value, datetime):
        value = value.isoformat()
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def seed_listings(conn, coaches: int = 100_000, orgs: int = 1_000, seed: int = 22, now: datetime | None = None,
                  prior_mean: float = 3.8, prior_weight: int = 5, rebuild_indexes: bool = False) -> dict:
    """Write ``orgs`` listed organizations with ``coaches`` listings and their words, then ``ANALYZE``.

    :param conn: a psycopg 3 connection (the owner's or the app's role: both may write the projection for the
        organization set in ``app.tenant_id``, which this sets for each organization in turn; but only the owner
        may ``ANALYZE``: the app role's is skipped with a warning, so analyze as the owner afterwards). From
        SQLAlchemy: ``session.connection().connection.driver_connection``. Committed by the caller: this commits
        nothing itself.
    :param now: the time the next free slots are spread from (default: now).
    :param rebuild_indexes: drop the projection's secondary indexes (not its keys) before writing and build them
        again after, with the same definitions (``pg_indexes``): a GIN index built at once is several times faster
        than one grown row by row. The owner only, and only where nothing else uses the tables meanwhile (the
        benchmark's throwaway database).
    :returns: counts (organizations, listings, words).
    """
    org_rows, rows = generate(coaches, orgs, seed, now, prior_mean, prior_weight)
    conn.execute("CREATE TEMP TABLE bench_orgs (id uuid PRIMARY KEY, slug text, name text, timezone text, "
                 "locale text) ON COMMIT DROP")
    conn.execute("CREATE TEMP TABLE bench_listings (" + ", ".join(f"{n} {t}" for n, t in _STAGING)
                 + ") ON COMMIT DROP")
    with conn.cursor() as cur:
        with cur.copy("COPY bench_orgs FROM STDIN") as copy:
            copy.write("".join("\t".join(_copy_value(v) for v in row) + "\n" for row in org_rows))
        buffer = io.StringIO()
        for row in rows:
            buffer.write("\t".join(_copy_value(v) for v in row))
            buffer.write("\n")
        with cur.copy("COPY bench_listings FROM STDIN") as copy:
            copy.write(buffer.getvalue())
    conn.execute("CREATE INDEX ON bench_listings (organization_id)")
    conn.execute("ANALYZE bench_listings")
    conn.execute("""
        INSERT INTO organizations (id, slug, name, timezone, locale, listed_publicly)
        SELECT id, slug, name, timezone, locale, true FROM bench_orgs
    """)
    indexes = []
    if rebuild_indexes:
        indexes = conn.execute("""
            SELECT indexname, indexdef FROM pg_indexes
            WHERE schemaname = current_schema() AND tablename IN ('directory_listings', 'directory_words')
              AND indexname NOT IN (SELECT conname FROM pg_constraint)
        """).fetchall()
        conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
    columns = [n for n, _ in _STAGING if n not in ("language_names", "config")]
    # The projection's policies let an organization write only its own rows: one statement per organization,
    # with its id set for the transaction as the app's jobs do (a plpgsql loop: one round trip).
    conn.execute(f"""
        DO $$
        DECLARE org uuid;
        BEGIN
            FOR org IN SELECT id FROM bench_orgs LOOP
                PERFORM set_config('app.tenant_id', org::text, true);
                INSERT INTO directory_listings ({", ".join(columns)}, search, search_text)
                SELECT {", ".join("s." + c for c in columns)}, {SEARCH_SQL}, {SEARCH_TEXT_SQL}
                FROM bench_listings AS s WHERE s.organization_id = org;
                INSERT INTO directory_words (organization_id, word, listings)
                SELECT org, w.word, count(DISTINCT l.id)
                FROM directory_listings AS l,
                     regexp_split_to_table(l.search_text, '[^[:alnum:]]+') AS w(word)
                WHERE l.organization_id = org AND char_length(w.word) BETWEEN 3 AND 60
                GROUP BY w.word;
            END LOOP;
            PERFORM set_config('app.tenant_id', '', true);
        END $$
    """)
    for _, definition in indexes:
        conn.execute(definition)
    conn.execute("ANALYZE organizations")
    conn.execute("ANALYZE directory_listings")
    conn.execute("ANALYZE directory_words")
    counts = {"organizations": len(org_rows), "listings": len(rows)}
    counts["words"] = conn.execute("SELECT count(*) FROM directory_words").fetchone()[0]
    return counts
