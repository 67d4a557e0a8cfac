# smartdoc-proxy: the authenticating reverse proxy for the SmartDocumentor API.
#
#   docker build -t smartdoc-proxy .
#   docker run --rm --read-only -p 127.0.0.1:8080:8080 \
#     -e SMARTDOC_CLIENT_ID=... \
#     -e SMARTDOC_CLIENT_SECRET_FILE=/run/secrets/smartdoc/client-secret \
#     -v /path/to/secret:/run/secrets/smartdoc/client-secret:ro \
#     smartdoc-proxy
#
# docs/operations.md is the operator's manual (compose, Kubernetes, rotation, metrics).
# tests/test_container.py checks this file against the command line, and runs the image's
# command from the wheel as an unprivileged user on a read-only root filesystem.

ARG PYTHON_VERSION=3.11

# --- build: the wheel, and the wheels of its dependencies, so the runtime stage is offline.
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what the package needs; .dockerignore keeps the rest (and any local secret or
# virtualenv) out of the build context.
COPY pyproject.toml README.md LICENSE ./
COPY proxy ./proxy
RUN pip wheel --wheel-dir /wheels ".[speed]"

# --- runtime: a slim Python with the wheel installed in a virtual environment.
FROM python:${PYTHON_VERSION}-slim AS runtime
# VERSION is pyproject.toml's (a test keeps them equal); REVISION and CREATED are the build's:
#   --build-arg REVISION="$(git rev-parse HEAD)" --build-arg CREATED="$(date -u +%FT%TZ)"
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="smartdoc-proxy" \
      org.opencontainers.image.description="Authenticating reverse proxy for the SmartDocumentor cloud API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/python:${PYTHON_VERSION}-slim"

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# --no-index: only the wheels built above, never a package of the same name from an index.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/smartdoc-proxy \
 && /opt/smartdoc-proxy/bin/pip install --no-index --find-links /wheels "smartdoc-proxy[speed]==${VERSION}" \
 && useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin smartdoc
COPY config/smartdoc-proxy.example.toml /etc/smartdoc-proxy/smartdoc-proxy.example.toml

# Nothing is written at run time (no bytecode, no home, no temporary files), so the root
# filesystem may be read-only: docker run --read-only, readOnlyRootFilesystem in Kubernetes.
ENV PATH=/opt/smartdoc-proxy/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SMARTDOC_PROXY_LISTEN=0.0.0.0:8080 \
    SMARTDOC_PROXY_ALLOW=127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7
# All interfaces, since a published port or a Service reaches the container from outside
# its network namespace; the proxy warns about that at start-up, as expected here. The allow
# list admits loopback (the health check below) and the private ranges container networks
# use; the access-control release honours it, earlier releases ignore the variable.
EXPOSE 8080
USER 10001:10001

# Slim images have no curl: ask /_proxy/healthz with the standard library, on the port taken
# from SMARTDOC_PROXY_LISTEN. urlopen raises (exit 1) on a refused connection or a non-2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('SMARTDOC_PROXY_LISTEN', '0.0.0.0:8080').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/_proxy/healthz', timeout=4)"]

# SIGTERM (docker stop) lets requests in flight finish within SMARTDOC_SHUTDOWN_GRACE_SECONDS
# (default 10 s): give `docker stop --time` / terminationGracePeriodSeconds a few seconds more.
# Exec form, so the proxy itself is PID 1 and receives the signal, not a shell.
STOPSIGNAL SIGTERM
ENTRYPOINT ["smartdoc-proxy"]
CMD ["run"]
