# Hotline 109 ARI application (also runs `hotline archiver` and the other tools).
# Built and run on the development machine with podman: see docker/README.md
# (`make test-containers`).
#
# BASE: any Debian-like image with Python 3.11 and its venv module. Docker Hub's
# python:3.11-slim by default; without a registry, scripts/containers.py imports
# a debootstrapped Debian 12 root (python3, python3-venv) and passes it here.
ARG BASE=python:3.11-slim

# ---- build: a self-contained venv with the app and its pinned dependencies ----
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies (and the build backend) first, from pyproject.toml alone: a change to the code rebuilds
# only the last layer, not the minutes of downloads.
# A site behind a TLS-inspecting proxy passes its CA bundle as the build
# secret `ca_bundle` (never a layer); without it pip uses the image's own CAs.
COPY pyproject.toml ./
RUN --mount=type=secret,id=ca_bundle \
    if [ -r /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
 && python3 -m venv /opt/hotline \
 && /opt/hotline/bin/pip install -q --upgrade pip \
 && python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); \
      print('\n'.join(p['build-system']['requires'] + p['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && /opt/hotline/bin/pip install -q -r /tmp/requirements.txt
COPY ari_app ./ari_app
# no network here: the build backend (setuptools) is in the venv already
RUN /opt/hotline/bin/pip install -q --no-deps --no-build-isolation .

# ---- run: slim, non-root ------------------------------------------------------
FROM ${BASE}
RUN groupadd --system --gid 10109 hotline \
 && useradd --system --uid 10109 --gid hotline --home-dir /app/var \
      --no-create-home --shell /usr/sbin/nologin hotline \
 && mkdir -p /app/var && chown hotline:hotline /app/var && chmod 0750 /app/var
COPY --from=build /opt/hotline /opt/hotline
# The repo's layout: /app/config (hotline.yaml, agents.yaml, prompts/; a site
# mounts its own over it, read-only) beside /app/var (spool, archive: a volume),
# so the config's relative paths (records_spool: ../var/...) resolve as in the repo.
COPY config /app/config
COPY --chmod=0755 docker/hotline-entrypoint /usr/local/bin/hotline-entrypoint
ENV PATH=/opt/hotline/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOTLINE_CONFIG=/app/config/hotline.yaml \
    HOTLINE_ARCHIVE=/app/var/archive.sqlite3 \
    HOTLINE_LOG_FORMAT=json
USER hotline
WORKDIR /app
# `hotline doctor` exits non-zero when ARI, the Stasis app, AMI or Redis is down.
# (podman keeps it only in the docker image format: `podman build --format docker`.)
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
  CMD ["hotline-entrypoint", "doctor"]
# SIGTERM drains calls for up to shutdown.drain_timeout (compose waits longer).
STOPSIGNAL SIGTERM
ENTRYPOINT ["hotline-entrypoint"]
CMD ["run"]
