# Leadvault image. The same image runs the web app and the mail worker:
#   docker run ... IMAGE                   -> migrates, then serves on :8000 (gunicorn)
#   docker run ... IMAGE leadvault worker  -> processes submissions, sends mails, runs jobs
# Web and worker containers must share /data (key ring; SQLite database if no
# LEADVAULT_DATABASE_URL is given).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# pyproject.toml, README.md and every package present (leadvault, capture,
# consent, scoring, export, widgets, migrations); .dockerignore keeps the rest out.
COPY . /app
RUN pip install --no-cache-dir . \
    && groupadd --system --gid 10001 leadvault \
    && useradd --system --uid 10001 --gid leadvault --create-home --home-dir /home/leadvault \
       --shell /usr/sbin/nologin leadvault \
    && mkdir -p /data \
    && chown leadvault:leadvault /data \
    && chmod 0700 /data

ENV LEADVAULT_INSTANCE=/data
# Created and owned before VOLUME so a fresh named volume inherits uid 10001.
VOLUME /data

USER leadvault:leadvault
EXPOSE 8000

# No curl in slim images; urlopen raises (exit 1) on a refused connection or a 503.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Shell so ${WEB_CONCURRENCY} expands; exec so gunicorn gets SIGTERM directly.
# `leadvault db upgrade` also creates the key ring in /data on first start.
CMD ["/bin/sh", "-c", "leadvault db upgrade && exec gunicorn -c python:leadvault.gunicorn_conf leadvault.wsgi:app"]
