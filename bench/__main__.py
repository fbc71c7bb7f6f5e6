"""``python -m bench NAME [OPTIONS]``: run one benchmark (``dashboard``, ``outbox``, ``pages``, ...) or ``all``.

Each benchmark prints its table and ends with one ``key=value`` line; ``all`` runs them in turn.
Options go to the named benchmark's ``run(argv)`` (``upload``: ``--size-mb N``; ``chat``: ``--clients N``,
``--seconds S``, ``--rate R``, ``--phases baseline,1,2`` and more, see ``python -m bench chat --help``;
``directory``: ``--profile``).
"""
from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("dashboard", "outbox", "booking_race", "credits_race", "webhooks", "calendar", "slots", "feed",
              "feed_depth", "pages", "upload", "chat", "page_weight", "report", "athlete_page",
              "admin_dashboard", "calendar_sync", "signaling", "directory")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in (*BENCHMARKS, "all") or (len(argv) > 1 and argv[0] == "all"):
        print(f"usage: python -m bench {{{','.join(BENCHMARKS)},all}} [OPTIONS]", file=sys.stderr)
        return 2
    names = BENCHMARKS if argv[0] == "all" else (argv[0],)
    for n, name in enumerate(names):
        if n:
            print()
        module = importlib.import_module(f"bench.{name}")
        line = module.run(argv[1:]) if len(argv) > 1 else module.run()
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
