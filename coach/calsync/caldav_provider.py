"""The CalDAV provider (RFC 4791, with RFC 6578 sync-collection where the server has it), on the ``caldav``
library: iCloud, Fastmail, Nextcloud, Radicale and most self-hosted servers speak it.

Reading (calendars, changes and busy occurrences) is :mod:`coach.calsync.caldav_read`; writing bookings is
:mod:`coach.calsync.caldav_write`; this module holds the client they share and registers the provider.
"""
from __future__ import annotations

import caldav

from coach.calsync.caldav_read import CalDAVReader
from coach.calsync.caldav_write import CalDAVWriter
from coach.calsync.netguard import GuardedAdapter
from coach.calsync.provider import Credentials, register


class CalDAVProvider(CalDAVReader, CalDAVWriter):
    name = "caldav"

    def __init__(self, credentials: Credentials):
        self.credentials = credentials
        # Every request is bounded: a slow server fails this call, never a page (pages never call a provider).
        self.client = caldav.DAVClient(url=credentials.server_url, username=credentials.username or None,
                                       password=credentials.password or None, timeout=credentials.timeout)
        # No proxy or .netrc from the environment; unless allowed, no connection to a private address (SSRF).
        self.client.session.trust_env = False
        if not credentials.allow_private:
            for scheme in ("http://", "https://"):
                self.client.session.mount(scheme, GuardedAdapter())


register("caldav", CalDAVProvider)
