"""Media storage for tests: a real S3 API (moto's server over HTTP) and a local root in a temp folder.

Import the fixtures you need into a test module::

    from tests.media_support import local_media, moto_server, s3_media  # noqa: F401

- ``moto_server`` (session): moto's S3 on a free localhost port; yields its endpoint URL.
- ``s3_storage``: an ``S3Storage`` on a fresh bucket of that server, no app needed.
- ``s3_media``: points the session ``app`` at a fresh bucket (MEDIA_BACKEND=s3); yields the
  app's backend, the one ``get_storage()`` returns.
- ``local_media``: points the session ``app`` at a temporary MEDIA_LOCAL_ROOT
  (MEDIA_BACKEND=local); yields the app's ``LocalStorage``.

The app settings are restored after each test; ``get_storage()`` rebuilds its backend when
they change. moto does not check signatures: assert what our code puts into the URLs instead.
"""
from __future__ import annotations

import itertools
import socket
import urllib.parse
from pathlib import Path

import pytest
import requests

from coach.media.storage import LocalStorage, S3Storage, get_storage

REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
MiB = 1024 * 1024
_buckets = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_bucket_name() -> str:
    return f"coach-test-{next(_buckets)}"


def query_of(url: str) -> dict[str, str]:
    """The query arguments of a URL, decoded, one value each."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def put_bytes(url: str, data: bytes) -> requests.Response:
    """PUT a part as a browser's fetch() would: the body with its exact Content-Length."""
    return requests.put(url, data=data, timeout=30)


@pytest.fixture(scope="session")
def moto_server():
    """moto's S3 in server mode on localhost (real HTTP); yields the endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def aws_credentials(monkeypatch):
    """Fake credentials in the environment, where boto3's chain finds them; no profile is read."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def s3_storage(moto_server, aws_credentials) -> S3Storage:
    """An S3 backend on a bucket of its own, created through the backend itself."""
    storage = S3Storage(new_bucket_name(), REGION, endpoint_url=moto_server)
    storage.ensure_bucket()
    return storage


@pytest.fixture()
def s3_media(app, moto_server, aws_credentials, monkeypatch) -> S3Storage:
    """The app configured for S3 on a fresh bucket of the moto server; yields ``get_storage()``."""
    settings = {"MEDIA_BACKEND": "s3", "S3_BUCKET": new_bucket_name(), "S3_REGION": REGION,
                "S3_ENDPOINT_URL": moto_server, "S3_PUBLIC_ENDPOINT_URL": ""}
    for name, value in settings.items():
        monkeypatch.setitem(app.config, name, value)
    with app.app_context():
        storage = get_storage()
    assert isinstance(storage, S3Storage)
    storage.ensure_bucket()
    return storage


@pytest.fixture()
def local_media(app, tmp_path: Path, monkeypatch) -> LocalStorage:
    """The app configured for local storage under a temporary folder; yields ``get_storage()``."""
    monkeypatch.setitem(app.config, "MEDIA_BACKEND", "local")
    monkeypatch.setitem(app.config, "MEDIA_LOCAL_ROOT", str(tmp_path / "media"))
    with app.app_context():
        storage = get_storage()
    assert isinstance(storage, LocalStorage)
    return storage
