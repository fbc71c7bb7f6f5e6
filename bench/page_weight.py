"""``page_weight``: what a browser downloads and waits for on the five main pages, cold and warm.

The app runs as in production (``gunicorn --config gunicorn.conf.py wsgi:app``, gevent, ``WEB_CONCURRENCY``
workers) on a throwaway stack (:func:`bench.harness.running_stack`), with the local media backend in the
benchmark's own folder. One organization of 50 members is seeded through the services: a coach's week
calendar with ~50 bookings (:mod:`bench.calendar`), six spaces with ``BENCH_PAGE_WEIGHT_POSTS`` posts
(default 300) and reactions and comments on the newest (:mod:`bench.feed`), a direct conversation of 60
messages between an athlete and their coach, and 12 photos shared with the organization, made ready by
the media job itself (thumbnails and large renditions in storage).

Chromium (Playwright's own if installed, else ``/usr/bin/chromium``, as ``tests/conftest.py`` chooses)
signs in as that athlete and opens each page ``BENCH_PAGE_WEIGHT_RUNS`` times (default 3):

* **cold**: a new browser context (empty HTTP cache, new connections) with the session cookie;
* **warm**: the same context, after ``about:blank``, opening the page again (a link followed later:
  what the cache headers allow is served from the cache, the rest goes to the network).

Per load, from the DevTools protocol: requests that went to the network (a ``304`` counts: it is a round
trip), requests served from the browser's cache, bytes received over the network (``encodedDataLength``:
headers plus the compressed body), the document's own bytes; from Navigation Timing: time to first byte
(``responseStart``) and to the end of the ``load`` event, from the start of the navigation. The chat
socket the pages open is not an HTTP request and is not counted. Bytes and request counts are the same
on every run (bar the few bytes of a CSRF token or a date); times are medians of the runs and depend on
how busy the machine is.

Budget (per page): cold ≤ ``COLD_KB_BUDGET`` KB received and ≤ ``COLD_REQUESTS_BUDGET`` requests, media
thumbnails aside; warm: only the document goes to the network (static files and thumbnails come from the
cache). Last line: ``pages=5 cold_kb=... warm_kb=... cold_requests=... warm_requests=... ... budget=met|missed``
(sums over the five pages; the slowest page's median times).
"""
from __future__ import annotations

import io
import os
import random
import re
import statistics
import time
from dataclasses import dataclass, field

from bench import harness

MEMBERS = 50
MESSAGES = 60
PHOTOS = 12
COLD_KB_BUDGET = 100
COLD_REQUESTS_BUDGET = 6  # the document, the stylesheet, four scripts
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
STORAGE_PATH = "/storage/objects/"


# --- seeding ------------------------------------------------------------------------------------


def _seed_chat(app, org: harness.Org, athlete_email: str, coach_email: str) -> str:
    """A direct conversation of ``MESSAGES`` messages between the athlete and the coach; returns its id."""
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import select

    from coach import tenancy
    from coach.chat import service
    from coach.extensions import db
    from coach.orgs.models import Membership
    from coach.orgs.service import org_by_slug

    rng = random.Random(20261207)
    lines = ["Can we move Thursday's session to the afternoon?", "Sure, 15:00 works for me.",
             "I uploaded the clip from Saturday, can you have a look at the start?",
             "Watched it: your first three steps are too upright. We'll drill that.",
             "Thanks! Should I do the mobility routine before or after the run?",
             "Before, 10 minutes, then an easy 20 minute run.", "Got it, see you then.",
             "How did the intervals feel today? Splits looked steady."]
    start = datetime.now(timezone.utc) - timedelta(days=3)
    with app.app_context():
        org_row = org_by_slug(org.slug)
        tenancy.activate(org.id)
        members = {m.user.email: m for m in db.session.scalars(select(Membership).where(
            Membership.tenant_id == org.id))}
        athlete, coach = members[athlete_email], members[coach_email]
        conversation = service.direct_with(org_row, athlete, coach)
        for n in range(MESSAGES):
            author = athlete if n % 2 == 0 else coach
            service.send(conversation, author, rng.choice(lines), now=start + timedelta(minutes=40 * n))
        db.session.commit()
        return str(conversation.id)


def _photo(rng: random.Random, width: int = 1600, height: int = 1000) -> bytes:
    """A JPEG with some structure (gradients, shapes, noise), so its renditions compress like a photo's."""
    from PIL import Image, ImageDraw, ImageFilter

    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(20, 200)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    image = image.filter(ImageFilter.GaussianBlur(2))
    noise = Image.effect_noise((width, height), 24).convert("RGB")
    image = Image.blend(image, noise, 0.15)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


