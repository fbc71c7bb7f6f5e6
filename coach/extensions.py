"""Extensions, created once here and bound to the app in ``create_app``."""
import _socket  # the C module: gevent patches ``socket``, and a patched recv would wait instead of answering now

from flask_htmx import HTMX
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import Pool

# Named constraints, so migrations and error messages refer to stable names.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
sock = Sock()  # WebSocket routes are added to their blueprints (``sock.route(path, bp=...)``)
htmx_ext = HTMX()  # request.htmx-style truth: bool(htmx_ext), .boosted, .history_restore_request


@event.listens_for(Pool, "connect")
def _new_connection(dbapi_connection, connection_record) -> None:
    # A connection opened for this checkout is not looked at (as the pre-ping skips it): were it cut at once,
    # refusing it again would use up the pool's attempts and fail the request outside the 503 handling.
    connection_record.info["fresh"] = True


@event.listens_for(Pool, "checkout")
def _refuse_closed_connection(dbapi_connection, connection_record, connection_proxy) -> None:
    """Hand out no pooled connection the server has already closed (a restart, a failover, an idle timeout).

    Instead of a pre-ping round trip, look at the socket: an idle connection has nothing to read, so input
    waiting there is the server's goodbye (an error message, or the end of the stream). The pool then opens a
    fresh connection in its place (SQLAlchemy's checkout protocol). A connection cut without a word (a
    network partition) is not seen here: the request's first statement fails, and is retried once.
    """
    if connection_record.info.pop("fresh", False):
        return
    if getattr(dbapi_connection, "broken", False) or getattr(dbapi_connection, "closed", False):
        raise DisconnectionError("the connection was already closed")
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:  # not psycopg: nothing to look at
        return
    try:
        waiting = _has_input(pgconn.socket)
    except Exception as exc:  # no usable socket: a dead connection too
        raise DisconnectionError(f"the connection has no usable socket: {exc}") from exc
    if waiting:
        raise DisconnectionError("the server closed the connection while it was idle in the pool")


def _has_input(fd: int) -> bool:
    """Whether anything (or the end of the stream) waits to be read on ``fd``, without waiting or reading it."""
    sock = _socket.socket(fileno=fd)
    try:
        sock.recv(1, _socket.MSG_PEEK | _socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    finally:
        sock.detach()  # the socket stays libpq's
    return True
