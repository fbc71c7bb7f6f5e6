"""``directory``: the public coach directory's search (``GET /coaches?...``) over 100,000 listed coaches of 1,000
organizations, through the production server, against a bare route in the same run.

Data: :func:`bench.directory_seed.seed_listings` (``BENCH_DIRECTORY_COACHES``, default 100,000, over
``BENCH_DIRECTORY_ORGS``, default 1,000, listed organizations; the rows the projection would hold: 40 sports and
games, skewed languages, prices and ratings, ~15% verified, next free slots over 30 days), written with ``COPY``
and ``ANALYZE``'d.

Queries: 200, the same every run (:func:`queries`), in these shapes:

==============  ==========================================================================================
shape           what
==============  ==========================================================================================
``landing``     the directory as first opened (no text; the default sort), and by rating
``word``        one word: a sport or game, a skill, a role
``multi``       several words ("valorant aim coach", "league of legends jungle"), a few with tsquery syntax,
                quotes or SQL metacharacters in them
``typo``        misspelt words ("valorrant", "leage of legends", "tenis"): the search corrects them
``prefix``      a word being typed ("tenn", "valo")
``stopwords``   only stop words ("the", "of the")
``facets``      no text; one to three filters (sport or game, language, rating 4+, verified, this week, online
                or in person, price band)
``text_facets`` words and filters together
``sorts``       rating, price or soonest, with and without words and filters
``page2``       the second page of ten of the searches above, by the cursor of their page's "Next" link
==============  ==========================================================================================

Every answer is the full page with its facets' live counts (a plain GET; the htmx fragment is the same block).

Measured (``gunicorn --config gunicorn.conf.py``, gevent, ``WEB_CONCURRENCY`` workers): first every query once
(each must answer 200; the first pages give the "Next" links), then per round (``BENCH_ROUNDS``, default 1) the
bare route (``bench/baseline_app.py``) for ``BENCH_SECONDS`` and the 200 queries for ``BENCH_DIRECTORY_SECONDS``
(default twice ``BENCH_SECONDS``), each a closed loop of ``BENCH_CLIENTS`` (16) clients, every client going round
the 200 from its own place (:mod:`bench.load` with ``paths``). The public search's rate limit is off for the run
(``RATELIMIT_DIRECTORY_SEARCH=off``, and the harness's ``RATELIMIT_ENABLED=false``).

In this process, before the load: each query's first page through the app (the test client) with the SQL it
sends recorded; each distinct statement on ``directory_listings``/``directory_words`` then runs under
``EXPLAIN (ANALYZE, BUFFERS)`` (second of two runs: warm) and the table shows per shape the slowest statement's
time and every scan the plans chose (a ``Seq Scan on directory_listings`` is what the index test forbids).

Printed: the data's counts and seeding time, a table per shape (queries, statements per page, in-process ms,
slowest statement ms, scans; then requests, p50, p95 and max under load), the whole (pooled) and the bare route,
and last ``p50_ms=... p95_ms=... ratio=... cpu_ms=...`` (the directory's p50 and p95 over all 200 queries;
ratio = its req/s ÷ the bare route's, as the other page benchmarks; cpu_ms = gunicorn + PostgreSQL + Valkey CPU
per request, :func:`bench.harness.cpu_ms_per_request`), then ``target_p95_ms=50`` and ``errors``.

``python -m bench directory --profile``: seed, then only the in-process part (no servers, no load), with every
statement's plan printed, for working on a slow shape.
"""
from __future__ import annotations

import html
import http.client
import os
import random
import re
import statistics
import sys
import threading
import time
from urllib.parse import urlencode

from bench import harness
from bench.directory_seed import DISCIPLINES, LANGUAGES, TAGS, seed_listings

SHAPES = ("landing", "word", "multi", "typo", "prefix", "stopwords", "facets", "text_facets", "sorts", "page2")
TARGET_P95_MS = 50.0
SCAN_RE = re.compile(r"((?:Parallel )?Seq Scan on \w+|(?:Index Only Scan|Index Scan|Bitmap Index Scan)"
                     r"(?: Backward)? (?:using|on) \w+(?: on \w+)?)")