def _seed_media(app, org: harness.Org, owner_email: str, workdir) -> int:
    """``PHOTOS`` photos shared with the organization, processed by the media job in this process."""
    from sqlalchemy import select

    from coach import tenancy
    from coach.extensions import db
    from coach.media import jobs, service
    from coach.orgs.models import Membership
    from coach.orgs.service import org_by_slug

    rng = random.Random(20261208)
    ids = []
    with app.app_context():
        org_row = org_by_slug(org.slug)
        tenancy.activate(org.id)
        owner = db.session.scalar(select(Membership).join(Membership.user).where(
            Membership.tenant_id == org.id, Membership.user.has(email=owner_email)))
        for n in range(PHOTOS):
            path = workdir / f"training-{n + 1:02d}.jpg"
            path.write_bytes(_photo(rng))
            ids.append(str(service.import_file(org_row, owner, path, "image/jpeg", "organization",
                                               f"Training photo {n + 1}").id))
        db.session.commit()
    ready = sum(jobs.process_media(str(org.id), media_id) == "ready" for media_id in ids)
    if ready != PHOTOS:
        raise RuntimeError(f"only {ready} of {PHOTOS} photos were processed")
    return ready


# --- the browser --------------------------------------------------------------------------------


@dataclass
class Load:
    network: int = 0  # requests that went to the network (304s included)
    cached: int = 0  # requests served from the browser's cache
    media_network: int = 0  # of ``network``: media objects (thumbnails)
    bytes: int = 0  # received over the network, headers included
    media_bytes: int = 0  # of ``bytes``: media objects
    document_bytes: int = 0
    document_encoding: str = ""
    statuses: dict = field(default_factory=dict)
    ttfb_ms: float = 0.0
    load_ms: float = 0.0


def _chromium() -> str | None:
    """Playwright's own Chromium if installed (None: Playwright finds it), else Debian's."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        own = p.chromium.executable_path
    if own and os.path.exists(own):
        return None
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.path.exists(candidate):
            return candidate
    raise RuntimeError("No Chromium: `apt-get install chromium` or `python -m playwright install chromium`.")


def _measure(page, url: str) -> Load:
    """Open ``url`` in ``page`` and account for every HTTP request it makes until ``load`` (+ 0.5 s)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    sent: dict[str, str] = {}
    from_cache: set[str] = set()
    finished: dict[str, int] = {}
    responses: dict[str, dict] = {}
    wire_status: dict[str, int] = {}  # the status as it came over the wire (a revalidation's 304)
    cdp.on("Network.requestWillBeSent", lambda e: sent.__setitem__(e["requestId"], e["request"]["url"]))
    cdp.on("Network.requestServedFromCache", lambda e: from_cache.add(e["requestId"]))
    cdp.on("Network.responseReceived", lambda e: responses.__setitem__(e["requestId"], e["response"]))
    cdp.on("Network.responseReceivedExtraInfo",
           lambda e: wire_status.__setitem__(e["requestId"], e.get("statusCode", 0)))
    cdp.on("Network.loadingFinished", lambda e: finished.__setitem__(e["requestId"], e["encodedDataLength"]))
    page.goto(url, wait_until="load")
    page.wait_for_timeout(500)  # whatever the page fetches right after load (htmx "load" triggers)
    timing = page.evaluate("() => performance.getEntriesByType('navigation')[0].toJSON()")
    cdp.detach()

    load = Load(ttfb_ms=timing["responseStart"], load_ms=timing["loadEventEnd"])
    for request_id, request_url in sent.items():
        if request_url.startswith("data:"):
            continue
        response = responses.get(request_id, {})
        cached = (request_id in from_cache or response.get("fromDiskCache") or response.get("fromPrefetchCache")
                  or response.get("fromServiceWorker"))
        if cached:
            load.cached += 1
            continue
        load.network += 1
        received = finished.get(request_id, 0)
        load.bytes += received
        if STORAGE_PATH in request_url:
            load.media_network += 1
            load.media_bytes += received
        status = wire_status.get(request_id) or response.get("status", 0)
        load.statuses[status] = load.statuses.get(status, 0) + 1
        if request_url == url:
            load.document_bytes = received
            load.document_encoding = {k.lower(): v for k, v in response.get("headers", {}).items()}.get(
                "content-encoding", "identity")
    return load


def _log_in(context, base: str, email: str, password: str) -> None:
    page = context.request.get(f"{base}/login").text()
    token = CSRF_RE.search(page).group(1)
    answer = context.request.post(f"{base}/login", form={"email": email, "password": password, "csrf_token": token},
                                  max_redirects=0)
    if answer.status != 303:
        raise RuntimeError(f"login as {email}: status {answer.status}")


