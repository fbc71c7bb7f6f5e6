"""Data exports: a member asks for their data and gets a ZIP (by the real worker, with a progress bar, and an
emailed link) holding their posts, messages, bookings, payments, progress and the original bytes of their uploads
from every organization they belong to, and nothing of anyone else; an admin exports the whole organization and
never another's; links that are tampered with, expired or someone else's open nothing; a large export streams
with flat memory; a week later the sweep deletes the file."""
from __future__ import annotations

import io
import json
import re
import threading
import time
import tracemalloc
import uuid
import zipfile
from datetime import timedelta

import psycopg
from sqlalchemy import select, update

from coach import clock, tenancy
from coach.accounts.models import AccountExport, SecurityEvent, User
from coach.chat import service as chat_service
from coach.extensions import db
from coach.media.storage import get_storage
from coach.orgs.models import Membership
from coach.platform.models import AuditEvent
from coach.privacy import exports, jobs
from coach.privacy.models import OrgExport
from tests.conftest import csrf_from
from tests.factories import add_member, media_row
from tests.media_support import aws_credentials, moto_server, s3_storage  # noqa: F401  (fixtures)
from tests.test_progress_reports import login
from tests.test_rls import two_orgs  # noqa: F401  (fixture: organizations A and B with a row in every table)

PROGRESS_RE = re.compile(r'<progress max="100" value="(\d+)"')
LINK_RE = re.compile(r"http://\S+(/(?:account|o/[a-z0-9-]+)/privacy/exports/\S+)")


def post_button(client, page: str, action: str):
    return client.post(action, data={"csrf_token": csrf_from(client.get(page).get_data(as_text=True)),
                                     "idempotency_key": uuid.uuid4().hex})


def member(org, email) -> Membership:
    tenancy.activate(org.id)
    return db.session.scalar(select(Membership).join(User, User.id == Membership.user_id)
                             .where(Membership.tenant_id == org.id, User.email == email))


def seeded_export_failed(org):
    """The RLS fixture seeds a queued export of each organization (never built): make it a failed one."""
    tenancy.activate(org.id)
    db.session.execute(update(OrgExport).where(OrgExport.tenant_id == org.id).values(status="failed"))
    db.session.commit()


def stored_media(org, owner, payload: bytes, filename: str = "serve.mp4"):
    """A media item of ``owner`` whose original is ``payload`` in storage (streamed in, as an upload would)."""
    tenancy.activate(org.id)
    item = media_row(org.id, owner, "My serve", filename=filename)
    db.session.commit()
    get_storage().upload_stream(iter([payload[i:i + 65536] for i in range(0, len(payload), 65536)]),
                                item.original_key, "video/mp4")
    return item


def download_zip(client, path: str) -> zipfile.ZipFile:
    response = client.get(path)
    assert response.status_code == 303, response.status_code
    body = client.get(response.headers["Location"])
    assert body.status_code == 200
    return zipfile.ZipFile(io.BytesIO(body.get_data()))


def whole_text(archive: zipfile.ZipFile) -> str:
    return "\n".join(archive.read(name).decode() for name in archive.namelist() if name.endswith((".json", ".txt")))


