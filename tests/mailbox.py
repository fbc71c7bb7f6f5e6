"""An aiosmtpd handler that keeps received messages for tests to read."""
from __future__ import annotations

import re
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage


class Mailbox:
    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.port: int | None = None
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if address.lower() in m["To"].lower()]

    def wait_for(self, address: str, timeout: float = 20.0) -> EmailMessage:
        """The latest message to ``address``, waiting up to ``timeout`` seconds for one (generous: the email
        travels through the outbox, the relay and a worker, on a machine that may be loaded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if found:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError(f"no email to {address} within {timeout}s")

    @staticmethod
    def text(message: EmailMessage) -> str:
        return message.get_body(preferencelist=("plain",)).get_content()

    @classmethod
    def link(cls, message: EmailMessage, base: str = "") -> str:
        """The first link in the plain-text body (optionally made relative to ``base``)."""
        match = re.search(r"https?://\S+", cls.text(message))
        assert match, "email has no link"
        url = match.group(0)
        return url[len(base):] if base and url.startswith(base) else url
