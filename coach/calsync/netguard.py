"""Where a coach's calendar URL may lead: the server fetches a URL a coach typed, so a URL naming this machine or
the private network (a database, a cloud's metadata service) is refused (server-side request forgery).

Checked twice: when the coach connects (:func:`check_url`, a clear message on the form) and on every connection
the HTTP client opens (:class:`GuardedAdapter`: the address the socket actually reached is checked, so a name whose
DNS answer changed after the first check, or a redirect to another host, is refused too). ``
CALSYNC_ALLOW_PRIVATE_ADDRESSES`` turns both off for a calendar server on this machine (tests, ``make run``).
"""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from coach.calsync.provider import ProviderError


class AddressRefused(ProviderError):
    """The URL is not one Coach fetches (not http(s), or it leads to a private or local address)."""


def is_public(address: str) -> bool:
    """Whether ``address`` (an IP literal) is on the public internet: not loopback, private, link-local, reserved,
    multicast or unspecified (an IPv4-mapped IPv6 address is judged as its IPv4 address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def host_of(url: str) -> str:
    """The host part of ``url`` for messages ("calendar.example.com"), or the URL itself when it has none."""
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def check_url(url: str, allow_private: bool) -> str:
    """``url`` if Coach may fetch it, else :class:`AddressRefused` with a message for the coach.

    Only http and https, a host, no user name or password inside the URL (they go in their own fields), and,
    unless ``allow_private``, every address the host resolves to must be public.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise AddressRefused("That is not a valid web address.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("Enter the server's web address, starting with https://.")
    if parts.username or parts.password:
        raise AddressRefused("Put the user name and app password in their own fields, not in the address.")
    if allow_private:
        return url
    host = parts.hostname
    try:
        infos = socket.getaddrinfo(host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise AddressRefused(f"{host} could not be found (no such name).") from None
    if not infos or not all(is_public(info[4][0]) for info in infos):
        raise AddressRefused(f"{host} is a private or local address; Coach connects only to calendar servers "
                             "on the internet.")
    return url


def _refuse_private(conn: HTTPConnection, sock: socket.socket) -> socket.socket:
    address = sock.getpeername()[0]
    if not is_public(address):
        sock.close()
        raise AddressRefused(f"{conn.host} is a private or local address; Coach connects only to calendar "
                             "servers on the internet.")
    return sock


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _refuse_private(self, super()._new_conn())


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _refuse_private(self, super()._new_conn())


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose every new connection is refused (:class:`AddressRefused`, which urllib3 does not
    retry or wrap) when the socket reached a non-public address."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
