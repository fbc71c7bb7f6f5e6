"""The test live server ends a WebSocket as gunicorn does: without writing anything after it.

flask-sock answers a finished socket route with an empty HTTP response. Under gunicorn (production and
``make run``) that response is dropped; under Werkzeug's server (the tests' live server) it is written onto the
connection that has been a WebSocket since the handshake. When the server closed the socket (a signed-out
session, a removed member) the browser was still reading, got ``HTTP/1.1 200 OK`` where a frame belongs and
logged "Invalid frame header" — an error no person using the app ever sees.
"""
from __future__ import annotations


class SocketsEndQuietly:
    """WSGI middleware for Werkzeug's server: after an accepted WebSocket (an upgrade request whose route
    answered 200; a refused handshake answers 4xx and is written as usual), raise ``ConnectionError``, which
    Werkzeug takes as a dropped connection: nothing is written, the TCP connection closes."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("HTTP_UPGRADE", "").lower() != "websocket" or "werkzeug.socket" not in environ:
            return self.app(environ, start_response)
        statuses: list[str] = []

        def remember(status, headers, exc_info=None):
            statuses.append(status)
            return start_response(status, headers, exc_info)

        body = self.app(environ, remember)
        if statuses and statuses[0].startswith("200"):
            if hasattr(body, "close"):
                body.close()
            raise ConnectionError("the WebSocket has ended; there is nothing more to write")
        return body
