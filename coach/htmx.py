"""The one place that decides fragment vs page, and merges ``HX-Trigger`` events.

The rule: a view answers with :func:`render` and names the block(s) of its page template that are
fragments. An htmx request that is not boosted navigation and not a history restore gets the block
(the one whose name matches ``HX-Target``'s element id when the view names several), every other
request the whole page, and every answer varies on the htmx headers. Views never read htmx headers
themselves.
"""
from __future__ import annotations

import json

from collections.abc import Callable

from flask import Response, current_app, flash, g, has_request_context, make_response, render_template, request
from jinja2_fragments.flask import render_block

from coach.extensions import htmx_ext


def wants_fragment() -> bool:
    """An htmx request that is not boosted navigation and not a history restore."""
    # Templates are also rendered with no request at all (emails queued by jobs and sweeps).
    if not has_request_context():
        return False
    return bool(htmx_ext) and not htmx_ext.boosted and not htmx_ext.history_restore_request


def fragment_block(template: str, block: str | tuple[str, ...] | None) -> str | None:
    """The block a fragment request gets: ``block``, or of several the one ``HX-Target`` names (its element
    id, ``-`` read as ``_``), else the first; ``None`` when the answer is the whole page."""
    if not block or not wants_fragment():
        return None
    if isinstance(block, str):
        return block
    target = (request.headers.get("HX-Target") or "").replace("-", "_")
    if target in block and target in current_app.jinja_env.get_template(template).blocks:
        return target
    return block[0]


def render(template: str, block: str | tuple[str, ...] | None = None, status: int = 200, **context) -> Response:
    """Render the fragment block of ``template`` for htmx fragment requests, the whole page otherwise.

    :param block: the page's fragment, or a tuple of them chosen by ``HX-Target`` (see :func:`fragment_block`).
    """
    chosen = fragment_block(template, block)
    body = render_block(template, chosen, **context) if chosen else render_template(template, **context)
    return make_response(body, status)


def trigger(event: str, detail=None) -> None:
    """Queue an ``HX-Trigger`` event for this response; several calls merge."""
    g.setdefault("hx_triggers", {})[event] = detail


def apply_triggers(response: Response) -> Response:
    """Merge queued events into any ``HX-Trigger`` the view already set."""
    events = g.pop("hx_triggers", None)
    if events:
        existing = response.headers.get("HX-Trigger")
        merged: dict = {}
        if existing:
            try:
                merged = json.loads(existing)
            except ValueError:
                merged = {name.strip(): None for name in existing.split(",") if name.strip()}
        merged.update(events)
        response.headers["HX-Trigger"] = json.dumps(merged)
    for header in ("HX-Request", "HX-Boosted", "HX-History-Restore-Request"):
        response.vary.add(header)
    return response


def redirect_after_post(location: str) -> Response:
    """303 for plain and boosted forms; htmx fragment requests get ``HX-Redirect`` (a full page load)."""
    if wants_fragment():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = location
        return response
    response = make_response("", 303)
    response.headers["Location"] = location
    return response


def swap_or_redirect(template: str, block: str, location: str, message: str | None = None,
                     context: Callable[[], dict] | None = None, **ctx) -> Response:
    """After a post that changed one part of a page: htmx swaps ``block`` in place; a plain or boosted form
    goes on to ``location`` (303), with ``message`` flashed.

    :param context: builds the block's context only when the block is rendered (a redirect costs no queries).
    """
    if fragment_block(template, block) is None:
        if message:
            flash(message, "success")
        return redirect_after_post(location)
    return render(template, block, **(context() if context else {}), **ctx)


def load_at(location: str) -> Response:
    """After a post that goes on to ``location`` on the same page: htmx loads it itself (``HX-Location``: an
    ``HX-Redirect`` to a URL differing only in its #fragment would just scroll); a plain form gets the 303."""
    if not wants_fragment():
        return redirect_after_post(location)
    response = make_response("", 204)
    response.headers["HX-Location"] = location
    return response


def fragment_status(template: str, block: str | tuple[str, ...], status: int) -> int:
    """``status`` when the answer is the fragment, else 200: a code that means something only to htmx
    (286, stop polling) must not reach a page loaded in full."""
    return status if fragment_block(template, block) is not None else 200
