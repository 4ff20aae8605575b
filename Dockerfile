# rankbot: slim Python, non-root, config and data as volumes. `docker compose up` runs it with PostgreSQL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY bot ./bot
COPY digests ./digests
COPY storage ./storage
# Pinned by constraints.txt (`make lock`): the image built next month installs what CI tested.
RUN pip install --constraint constraints.txt . && useradd --create-home --uid 10001 rankbot \
    && mkdir -p /data /out /config && chown rankbot /data /out

USER rankbot
# Mount config.toml at /config/config.toml. The defaults are absolute: the SQLite database is /data/rankbot.db and
# digests (and every file output without a directory of its own) go to /out. The working directory is /out too,
# so a relative directory in config.toml (directory = "archive") also lands in the /out volume.
WORKDIR /out
ENV RANKBOT_STORAGE_DATABASE_URL=sqlite:////data/rankbot.db RANKBOT_OUTPUT_DIRECTORY=/out \
    RANKBOT_SERVICE_HOST=0.0.0.0 RANKBOT_SERVICE_PORT=8080
VOLUME ["/data", "/out", "/config"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["rankbot"]
CMD ["run", "--config", "/config/config.toml"]
