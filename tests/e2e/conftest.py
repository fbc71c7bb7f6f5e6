"""The browser guard: every browser test fails if a page in it logs a console error or breaks the CSP.

A page that breaks the Content Security Policy still mostly works, so a journey's assertions pass while the
user's console fills with violations (an htmx swap applying an inline style, a fragment with ``style=``). The
guard wraps the session's ``browser`` for the length of each test: every context made through it (the ``page``
and ``context`` fixtures, ``browser.new_context()``, ``browser.new_page()``) gets a listener for console errors
and uncaught exceptions, and an init script that turns each ``securitypolicyviolation`` event into a console
error naming the directive, the element and a sample of what was blocked (Chromium's own message names only
the directive). At teardown the test fails with the list: page URL and message.

What a test provokes on purpose it says so, with a reason and a pattern of the messages it expects::

    @pytest.mark.allow_console("the test cuts the network; the socket's reconnects fail", r"net::ERR_")

Allowed for every test is only what a person never notices as a fault: a page whose own document the server
answered with a designed 4xx page, and a form refused with 422 (Chromium logs both statuses as failed loads).
Anything else allowed for every test would hide the same message where it is a bug.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

# expect() waits up to 15 s for what a page should show (Playwright's default is 5 s): on CI's two cores, two
# test processes with their browsers, servers and workers can hold a swap or a live push back for longer. A wait
# ends as soon as the page shows it, so a passing test takes no longer; what never comes still fails.
expect.set_options(timeout=15_000)

#: Prefix of the console errors the init script writes for each CSP violation (the guard matches on it).
GUARD_PREFIX = "[csp-guard]"

# Runs in every page (and frame) before the page's own scripts. The listener is on the window in the capture
# phase so a violation in any document of the page reaches it; it writes through console.error, which
# survives the navigation a form post or a boosted link starts (a binding call or a page variable might not).
GUARD_SCRIPT = """
(() => {
  const describe = (node) => {
    if (!node || node.nodeType !== 1) return node && node.nodeName ? node.nodeName : '';
    const id = node.id ? '#' + node.id : '';
    const classes = node.classList && node.classList.length ? '.' + Array.from(node.classList).join('.') : '';
    return node.tagName.toLowerCase() + id + classes;
  };
  window.addEventListener('securitypolicyviolation', (event) => {
    const where = event.sourceFile ? ` at ${event.sourceFile}:${event.lineNumber}:${event.columnNumber}` : '';
    console.error(`GUARD_PREFIX ${event.effectiveDirective} blocked ${event.blockedURI || 'inline'}`
      + ` on ${describe(event.target)}${where}; sample: ${JSON.stringify(event.sample || '')}`);
  }, true);
})();
""".replace("GUARD_PREFIX", GUARD_PREFIX)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "allow_console(reason, pattern): the browser guard lets console errors matching the regular expression "
        "`pattern` pass in this test; `reason` says why they are expected",
    )


DOCUMENT_4XX = re.compile(r"status of 4\d\d ")
FORM_REFUSED = re.compile(r"status of 422 ")


def _designed_refusal(text: str, source: str, page_url: str) -> bool:
    """A designed answer that Chromium still logs as a failed load: a page the server answered with a 4xx page
    of its own (a 404 for a wrong link, the 409 of a time just taken), or a form refused with 422 (the app's
    answer to invalid input: the form again with its messages, swapped in by htmx as any answer; see
    ``responseHandling`` in base.html). A stylesheet, script, image or fragment answered another 4xx stays an
    error, and so does every 5xx."""
    if FORM_REFUSED.search(text):
        return True
    return bool(DOCUMENT_4XX.search(text)) and source.split("#")[0] == page_url.split("#")[0]


@dataclass
class Record:
    url: str
    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.kind} on {self.url or '(no page)'}: {self.text}"


class BrowserGuard:
    """What the pages of one test logged: console errors, uncaught exceptions and CSP violations."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def watch(self, context) -> None:
        """Listen to ``context``'s pages, and to every page it opens later."""
        context.add_init_script(GUARD_SCRIPT)
        context.on("console", self._console)
        context.on("weberror", self._weberror)

    def _console(self, message) -> None:
        if message.type != "error":
            return
        page = message.page
        url = page.url if page else message.location.get("url", "")
        text = message.text
        if text.startswith("Failed to load resource"):
            source = message.location.get("url", "")
            if _designed_refusal(text, source, url):
                return
            text = f"{text} ({source})"  # the message itself does not say which resource
        kind = "CSP violation" if text.startswith(GUARD_PREFIX) else "console error"
        self.records.append(Record(url, kind, text))

    def _weberror(self, error) -> None:
        page = error.page
        self.records.append(Record(page.url if page else "", "uncaught exception", str(error.error)))

    def violations(self) -> list[Record]:
        return [r for r in self.records if r.kind == "CSP violation" or "Content Security Policy" in r.text]

    def unexpected(self, allowed: list[re.Pattern]) -> list[Record]:
        return [r for r in self.records if not any(p.search(r.text) for p in allowed)]


@pytest.fixture(autouse=True)
def browser_guard(request):
    """Fail the test if any of its pages logged a console error or a CSP violation (see the module doc)."""
    if "browser" not in request.fixturenames:
        yield None
        return
    browser = request.getfixturevalue("browser")
    guard = BrowserGuard()
    original_new_context, original_new_page = browser.new_context, browser.new_page

    def new_context(*args, **kwargs):
        context = original_new_context(*args, **kwargs)
        guard.watch(context)
        return context

    def new_page(*args, **kwargs):
        # Browser.new_page makes its context inside Playwright, past the wrapper above: watch the one it made.
        page = original_new_page(*args, **kwargs)
        guard.watch(page.context)
        return page

    browser.new_context, browser.new_page = new_context, new_page
    try:
        yield guard
    finally:
        del browser.new_context, browser.new_page  # back to the class's methods
    allowed = [re.compile(mark.args[1]) for mark in request.node.iter_markers("allow_console")]
    unexpected = guard.unexpected(allowed)
    if unexpected:
        lines = "\n".join(f"  - {record}" for record in unexpected)
        pytest.fail(f"the pages logged {len(unexpected)} console error(s) or CSP violation(s):\n{lines}",
                    pytrace=False)
