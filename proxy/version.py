"""The version of smartdoc-proxy: what ``--version`` prints and token requests' User-Agent
carries."""

from __future__ import annotations

from importlib import metadata

# pyproject.toml's version, for a source tree run without being installed (a test keeps the
# two equal); an installed package answers from its metadata.
SOURCE_VERSION = "0.1.0"


def installed_version() -> str:
    try:
        return metadata.version("smartdoc-proxy")
    except metadata.PackageNotFoundError:
        return SOURCE_VERSION


VERSION = installed_version()