def test_my_export_holds_my_data_from_every_organization_and_nobody_elses(app, ctx, two_orgs, job_runner,
                                                                        mailbox):
    a, b = two_orgs
    me = member(a, "a-athlete@example.com")
    user = me.user
    coach = member(a, "a-coach@example.com")
    add_member(b, user, "athlete")  # a second organization of mine: it is exported too
    tenancy.activate(a.id, user.id)
    conversation = chat_service.direct_with(a, me, coach)
    chat_service.send(conversation, me, "On my way to the court")
    db.session.commit()
    original = bytes(range(256)) * 4096 + b"the end"  # ~1 MB that must come back byte for byte
    item = stored_media(a, me, original)
    somebody_else = stored_media(a, coach, b"the coach's video", filename="coach.mp4")
    page_url = "/account/privacy"

    client = login(app.test_client(), user.email)
    page = client.get(page_url)
    assert page.status_code == 200 and "Export my data" in page.get_data(as_text=True)
    with job_runner.paused():
        assert post_button(client, page_url, "/account/privacy/exports").status_code == 303
        # A second request while the first is being made says so, and makes nothing.
        again = post_button(client, page_url, "/account/privacy/exports")
        assert again.status_code == 409
        assert "being made already" in again.get_data(as_text=True)
        # With htmx, the card comes back with the reason (a fragment, no layout).
        card = client.post("/account/privacy/exports", headers={"HX-Request": "true"}, data={
            "csrf_token": csrf_from(client.get(page_url).get_data(as_text=True))})
        assert card.status_code == 409 and "<html" not in card.get_data(as_text=True)
        assert "being made already" in card.get_data(as_text=True)
        assert db.session.scalar(select(db.func.count()).select_from(AccountExport)) == 1
        # Queued: the bar, polling every 2 s, and a Refresh link for a browser without JavaScript.
        export = db.session.scalar(select(AccountExport))
        line = client.get(f"/account/privacy/exports/{export.id}/status", headers={"HX-Request": "true"})
        html = line.get_data(as_text=True)
        assert "<html" not in html and PROGRESS_RE.search(html) and 'hx-trigger="every 2s"' in html
        assert "Refresh" in html
        job_runner.drain(timeout=60)

    db.session.expire_all()
    export = db.session.get(AccountExport, export.id)
    assert (export.status, export.progress, export.error) == ("ready", 100, None)
    assert export.size_bytes == get_storage().size_of(export.object_key) and export.size_bytes > len(original)
    assert export.expires_at - export.finished_at == timedelta(days=7)
    done = client.get(f"/account/privacy/exports/{export.id}/status", headers={"HX-Request": "true"})
    assert "Download ZIP" in done.get_data(as_text=True) and "hx-trigger" not in done.get_data(as_text=True)
    logged = set(db.session.scalars(select(SecurityEvent.action).where(SecurityEvent.user_id == user.id)))
    assert {"export.requested", "export.ready"} <= logged

    # The email lists what is inside and carries the link, which downloads the ZIP.
    email = mailbox.wait_for(user.email, timeout=10)
    text = email.get_body(("plain",)).get_content()
    assert "Your data export is ready" in email["Subject"] and "chat messages you wrote" in text
    archive = download_zip(client, LINK_RE.search(text).group(1))
    names = set(archive.namelist())
    for name in ("README.txt", "profile.json", "memberships.json", "security_log.json"):
        assert name in names
    for domain in ("spaces", "chat", "bookings", "payments", "progress", "media", "notifications"):
        assert f"organizations/org-a/{domain}.json" in names and f"organizations/org-b/{domain}.json" in names
    assert archive.read(f"media/org-a/{item.id}-serve.mp4") == original
    assert not any(str(somebody_else.id) in name for name in names)

    def section(path, key):
        return json.loads(archive.read(path))[key]

    profile = json.loads(archive.read("profile.json"))
    assert profile["account"][0]["email"] == user.email and "password_hash" not in profile["account"][0]
    assert {m["organization"] for m in json.loads(archive.read("memberships.json"))} == {"Org A", "Org B"}
    assert [c["body_source"] for c in section("organizations/org-a/spaces.json", "comments")] == ["A comment"]
    assert section("organizations/org-a/spaces.json", "posts") == []  # the coach wrote the post, not me
    assert [m["body"] for m in section("organizations/org-a/chat.json", "messages")] == ["On my way to the court"]
    bookings = section("organizations/org-a/bookings.json", "bookings")
    assert len(bookings) == 1 and bookings[0]["athlete_membership_id"] == str(me.id)
    assert section("organizations/org-a/payments.json", "payments")
    assert [g["title"] for g in section("organizations/org-a/progress.json", "goals")] == ["a First serve in"]
    assert [r["note"] for r in section("organizations/org-a/progress.json", "readiness_checkins")] == ["a fine"]
    assert section("organizations/org-a/progress.json", "coach_notes_written") == []
    assert section("organizations/org-a/notifications.json", "notifications")
    assert section("organizations/org-b/spaces.json", "posts") == []
    everything = whole_text(archive)
    assert "export.requested" in everything  # the security log
    assert "a nice work" in everything  # the coach's comment on my workout log is about me
    # Nobody else's: not the coach's message nor their private note about me (the organization's), not org B's
    # athlete, nothing of org B's rows.
    b_athlete = member(b, "b-athlete@example.com")
    for foreign in ("See you at six", "a private", "a Coach note", "b-athlete@example.com", str(b_athlete.id),
                    "b First serve in", "b fine", "Space b"):
        assert foreign not in everything, foreign


