"""What the development style guide (/dev/style) shows: the design tokens of coach/static/css/app.css by group.

One list for the page and its test: tests/test_design_system.py checks that every token named here is defined in
app.css (in both themes for the colours) and has its swatch class in style-guide.css.
"""
from __future__ import annotations

COLOURS = (
    ("color-bg", "The page behind the cards"),
    ("color-surface", "Cards, inputs"),
    ("color-surface-raised", "Header, menus, toasts"),
    ("color-surface-muted", "Quiet fills: code, placeholders"),
    ("color-text", "Body text"),
    ("color-text-muted", "Secondary text, hints"),
    ("color-border", "Dividers, card edges"),
    ("color-border-strong", "Form controls"),
    ("color-primary", "Filled buttons (the org's brand)"),
    ("color-primary-contrast", "Text on the primary"),
    ("color-primary-soft", "Tinted fills: badges, selected rows"),
    ("color-link", "The primary as text"),
    ("color-accent", "Highlights"),
    ("color-success", "Done, confirmed"),
    ("color-success-bg", "Its soft fill"),
    ("color-warning", "Waiting, at risk"),
    ("color-warning-bg", "Its soft fill"),
    ("color-danger", "Errors, destructive actions"),
    ("color-danger-bg", "Its soft fill"),
    ("color-info", "News, notices"),
    ("color-info-bg", "Its soft fill"),
    ("color-neutral-bg", "Cancelled, expired"),
    ("color-focus", "The keyboard focus ring"),
)
# The colours each theme sets itself (the rest are derived from these or from the brand).
THEMED_COLOURS = tuple(name for name, _ in COLOURS
                       if name not in {"color-primary", "color-primary-contrast", "color-primary-soft", "color-link"})
SPACING = tuple(f"space-{n}" for n in range(1, 9))
TEXT = ("text-xs", "text-sm", "text-base", "text-lg", "text-xl", "text-2xl")
RADII = ("radius-sm", "radius-md", "radius-lg", "radius-full")
SHADOWS = ("shadow-sm", "shadow-md", "shadow-lg")
LAYERS = ("z-header", "z-menu", "z-toast")
AVATARS = tuple(f"avatar-c{n}" for n in range(8))
OTHER = ("font-sans", "font-mono", "leading-tight", "leading-snug", "leading-normal", "focus-ring")

ALL_TOKENS = (tuple(name for name, _ in COLOURS) + SPACING + TEXT + RADII + SHADOWS + LAYERS + AVATARS + OTHER)
