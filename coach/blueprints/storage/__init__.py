"""The local storage backend's HTTP side: part uploads and signed object downloads (see ``views``)."""
from __future__ import annotations

from flask import Blueprint
from flask.sessions import SecureCookieSession, SessionInterface
from flask_limiter import ExemptionScope

from coach.extensions import csrf
from coach.platform.ratelimit import limiter

bp = Blueprint("storage", __name__, url_prefix="/storage")
# The signature in the URL is the credential: no CSRF token, and the app-wide limits do not apply (an
# upload is dozens of part requests, a video many Range requests); the views set a per-address limit.
csrf.exempt(bp)
limiter.exempt(bp, flags=ExemptionScope.APPLICATION)


class _Unsaved(SecureCookieSession):
    """A request's session that starts empty and is never saved (an error page may still put a token in it)."""


class _NoSessionForSignedUrls(SessionInterface):
    """The app's session interface, except that requests to these routes neither read nor save one.

    Their answers depend on the signed URL alone. With the member's session, the app's hooks read it on every
    request (who is signed in: a query), Flask then sends ``Vary: Cookie`` and, for a permanent session, a
    re-signed cookie; the browser's next page carries a different cookie, so an object it keeps (``private,
    max-age`` until its link expires) no longer matches and is asked for again: a ``304`` per thumbnail per
    page. With an empty session never saved, none of that: the browser uses what it has, and the request is
    anonymous (the signature is the credential).
    """

    def __init__(self, inner: SessionInterface, prefix: str):
        self.inner, self.prefix = inner, prefix
        self.null_session_class = inner.null_session_class
        self.pickle_based = inner.pickle_based

    def open_session(self, app, request):
        if request.path.startswith(self.prefix):
            return _Unsaved()
        return self.inner.open_session(app, request)

    def save_session(self, app, session, response) -> None:
        if not isinstance(session, _Unsaved):
            self.inner.save_session(app, session, response)


@bp.record_once
def _install(state) -> None:
    state.app.session_interface = _NoSessionForSignedUrls(state.app.session_interface, f"{bp.url_prefix}/")


# The route modules register their views on ``bp`` (imported last: they import ``bp`` from here).
from coach.blueprints.storage import views  # noqa: E402, F401