NEXT_RE = re.compile(r'href="([^"]*[?&]cursor=[^"]*)"')
DIRECTORY_TABLES = ("directory_listings", "directory_words")

# Misspellings people type, with the word they meant in the seeded vocabulary.
TYPOS = ["valorrant", "valorant aim coahc", "leage of legends", "league of legnds jungle", "tenis", "tennis serv",
         "basketbal", "swiming", "footbal", "counter strik", "rocket leage", "overwach support", "fortnight building",
         "marathn", "badmington", "climing", "yogaa", "strenght training", "chees openings", "golff putting"]
PREFIXES = ["tenn", "valo", "bask", "swim", "foot", "leag", "clim", "marat", "over", "rock", "stre", "yog", "box",
            "pad", "surf"]
STOPWORDS = ["the", "of the", "and", "a an the", "with"]
ODD = ['valorant & aim | !(duelist):*', '"league of legends" -jungle', "tennis'; DROP TABLE directory_listings; --",
       "aim)) OR 1=1 --", "coach:* & !!"]
MULTI_EXTRA = ["valorant aim coach", "league of legends jungle", "tennis serve beginner", "marathon running plan",
               "counter-strike 2 awper", "football goalkeeper kids", "swimming open water", "chess openings endgames",
               "rocket league aerials", "strength training powerlifting"]


def queries(seed: int = 22) -> list[tuple[str, dict]]:
    """The 190 first-page queries (``page2``'s ten come from their "Next" links), as (shape, parameters)."""
    rng = random.Random(seed)
    names = list(DISCIPLINES)
    languages = [code for code, _, _ in LANGUAGES]

    def skill(discipline: str) -> str:
        return rng.choice(DISCIPLINES[discipline][1])

    def facets(n: int) -> dict:
        chosen: dict = {}
        for key in rng.sample(["discipline", "lang", "rating", "verified", "week", "mode", "price"], n):
            chosen[key] = {"discipline": lambda: rng.choice(names), "rating": lambda: "4", "verified": lambda: "1",
                           "week": lambda: "1", "mode": lambda: rng.choice(["online", "in_person"]),
                           "price": lambda: str(rng.randint(1, 4)),
                           "lang": lambda: rng.choice(languages[:4] if rng.random() < 0.8 else languages)}[key]()
        if "lang" in chosen and rng.random() < 0.3:
            chosen["lang"] = [chosen["lang"], rng.choice(languages[:4])]
        return chosen

    found: list[tuple[str, dict]] = []
    found += [("landing", {})] * 6 + [("landing", {"sort": "rating"})] * 4
    for _ in range(30):
        d = rng.choice(names)
        found.append(("word", {"q": rng.choice([d.split()[0], skill(d), rng.choice(DISCIPLINES[d][2])])}))
    for text in MULTI_EXTRA + ODD:
        found.append(("multi", {"q": text}))
    for _ in range(15):
        d = rng.choice(names)
        found.append(("multi", {"q": f"{d} {skill(d)} {rng.choice(['coach', 'beginner', 'advanced', 'pro'])}"}))
    found += [("typo", {"q": t}) for t in TYPOS]
    found += [("prefix", {"q": p}) for p in PREFIXES]
    found += [("stopwords", {"q": s}) for s in STOPWORDS]
    for _ in range(30):
        found.append(("facets", facets(rng.randint(1, 3))))
    for _ in range(30):
        d = rng.choice(names)
        text = rng.choice([d, f"{d} {skill(d)}", skill(d), rng.choice(TAGS)])
        chosen = facets(rng.randint(1, 2))
        if "discipline" in chosen and rng.random() < 0.7:  # mostly the sport the words are about
            chosen["discipline"] = d
        found.append(("text_facets", {"q": text, **chosen}))
    for n in range(20):
        params = {"sort": ("rating", "price", "soonest")[n % 3]}
        if n % 2:
            params["q"] = rng.choice(names)
        if n % 4 in (2, 3):
            params.update(facets(1))
        found.append(("sorts", params))
    return found


