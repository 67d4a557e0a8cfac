"""Who gets in: the allow-list, named inbound keys, and the proxy's own ``/connect/token``.

Every rule here is a pure function, table-tested; :class:`Access` holds the rules in force
(replaced whole on SIGHUP) and answers, for one request, "which client is this?" or raises.

- **The network** is judged on the TCP peer address alone: loopback always, plus ``--allow``.
  A client's own ``X-Forwarded-For`` is its say-so and admits nobody.
- **Keys** come in an ``X-Proxy-Key`` header, as the password of HTTP Basic (for clients that
  only take a URL, ``http://user:KEY@proxy:8080``), or as a proxy-local Bearer token that the
  proxy's ``/connect/token`` issued for the key. Keys are looked up through their SHA-256 digest
  and compared in constant time; they never leave the proxy (headers.py strips them).
- **Local tokens** are ``sdp1.`` + base64url(name, expiry, organization) + an HMAC keyed by the
  client's own key: every worker and replica that shares the keys file verifies them with no
  shared state, they expire, and they stop working as soon as their key is removed or changed.
- **Organizations**: every key belongs to one; :class:`Keys` holds the keys of all of them
  (:mod:`proxy.organizations` decides which organization a request acts as).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from proxy.config import DEFAULT_ORGANIZATION, Config, ConfigError, IPNetwork
from proxy.errors import AccessDenied, KeyRequired
from proxy.organization_settings import where

ANONYMOUS = "anonymous"
KEY_HEADER = "X-Proxy-Key"
LOCAL_TOKEN_PREFIX = "sdp1."  # noqa: S105 (a format marker, not a password)
LOCAL_TOKEN_LIFETIME_SECONDS = 3600
NAME = re.compile(r"[A-Za-z0-9._-]+")
LOOPBACK: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
WallClock = Callable[[], float]
# The three ways a key travels, for the messages that ask for one.
KEY_WAYS = (
    f"as an {KEY_HEADER} header, as the password of HTTP Basic authentication, or as a Bearer "
    "token from this proxy's /connect/token"
)


@dataclass(frozen=True)
class InboundKey:
    """One client: its name, its key (never in a ``repr``), and the organization it acts as."""

    name: str
    key: str = field(repr=False)
    organization: str = DEFAULT_ORGANIZATION


def fingerprint(key: str) -> str:
    """The name of a key listed without one: short, stable, and telling nothing of the key."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class Keys:
    """The clients of the keys files, found by key or by organization and name.

    ``organizations`` are those that have a keys file, even an empty one: on their own
    address a key is required.
    """

    def __init__(
        self, entries: Iterable[InboundKey], organizations: Iterable[str] = (DEFAULT_ORGANIZATION,)
    ) -> None:
        listed = list(entries)
        self._by_digest = {_digest(entry.key): entry for entry in listed}
        self._by_name = {(entry.organization, entry.name): entry for entry in listed}
        self.organizations = frozenset(organizations) | {entry.organization for entry in listed}

    def __repr__(self) -> str:
        return f"Keys({sorted(entry.name for entry in self._by_name.values())})"

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for _, name in self._by_name)

    def find(self, presented: str) -> InboundKey | None:
        """The client whose key was presented, compared in constant time."""
        digest = _digest(presented)
        entry = self._by_digest.get(digest)
        # The digest lookup tells nothing about the key's bytes; the comparison that decides
        # is constant-time all the same.
        if entry is not None and hmac.compare_digest(_digest(entry.key), digest):
            return entry
        return None

    def named(self, name: str, organization: str = DEFAULT_ORGANIZATION) -> InboundKey | None:
        return self._by_name.get((organization, name))


def parse_keys(text: str, source: str, organization: str = DEFAULT_ORGANIZATION) -> Keys:
    """A keys file: ``KEY`` or ``NAME KEY`` a line; blank lines and ``#`` comments ignored.

    Raises :class:`ConfigError` naming the line, never showing a key.
    """
    return Keys((entry for _, entry in _lines(text, source, organization)), (organization,))


def _lines(text: str, source: str, organization: str) -> list[tuple[int, InboundKey]]:
    """Each key of a keys file, with the number of its line."""
    entries: list[tuple[int, InboundKey]] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split() if not line.lstrip().startswith("#") else []
        if not words:
            continue
        if len(words) > 2:
            raise ConfigError(f"{source}: line {number}: expected KEY or NAME KEY")
        name, key = (words[0], words[1]) if len(words) == 2 else (fingerprint(words[0]), words[0])
        if not NAME.fullmatch(name) or name == ANONYMOUS:
            raise ConfigError(
                f"{source}: line {number}: a name is letters, digits, '.', '_' or '-' "
                f"(and not {ANONYMOUS!r})"
            )
        if name in names or _digest(key) in digests:
            raise ConfigError(f"{source}: line {number}: this name or key is listed twice")
        names.add(name)
        digests.add(_digest(key))
        entries.append((number, InboundKey(name, key, organization)))
    return entries


def load_keys(path: Path) -> Keys:
    """The single-organization keys file."""
    return parse_keys(_read(path, "--inbound-keys-file"), f"--inbound-keys-file {path.absolute()}")


def load_organization_keys(files: Sequence[tuple[str, Path]]) -> Keys:
    """The keys of every organization's file, as ``(organization, path)``; a key listed for
    two organizations is refused, naming both files and lines, never the key."""
    entries: list[InboundKey] = []
    seen: dict[bytes, tuple[str, str, int]] = {}
    for organization, path in files:
        label = f"{where(organization)} inbound_keys_file"
        source = f"{label} {path.absolute()}"
        for number, entry in _lines(_read(path, label), source, organization):
            first = seen.setdefault(_digest(entry.key), (organization, source, number))
            if first[0] != organization:
                raise ConfigError(
                    f"{source}: line {number}: this key is also listed for organization "
                    f"{first[0]!r} ({first[1]}, line {first[2]}); a key chooses one organization"
                )
            entries.append(entry)
    return Keys(entries, (organization for organization, _ in files))


