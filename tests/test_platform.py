"""Cross-cutting behaviour: health checks, security headers, error pages, configuration, CLI."""
from __future__ import annotations

import re
import socket
import time

import pytest

from coach import create_app
from coach.config import ConfigError, load_config


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _app_with(app, **overrides):
    base = {k: app.config[k] for k in ("SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "DATABASE_OWNER_URL", "REDIS_URL")}
    base["COACH_ENV"] = "testing"
    base.update(overrides)
    return create_app(base)


def test_health_is_ok_without_touching_dependencies(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_ready_when_postgres_and_redis_answer(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_ready_names_redis_when_it_does_not_answer(app):
    broken = _app_with(app, REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0")
    response = broken.test_client().get("/health/ready")
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["redis"]


def test_ready_names_postgres_when_it_does_not_answer(app):
    broken = _app_with(app, SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg://coach_app@127.0.0.1:{_closed_port()}/coach")
    response = broken.test_client().get("/health/ready")
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["postgresql"]


def test_pages_carry_a_strict_csp_and_security_headers(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'",
                      "base-uri 'none'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "HX-Request" in response.headers["Vary"]


def test_pages_have_no_inline_script(client):
    html = client.get("/login").get_data(as_text=True)
    assert "<script>" not in html and " on" + "click=" not in html
    # The fingerprinted copy once the static build has run (make setup), else the plain name.
    assert re.search(r'src="/static/vendor/htmx\.min(-[0-9a-f]{32})?\.js"', html)


def test_body_sends_the_csrf_token_to_htmx(client):
    html = client.get("/login").get_data(as_text=True)
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


def test_session_cookie_is_httponly_and_samesite_lax(app, auth, ctx):
    from tests.factories import make_user

    make_user("cookie@example.com")
    response = auth.login("cookie@example.com")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_sets_secure_cookies(app):
    prod = _app_with(app, COACH_ENV="production")
    assert prod.config["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize("path", ["/nowhere", "/o/no-such-org/"])
def test_not_found_is_a_full_page_or_a_fragment_for_htmx(client, path):
    page = client.get("/nowhere")
    assert page.status_code == 404 and "<html" in page.get_data(as_text=True)
    fragment = client.get("/nowhere", headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 404 and "<html" not in body and "Not found" in body


def test_wrong_method_is_405_with_allow_header(client):
    response = client.get("/logout")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert "not available" in response.get_data(as_text=True)


def test_oversized_body_is_413(client):
    response = client.post("/login", data={"email": "x" * (1024 * 1024 + 10)})
    assert response.status_code == 413
    assert "larger than allowed" in response.get_data(as_text=True)


def test_post_without_csrf_token_is_refused_and_writes_nothing(client, owner_db):
    response = client.post("/signup", data={"display_name": "Eve", "email": "eve@example.com",
                                            "password": "long-enough-password", "timezone": "UTC"})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert owner_db.execute("SELECT count(*) FROM pending_signups").fetchone()[0] == 0


def test_unexpected_error_is_a_500_page_and_is_logged(app, caplog):
    broken = _app_with(app)

    @broken.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    response = broken.test_client().get("/boom")
    assert response.status_code == 500
    assert "Something went wrong" in response.get_data(as_text=True)
    assert "kaboom" not in response.get_data(as_text=True)
    assert any("unhandled error" in r.message for r in caplog.records)


def test_production_refuses_to_start_without_secret_key(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@/y")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config(tmp_path, {"COACH_ENV": "production"})


def test_development_generates_a_secret_key_once(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgres://x@/y")
    first = load_config(tmp_path, {"COACH_ENV": "development"})
    second = load_config(tmp_path, {"COACH_ENV": "development"})
    assert first["SECRET_KEY"] == second["SECRET_KEY"] and len(first["SECRET_KEY"]) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert first["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")


def test_unknown_environment_name_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="COACH_ENV"):
        load_config(tmp_path, {"COACH_ENV": "staging"})


def test_seed_demo_creates_the_demo_organization_once(app, owner_db, job_runner):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "admin@northside.example" in result.output and "coach-demo-2026" in result.output
    again = runner.invoke(args=["seed-demo", "--if-empty"])
    assert again.exit_code == 0
    org_id = owner_db.execute("SELECT id FROM organizations WHERE slug = 'northside'").fetchone()[0]
    owner_db.execute("SELECT set_config('app.tenant_id', %s, false)", [str(org_id)])
    roles = dict(owner_db.execute("SELECT role, count(*) FROM memberships GROUP BY role").fetchall())
    assert roles == {"admin": 1, "coach": 2, "athlete": 3, "scheduler": 1}
    # Sam's development: the example frameworks, three signed records, a program for two, check-ins.
    counts = {table: owner_db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in (
        "skill_frameworks", "session_records", "athlete_skill_levels", "program_assignments", "workout_logs",
        "readiness_checkins", "goals", "habits", "coach_notes")}
    assert counts == {"skill_frameworks": 2, "session_records": 3, "athlete_skill_levels": 4,
                      "program_assignments": 2, "workout_logs": 2, "readiness_checkins": 21, "goals": 1,
                      "habits": 2, "coach_notes": 1}
    assert owner_db.execute("SELECT count(*) FROM session_records WHERE status = 'signed'").fetchone()[0] == 3
    # Administration: a branded organization, and the demo admin may open the operators' console.
    assert owner_db.execute("SELECT accent_color, branding_version > 0 FROM organizations WHERE slug = 'northside'"
                            ).fetchone() == ("#0f766e", True)
    assert owner_db.execute("SELECT email FROM users WHERE platform_admin").fetchall() == [
        ("admin@northside.example",)]
    assert "/platform/" in result.output
    assert runner.invoke(args=["seed-demo"]).exit_code != 0
    # The demo video goes through the media worker like an upload, and a post shows it.
    deadline = time.monotonic() + 300  # a transcode on a busy 2-core machine
    while True:
        job_runner.drain(60)
        [(title, status, duration_ms)] = owner_db.execute(
            "SELECT title, status, duration_ms FROM media_items").fetchall()
        if status != "processing" or time.monotonic() > deadline:
            break
    assert (title, status, duration_ms) == ("Split-step drill", "ready", 12000)
    assert owner_db.execute("SELECT count(*) FROM post_attachments").fetchone()[0] == 1


def test_create_admin_makes_account_and_organization(app, client, auth):
    result = app.test_cli_runner().invoke(args=[
        "create-admin", "--email", "Boss@Example.com", "--name", "Boss", "--org-slug", "boss-club",
        "--org-name", "Boss Club", "--password", "a-long-admin-password"])
    assert result.exit_code == 0, result.output
    assert auth.login("boss@example.com", "a-long-admin-password").status_code == 303
    assert client.get("/o/boss-club/admin/members").status_code == 200


def test_create_admin_with_a_reserved_slug_fails_cleanly(app, owner_db):
    result = app.test_cli_runner().invoke(args=[
        "create-admin", "--email", "x@example.com", "--name", "X", "--org-slug", "admin",
        "--password", "a-long-admin-password"])
    assert result.exit_code != 0 and "reserved" in result.output
    assert owner_db.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_dev_mailbox_is_hidden_outside_development(client):
    assert client.get("/dev/mail").status_code == 404
