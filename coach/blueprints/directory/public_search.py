"""The public directory's search page, ``/coaches``: anyone, no login, over the projection of listed coaches.

One template is the page and its fragment (the ``results`` block: facets with live counts, chips, the cards and
the page links), so the htmx active search and a plain GET of the same URL show the same results. The helpers
here build the page's links from the search's own parameters; the organization's search page uses them too.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlencode

from flask import current_app, request, url_for

from coach.blueprints.directory import public
from coach.directory import search
from coach.directory.profiles import language_names
from coach.htmx import render
from coach.platform.ratelimit import ip_key, limiter

TEMPLATE = "directory/search.html"
# Parameters a page link carries besides the facets' own (the facets' keys are their parameter names).
BASE_KEYS = ("q", "sort", "exact")
# "" is the search's own default: best match for words, highest rated without.
SORTS = (("", "Best match"), ("rating", "Rating"), ("price", "Price: low to high"), ("soonest", "Soonest available"))
FACET_TITLES = {"discipline": "Sport or game", "skill": "Skill", "lang": "Language", "price": "Price",
                "rating": "Rating", "verified": "Verification", "week": "Availability", "mode": "Where"}
NOTICES_SHOWN = 5
# What a facet's values mean where the label alone does not say.
FACET_HINTS = {"price": "A session's price, in the coach's currency.",
               "rating": "The average of their reviews (at least one)."}
# A limit that is never reached, for when the setting says "off" (Flask-Limiter still parses the value).
_UNREACHABLE = "1000000 per second"


def _search_limit() -> str:
    value = current_app.config.get("RATELIMIT_DIRECTORY_SEARCH") or "off"
    return _UNREACHABLE if value.strip().lower() == "off" else value


def _search_unlimited() -> bool:
    return (current_app.config.get("RATELIMIT_DIRECTORY_SEARCH") or "off").strip().lower() == "off"


class Links:
    """The page's links, each from the search as it was asked for (the query's own keys only: a value the search
    ignored stays out of every link, so its notice is shown once).

    :param endpoint: the search page's endpoint (``url_for`` fills an organization's slug itself).
    :param args: the request's query arguments.
    :param facet_keys: the facets' parameter names.
    """

    def __init__(self, endpoint: str, args: Mapping, facet_keys):
        self.base = url_for(endpoint)
        keys = set(BASE_KEYS) | set(facet_keys)
        self.pairs = [(key, value) for key, value in args.items(multi=True) if key in keys and value != ""]

    def _url(self, pairs) -> str:
        return f"{self.base}?{urlencode(pairs)}" if pairs else self.base

    def first_page(self) -> str:
        return self._url(self.pairs)

    def current(self, args: Mapping) -> str:
        """This page's own address, without empty or foreign arguments (what the address bar should show)."""
        cursor = args.get("cursor")
        return self.page(cursor) if cursor else self.first_page()

    def page(self, cursor: str) -> str:
        return self._url([*self.pairs, ("cursor", cursor)])

    def without(self, key: str, value: str | None = None) -> str:
        """This search without ``key`` (only its ``value`` when given): a chip's removal link."""
        return self._url([(k, v) for k, v in self.pairs if not (k == key and (value is None or v == str(value)))])

    def with_query(self, q: str, exact: bool = False) -> str:
        """This search with the text ``q`` (``exact``: as typed, no spelling correction)."""
        pairs = [(k, v) for k, v in self.pairs if k not in ("q", "exact")]
        return self._url([("q", q), *([("exact", "1")] if exact else []), *pairs])

    def clear_filters(self) -> str:
        """The text alone (with its sort): every filter removed."""
        return self._url([(k, v) for k, v in self.pairs if k in BASE_KEYS])


def page_context(endpoint: str, run: Callable[[object], object]) -> tuple[dict, int]:
    """What the search template needs, and the status: parse the query, run ``run(params)``; a broken page link
    (``BadCursor``) is a 400 with its message and a link that starts the search again.

    :param run: the search over the public projection or over one organization's coaches.
    """
    try:
        params = search.parse_params(request.args)
        results = run(params)
    except search.BadCursor as exc:
        links = Links(endpoint, request.args, FACET_TITLES)
        return dict(params=None, results=None, links=links, error=str(exc), notices=[], chips=[],
                    count_text="", **_statics()), 400
    links = Links(endpoint, request.args, results.facets.keys())
    notices = list(dict.fromkeys([*params.notices, *results.notices]))
    if len(notices) > NOTICES_SHOWN:  # a link stuffed with bad values gets a short page, not hundreds of lines
        notices = [*notices[:NOTICES_SHOWN], f"{len(notices) - NOTICES_SHOWN} more values were ignored."]
    chips = [(name, value) for name, values in results.facets.items() for value in values if value.selected]
    return dict(params=params, results=results, links=links, error=None, notices=notices, chips=chips,
                count_text=count_text(results), **_statics()), 200


def count_text(results) -> str:
    """The results' count as the live region reads it out."""
    total = results.total
    if total is None:  # not counted: say what this page holds
        shown = len(results.items)
        return f"{shown} coach{'es' if shown != 1 else ''} on this page" if shown else "No coaches found"
    return f"{total:,} coach{'es' if total != 1 else ''} found" if total else "No coaches found"


def _statics() -> dict:
    asked = request.args.get("sort", "")
    return dict(sorts=SORTS, chosen_sort=asked if asked in dict(SORTS) else "", facet_titles=FACET_TITLES,
                facet_hints=FACET_HINTS, language_names=language_names,
                term_label=search.facet_label)


@public.get("")
@limiter.limit(_search_limit, key_func=ip_key, scope="directory-search", exempt_when=_search_unlimited)
def index():
    """The public directory: search listed coaches, filter by facets, page through the results."""
    context, status = page_context("directory_public.index", search.search)
    return answer(TEMPLATE, context, status, public=True)


def answer(template: str, context: dict, status: int, **extra):
    """The page or its results fragment. An active search pushes this page's clean address (``HX-Push-Url``
    overrides the form's every field, empty ones included), so Back and a reload come to the same results."""
    response = render(template, "results", status=status, **context, **extra)
    if status == 200:
        response.headers["HX-Push-Url"] = context["links"].current(request.args)
    return response
