"""gunicorn settings for the bare app: the platform's server settings, without its hooks.

The hooks check the platform's database and start its workers, which the bare app has no business
doing; everything that shapes request handling (timeouts, keep-alive, logging) is copied so the two
servers differ only in the application they run. Workers, worker class, threads and bind are
passed on the command line to both.
"""

import runpy
from pathlib import Path

_platform = runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))

timeout = _platform["timeout"]
graceful_timeout = _platform["graceful_timeout"]
keepalive = _platform["keepalive"]
accesslog = _platform["accesslog"]
errorlog = _platform["errorlog"]
