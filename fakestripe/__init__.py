"""A fake of the Stripe API for development and tests — never used in production.

``make run`` (with no ``STRIPE_SECRET_KEY``) and the test fixtures start it; the real ``stripe`` client talks to
it when ``STRIPE_API_BASE`` points here. It keeps Stripe-shaped objects in memory, serves a hosted checkout page
(Pay / Decline, clearly labelled as fake) and sends webhooks signed exactly like Stripe's.

Run it alone: ``python -m fakestripe --port 12111 --webhook-url http://127.0.0.1:5000/payments/webhook
--webhook-secret whsec_...``; or in a thread: ``FakeStripe(webhook_secret=...).start()``.
"""
from __future__ import annotations

import threading

from werkzeug.serving import WSGIRequestHandler, make_server

from fakestripe.app import create_app
from fakestripe.store import FakeError, Store, sign

__all__ = ["FakeError", "FakeStripe", "Store", "create_app", "sign"]


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


class FakeStripe:
    """The fake provider served on ``host:port`` (0: any free port) from a background thread."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, webhook_url=None,
                 webhook_secret: str = "whsec_fake_secret", quiet: bool = False):
        self.store = Store(webhook_url=webhook_url, webhook_secret=webhook_secret)
        self.app = create_app(self.store)
        self._server = make_server(host, port, self.app, threaded=True,
                                   request_handler=_QuietHandler if quiet else WSGIRequestHandler)
        self.url = f"http://{host}:{self._server.server_port}"
        self.store.base_url = self.url
        self._thread: threading.Thread | None = None

    @property
    def webhook_secret(self) -> str:
        return self.store.webhook_secret

    def start(self) -> "FakeStripe":
        self._thread = threading.Thread(target=self._server.serve_forever, name="fakestripe", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self.store.close()
