"""The README's metrics tables name exactly the metrics the code defines: the filter's Envoy
stats (the `Counter` names and the per-provider family in filter-core/src/flow/counts.rs, the
gauge in filter-core/src/flow) and the token-service's Prometheus metrics (`registry.register`
in token-service/src/metrics.rs)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def metrics_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("### Metrics\n"):text.index("\n## Tests\n")]


def table_rows(section: str, header_start: str) -> list[list[str]]:
    block = section[section.index(header_start):]
    rows = []
    for line in block.splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def filter_defined() -> dict[str, str]:
    names: dict[str, str] = {}
    counts = (ROOT / "filter-core/src/flow/counts.rs").read_text()
    for name in re.findall(r'=> "([a-z_.]+)",', counts):
        names[name] = "counter"
    # One counter per provider, named from the registry: `<family>.<provider>`.
    families = re.findall(r'pub const CREDENTIAL_REFUSED: &str = "([a-z_]+)";', counts)
    families += re.findall(r'format!\("([a-z_.]+)\.\{\}", provider', counts)
    for family in families:
        names[family + ".<provider>"] = "counter"
    for path in (ROOT / "filter-core/src/flow").glob("*.rs"):
        for name in re.findall(r'MetricType::Gauge, "ptk\.([^"]+)"', path.read_text()):
            names[name] = "gauge"
    timings = (ROOT / "filter-core/src/flow/timings.rs").read_text()
    for name in re.findall(r'pub const [A-Z_]+: &str = "ptk\.([^"]+)";', timings):
        names[name] = "histogram"
    return names


def filter_documented() -> dict[str, str]:
    names: dict[str, str] = {}
    for row in table_rows(metrics_section(), "| name | type | counts |"):
        last = ""
        for name in re.findall(r"`([^`]+)`", row[0]):
            # `.anthropic` after `upstream_credential_refused.openai` shares its prefix.
            full = last.rsplit(".", 1)[0] + name if name.startswith(".") else name
            names[full] = row[1]
            last = full
    return names


def test_every_filter_stat_is_in_the_readme_table_and_nothing_else():
    defined = filter_defined()
    assert len(defined) >= 25, defined  # the scan found the definitions
    assert filter_documented() == defined


def test_every_token_service_metric_is_in_the_readme_table_and_nothing_else():
    source = (ROOT / "token-service/src/metrics.rs").read_text()
    registered = re.findall(r'registry\.register\(\s*"([a-z_]+)",', source)
    assert len(registered) >= 7, registered  # the scan found the registrations
    rows = table_rows(metrics_section(), "| name | type | labels | counts |")
    documented = {re.sub(r"_total$", "", row[0].strip("`")): row[1] for row in rows}
    assert set(documented) == set(registered)
    # Counters are exposed with `_total`; the README shows the exposed names.
    for row in rows:
        name = row[0].strip("`")
        assert name.endswith("_total") == (row[1] == "counter"), row
