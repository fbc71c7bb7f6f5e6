"""``python -m fakestripe --port N --webhook-url URL --webhook-secret whsec_...``: the fake provider alone."""
from __future__ import annotations

import argparse
import sys

from fakestripe import FakeStripe


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fakestripe", description="Fake payment provider (Stripe API subset) "
                                     "for development and tests. No real money.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--webhook-url", default="", help="where events are POSTed (empty: only recorded)")
    parser.add_argument("--webhook-secret", default="whsec_fake_secret", help="the signing secret (whsec_...)")
    args = parser.parse_args(argv)
    fake = FakeStripe(host=args.host, port=args.port, webhook_url=args.webhook_url or None,
                      webhook_secret=args.webhook_secret)
    print(f"Fake payment provider (no real money) on {fake.url}; webhooks to {args.webhook_url or 'nowhere'}",
          flush=True)
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
