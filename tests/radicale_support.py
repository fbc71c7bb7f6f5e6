"""A real CalDAV server for the tests: Radicale (from PyPI) on 127.0.0.1, with its own folder and users.

``radicale`` is a session fixture (one server per test process, port taken from the system). Each test makes its
own account with :meth:`Radicale.account` (a fresh user and calendar, so tests never see each other's events) and
can write events straight to the server, as the coach's phone would, with :meth:`Account.put`.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import caldav
import pytest
import requests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Account:
    server_url: str
    username: str
    password: str
    calendar_url: str

    def client(self) -> caldav.DAVClient:
        return caldav.DAVClient(url=self.server_url, username=self.username, password=self.password, timeout=10)

    def calendar(self, url: str | None = None) -> caldav.Calendar:
        return self.client().calendar(url=url or self.calendar_url)

    def put(self, ical: str, url: str | None = None) -> caldav.Event:
        """Save a VCALENDAR text into the calendar, as another client would."""
        return self.calendar(url).save_event(ical)

    def events(self, url: str | None = None) -> list[caldav.Event]:
        return self.calendar(url).events()

    def add_calendar(self, name: str) -> str:
        principal = self.client().principal()
        return str(principal.make_calendar(name=name, cal_id=uuid.uuid4().hex).url)


class Radicale:
    def __init__(self, folder: Path, port: int):
        self.folder, self.port = folder, port
        self.url = f"http://127.0.0.1:{port}/"
        self.users = folder / "users"
        self.users.touch()

    def account(self, calendar_name: str = "Personal") -> Account:
        """A new user with one calendar."""
        username, password = f"coach-{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
        with self.users.open("a") as f:
            f.write(f"{username}:{password}\n")
        client = caldav.DAVClient(url=self.url, username=username, password=password, timeout=10)
        calendar = client.principal().make_calendar(name=calendar_name, cal_id=uuid.uuid4().hex)
        return Account(self.url, username, password, str(calendar.url))


def _start(folder: Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    (folder / "users").touch()
    proc = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--server-hosts", f"127.0.0.1:{port}",
         "--storage-filesystem-folder", str(folder / "collections"),
         "--auth-type", "htpasswd", "--auth-htpasswd-filename", str(folder / "users"),
         "--auth-htpasswd-encryption", "plain", "--auth-delay", "0", "--rights-type", "owner_only",
         "--logging-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=(folder / "radicale.log").open("w"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc, port
        except requests.ConnectionError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"Radicale did not start: {(folder / 'radicale.log').read_text()[-2000:]}")


@pytest.fixture(scope="session")
def radicale():
    folder = Path(tempfile.mkdtemp(prefix="coach-radicale-"))
    proc, port = _start(folder)
    try:
        yield Radicale(folder, port)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(folder, ignore_errors=True)
