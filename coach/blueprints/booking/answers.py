"""How the booking pages answer a successful change: the changed block in place, or the page again."""
from __future__ import annotations

from collections.abc import Callable

from flask import Response, flash

from coach.htmx import fragment_block, redirect_after_post, render


def in_place_or_redirect(template: str, block: str, location: str, message: str,
                         context: Callable[[], dict]) -> Response:
    """``block`` of ``template`` for an htmx fragment request, else ``message`` flashed and a 303 to ``location``.

    coach.htmx decides which (:func:`~coach.htmx.fragment_block`); ``context`` is only built for the block,
    so a redirect costs no queries.
    """
    if fragment_block(template, block) is None:
        flash(message, "success")
        return redirect_after_post(location)
    return render(template, block, **context())
