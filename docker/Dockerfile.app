# syntax=docker/dockerfile:1.7
# Hotline 109 ARI application (also runs `hotline archiver` and the other tools).
# NOT BUILT on the development machine (no Docker engine there): see docker/README.md.

# ---- build: a self-contained venv with the app and its pinned dependencies ----
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
COPY ari_app ./ari_app
RUN python -m venv /opt/hotline \
 && /opt/hotline/bin/pip install --upgrade pip \
 && /opt/hotline/bin/pip install .

# ---- run: slim, non-root ------------------------------------------------------
FROM python:3.11-slim
RUN groupadd --system --gid 10109 hotline \
 && useradd --system --uid 10109 --gid hotline --home-dir /app/var \
      --no-create-home --shell /usr/sbin/nologin hotline \
 && mkdir -p /app/var && chown hotline:hotline /app/var && chmod 0750 /app/var
COPY --from=build /opt/hotline /opt/hotline
# The repo's layout: /app/config (hotline.yaml, agents.yaml, prompts/; a site
# mounts its own over it, read-only) beside /app/var (spool, archive: a volume),
# so the config's relative paths (records_spool: ../var/...) resolve as in the repo.
COPY config /app/config
# Secrets arrive as files in /run/secrets (compose `secrets:`); the shipped
# config names environment variables, so export each file that is present.
COPY --chmod=0755 <<'SH' /usr/local/bin/hotline-entrypoint
#!/bin/sh
set -eu
for pair in ari_password:HOTLINE_ARI_PASSWORD ami_secret:HOTLINE_AMI_SECRET \
            api_token:HOTLINE_API_TOKEN caller_salt:HOTLINE_CALLER_SALT; do
  f="/run/secrets/${pair%%:*}"; var="${pair#*:}"
  if [ -r "$f" ] && [ -z "$(printenv "$var" || true)" ]; then
    export "$var=$(cat "$f")"
  fi
done
exec hotline "$@"
SH
ENV PATH=/opt/hotline/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOTLINE_CONFIG=/app/config/hotline.yaml \
    HOTLINE_ARCHIVE=/app/var/archive.sqlite3 \
    HOTLINE_LOG_FORMAT=json
USER hotline
WORKDIR /app
# `hotline doctor` exits non-zero when ARI, the Stasis app, AMI or Redis is down.
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
  CMD ["hotline-entrypoint", "doctor"]
# SIGTERM drains calls for up to shutdown.drain_timeout (compose waits longer).
STOPSIGNAL SIGTERM
ENTRYPOINT ["hotline-entrypoint"]
CMD ["run"]