def path_of(params: dict) -> str:
    return "/coaches" + (f"?{urlencode(params, doseq=True)}" if params else "")


# --- in this process: statements and plans ------------------------------------------------------------------


def _record_statements(app, client, path: str) -> tuple[int, float, list[tuple[str, object]], bytes]:
    """(status, ms, the statements with their parameters, body) of one request of ``path`` through the app."""
    from sqlalchemy import event

    from coach.extensions import db

    me = threading.get_ident()
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if threading.get_ident() == me:
            seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        t0 = time.perf_counter()
        response = client.get(path)
        ms = (time.perf_counter() - t0) * 1000
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return response.status_code, ms, seen, response.get_data()


def _explain(conninfo: str, statement: str, parameters) -> dict:
    """One statement under ``EXPLAIN (ANALYZE, BUFFERS)`` as the app's role (second of two runs: warm)."""
    import psycopg

    with psycopg.connect(conninfo) as conn:
        for _ in range(2):
            plan = [row[0] for row in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)]
        conn.rollback()
    ms = next(float(line.split()[-2]) for line in plan if line.startswith("Execution Time"))
    return {"ms": ms, "plan": plan, "scans": sorted(set(SCAN_RE.findall("\n".join(plan))))}


def in_process(app, conninfo: str, listed: list[tuple[str, dict]], show_plans: bool = False) -> dict:
    """Each query's first page through the app in this process, its statements and their plans, per shape.

    :returns: shape → {"queries", "statements" (per page, median), "app_ms" (median wall time in this process,
        PostgreSQL included), "sql_ms" (the slowest statement's warm execution), "slowest" (its query),
        "scans" (every scan of the shape's statements), "failed" (paths that did not answer 200)}.
    """
    client = app.test_client()
    client.get(path_of({}))  # first-request work is not a query's
    per_shape: dict[str, dict] = {}
    explained: dict[str, dict] = {}
    for shape, params in listed:
        path = path_of(params)
        status, ms, seen, _ = _record_statements(app, client, path)
        entry = per_shape.setdefault(shape, {"queries": 0, "statements": [], "app_ms": [], "sql_ms": 0.0,
                                             "slowest": "", "scans": set(), "failed": []})
        entry["queries"] += 1
        entry["statements"].append(len(seen))
        entry["app_ms"].append(ms)
        if status != 200:
            entry["failed"].append(f"{status} {path}")
        for statement, parameters in seen:
            if not any(table in statement for table in DIRECTORY_TABLES) or not statement.lstrip().upper().startswith(
                    ("SELECT", "WITH")):
                continue
            key = statement + repr(parameters)
            if key not in explained:
                explained[key] = _explain(conninfo, statement, parameters)
                if show_plans:
                    print(f"\n## {shape}: {path}\n{statement}\n{parameters!r}\n" + "\n".join(explained[key]["plan"]))
            found = explained[key]
            entry["scans"].update(found["scans"])
            if found["ms"] > entry["sql_ms"]:
                entry["sql_ms"], entry["slowest"] = found["ms"], path
    for entry in per_shape.values():
        entry["statements"] = statistics.median(entry["statements"])
        entry["app_ms"] = statistics.median(entry["app_ms"])
    return per_shape


# --- through the server -------------------------------------------------------------------------------------


def _get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection(harness.HOST, port, timeout=30)
    try:
        conn.request("GET", path, headers={"Accept": "text/html"})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def first_pages(port: int, listed: list[tuple[str, dict]], wanted: int = 10) -> tuple[list[str], list[str]]:
    """Every query once through the server (a warm-up that also checks them): the second pages of ``wanted``
    of them (their "Next" links, from as many shapes as there are) and the paths that did not answer 200."""
    failed, nexts = [], {}
    for shape, params in listed:
        path = path_of(params)
        status, body = _get(port, path)
        if status != 200:
            failed.append(f"{status} {path}")
            continue
        match = NEXT_RE.search(body)
        if match and shape != "landing":
            nexts.setdefault(shape, []).append(html.unescape(match.group(1)))
    pages: list[str] = []
    while len(pages) < wanted and any(nexts.values()):
        for shape in list(nexts):
            if nexts[shape] and len(pages) < wanted:
                pages.append(nexts[shape].pop(0))
    return pages, failed


