"""WSGI entry point for gunicorn: ``gunicorn wsgi:app``."""
from coach.app import create_app

app = create_app()
