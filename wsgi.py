"""The WSGI entry point: `gunicorn wsgi:app` (see gunicorn.conf.py for the process settings)."""

from core.entry import exit_on_startup_error
from web import create_app

with exit_on_startup_error("web"):
    app = create_app()
