"""The static build: ``python build_static.py`` (``make setup`` runs it; so must a PaaS build, see docs/OPERATIONS.md).

Flask-Static-Digest's compiler writes, next to every file of ``coach/static`` (htmx and its ws extension
included, so npm must have copied them into ``coach/static/vendor`` first): a copy named with the MD5 of
its content (``css/app-<md5>.css``), gzip (level 9) and brotli (quality 11) variants of both, and
``cache_manifest.json`` mapping each plain name to its fingerprinted one. Files of an earlier build are
removed first. The app reads the manifest when it starts (``static_url_for`` in the templates) and
WhiteNoise serves the variants; without a build the app links the plain names, cached for 60 s.

It needs no settings, database or app: it runs in a build environment that has none of them. Everything it
writes is ignored by git.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from flask_static_digest import digester

STATIC = Path(__file__).resolve().parent / "coach" / "static"
# Files without an extension are left alone (``vendor/.installed``, npm's marker for make).
SKIP_EXTENSIONS = [""]


def main() -> int:
    folder = str(STATIC) + os.sep
    digester.clean(folder, SKIP_EXTENSIONS, gzip_files=True, brotli_files=True)
    digester.compile(folder, folder, SKIP_EXTENSIONS, gzip_files=True, brotli_files=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
