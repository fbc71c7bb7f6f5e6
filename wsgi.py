"""WSGI entry point for gunicorn: ``gunicorn wsgi:app``."""
from coach import create_app

app = create_app()
