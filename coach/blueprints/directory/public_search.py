"""The public directory's search page, ``/coaches``: anyone, no login, over the projection of listed coaches.

One template is the page and its fragment (the ``results`` block: facets with live counts, chips, the cards and
the page links), so the htmx active search and a plain GET of the same URL show the same results. The helpers
here build the page's links from the search's own parameters; the organization's search page uses them too.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

from flask import current_app, g, request, url_for
from flask_login import current_user
from jinja2_fragments.flask import render_block
from markupsafe import Markup

from coach.blueprints.directory import public
from coach.blueprints.templating import hour_cycle
from coach.directory import search, search_cache
from coach.directory.profiles import language_names
from coach.htmx import render, wants_fragment
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
# Rendered public cards kept per process (~1.5 KB each), by listing version and the viewer's zone and clock.
CARD_CACHE_SIZE = 4000
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
                term_label=search.facet_label, coach_cards=coach_cards)


class _Cards:
    """A bounded map of rendered cards, least recently used out first (per process; a card is the same for
    every viewer in one zone until its listing changes, and its listing's ``refreshed_at`` is in the key)."""

    def __init__(self, size: int):
        self.size, self.kept = size, OrderedDict()

    def get(self, key):
        html = self.kept.get(key)
        if html is not None:
            self.kept.move_to_end(key)
        return html

    def put(self, key, html) -> None:
        self.kept[key] = html
        if len(self.kept) > self.size:
            self.kept.popitem(last=False)


cards_cache = _Cards(CARD_CACHE_SIZE)


def viewer_zone() -> str:
    """The zone the cards' times are shown in (the ``localtime`` filter's)."""
    return g.get("viewer_timezone") or (current_user.timezone if current_user.is_authenticated else "UTC") or "UTC"


def coach_cards(items, public: bool) -> Markup:
    """The results' ``<li>`` cards. A public listing's card is rendered once per version and zone and kept:
    rendering 20 cards (links, labels, money, times) was most of the page's Python."""
    template = current_app.jinja_env.get_template("directory/_card.html")
    zone, cycle = viewer_zone(), hour_cycle()  # a card's next free time reads in the viewer's zone and clock
    values = dict(public=public, term_label=search.facet_label, language_names=language_names, g=g)
    parts = []
    for item in items:
        key = (item.id, item.refreshed_at, zone, cycle, request.script_root) if public and item.refreshed_at else None
        html = cards_cache.get(key) if key else None
        if html is None:
            html = template.render(item=item, **values)
            if key:
                cards_cache.put(key, html)
        parts.append(f"<li>{html}</li>")
    return Markup("".join(parts))


def _answer_key() -> str:
    """What a public answer depends on: the search's own arguments as asked (their order too: the page's links
    keep it), the viewer's zone and 12- or 24-hour clock (the cards' times), page or fragment (the fragment
    carries the count), and the page size (a setting)."""
    known = {*BASE_KEYS, *FACET_TITLES, "cursor"}
    asked = [[k, v] for k, v in request.args.items(multi=True) if k in known and v != ""]
    return search_cache.cache_key([asked, viewer_zone(), hour_cycle(), wants_fragment(), request.script_root,
                                   search.page_size()])


@public.get("")
@limiter.limit(_search_limit, key_func=ip_key, scope="directory-search", exempt_when=_search_unlimited)
def index():
    """The public directory: search listed coaches, filter by facets, page through the results.

    A first page or a later one, as a page or its fragment, is kept rendered for a few seconds
    (:mod:`coach.directory.search_cache`): the same search again renders only the page around it, after one
    statement checks that every coach it shows is still listed and unchanged."""
    endpoint = "directory_public.index"
    if not search_cache.seconds():
        context, status = page_context(endpoint, search.search)
        return answer(TEMPLATE, context, status, public=True)
    key = _answer_key()
    kept = search_cache.get(key)
    if kept is not None:
        try:
            params = search.parse_params(request.args)
        except search.BadCursor:  # the secret changed since: search as usual
            kept = None
    if kept is not None:
        context = dict(params=params, links=Links(endpoint, request.args, FACET_TITLES), count_text=kept["count"],
                       results_html=Markup(kept["html"]), **_statics())
        return answer(TEMPLATE, context, 200, public=True)
    context, status = page_context(endpoint, search.search)
    if status == 200:
        html = render_block(TEMPLATE, "results", **context, public=True)
        search_cache.put(key, {"html": html, "count": context["count_text"]}, context["results"].items)
        context["results_html"] = Markup(html)
    return answer(TEMPLATE, context, status, public=True)


def answer(template: str, context: dict, status: int, **extra):
    """The page or its results fragment. An active search pushes this page's clean address (``HX-Push-Url``
    overrides the form's every field, empty ones included), so Back and a reload come to the same results."""
    response = render(template, "results", status=status, **context, **extra)
    if status == 200:
        response.headers["HX-Push-Url"] = context["links"].current(request.args)
    return response