def _read(path: Path, label: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read {path.absolute()}") from exc


# Answers remembered, by peer address and allowed networks: a client sends its requests from
# few addresses, and parsing an address and testing it against every network cost more than
# all the rest of a request's access checks. New rules (a reload) are a new key.
ADMITTED_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=ADMITTED_CACHE_SIZE)
def admitted(peer: str | None, allow: tuple[IPNetwork, ...]) -> bool:
    """Is the TCP peer on loopback or in an allowed network?"""
    try:
        address = ipaddress.ip_address((peer or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return any(address in network for network in (*LOOPBACK, *allow))


def basic_credentials(authorization: str) -> tuple[str, str] | None:
    """``(user, password)`` of an HTTP Basic ``Authorization`` value, or ``None``."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def bearer(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: InboundKey, payload: bytes) -> bytes:
    signing_key = hashlib.sha256(b"smartdoc-proxy local token\0" + key.key.encode()).digest()
    return hmac.new(signing_key, payload, hashlib.sha256).digest()


def issue_local_token(key: InboundKey, now: float, lifetime: float) -> str:
    # The organization is signed with the rest: a token acts as the organization of its key.
    payload = f"{key.name}\n{int(now + lifetime)}\n{key.organization}".encode()
    return LOCAL_TOKEN_PREFIX + _b64(payload) + "." + _b64(_signature(key, payload))


def verify_local_token(token: str, keys: Keys, now: float) -> InboundKey | None:
    """The client a local token was issued to, if it is genuine, unexpired and its key is
    still listed for the same organization; else ``None``."""
    if not token.startswith(LOCAL_TOKEN_PREFIX):
        return None
    encoded, _, signature = token.removeprefix(LOCAL_TOKEN_PREFIX).partition(".")
    try:
        payload, presented = _unb64(encoded), _unb64(signature)
        name, expires, organization = payload.decode().split("\n")
        expires_at = int(expires)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    key = keys.named(name, organization)
    if key is None or not hmac.compare_digest(_signature(key, payload), presented):
        return None
    return key if now < expires_at else None


@dataclass(frozen=True)
class Access:
    """The access rules in force: networks, and keys if any."""

    allow: tuple[IPNetwork, ...] = ()
    keys: Keys | None = None
    wall_clock: WallClock = time.time

    def check_network(self, peer: str | None) -> None:
        if not admitted(peer, self.allow):
            raise AccessDenied("this address is not admitted: the proxy's --allow lists who is")

    def client(self, headers: Mapping[str, str]) -> str:
        """The name of the client a request comes from: ``anonymous`` when no keys are
        required, else the name of the key it presents; :class:`KeyRequired` otherwise."""
        if self.keys is None:
            return ANONYMOUS
        entry = self.presented(headers)
        if entry is None:
            raise KeyRequired(f"a key is required: send it {KEY_WAYS}")
        return entry.name

    @property
    def keyed(self) -> frozenset[str]:
        """The organizations that have keys: on their own address a key is required."""
        return self.keys.organizations if self.keys is not None else frozenset()

    def requires_key(self, serves: str | None) -> bool:
        """Must a request present a key on an address that serves this organization (``None``:
        the shared address of several organizations, where only a key can choose one)?"""
        return serves is None or serves in self.keyed

    def presented(self, headers: Mapping[str, str]) -> InboundKey | None:
        """The listed key a request presents, in whichever of the three ways; else ``None``."""
        if self.keys is None:
            return None
        key = headers.get(KEY_HEADER)
        if key is not None:
            return self.keys.find(key)
        authorization = headers.get("Authorization", "")
        credentials = basic_credentials(authorization)
        if credentials is not None:
            return self.keys.find(credentials[1])
        token = bearer(authorization)
        if token is not None:
            return verify_local_token(token, self.keys, self.wall_clock())
        return None

    def local_token(
        self, client_id: str, client_secret: str, serves: str | None = DEFAULT_ORGANIZATION
    ) -> tuple[str, str] | None:
        """``(client name, local token)`` for credentials sent to ``/connect/token`` on an
        address that ``serves`` an organization (see :meth:`requires_key`), or ``None`` when
        they are wrong, or another organization's. Where no key is required (loopback
        development), any credentials."""
        if not self.requires_key(serves):
            return ANONYMOUS, LOCAL_TOKEN_PREFIX + secrets.token_urlsafe(32)
        entry = self.keys.find(client_secret) if self.keys is not None else None
        if entry is None or not hmac.compare_digest(entry.name.encode(), client_id.encode()):
            return None
        if serves is not None and entry.organization != serves:
            return None
        now = self.wall_clock()
        return entry.name, issue_local_token(entry, now, LOCAL_TOKEN_LIFETIME_SECONDS)


def access_of(config: Config, wall_clock: WallClock = time.time) -> Access:
    """The access rules a configuration asks for; reads the keys files."""
    files = [(o.name, o.inbound_keys_file) for o in config.organizations if o.inbound_keys_file]
    if config.inbound_keys_file is not None:
        keys: Keys | None = load_keys(config.inbound_keys_file)  # the single-organization file
    else:
        keys = load_organization_keys(files) if files else None
    return Access(config.allow, keys, wall_clock)
