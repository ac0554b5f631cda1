# relay: SMTP capture and relay server. Build: docker build -t relay .
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 relay \
 && useradd --system --uid 10001 --gid relay --home-dir /data --no-create-home relay \
 && mkdir /data && chown relay:relay /data

WORKDIR /src
COPY pyproject.toml README.md ./
COPY relay ./relay
COPY web ./web
# uvloop, and asyncmy so that the image serves MySQL and MariaDB as it does SQLite and PostgreSQL.
RUN pip install ".[speed,mysql]" && rm -rf /src

COPY docker/relay.toml /etc/relay/relay.toml

USER relay
WORKDIR /data
VOLUME ["/data"]
EXPOSE 1025 8025

# Asks /healthz at the [web] address of the same config file (mount another relay.toml
# at /etc/relay/relay.toml and the check follows it).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["relay", "healthcheck", "--config", "/etc/relay/relay.toml"]

CMD ["relay", "serve", "--config", "/etc/relay/relay.toml"]