def test_export_links_refuse_tampering_expiry_and_other_people(app, ctx, two_orgs, job_runner, mailbox,
                                                              monkeypatch):
    a, _ = two_orgs
    user = member(a, "a-athlete@example.com").user
    with job_runner.paused():
        exports.request_account_export(user)
        db.session.commit()
        job_runner.drain(timeout=60)
    link = LINK_RE.search(mailbox.wait_for(user.email, timeout=10).get_body(("plain",)).get_content()).group(1)
    mine = login(app.test_client(), user.email)
    assert mine.get(link).status_code == 303
    path, token = link.split("?token=")
    assert mine.get(f"{path}?token={token[:-3]}abc").status_code == 403  # tampered
    assert mine.get(path).status_code == 403  # no token
    other = str(uuid.uuid4())
    assert mine.get(f"{path.replace(path.split('/')[-2], other)}?token={token}").status_code == 403  # another id
    # A token of an organization's export (another salt) does not open a person's.
    export = db.session.scalar(select(AccountExport))
    forged = exports.link_token(exports.ORGANIZATION, export)
    assert mine.get(f"{path}?token={forged}").status_code == 403
    # Someone else, signed in, with my link (or my export's status line): as if the export did not exist.
    stranger = login(app.test_client(), "a-coach@example.com")
    assert stranger.get(link).status_code == 404
    assert stranger.get(f"/account/privacy/exports/{export.id}/status").status_code == 404
    assert mine.get("/account/privacy/exports/not-an-id/status").status_code == 404
    assert mine.get(f"/account/privacy/exports/not-an-id/download?token={token}").status_code == 403
    # Anonymous: to the login page first.
    assert app.test_client().get(link).status_code in (302, 303)
    # A week later: expired (410), with a page, not an error.
    later = clock.now() + timedelta(days=7, minutes=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    expired = mine.get(link)
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)


