# syntax=docker/dockerfile:1
# HaloBestie backend: one image for every process, chosen by the command (docker/entrypoint.sh):
#   public | internal | scheduler | migrate | seed | manage <args…>
# Build: docker build -t <registry>/halobestie-backend:<tag> .   (DEPLOY.md)

# Pinned base: the exact Python patch release on Debian 12. Bump it deliberately (and rebuild)
# for security releases; both stages must use the same one (the venv is copied between them).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: compiles/collects every wheel into a virtualenv; compilers stay in this stage ----
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Build tools only for packages that ship no wheel for this platform; the runtime never has them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
# requirements.lock pins every package, transitive ones too, with their hashes (`make lock`
# writes it from requirements.txt; `make lint` checks the two agree): every build installs the
# same files, and a file whose hash differs stops the build.
COPY requirements.lock .
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock

# --- runtime: slim, no compilers, non-root ----------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="halobestie-backend" \
      org.opencontainers.image.description="HaloBestie backend: public, internal, scheduler, migrate, seed"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=halobestie.settings \
    PUBLIC_HOST=0.0.0.0 \
    PUBLIC_PORT=3000 \
    INTERNAL_PORT=3001
RUN groupadd --system --gid 10001 halobestie \
    && useradd --system --uid 10001 --gid halobestie --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin halobestie
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# The code belongs to root and is read-only for the app user; .dockerignore keeps secrets,
# tests, the venv and local data out of the build context.
COPY . /app
# The admin's static files, collected at build time (served by the internal listener). The
# throwaway settings here are for this one command only; nothing of them stays in the image.
RUN DEBUG=true DATABASE_URL=sqlite:////tmp/build.sqlite3 python manage.py collectstatic --noinput --verbosity 0 \
    && rm -f /tmp/build.sqlite3 \
    && chmod 0755 /app/docker/entrypoint.sh
USER 10001:10001
# 3000: public (publish this one). 3001: internal, never published beyond localhost/VPN.
EXPOSE 3000 3001
# SIGTERM starts the graceful drain of the listeners (halobestie/serve.py) and stops the scheduler.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["public"]
