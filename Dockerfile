# One image for every CRM process; docker-compose.yml picks the process with the command, e.g.
#   sh -c "python -m crm_common.migrate clients && exec python -m crm_common.serve run --config config.yml clients.service:ClientsService"
# trixie: its postgresql-client (17) can dump the compose file's PostgreSQL 16; bookworm's 15 cannot
FROM python:3.11-slim-trixie

# Logs are JSON lines: keep the libraries' deprecation notices out of them (nameko imports pkg_resources).
ENV PYTHONUNBUFFERED=1 \
    PYTHONWARNINGS="ignore::DeprecationWarning,ignore:pkg_resources is deprecated:UserWarning" \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# The backup service runs pg_dump/pg_restore and copies archives off-site with rclone.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client rclone \
    && rm -rf /var/lib/apt/lists/*

# Third-party dependencies change far less often than the code, so this layer stays cached.
COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt

# Each service finds its migrations/ next to its package and crm_common finds config.yml from its
# own location, so the repository layout is kept and the packages are installed editable in compat
# mode (a plain path entry, no import hooks).
COPY config.yml ./
COPY services ./services
COPY gateway ./gateway
RUN pip install --no-deps --no-build-isolation --config-settings editable_mode=compat \
        $(printf -- '-e %s ' services/*/ gateway/) \
    && python -m compileall -q services gateway \
    && groupadd --system --gid 10001 crm \
    && useradd --system --uid 10001 --gid crm --no-create-home --home-dir /app crm \
    && mkdir -p var backups && chown crm:crm var backups

# Numeric, so orchestrators that insist on a non-root user (runAsNonRoot) can verify it.
USER 10001:10001

EXPOSE 8000
CMD ["sh", "-c", "python -m crm_common.migrate gateway && exec python -m crm_common.serve run --config config.yml gateway.service:GatewayService"]