def test_an_admin_exports_the_organization_and_nothing_of_another(app, ctx, two_orgs, job_runner, mailbox):
    a, b = two_orgs
    admin = member(a, "a-admin@example.com")
    athlete = login(app.test_client(), "a-athlete@example.com")
    assert athlete.get("/o/org-a/privacy").status_code == 403
    assert athlete.post("/o/org-a/privacy/exports",
                        data={"csrf_token": csrf_from(athlete.get("/account/privacy").get_data(as_text=True))}
                        ).status_code == 403
    item = stored_media(a, admin, b"club video bytes", filename="club.mp4")
    seeded_export_failed(a)
    client = login(app.test_client(), admin.user.email)
    page = client.get("/o/org-a/privacy")
    assert page.status_code == 200 and "Export the organization" in page.get_data(as_text=True)
    assert "/o/org-a/privacy" in client.get("/o/org-a/admin/members").get_data(as_text=True)  # linked from admin
    with job_runner.paused():
        assert post_button(client, "/o/org-a/privacy", "/o/org-a/privacy/exports").status_code == 303
        again = post_button(client, "/o/org-a/privacy", "/o/org-a/privacy/exports")
        assert again.status_code == 409 and "being made already" in again.get_data(as_text=True)
        job_runner.drain(timeout=60)
    tenancy.activate(a.id)
    export = db.session.scalar(select(OrgExport).where(OrgExport.tenant_id == a.id, OrgExport.status == "ready"))
    assert export is not None and export.progress == 100
    assert db.session.scalar(select(AuditEvent.id).where(AuditEvent.tenant_id == a.id,
                                                         AuditEvent.action == "org.export_requested"))

    email = mailbox.wait_for(admin.user.email, timeout=10)
    link = LINK_RE.search(email.get_body(("plain",)).get_content()).group(1)
    assert link.startswith("/o/org-a/privacy/exports/")
    archive = download_zip(client, link)
    names = set(archive.namelist())
    for name in ("organization.json", "members.json", "spaces.json", "chat.json", "booking.json", "payments.json",
                 "progress.json", "media.json", "audit.json"):
        assert name in names, name
    assert archive.read(f"media/{item.id}-club.mp4") == b"club video bytes"
    members = json.loads(archive.read("members.json"))["members"]
    assert {m["email"] for m in members} == {"a-admin@example.com", "a-coach@example.com", "a-athlete@example.com"}
    assert "password_hash" not in members[0]
    assert [m["body"] for m in json.loads(archive.read("chat.json"))["messages"]] == ["See you at six"]
    assert json.loads(archive.read("spaces.json"))["posts"][0]["body_source"].startswith("First post")
    everything = whole_text(archive)
    assert "a First serve in" in everything and "token_hash" not in everything
    for foreign in ("Org B", "b-athlete@example.com", "b-admin@example.com", "Space b", "b First serve in",
                    str(b.id)):
        assert foreign not in everything, foreign
    # The link opens nothing for a coach of the organization, nor for another organization's admin.
    coach = login(app.test_client(), "a-coach@example.com")
    assert coach.get(link).status_code == 403
    other_admin = login(app.test_client(), "b-admin@example.com")
    assert other_admin.get(link).status_code == 404
    # Nor under B's address: the export is not B's (RLS shows B no row of A).
    assert other_admin.get(link.replace("/o/org-a/", "/o/org-b/")).status_code == 404


