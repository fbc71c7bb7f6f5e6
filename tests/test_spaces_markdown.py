"""Markdown of posts and comments: what renders, what never survives as markup, mentions, excerpts.

Pure functions: no app, no database. Every safety check parses the output (html.parser) and
looks at the tags and attributes a browser would build, not at substrings of the source.
"""
from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import nh3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from coach.spaces import markdown

# The allow-list the design fixes (written out here, not imported: the test is the second opinion).
ALLOWED_TAGS = {"p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
                "h1", "h2", "h3", "h4", "h5", "h6", "a"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title", "class", "rel"}, "ol": {"start"}, "code": {"class"}}
FORBIDDEN_ATTRIBUTE = re.compile(r"^(on|hx-|data-|style)", re.IGNORECASE)
SAFE_SCHEMES = {"http", "https", "mailto"}
MENTIONS = {"maria.santos": "/o/club/members/maria"}


# --- reading the output like a browser -------------------------------------------------------------

class Markup(HTMLParser):
    """Every element, attribute, comment and declaration in an HTML fragment."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.comments: list[str] = []
        self.declarations: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_comment(self, data):
        self.comments.append(data)

    def handle_decl(self, decl):
        self.declarations.append(decl)

    def handle_pi(self, data):
        self.declarations.append(data)

    def unknown_decl(self, data):
        self.declarations.append(data)

    def links(self) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.elements if tag == "a"]


def scheme_of(url: str) -> str | None:
    """The scheme a browser would see: it drops ASCII whitespace and control characters first."""
    cleaned = re.sub(r"[\x00-\x20\x7f]", "", html.unescape(url))
    match = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*):", cleaned)
    return match.group(1).lower() if match else None


def problems(output: str) -> list[str]:
    """Everything in ``output`` that must not be there as markup."""
    found = []
    doc = Markup(output)
    if doc.comments:
        found.append(f"comment {doc.comments!r}")
    if doc.declarations:
        found.append(f"declaration {doc.declarations!r}")
    for tag, attrs in doc.elements:
        if tag not in ALLOWED_TAGS:
            found.append(f"tag <{tag}>")
        for name, value in attrs.items():
            if FORBIDDEN_ATTRIBUTE.match(name):
                found.append(f"attribute {name} on <{tag}>")
            elif name not in ALLOWED_ATTRIBUTES.get(tag, set()):
                found.append(f"unexpected attribute {name} on <{tag}>")
            if name == "href":
                scheme = scheme_of(value or "")
                if scheme is not None and scheme not in SAFE_SCHEMES:
                    found.append(f"href scheme {scheme!r}")
    return found


def text_of(output: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", output))


# --- Markdown renders ------------------------------------------------------------------------------

def test_emphasis_and_inline_code_render():
    out = markdown.render("**bold**, *italic*, ~~gone~~ and `code()`")
    assert "<strong>bold</strong>" in out
    assert "<em>italic</em>" in out
    assert "<del>gone</del>" in out or "<s>gone</s>" in out
    assert "<code>code()</code>" in out
    assert problems(out) == []


def test_lists_render_with_their_items_and_start_number():
    out = markdown.render("- one\n- two\n\n3. three\n4. four\n")
    doc = Markup(out)
    assert [tag for tag, _ in doc.elements] == ["ul", "li", "li", "ol", "li", "li"]
    assert dict(doc.elements)["ol"] == {"start": "3"}
    assert "<li>one</li>" in out and "<li>four</li>" in out


def test_headings_quotes_and_rules_render():
    out = markdown.render("# Title\n\n### Smaller\n\n> quoted\n\n---\n")
    assert "<h1>Title</h1>" in out
    assert "<h3>Smaller</h3>" in out
    assert "<blockquote>" in out and "quoted" in out
    assert "<hr" in out
    assert problems(out) == []


def test_a_code_block_keeps_its_text_and_language_class_and_escapes_markup():
    out = markdown.render("```python\nif a < b and c > d:\n    print('<b>')\n```\n")
    doc = Markup(out)
    assert [tag for tag, _ in doc.elements] == ["pre", "code"]
    assert doc.elements[1][1] == {"class": "language-python"}
    assert "if a &lt; b and c &gt; d:" in out
    assert "<b>" not in out


def test_links_render_with_title_and_get_nofollow_noopener():
    out = markdown.render('[the club](https://example.com/club "Our club") and <https://example.org>')
    links = Markup(out).links()
    assert [link["href"] for link in links] == ["https://example.com/club", "https://example.org"]
    assert links[0]["title"] == "Our club"
    assert all(link["rel"] == "nofollow noopener" for link in links)
    assert problems(out) == []


def test_email_autolinks_are_mailto_links():
    links = Markup(markdown.render("Write to <coach@example.com>")).links()
    assert [link["href"] for link in links] == ["mailto:coach@example.com"]
    assert links[0]["rel"] == "nofollow noopener"


def test_no_images_even_from_markdown_syntax():
    out = markdown.render("![cat](https://example.com/cat.png)")
    assert "<img" not in out
    assert problems(out) == []


# --- sanitising ------------------------------------------------------------------------------------

DANGEROUS = {
    "script": "<script>alert(1)</script>",
    "script block": "<script>\nalert(1)\n</script>\n",
    "img onerror": '<img src="x" onerror="alert(1)">',
    "javascript link": "[click](javascript:alert(1))",
    "javascript link, mixed case": "[click](JaVaScRiPt:alert(1))",
    "javascript&colon;": "[click](javascript&colon;alert(1))",
    "entity-encoded scheme": "[click](&#106;avascript&#58;alert(1))",
    "hex-encoded scheme": "[click](&#x6A;avascript&#x3A;alert(1))",
    "tab in scheme": "[click](java&#9;script:alert(1))",
    "newline entity in scheme": "[click](java&#10;script:alert(1))",
    "javascript autolink": "<javascript:alert(1)>",
    "javascript reference link": "[click][x]\n\n[x]: javascript:alert(1)\n",
    "vbscript link": "[click](vbscript:msgbox(1))",
    "data link": "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "raw anchor": '<a href="javascript:alert(1)">click</a>',
    "hx-get": '<div hx-get="/o/club/admin/delete" hx-trigger="load">x</div>',
    "data-hx-post": '<span data-hx-post="/o/club/logout" data-hx-trigger="load">x</span>',
    "hx-on:click": '<button hx-on:click="alert(1)">x</button>',
    "style": '<p style="position:fixed;top:0;left:0;width:100%;height:100%">x</p>',
    "iframe": '<iframe src="https://evil.example"></iframe>',
    "svg onload": "<svg onload=alert(1)>",
    "svg script": "<svg><script>alert(1)</script></svg>",
    "comment": "<!-- hidden --> visible",
    "conditional comment": "<!--[if IE]><script>alert(1)</script><![endif]-->",
    "object": '<object data="evil.swf"></object>',
    "form": '<form action="https://evil.example"><input name="password"></form>',
    "meta refresh": '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    "base": '<base href="https://evil.example/">',
    "link stylesheet": '<link rel="stylesheet" href="https://evil.example/x.css">',
    "html block": "<div>\n\n**inside**\n\n</div>\n",
    "attribute in link title": '[x](https://example.com "a" onmouseover="alert(1)")',
    "quote breaking title": "[x](https://example.com \"t\\\" onmouseover=alert(1) x=\\\"\")",
    "image onerror via markdown": '![x" onerror="alert(1)](https://example.com/x.png)',
    "mention-like link text": "[@maria.santos](javascript:alert(1))",
}


@pytest.mark.parametrize("source", DANGEROUS.values(), ids=DANGEROUS.keys())
def test_dangerous_input_never_survives_as_markup(source):
    out = markdown.render(source, MENTIONS)
    assert problems(out) == [], out


@pytest.mark.parametrize("source", [
    "<script>alert(1)</script>",
    '<img src="x" onerror="alert(1)">',
    "<svg onload=alert(1)>",
])
def test_raw_html_is_shown_as_text_not_dropped(source):
    """The reader sees what was written (as text): nothing silently vanishes."""
    out = markdown.render(source)
    assert text_of(out).strip() == source


def test_a_javascript_link_is_not_a_link_at_all():
    for source in (DANGEROUS["javascript link"], DANGEROUS["javascript&colon;"], DANGEROUS["raw anchor"],
                   DANGEROUS["javascript reference link"], DANGEROUS["entity-encoded scheme"]):
        out = markdown.render(source)
        assert Markup(out).links() == [], out
        assert "click" in text_of(out)  # the text stays readable


def test_comments_do_not_survive():
    out = markdown.render("before <!-- secret --> after\n\n<!--\nblock\n-->\n")
    assert Markup(out).comments == []
    assert "<!--" not in out


# Sanitising holds even for HTML that the Markdown step did not write (the second line of defence).

def test_the_sanitiser_strips_what_a_renderer_could_let_through():
    permissive = MarkdownIt("commonmark", {"html": True})
    for source in DANGEROUS.values():
        raw = permissive.render(source)
        out = nh3.clean(raw, tags=markdown.ALLOWED_TAGS, attributes=markdown.ALLOWED_ATTRIBUTES,
                        url_schemes=markdown.URL_SCHEMES, link_rel="nofollow noopener", strip_comments=True)
        assert problems(out) == [], (source, out)


def test_allow_lists_do_not_grow_silently():
    assert markdown.ALLOWED_TAGS == ALLOWED_TAGS
    assert markdown.URL_SCHEMES == SAFE_SCHEMES
    assert all(not FORBIDDEN_ATTRIBUTE.match(a) for attrs in markdown.ALLOWED_ATTRIBUTES.values() for a in attrs)


# --- property: random text with dangerous fragments injected -----------------------------------------

FRAGMENTS = [*DANGEROUS.values(), "<", ">", "&", '"', "'", "`", "```", "    ", "\n", "\n\n", "[", "]", "(", ")",
             "*", "_", "#", "> ", "- ", "1. ", "@maria.santos", "@", "javascript:", "on", "hx-", "data-",
             "style=", "=", "<a href=", "</a>", "<p ", "onclick=alert(1)", "&#", ";", ":", "\\", "|", "!"]

texts = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=25).map("".join)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(source=texts)
def test_property_no_forbidden_markup_whatever_the_input(source):
    out = markdown.render(source, MENTIONS)
    assert problems(out) == [], (source, out)
    for link in Markup(out).links():
        assert link.get("rel") == "nofollow noopener"


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(source=texts)
def test_property_mentions_are_links_only_outside_code_and_links(source):
    out = markdown.render(source, MENTIONS)
    # A mention link never sits inside another link or inside code.
    depth = {"a": 0, "code": 0, "pre": 0}
    for token in re.findall(r"<(/?)([a-z0-9]+)([^>]*)>", out):
        closing, tag, attrs = token
        if tag in depth:
            if closing:
                depth[tag] = max(0, depth[tag] - 1)
            else:
                if tag == "a" and 'class="mention"' in attrs:
                    assert depth == {"a": 0, "code": 0, "pre": 0}, (source, out)
                depth[tag] += 1


# --- mentions --------------------------------------------------------------------------------------

def mention_links(out: str) -> list[dict]:
    return [link for link in Markup(out).links() if link.get("class") == "mention"]


def test_a_known_handle_becomes_a_mention_link():
    out = markdown.render("Great work @maria.santos!", MENTIONS)
    links = mention_links(out)
    assert [link["href"] for link in links] == ["/o/club/members/maria"]
    assert '<a class="mention" href="/o/club/members/maria" rel="nofollow noopener">@maria.santos</a>!' in out


def test_a_handle_is_matched_case_insensitively_and_keeps_how_it_was_written():
    out = markdown.render("Thanks @Maria.Santos.", MENTIONS)
    assert ">@Maria.Santos</a>." in out
    assert len(mention_links(out)) == 1


def test_an_unknown_handle_stays_text():
    out = markdown.render("Hello @nobody.here and @maria", MENTIONS)
    assert mention_links(out) == []
    assert "@nobody.here" in text_of(out) and "@maria" in text_of(out)


def test_without_a_mapping_nothing_is_linked():
    assert mention_links(markdown.render("Hello @maria.santos")) == []


@pytest.mark.parametrize("source", [
    "Use `@maria.santos` in code",
    "```\n@maria.santos\n```\n",
    "    @maria.santos in an indented block\n",
    "[@maria.santos](https://example.com/maria)",
    "<https://example.com/@maria.santos>",
    "mail maria@maria.santos please",
    "or maria.@maria.santos",
    "x@maria.santos",
])
def test_no_mention_link_in_code_links_or_email_addresses(source):
    out = markdown.render(source, MENTIONS)
    assert mention_links(out) == [], out
    assert problems(out) == []


def test_a_mention_in_a_heading_list_and_emphasis_is_linked():
    out = markdown.render("# For @maria.santos\n\n- ask *@maria.santos*\n", MENTIONS)
    assert len(mention_links(out)) == 2


def test_a_mention_url_is_escaped():
    out = markdown.render("hi @maria.santos", {"maria.santos": '/m?a=1&b="2"'})
    assert mention_links(out)[0]["href"] == '/m?a=1&b="2"'
    assert problems(out) == []


def test_mentions_of_names_with_accents_work():
    out = markdown.render("Bravo @josé.garcía!", {"josé.garcía": "/o/club/members/jose"})
    assert [link["href"] for link in mention_links(out)] == ["/o/club/members/jose"]
    assert markdown.mentioned_handles("Bravo @José.García!") == {"josé.garcía"}


def test_mentioned_handles_finds_lower_cased_handles_without_trailing_dots():
    assert markdown.mentioned_handles("Hi @Maria.Santos and @bob. See @carla_c, @dan-d!") == {
        "maria.santos", "bob", "carla_c", "dan-d"}


def test_mentioned_handles_ignores_email_addresses_code_and_links():
    source = ("mail maria@maria.santos, `@bob` and\n\n```\n@carla\n```\n\n[@dan](https://example.com) "
              "<https://example.com/@erin> but @frank")
    assert markdown.mentioned_handles(source) == {"frank"}


def test_mentioned_handles_of_nothing():
    assert markdown.mentioned_handles("no mentions here, just an @ sign and a@b") == set()


# --- excerpts --------------------------------------------------------------------------------------

def test_plain_excerpt_drops_markdown_and_collapses_whitespace():
    assert markdown.plain_excerpt("# Title\n\n**Bold** and `code`\n\n> quote") == "Title Bold and code quote"


def test_plain_excerpt_keeps_short_text_whole():
    assert markdown.plain_excerpt("Short and sweet") == "Short and sweet"


@pytest.mark.parametrize("limit", [10, 50, 140])
def test_plain_excerpt_is_cut_to_the_limit_with_an_ellipsis(limit):
    source = "word " * 200
    excerpt = markdown.plain_excerpt(source, limit)
    assert len(excerpt) <= limit
    assert excerpt.endswith("…")
    assert excerpt[:-1].strip() == excerpt[:-1]


@given(source=st.text(max_size=400), limit=st.integers(min_value=2, max_value=200))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_property_plain_excerpt_is_one_line_and_never_longer_than_the_limit(source, limit):
    excerpt = markdown.plain_excerpt(source, limit)
    assert len(excerpt) <= limit
    assert "\n" not in excerpt
