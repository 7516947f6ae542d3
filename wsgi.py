"""The WSGI entry point: `gunicorn wsgi:app` (see gunicorn.conf.py for the process settings)."""

from assembly import web_process
from core.entry import exit_on_startup_error

with exit_on_startup_error("web"):
    app = web_process()