def test_a_large_export_streams_with_flat_memory(app, ctx, stack, two_orgs, job_runner, monkeypatch):
    a, _ = two_orgs
    me = member(a, "a-athlete@example.com")
    size = 40 * 1024 * 1024
    tenancy.activate(a.id)
    item = media_row(a.id, me, "Long match", filename="long.mp4")
    db.session.commit()
    block = bytes(range(256)) * 1024
    get_storage().upload_stream((block for _ in range(size // len(block))), item.original_key, "video/mp4")
    seen: list[int] = []
    done = threading.Event()
    # Every step of the bar is written (not at most every half second): on a fast machine the 40 MB stream takes
    # less than a second, and the watcher must see the bar move whatever the machine's speed.
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 0)

    def watch(export_id):
        """What another connection sees of the export's progress while it is built: committed as it goes."""
        with psycopg.connect(stack.database_url.replace("postgresql+psycopg://", "postgresql://"),
                             autocommit=True) as conn:
            while not done.is_set():
                value = conn.execute("SELECT progress FROM account_exports WHERE id = %s", (export_id,)).fetchone()[0]
                if not seen or seen[-1] != value:
                    seen.append(value)
                time.sleep(0.01)

    with job_runner.paused():
        export = exports.request_account_export(me.user)
        db.session.commit()
        watcher = threading.Thread(target=watch, args=(export.id,))
        watcher.start()
        tracemalloc.start()
        try:
            assert exports.build(exports.ACCOUNT, str(export.id), None) == "ready"
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            time.sleep(0.2)
            done.set()
            watcher.join()
    db.session.expire_all()
    export = db.session.get(AccountExport, export.id)
    assert export.status == "ready" and export.size_bytes > size
    assert peak < 10 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while streaming a {size / 1e6:.0f} MB export"
    # The bar moved while the file streamed, forward only, and ended at 100.
    assert seen == sorted(seen) and seen[-1] == 100 and len([v for v in seen if 0 < v < 100]) >= 2, seen


def test_the_sweep_deletes_expired_exports_and_their_files(app, ctx, two_orgs, job_runner, monkeypatch):
    a, _ = two_orgs
    user = member(a, "a-athlete@example.com").user
    admin = member(a, "a-admin@example.com")
    seeded_export_failed(a)
    with job_runner.paused():
        mine = exports.request_account_export(user)
        db.session.commit()
        tenancy.activate(a.id)
        theirs = exports.request_org_export(a, admin)
        db.session.commit()
        job_runner.drain(timeout=60)
        db.session.expire_all()
        tenancy.activate(a.id)
        keys = [db.session.get(AccountExport, mine.id).object_key, db.session.get(OrgExport, theirs.id).object_key]
        assert all(get_storage().size_of(key) for key in keys)
        assert jobs.expire_exports() == 0  # nothing is a week old yet
        later = clock.now() + timedelta(days=7, minutes=1)
        monkeypatch.setattr(clock, "now", lambda: later)
        assert jobs.expire_exports() == 2
        assert jobs.expire_exports() == 0  # idempotent
    db.session.expire_all()
    tenancy.activate(a.id)
    assert db.session.get(AccountExport, mine.id).status == "expired"
    assert db.session.get(OrgExport, theirs.id).status == "expired"
    assert [get_storage().size_of(key) for key in keys] == [None, None]
    client = login(app.test_client(), user.email)
    line = client.get("/account/privacy").get_data(as_text=True)
    assert "deleted after a week" in line and "Download ZIP" not in line


def test_s3_streams_an_upload_in_parts_and_reads_it_back_in_chunks(s3_storage):
    part = 5 * 1024 * 1024
    chunks = [bytes([n]) * (1024 * 1024) for n in range(11)]  # 11 MiB: three parts
    assert s3_storage.upload_stream(iter(chunks), "exports/test.zip", "application/zip") == 11 * 1024 * 1024
    assert b"".join(s3_storage.read_chunks("exports/test.zip")) == b"".join(chunks)
    assert s3_storage.size_of("exports/test.zip") == 11 * part // 5

    def failing():
        yield b"x" * part
        raise RuntimeError("the database went away")

    try:
        s3_storage.upload_stream(failing(), "exports/broken.zip", "application/zip")
    except RuntimeError:
        pass
    assert s3_storage.size_of("exports/broken.zip") is None  # aborted: nothing stored


def test_an_export_that_fails_says_so_keeps_nothing_and_may_be_asked_again(app, ctx, two_orgs, job_runner):
    a, _ = two_orgs
    me = member(a, "a-athlete@example.com")
    tenancy.activate(a.id)
    item = media_row(a.id, me, "Broken", filename="broken.mp4")
    db.session.commit()
    # Storage that cannot read the original (a folder where the file should be): the stream fails mid-way.
    get_storage().upload_stream(iter([b"x"]), f"{item.original_key}/inside", "video/mp4")
    with job_runner.paused():
        export = exports.request_account_export(me.user)
        db.session.commit()
        assert exports.build(exports.ACCOUNT, str(export.id), None) == "failed"
        assert exports.build(exports.ACCOUNT, str(export.id), None) == "skipped"  # a redelivery does nothing
    db.session.expire_all()
    export = db.session.get(AccountExport, export.id)
    assert (export.status, export.error, export.object_key) == ("failed", exports.FAILED_MESSAGE, None)
    assert get_storage().size_of(f"exports/accounts/{me.user_id}/{export.id}.zip") is None
    client = login(app.test_client(), me.user.email)
    page = client.get("/account/privacy").get_data(as_text=True)
    assert exports.FAILED_MESSAGE in page and "Traceback" not in page
    with job_runner.paused():
        assert post_button(client, "/account/privacy", "/account/privacy/exports").status_code == 303
