"""Alerts, KEDA triggers and the dashboard against the real Prometheus (Debian's prometheus + promtool):

- `promtool check rules` on every profile's rendered PrometheusRule, and `promtool test rules` unit tests
  that make the main alerts fire (and stay quiet) on synthetic series;
- a live check: Prometheus on loopback scrapes a live `sie serve` (bundled MiniLM, a tiny model and a
  model whose weights are corrupt) under the labels a ServiceMonitor gives the workers; then every alert
  expression, every KEDA trigger query and every dashboard query (panels and variables) is evaluated
  through Prometheus's HTTP API. Each must parse and evaluate, each metric name in it must be exported
  by the server (the scrape's series and metadata), and each KEDA query must return data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import promql_parser
import pytest
import yaml
from deploy_helpers import NAMESPACE, PROFILES, free_port, of_kind, run, stop, tool, wait_http

SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
             "scrape_series_added"}
# Every worker Service the profiles render: the live server is scraped once under each name.
POOL_SERVICES = ("sie-cpu", "sie-gpu", "sie-cpu-cold")
GRAFANA_VARS = {"$__rate_interval": "1m", "$namespace": NAMESPACE, "$service": ".*", "$model": ".*"}


def rule_groups(docs: list[dict]) -> dict:
    rules = of_kind(docs, "PrometheusRule")
    assert len(rules) == 1
    return {"groups": rules[0]["spec"]["groups"]}


def alert_exprs(docs: list[dict]) -> list[str]:
    return [r["expr"] for g in rule_groups(docs)["groups"] for r in g["rules"]]


def keda_queries(docs: list[dict]) -> list[str]:
    return [t["metadata"]["query"] for so in of_kind(docs, "ScaledObject") for t in so["spec"]["triggers"]
            if t["type"] == "prometheus"]


def dashboard_queries(docs: list[dict]) -> list[str]:
    cm = next(d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard"))
    dash = json.loads(cm["data"]["sie-overview.json"])
    queries = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            # Grafana's label_values(SELECTOR, label) asks Prometheus for SELECTOR's series.
            m = re.fullmatch(r"label_values\((.+),\s*\w+\)", var["query"]["query"])
            assert m, var["query"]
            queries.append(m.group(1))
    assert queries
    out = []
    for q in queries:
        for var, value in GRAFANA_VARS.items():
            q = q.replace(var, value)
        assert "$" not in q, f"unsubstituted Grafana variable in {q}"
        out.append(q)
    return out


def metric_names(query: str) -> set[str]:
    names: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"selector without a metric name in {query}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(query), visit)
    return names


# -- promtool ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("profile", [p for p in PROFILES if p != "default"])
def test_promtool_check_rules(rendered, profile, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule_groups(rendered[profile])))
    out = run([tool("promtool"), "check", "rules", str(path)])
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"SUCCESS: \d+ rules found", out.stdout + out.stderr)


def test_promtool_check_rules_refuses_a_broken_expression(rendered, tmp_path):
    groups = json.loads(json.dumps(rule_groups(rendered["cpu"])))  # a copy: the fixture is shared
    groups["groups"][0]["rules"][0]["expr"] = "sum by (model) (rate(sie_queue_rejections_total[5m])"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(groups))
    assert run([tool("promtool"), "check", "rules", str(path)]).returncode != 0




def test_promtool_unit_tests_of_the_alerts(rendered, tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups(rendered["cpu"])))
    shutil.copy(Path(__file__).with_name("alert_tests.yaml"), tmp_path / "alert_tests.yaml")
    out = run([tool("promtool"), "test", "rules", "alert_tests.yaml"], cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


# -- live: Prometheus scraping a real server ---------------------------------------------------------------

TINY_CARD = """
name: {name}
source: {{path: "{folder}"}}
architecture: bert
capabilities:
  encode: {{dense: {{dims: 64}}}}
