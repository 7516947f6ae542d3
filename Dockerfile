# One image for every Procfile process (web, worker, scheduler, release); docker-compose.yml
# picks the process with `command:`. Every pin in requirements.lock ships a CPython 3.11
# manylinux wheel, so no compiler is needed and a single stage stays small.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin app

# The code stays owned by root (read-only for the app user); only instance/ is writable
# (e-mail as .eml files when SMTP_URL is unset).
COPY . .
RUN install -d -o app -g app /app/instance

USER app
EXPOSE 5000

# No ENTRYPOINT, so a compose `command:` replaces CMD whole. No HEALTHCHECK either: every
# process runs from this image and only web listens; compose gives web its probe.
# gunicorn reads gunicorn.conf.py from /app (bind 0.0.0.0:5000 unless HOST/PORT say otherwise).
CMD ["gunicorn", "wsgi:app"]
