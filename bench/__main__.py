"""``python -m bench NAME``: run one benchmark (``dashboard``, ``outbox``) or ``all``.

Each benchmark prints its table and ends with one ``key=value`` line; ``all`` runs them in turn.
"""
from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("dashboard", "outbox", "booking_race", "calendar", "slots", "feed", "feed_depth")


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in (*BENCHMARKS, "all"):
        print(f"usage: python -m bench {{{','.join(BENCHMARKS)},all}}", file=sys.stderr)
        return 2
    names = BENCHMARKS if argv[0] == "all" else (argv[0],)
    for n, name in enumerate(names):
        if n:
            print()
        module = importlib.import_module(f"bench.{name}")
        line = module.run()
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
