"""Organization administration: members, invitations, the audit trail and the System page."""
from __future__ import annotations

from flask import abort, g, request

from coach import tenancy
from coach.orgs.service import org_by_slug

# The organization's stylesheet and logo are public (emails show the logo to whoever opens them, and a page of
# the organization links the stylesheet): found by slug, no membership needed, nothing of the tenant's rows read.
BRAND_ENDPOINTS = ("admin.brand_css", "admin.brand_logo")
# A logo upload may be larger than an ordinary form (MAX_CONTENT_LENGTH): up to 5 MB and the form around it. Set
# before the CSRF check reads the body, so a larger one is a clean 413 whatever reads it first.
LOGO_UPLOAD_ENDPOINT = "admin.branding_logo"
LOGO_REQUEST_LIMIT = 5 * 1024 * 1024 + 64 * 1024


def _enter(endpoint: str, slug: str) -> None:
    if endpoint in BRAND_ENDPOINTS:
        org = org_by_slug(slug) if len(slug) <= 40 else None
        if org is None:
            abort(404)
        g.brand_org = org
        return
    if endpoint == LOGO_UPLOAD_ENDPOINT and request.method == "POST":
        request.max_content_length = LOGO_REQUEST_LIMIT
    tenancy.enter_org(slug)


bp = tenancy.org_blueprint("admin", __name__, "/o/<slug>/admin", enter=_enter)

# The route modules register their views on ``bp`` (imported last: they import ``bp`` from here).
from coach.blueprints.admin import dashboard, platform_views, settings, views  # noqa: E402, F401