def measure_pages(base: str, pages: list[tuple[str, str]], email: str, password: str,
                  runs: int) -> tuple[dict, dict]:
    """``{name: {"cold": [Load...], "warm": [Load...]}}`` for each (name, path), and the signed-in cookies."""
    from playwright.sync_api import sync_playwright

    launch = {"args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                       "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]}
    executable = _chromium()
    if executable:
        launch["executable_path"] = executable
    results: dict[str, dict[str, list[Load]]] = {name: {"cold": [], "warm": []} for name, _ in pages}
    with sync_playwright() as p:
        browser = p.chromium.launch(**launch)
        try:
            signed_in = browser.new_context()
            _log_in(signed_in, base, email, password)
            state = signed_in.storage_state()
            signed_in.close()
            for n in range(runs):
                for name, path in pages:
                    context = browser.new_context(storage_state=state)
                    page = context.new_page()
                    results[name]["cold"].append(_measure(page, base + path))
                    page.goto("about:blank")
                    results[name]["warm"].append(_measure(page, base + path))
                    context.close()
                harness.say(f"run {n + 1}/{runs} done")
        finally:
            browser.close()
    return results, state


# --- the run ------------------------------------------------------------------------------------


def _static_state(base: str, path: str, state: dict) -> tuple[str, str]:
    """Whether the page links fingerprinted static files, and the Cache-Control they are served with."""
    import urllib.request

    request = urllib.request.Request(base + path, headers={"Cookie": "; ".join(
        f"{c['name']}={c['value']}" for c in state["cookies"])})
    with urllib.request.urlopen(request, timeout=10) as answer:
        html = answer.read().decode()
    found = re.search(r'<link rel="stylesheet" href="([^"]+)"', html)
    if not found:
        return "no", "?"
    href = found.group(1)
    with urllib.request.urlopen(base + href, timeout=10) as answer:
        cache = answer.headers.get("Cache-Control", "")
    return ("yes" if re.search(r"-[0-9a-f]{32}\.", href) else "no"), cache


CODECS = [("gzip", 1), ("gzip", 4), ("gzip", 6), ("gzip", 9), ("br", 1), ("br", 2), ("br", 4), ("br", 5),
          ("zstd", 1), ("zstd", 3)]


def _compressor(codec: str, level: int):
    """The one-shot compression of ``codec`` at ``level`` (None when its library is not installed)."""
    if codec == "gzip":
        import gzip

        return lambda data: gzip.compress(data, compresslevel=level, mtime=0)
    try:
        if codec == "br":
            import brotli

            return lambda data: brotli.compress(data, quality=level)
        try:
            from compression import zstd  # Python 3.14
        except ImportError:
            from backports import zstd
        return lambda data: zstd.compress(data, level=level)
    except ImportError:
        return None


def compression_costs(documents: dict[str, bytes], repeats: int = 200) -> list[list]:
    """CPU per response of compressing each page's HTML with each codec (the median of ``repeats`` timed
    calls in this process) and the size it comes to: what compressing HTML in the app would add per page."""
    rows = []
    for codec, level in CODECS:
        compress = _compressor(codec, level)
        if compress is None:
            continue
        row = [f"{codec} {level}"]
        for data in documents.values():
            samples = []
            for _ in range(repeats):
                t0 = time.process_time_ns()
                out = compress(data)
                samples.append(time.process_time_ns() - t0)
            row += [statistics.median(samples) / 1e6, len(out) / 1024]
        rows.append(row)
    return rows


def _documents(base: str, pages: list[tuple[str, str]], state: dict) -> dict[str, bytes]:
    import urllib.request

    cookie = "; ".join(f"{c['name']}={c['value']}" for c in state["cookies"])
    found = {}
    for name, path in pages:
        with urllib.request.urlopen(urllib.request.Request(base + path, headers={"Cookie": cookie}),
                                    timeout=10) as answer:
            found[name] = answer.read()
    return found


