# smartdoc-proxy: the authenticating reverse proxy for the SmartDocumentor API.
#
#   docker build -t smartdoc-proxy .
#   docker run --rm -p 127.0.0.1:8080:8080 \
#     -e SMARTDOC_CLIENT_ID=... \
#     -v /path/to/secret:/run/secrets/smartdoc_client_secret:ro \
#     -e SMARTDOC_CLIENT_SECRET_FILE=/run/secrets/smartdoc_client_secret \
#     smartdoc-proxy
#
# Every setting is an environment variable (see the README); `check` instead of `run` tries
# the credentials once. The proxy runs as uid 10001: a mounted secret file must be readable by
# that uid (or run with --user "$(id -u):$(id -g)"). Publish the port on a loopback or private
# address only: whoever can reach the proxy acts as the organization on SmartDocumentor.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Only what the package needs to build; .dockerignore keeps the rest (and any local secret or
# virtualenv) out of the build context. README.md is the project's readme in pyproject.toml.
WORKDIR /tmp/smartdoc-proxy
COPY pyproject.toml README.md ./
COPY proxy ./proxy
RUN pip install --no-cache-dir . && rm -rf /tmp/smartdoc-proxy
WORKDIR /

RUN useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin smartdoc
COPY config/smartdoc-proxy.example.toml /etc/smartdoc-proxy/smartdoc-proxy.example.toml
USER 10001:10001

# Inside a container the proxy must listen on all interfaces to be reachable through a
# published port; it logs a warning saying so, which is expected here.
ENV SMARTDOC_PROXY_LISTEN=0.0.0.0:8080
EXPOSE 8080

# Slim images have no curl: ask /_proxy/healthz with the standard library, on the port taken
# from SMARTDOC_PROXY_LISTEN. urlopen raises (exit 1) on a refused connection or a non-2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('SMARTDOC_PROXY_LISTEN', '0.0.0.0:8080').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/_proxy/healthz', timeout=4)"]

# SIGTERM (docker stop) lets requests in flight finish within SMARTDOC_SHUTDOWN_GRACE_SECONDS
# (default 10 s): give `docker stop --time` / terminationGracePeriodSeconds a few seconds more.
# Exec form, so the signal reaches the proxy itself and not a shell.
STOPSIGNAL SIGTERM
ENTRYPOINT ["smartdoc-proxy"]
CMD ["run"]