def _seed(bench) -> tuple[dict, float]:
    import psycopg

    coaches = harness.env_int("BENCH_DIRECTORY_COACHES", 100_000)
    orgs = harness.env_int("BENCH_DIRECTORY_ORGS", 1_000)
    harness.say(f"seeding {coaches:,} listed coaches of {orgs:,} organizations")
    started = time.perf_counter()
    owner = bench.stack.owner_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(owner) as conn:
        counts = seed_listings(conn, coaches=coaches, orgs=orgs)
        conn.commit()
    with psycopg.connect(owner, autocommit=True) as conn:
        for table in DIRECTORY_TABLES:
            conn.execute(f"VACUUM (ANALYZE) {table}")
    return counts, time.perf_counter() - started


def profile() -> str:
    """Seed, then each query in this process with every statement's plan printed (no servers, no load)."""
    harness.header("directory --profile")
    with harness.running_stack() as bench:
        os.environ["RATELIMIT_DIRECTORY_SEARCH"] = "off"
        counts, seconds = _seed(bench)
        app = harness.make_app()
        found = in_process(app, bench.app_conninfo(), queries(), show_plans=True)
    print()
    _shape_table(found, {})
    worst = max(found.values(), key=lambda e: e["sql_ms"])
    return harness.key_values(listings=counts["listings"], seed_s=seconds, worst_sql_ms=worst["sql_ms"],
                              worst_app_ms=max(e["app_ms"] for e in found.values()))


def _shape_table(found: dict, loaded: dict) -> None:
    rows = []
    for shape in SHAPES:
        entry, load = found.get(shape), loaded.get(shape)
        if entry is None and load is None:
            continue
        latencies = sorted(load["latencies"]) if load else []
        rows.append([shape, entry["queries"] if entry else len(load["paths"]),
                     entry["statements"] if entry else "-", f"{entry['app_ms']:.1f}" if entry else "-",
                     f"{entry['sql_ms']:.1f}" if entry else "-", len(latencies),
                     harness.percentile(latencies, 50), harness.percentile(latencies, 95),
                     latencies[-1] if latencies else float("nan"),
                     "; ".join(sorted(entry["scans"])) if entry else "-"])
    harness.print_table(["shape", "queries", "stmts", "app ms", "sql ms", "requests", "p50 ms", "p95 ms", "max ms",
                         "scans"], rows)


