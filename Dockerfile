# rankbot: slim Python, non-root, config and data as volumes.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY digests ./digests
COPY storage ./storage
RUN pip install '.[postgres]' && useradd --create-home --uid 10001 rankbot && mkdir -p /data /out /config \
    && chown rankbot /data /out

USER rankbot
WORKDIR /home/rankbot
# Mount config.toml at /config/config.toml; the database and digests land in the /data and /out volumes.
ENV RANKBOT_STORAGE_DATABASE_URL=sqlite:////data/rankbot.db RANKBOT_OUTPUT_DIRECTORY=/out
VOLUME ["/data", "/out", "/config"]
ENTRYPOINT ["rankbot"]
CMD ["poll", "--config", "/config/config.toml"]
