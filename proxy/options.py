"""Every setting of the proxy, declared once: its TOML key, flag, environment variable,
default and meaning. :mod:`proxy.config` reads them; the README table and
``config/smartdoc-proxy.example.toml`` are checked against this table by a test."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_UPSTREAM = "https://cloud.smartdocumentor.net"


@dataclass(frozen=True)
class Option:
    """One setting: its TOML key (= Config field), flag, environment variable and default."""

    name: str
    env: str
    default: str | None
    help: str
    flag: str | None = None
    metavar: str = "VALUE"
    # A switch (--insecure-open): given means "true"; in the environment, 1/true/yes/on.
    switch: bool = False
    # Given several times (--allow A --allow B), or comma-separated in the environment.
    repeatable: bool = False
    # No default, and nothing works without it: --help says "(required)".
    required: bool = False

    @property
    def sources(self) -> str:
        """How to set it, for error messages."""
        names = [self.flag] if self.flag else []
        return " / ".join([*names, self.env])

    @property
    def is_path(self) -> bool:
        """A file name: in the TOML file, a relative one is taken from the file's own folder."""
        return self.metavar == "PATH"


OPTIONS: tuple[Option, ...] = (
    Option("listen", "SMARTDOC_PROXY_LISTEN", "127.0.0.1:8080",
           "address and port to listen on", "--listen", "HOST:PORT"),
    Option("upstream", "SMARTDOC_UPSTREAM", DEFAULT_UPSTREAM,
           "origin of the SmartDocumentor API; the only place requests are forwarded to",
           "--upstream", "URL"),
    Option("token_url", "SMARTDOC_TOKEN_URL", None,
           "OAuth2 token endpoint (default: upstream + /connect/token)", "--token-url", "URL"),
    Option("upstream_ca_file", "SMARTDOC_UPSTREAM_CA_FILE", None,
           "PEM CA bundle trusted in addition to the system's, for the upstream and the token "
           "endpoint (a TLS-inspecting egress proxy's CA)", "--upstream-ca-file", "PATH"),
    Option("client_id", "SMARTDOC_CLIENT_ID", None,
           "the organization's client id", "--client-id", "ID", required=True),
    Option("client_secret_file", "SMARTDOC_CLIENT_SECRET_FILE", None,
           "file holding the client secret, re-read for every token request",
           "--client-secret-file", "PATH"),
    Option("client_secret", "SMARTDOC_CLIENT_SECRET", None,
           "the client secret itself (environment only: a flag would show in ps)"),
    Option("scope", "SMARTDOC_SCOPE", "WebAPI", "OAuth2 scope to request", "--scope", "SCOPE"),
    Option("client_auth", "SMARTDOC_CLIENT_AUTH", "post",
           "how the client authenticates: post (form body) or basic (HTTP Basic)",
           "--client-auth", "post|basic"),
    Option("upstream_connect_timeout_seconds", "SMARTDOC_UPSTREAM_CONNECT_TIMEOUT_SECONDS", "10",
           "seconds to wait for a new connection to the upstream to open (then 503)",
           "--upstream-connect-timeout-seconds", "SECONDS"),
    Option("upstream_read_timeout_seconds", "SMARTDOC_UPSTREAM_READ_TIMEOUT_SECONDS", "60",
           "seconds to wait for upstream data before giving up (then 504)",
           "--upstream-read-timeout-seconds", "SECONDS"),
    Option("token_timeout_seconds", "SMARTDOC_TOKEN_TIMEOUT_SECONDS", "10",
           "seconds a token request may take (then 503)", "--token-timeout-seconds", "SECONDS"),
    Option("replay_limit_bytes", "SMARTDOC_REPLAY_LIMIT_BYTES", "1048576",
           "request bodies up to this size are kept so they can be resent after a 401",
           "--replay-limit-bytes", "BYTES"),
    Option("refresh_margin_seconds", "SMARTDOC_REFRESH_MARGIN_SECONDS", "300",
           "refresh the token this long before it expires (at most half its lifetime)",
           "--refresh-margin-seconds", "SECONDS"),
    Option("default_token_lifetime_seconds", "SMARTDOC_DEFAULT_TOKEN_LIFETIME_SECONDS", "3600",
           "lifetime assumed when the token endpoint sends no expires_in",
           "--default-token-lifetime-seconds", "SECONDS"),
    Option("shutdown_grace_seconds", "SMARTDOC_SHUTDOWN_GRACE_SECONDS", "10",
           "on SIGTERM/SIGINT, how long requests in flight may take to finish",
           "--shutdown-grace-seconds", "SECONDS"),
    Option("log_format", "SMARTDOC_LOG_FORMAT", "text", "log format: text or json",
           "--log-format", "text|json"),
    Option("log_level", "SMARTDOC_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR",
           "--log-level", "LEVEL"),
    Option("public_url", "SMARTDOC_PROXY_PUBLIC_URL", None,
           "origin clients reach the proxy at; upstream redirects point there (default: "
           "origin-relative, never from the client's Host)", "--public-url", "URL"),
    Option("upstream_pool_size", "SMARTDOC_UPSTREAM_POOL_SIZE", "100",
           "connections to the upstream at most, in use or idle", "--upstream-pool-size", "N"),
    Option("upstream_pool_timeout_seconds", "SMARTDOC_UPSTREAM_POOL_TIMEOUT_SECONDS", "10",
           "seconds a request may wait for a free upstream connection (then 503)",
           "--upstream-pool-timeout-seconds", "SECONDS"),
    Option("allow", "SMARTDOC_PROXY_ALLOW", None,
           "networks admitted besides loopback (repeatable; comma-separated in the environment)",
           "--allow", "CIDR", repeatable=True),
    Option("inbound_keys_file", "SMARTDOC_PROXY_INBOUND_KEYS_FILE", None,
           "file of client keys, one a line (KEY, or NAME KEY); with it, every request needs one",
           "--inbound-keys-file", "PATH"),
    Option("insecure_open", "SMARTDOC_PROXY_INSECURE_OPEN", "false",
           "listen beyond loopback with neither an allow-list nor keys (anyone who reaches it "
           "acts as the organization)", "--insecure-open", switch=True),
    Option("allow_insecure_upstream", "SMARTDOC_ALLOW_INSECURE_UPSTREAM", "false",
           "allow a plain http:// upstream or token URL that is not on loopback",
           "--allow-insecure-upstream", switch=True),
    Option("tls_cert_file", "SMARTDOC_PROXY_TLS_CERT_FILE", None,
           "certificate chain (PEM) to serve HTTPS with; needs --tls-key-file",
           "--tls-cert-file", "PATH"),
    Option("tls_key_file", "SMARTDOC_PROXY_TLS_KEY_FILE", None,
           "private key (PEM) of the certificate", "--tls-key-file", "PATH"),
    Option("metrics_listen", "SMARTDOC_PROXY_METRICS_LISTEN", None,
           "a separate address serving /_proxy/metrics without a key, for a scraper",
           "--metrics-listen", "HOST:PORT"),
    Option("secret_expires", "SMARTDOC_SECRET_EXPIRES", None,
           "the day the client secret expires (YYYY-MM-DD): warned about 30 days ahead",
           "--secret-expires", "DATE"),
    Option("client_header_timeout_seconds", "SMARTDOC_PROXY_CLIENT_HEADER_TIMEOUT_SECONDS", "10",
           "seconds a client may take to send a request's headers (then 408, and closed)",
           "--client-header-timeout-seconds", "SECONDS"),
    Option("client_body_timeout_seconds", "SMARTDOC_PROXY_CLIENT_BODY_TIMEOUT_SECONDS", "30",
           "seconds a request body may stall between two reads (then 408, and closed)",
           "--client-body-timeout-seconds", "SECONDS"),
    Option("client_body_total_timeout_seconds",
           "SMARTDOC_PROXY_CLIENT_BODY_TOTAL_TIMEOUT_SECONDS", "300",
           "seconds a whole request body may take (then 408, and closed)",
           "--client-body-total-timeout-seconds", "SECONDS"),
    Option("keepalive_timeout_seconds", "SMARTDOC_PROXY_KEEPALIVE_TIMEOUT_SECONDS", "75",
           "seconds an idle client keep-alive connection is kept open",
           "--keepalive-timeout-seconds", "SECONDS"),
    Option("max_request_line_bytes", "SMARTDOC_PROXY_MAX_REQUEST_LINE_BYTES", "8190",
           "longest request target (path and query) in the request line (then 414)",
           "--max-request-line-bytes", "BYTES"),
    Option("max_header_bytes", "SMARTDOC_PROXY_MAX_HEADER_BYTES", "65536",
           "request line and headers together at most (then 431)", "--max-header-bytes",
           "BYTES"),
    Option("max_headers", "SMARTDOC_PROXY_MAX_HEADERS", "100",
           "header fields in a request at most (then 431)", "--max-headers", "N"),
    Option("max_body_bytes", "SMARTDOC_PROXY_MAX_BODY_BYTES", "104857600",
           "largest request body, announced or streamed (then 413)", "--max-body-bytes",
           "BYTES"),
    Option("max_requests_in_flight", "SMARTDOC_PROXY_MAX_REQUESTS_IN_FLIGHT", "1000",
           "requests forwarded at once at most (then 503 at once)",
           "--max-requests-in-flight", "N"),
    Option("replay_budget_bytes", "SMARTDOC_PROXY_REPLAY_BUDGET_BYTES", "16777216",
           "memory all bodies kept for a resend may hold together; beyond it, bodies stream",
           "--replay-budget-bytes", "BYTES"),
    # Common servers close an idle keep-alive connection after 5 s (Apache httpd, Node) or
    # more (nginx 75 s, IIS 120 s, Kestrel 130 s): the proxy gives up its own idle ones first.
    Option("upstream_keepalive_seconds", "SMARTDOC_UPSTREAM_KEEPALIVE_SECONDS", "4",
           "seconds an idle pooled upstream connection is kept (below the upstream's own)",
           "--upstream-keepalive-seconds", "SECONDS"),
    Option("inspector", "SMARTDOC_PROXY_INSPECTOR", "loopback",
           "who may open the inspector page at /_proxy/: off, loopback (this machine, no key "
           "needed) or keys (the clients named in --inspector-clients)",
           "--inspector", "off|loopback|keys"),
    Option("inspector_clients", "SMARTDOC_PROXY_INSPECTOR_CLIENTS", None,
           "with --inspector keys: the names in the keys file that may open the inspector",
           "--inspector-clients", "NAME,...", repeatable=True),
    Option("inspect_bodies", "SMARTDOC_PROXY_INSPECT_BODIES", "false",
           "the inspector keeps textual bodies (JSON, text, form) up to 64 KiB a side, with "
           "access_token and client_secret fields redacted", "--inspect-bodies", switch=True),
    Option("inspect_exchanges", "SMARTDOC_PROXY_INSPECT_EXCHANGES", "200",
           "how many of the last exchanges the inspector keeps in memory",
           "--inspect-exchanges", "N"),
    Option("workers", "SMARTDOC_PROXY_WORKERS", "1",
           "processes serving the same port (SO_REUSEPORT), each with its own token cache, "
           "upstream pool and in-flight cap; one per core is the most that helps",
           "--workers", "N"),
)  # fmt: skip

CONFIG_FILE = Option("config", "SMARTDOC_PROXY_CONFIG", None,
                     "TOML file with any of the settings above, in snake_case",
                     "--config", "PATH")  # fmt: skip
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}

# What `check` reads: the token request and whether it may go out in clear, and the secret's
# expiry, which it reports. The rest (listening, access, logging) is for serving: `check`
# neither offers those flags nor lets their values, from any source, stop it.
CHECK_OPTIONS = frozenset({
    "upstream", "token_url", "client_id", "client_secret_file", "client_secret", "scope",
    "client_auth", "token_timeout_seconds", "default_token_lifetime_seconds",
    "allow_insecure_upstream", "secret_expires", "upstream_ca_file",
})  # fmt: skip