def run(argv: list[str] | None = None) -> str:
    argv = list(argv or [])
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return "usage=python -m bench directory [--profile]"
    if argv and argv[0] == "--profile":
        return profile()
    clients = harness.env_int("BENCH_CLIENTS", 16)
    rounds = max(1, harness.env_int("BENCH_ROUNDS", 1))
    seconds = harness.env_float("BENCH_DIRECTORY_SECONDS", 2 * harness.bench_seconds())
    harness.header("directory")
    listed = queries()
    runs: list[tuple[str, dict]] = []
    with harness.running_stack() as bench:
        bench.env["RATELIMIT_DIRECTORY_SEARCH"] = "off"
        os.environ.update({k: bench.env[k] for k in ("RATELIMIT_ENABLED", "RATELIMIT_DIRECTORY_SEARCH",
                                                     "SESSION_COOKIE_SECURE")})
        counts, seed_seconds = _seed(bench)
        app = harness.make_app()
        harness.say("each query once in this process: statements and plans")
        found = in_process(app, bench.app_conninfo(), listed)
        baseline = bench.start_gunicorn("baseline", "bench.baseline_app:app", ready_path="/")
        web = bench.start_gunicorn("app", "wsgi:app", ready_path="/health/ready")
        services = bench.service_pids()
        harness.say("each query once through the server (warm-up; the second pages' links)")
        seconds_pages, failed = first_pages(web.port, listed)
        everything = listed + [("page2", {"_path": p}) for p in seconds_pages]
        paths = [params["_path"] if "_path" in params else path_of(params) for _, params in everything]
        for n in range(1, rounds + 1):
            harness.say(f"round {n}/{rounds}: baseline GET / with {clients} clients")
            runs.append(("baseline", harness.run_load(port=baseline.port, path="/", clients=clients,
                                                      meter={"server": baseline.process.pid, **services})))
            harness.say(f"round {n}/{rounds}: {len(paths)} searches GET /coaches?... with {clients} clients "
                        f"for {seconds:g}s")
            runs.append(("directory", harness.run_load(port=web.port, path="/coaches", paths=paths, clients=clients,
                                                       seconds=seconds,
                                                       meter={"server": web.process.pid, **services})))

    def pooled(name: str) -> dict:
        results = [r for side, r in runs if side == name]
        requests = sum(r["requests"] for r in results)
        secs = sum(r["seconds"] for r in results)
        latencies = sorted(v for r in results for v in r["latencies_ms"])
        return {"requests": requests, "rps": requests / secs if secs else float("nan"),
                "p50": harness.percentile(latencies, 50), "p95": harness.percentile(latencies, 95),
                "max": latencies[-1] if latencies else float("nan"), "cpu": harness.cpu_ms_per_request(results),
                "errors": sum(sum(r["errors"].values()) for r in results),
                "others": sum(r["cpu"].get("others", 0.0) for r in results) / max(1, len(results))}

    loaded: dict[str, dict] = {}
    for _, result in (item for item in runs if item[0] == "directory"):
        for (shape, _params), path, latencies in zip(everything, paths, result["path_latencies_ms"]):
            entry = loaded.setdefault(shape, {"paths": set(), "latencies": []})
            entry["paths"].add(path)
            entry["latencies"] += latencies
    base, page = pooled("baseline"), pooled("directory")
    print()
    print(f"data: {counts['listings']:,} listings of {counts['organizations']:,} listed organizations, "
          f"{counts['words']:,} words; seeded in {seed_seconds:.0f} s")
    print()
    _shape_table(found, loaded)
    print()
    rows = [[label, f["requests"], f["rps"], f["rps"] / base["rps"] if base["rps"] else float("nan"), f["p50"],
             f["p95"], f["max"], f"{f['cpu']:.2f}", f["errors"], f"{f['others']:.2f}"]
            for label, f in (("bare route GET / (baseline)", base), (f"directory, {len(paths)} searches", page))]
    harness.print_table(["run", "requests", "req/s", "ratio", "p50 ms", "p95 ms", "max ms", "CPU ms/req", "errors",
                         "others"], rows)
    print(f"'stmts': SQL statements per page, 'app ms': one request in this process (PostgreSQL included), "
          f"'sql ms': the shape's slowest statement under EXPLAIN ANALYZE (warm); 'ratio': req/s / the bare route's; "
          f"'CPU ms/req': gunicorn + PostgreSQL + Valkey CPU per request; 'others': CPU no process of this benchmark "
          f"used (cores of {os.cpu_count()}): read it before trusting a figure. Target: p95 < {TARGET_P95_MS:g} ms.")
    bad = failed + [f for entry in found.values() for f in entry["failed"]]
    if bad:
        print(f"not 200 ({len(bad)}): " + "; ".join(bad[:10]), file=sys.stderr)
    return harness.key_values(p50_ms=page["p50"], p95_ms=page["p95"], ratio=page["rps"] / base["rps"],
                              cpu_ms=page["cpu"], baseline_cpu_ms=base["cpu"], target_p95_ms=TARGET_P95_MS,
                              errors=page["errors"] + len(bad))
