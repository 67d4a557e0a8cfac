"""docs/operations.md: linked from the README, its links resolve, and its metrics table names
every metric the proxy exports, with its type and labels, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from proxy.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
MANUAL = ROOT / "docs" / "operations.md"
TABLE_ROW = re.compile(r"^\| `(smartdoc_proxy_[a-z_]+)` \| (\w+) \| ([^|]+) \|")


def exported() -> dict[str, tuple[str, set[str]]]:
    """Every metric family the proxy exports: its type and its labels."""
    metrics = Metrics()
    metrics.requests.labels("GET", "other", "200", "anonymous").inc()
    metrics.token_fetches.labels("success").inc()
    families: dict[str, tuple[str, set[str]]] = {}
    for family in metrics.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {key for sample in family.samples for key in sample.labels} - {"le"}
        families[name] = (family.type, labels)
    return families


def documented() -> dict[str, tuple[str, set[str]]]:
    """The manual's metrics table: type and labels (in backquotes, or "none") of each row."""
    rows = {}
    for line in MANUAL.read_text(encoding="utf-8").splitlines():
        if match := TABLE_ROW.match(line):
            name, kind, labels = match.groups()
            rows[name] = (kind, set(re.findall(r"`(\w+)`", labels)))
    return rows


def test_the_readme_links_the_manual() -> None:
    assert "(docs/operations.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_manual_s_relative_links_resolve() -> None:
    text = MANUAL.read_text(encoding="utf-8")
    links = re.findall(r"\]\((?!https?:|#)([^)#]+)", text)

    assert links
    for link in links:
        assert (MANUAL.parent / link).exists(), link


def test_the_metrics_table_is_every_exported_metric_with_its_type_and_labels() -> None:
    table = documented()

    assert set(table) == set(exported())
    for name, (kind, labels) in exported().items():
        assert table[name][0] == kind, name
        assert table[name][1] == labels, name


def test_the_manual_names_the_metrics_that_gain_an_organization_label() -> None:
    text = MANUAL.read_text(encoding="utf-8")
    paragraph = text[text.index("**With several organizations**") :].split("\n\n")[0]
    named = set(re.findall(r"`(smartdoc_proxy_[a-z_]+)`", paragraph.split("also")[0]))
    metrics = Metrics(several=True)
    metrics.requests.labels("GET", "other", "200", "anonymous", "acme").inc()
    metrics.token_fetches_of("acme", "success").inc()
    metrics.token_expiry_of("acme").set(1)
    metrics.secret_expiry_days_of("acme").set(1)

    several, single = _families(metrics), exported()

    assert named
    for name, (kind, labels) in single.items():
        gained = {"organization"} if name in named else set()
        assert several[name] == (kind, labels | gained), name


def _families(metrics: Metrics) -> dict[str, tuple[str, set[str]]]:
    families: dict[str, tuple[str, set[str]]] = {}
    for family in metrics.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {key for sample in family.samples for key in sample.labels} - {"le"}
        families[name] = (family.type, labels)
    return families