pooling: mean
max_tokens: 64
token_budget: 256
precision: {{cpu: fp32}}
"""


@pytest.fixture(scope="module")
def live_prometheus(tmp_path_factory, tiny_models):
    """(prometheus_url, exported metric names) after real traffic to a live `sie serve`."""
    base = tmp_path_factory.mktemp("live")
    catalog = base / "catalog"
    catalog.mkdir()
    (catalog / "tiny.yaml").write_text(TINY_CARD.format(name="tiny/a", folder=tiny_models("bert", seed=1)))
    corrupt = base / "corrupt"
    shutil.copytree(tiny_models("bert"), corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\0" * 64)
    (catalog / "corrupt.yaml").write_text(TINY_CARD.format(name="tiny/corrupt", folder=corrupt))

    sie_port, prom_port = free_port(), free_port()
    sie_log, prom_log = base / "sie.log", base / "prometheus.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "SIE_CATALOG_DIRS": str(catalog),
           "SIE_CPU_PRECISION": "fp32", "SIE_THREADS": "1"}
    sie = subprocess.Popen([str(Path(sys.executable).parent / "sie"), "serve", "--port", str(sie_port),
                            "--log-level", "warning", "--preload", "all-MiniLM-L6-v2"],
                           env=env, stdout=sie_log.open("w"), stderr=subprocess.STDOUT)
    config = base / "prometheus.yml"
    # The labels a ServiceMonitor gives each worker Service's targets (namespace, service, pod).
    targets = [{"targets": [f"127.0.0.1:{sie_port}"],
                "labels": {"namespace": NAMESPACE, "service": svc, "pod": f"{svc}-0"}} for svc in POOL_SERVICES]
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                                      "scrape_configs": [{"job_name": "sie", "static_configs": targets}]}))
    prom = subprocess.Popen([tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={base / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                            stdout=prom_log.open("w"), stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{sie_port}"
        wait_http(f"{url}/readyz", sie, sie_log)
        prom_url = f"http://127.0.0.1:{prom_port}"
        wait_http(f"{prom_url}/-/ready", prom, prom_log)
        with httpx.Client(base_url=url, timeout=60) as c:
            for i in range(3):
                r = c.post("/v1/encode/all-MiniLM-L6-v2", json={"items": [{"text": f"hello {i}"}]})
                assert r.status_code == 200
            assert c.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": ["a", "b"]}).status_code == 200
            assert c.post("/v1/encode/tiny/a", json={"items": [{"text": "tiny"}]}).status_code == 200
            assert c.post("/v1/encode/tiny/corrupt", json={"items": [{"text": "x"}]}).status_code == 502
            assert c.post("/v1/encode/no-such-model", json={"items": [{"text": "x"}]}).status_code == 404
        with httpx.Client(base_url=prom_url, timeout=30) as p:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # two scrapes after the traffic, so rate() has two points
                q = 'count_over_time(sie_model_loads_total{result="failed"}[1m])'
                r = p.get("/api/v1/query", params={"query": q})
                if any(float(s["value"][1]) >= 3 for s in r.json()["data"]["result"]):
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"Prometheus never scraped the traffic:\n{prom_log.read_text()[-3000:]}")
            series = set(p.get("/api/v1/label/__name__/values", params={"match[]": '{job="sie"}'}).json()["data"])
            meta = p.get("/api/v1/targets/metadata", params={"match_target": '{job="sie"}'}).json()["data"]
        exported = series - SYNTHETIC
        for m in meta:  # families with no sample yet (no eviction happened) are still exported
            exported.add(m["metric"])
            if m["type"] == "histogram":
                exported.update(m["metric"] + s for s in ("_bucket", "_sum", "_count"))
        yield prom_url, exported
    finally:
        stop(sie)
        stop(prom)


def evaluate(prom_url: str, query: str) -> list:
    r = httpx.get(f"{prom_url}/api/v1/query", params={"query": query}, timeout=30)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", f"{query}\n-> {body.get('error')}"
    return body["data"]["result"]


def _all(rendered, pick) -> list[str]:
    seen: dict[str, None] = {}
    for profile, docs in rendered.items():
        if profile == "default":
            continue
        for q in pick(docs):
            seen[q] = None
    return list(seen)


def test_the_scrape_exports_every_name_of_sie_metrics(live_prometheus):
    from sie.metrics import metric_names as defined

    _, exported = live_prometheus
    names = defined()
    # metric_names() also lists a counter's family name (sie_requests for sie_requests_total): not a series.
    expected = {n for n in names if not n.endswith("_created") and f"{n}_total" not in names}
    assert expected <= exported, f"defined in sie/metrics.py but not scraped: {sorted(expected - exported)}"


def test_keda_trigger_queries(rendered, live_prometheus):
    prom_url, exported = live_prometheus
    queries = _all(rendered, keda_queries)
    assert len(queries) >= 6
    for q in queries:
        assert metric_names(q) <= exported, (q, metric_names(q) - exported)
        assert evaluate(prom_url, q), f"KEDA query returns no data for a live worker: {q}"


def test_alert_expressions(rendered, live_prometheus):
    prom_url, exported = live_prometheus
    queries = _all(rendered, alert_exprs)
    assert len(queries) >= 8
    for q in queries:
        assert metric_names(q) <= exported, (q, metric_names(q) - exported)
        evaluate(prom_url, q)


def test_dashboard_queries(rendered, live_prometheus):
    prom_url, exported = live_prometheus
    queries = _all(rendered, dashboard_queries)
    assert len(queries) >= 20
    answered = 0
    for q in queries:
        assert metric_names(q) <= exported, (q, metric_names(q) - exported)
        answered += bool(evaluate(prom_url, q))
    assert answered >= len(queries) // 2, "most panels should show the live server's data"


def test_a_query_naming_a_missing_metric_is_caught(live_prometheus):
    """The name check has teeth: SIE's old dashboards queried names nothing emits."""
    prom_url, exported = live_prometheus
    q = textwrap.dedent('sum(rate(sie_requests_totals{namespace="sie-test"}[5m]))')
    evaluate(prom_url, q)  # Prometheus itself happily answers an empty vector ...
    assert not metric_names(q) <= exported  # ... which is why names are checked against the scrape
    r = httpx.get(f"{prom_url}/api/v1/query", params={"query": "sum(rate(sie_requests_total[5m])"}, timeout=30)
    assert r.json()["status"] == "error"
