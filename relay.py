"""The outbox relay: ``python relay.py`` (the Procfile's ``relay``); see :mod:`coach.platform.relay`."""
from __future__ import annotations

from coach.app import create_app
from coach.platform.relay import run_forever


def main() -> None:
    app = create_app()
    with app.app_context():
        run_forever()


if __name__ == "__main__":
    main()
