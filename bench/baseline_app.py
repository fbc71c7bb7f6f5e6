"""The baseline: a bare Flask app with one route returning a small HTML page.

Served with the same gunicorn settings as the app (``gunicorn --config gunicorn.conf.py
bench.baseline_app:app``), it measures what the server, the load generator and the machine
cost on their own, so the app's figure can be read as a fraction of it.
"""
from flask import Flask

app = Flask(__name__)

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Baseline</title></head>
<body><main><h1>Baseline</h1><p>A bare Flask route on the production gunicorn settings.</p></main></body>
</html>
"""


@app.get("/")
def index():
    return PAGE