def run() -> str:
    runs = max(1, harness.env_int("BENCH_PAGE_WEIGHT_RUNS", 3))
    posts = harness.env_int("BENCH_PAGE_WEIGHT_POSTS", 300)
    harness.header("page_weight")
    from bench import calendar as calendar_bench
    from bench import feed as feed_bench

    with harness.running_stack() as bench:
        media_root = bench.workdir / "media"
        bench.env["MEDIA_LOCAL_ROOT"] = str(media_root)
        os.environ.update({"MEDIA_BACKEND": "local", "MEDIA_LOCAL_ROOT": str(media_root),
                           **{k: bench.env[k] for k in ("RATELIMIT_ENABLED", "SESSION_COOKIE_SECURE")}})
        app = harness.make_app()
        harness.say(f"seeding one organization of {MEMBERS} members: calendar, {posts} posts, "
                    f"{MESSAGES} chat messages, {PHOTOS} photos")
        org = harness.seed_org(app, slug="bench-weight", members=MEMBERS, coaches=5)
        emails = [email for email, _ in org.members[:16]]
        athlete, coach = f"athlete01@{org.slug}.example", f"coach01@{org.slug}.example"
        offering_id, _ = calendar_bench._seed(app, org)
        feed_bench._seed(app, org, posts, emails)
        conversation_id = _seed_chat(app, org, athlete, coach)
        uploads = bench.workdir / "uploads"
        uploads.mkdir()
        _seed_media(app, org, coach, uploads)
        feed_bench.analyze(bench)

        web = bench.start_gunicorn("app", "wsgi:app", ready_path="/health/ready")
        base = f"http://{harness.HOST}:{web.port}"
        week = calendar_bench.next_monday().isoformat()
        pages = [("organization home", f"/o/{org.slug}/"),
                 ("week calendar", f"/o/{org.slug}/offerings/{offering_id}?week={week}"),
                 ("home feed", f"/o/{org.slug}/feed"),
                 ("chat conversation", f"/o/{org.slug}/chat/{conversation_id}"),
                 ("media library", f"/o/{org.slug}/media")]
        harness.say(f"Chromium: {runs} cold and warm loads of each page as {athlete}")
        t0 = time.perf_counter()
        results, state = measure_pages(base, pages, athlete, org.password, runs)
        harness.say(f"measured in {time.perf_counter() - t0:.0f} s")
        fingerprinted, static_cache = _static_state(base, pages[0][1], state)
        documents = _documents(base, pages, state)
        bench.stop_all()  # the compression timings get the machine to themselves
        harness.say("timing HTML compression in this process")
        costs = compression_costs(documents)

    rows, totals, budget_ok = [], {"cold": Load(), "warm": Load()}, True
    slowest = {"cold": [0.0, 0.0], "warm": [0.0, 0.0]}
    for name, _ in pages:
        for cache in ("cold", "warm"):
            loads = results[name][cache]
            last = loads[-1]
            ttfb = statistics.median(x.ttfb_ms for x in loads)
            load_ms = statistics.median(x.load_ms for x in loads)
            rows.append([name, cache, last.network, last.media_network, last.cached, last.bytes / 1024,
                         last.media_bytes / 1024, last.document_bytes / 1024, last.document_encoding,
                         " ".join(f"{k}x{v}" for k, v in sorted(last.statuses.items())), ttfb, load_ms])
            total = totals[cache]
            total.network += last.network
            total.media_network += last.media_network
            total.cached += last.cached
            total.bytes += last.bytes
            slowest[cache][0] = max(slowest[cache][0], ttfb)
            slowest[cache][1] = max(slowest[cache][1], load_ms)
            if cache == "cold":
                budget_ok &= (last.bytes - last.media_bytes) / 1024 <= COLD_KB_BUDGET
                budget_ok &= last.network - last.media_network <= COLD_REQUESTS_BUDGET
            else:
                budget_ok &= last.network - last.media_network == 1 and last.media_network == 0
    harness.print_table(["page", "cache", "requests", "of them media", "from cache", "KB received", "of them media",
                         "HTML KB",
                         "HTML encoding", "statuses", "TTFB ms", "load ms"], rows)
    print("\nHTML compression, in this process: ms of CPU per response (median of 200) and KB after")
    headers = ["codec level"]
    for name, data in documents.items():
        headers += [f"{name} ({len(data) / 1024:.0f} KB) ms", "KB"]
    harness.print_table(headers, costs)
    print(f"\nstatic files fingerprinted: {fingerprinted}; stylesheet Cache-Control: {static_cache}")
    print(f"budget per page: cold <= {COLD_KB_BUDGET} KB and <= {COLD_REQUESTS_BUDGET} requests besides media; "
          f"warm: the document only. {'met' if budget_ok else 'MISSED'}")
    return harness.key_values(pages=len(pages), cold_kb=totals["cold"].bytes / 1024,
                              warm_kb=totals["warm"].bytes / 1024, cold_requests=totals["cold"].network,
                              warm_requests=totals["warm"].network, warm_from_cache=totals["warm"].cached,
                              max_cold_ttfb_ms=slowest["cold"][0], max_cold_load_ms=slowest["cold"][1],
                              max_warm_load_ms=slowest["warm"][1], fingerprinted=fingerprinted,
                              budget="met" if budget_ok else "missed")
