"""The operators' files: deploy/prometheus/leakwatch-rules.yml and
deploy/grafana/leakwatch-dashboard.json, checked with promtool and against
the metrics file the real agent writes.

    operators_test.py SOURCE_DIR BUILD_DIR TEST

TEST is one of:
  check_rules    `promtool check rules` accepts the rules file
  test_rules     `promtool test rules` on tests/data/prometheus/*.yml: each
                 alert fires when and with what it should, and what must not
                 fire does not
  agent_metrics  a leaky program (pg_metrics_hold, against the PostgreSQL that
                 scripts/test.sh starts) under the agent with LEAKWATCH_METRICS:
                 `promtool check metrics` accepts its real file; every metric
                 the rules and the dashboard use is one it writes; and its real
                 series, fed to the rules, fire the leak alert and nothing else
  dashboard      the dashboard is a Grafana dashboard with the datasource,
                 program and pid variables, every query filtered by them, and
                 exactly the panels the README lists

promtool comes from scripts/setup (Debian's prometheus package, unpacked into
the user's cache); $PROMTOOL overrides. A missing promtool is a failure.
Exits non-zero on the first failed check, with what was seen.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import yaml

SRC, BUILD, TEST = sys.argv[1], sys.argv[2], sys.argv[3]
RULES = os.path.join(SRC, "deploy", "prometheus", "leakwatch-rules.yml")
DASHBOARD = os.path.join(SRC, "deploy", "grafana", "leakwatch-dashboard.json")
RULE_TESTS = os.path.join(SRC, "tests", "data", "prometheus")
README = os.path.join(SRC, "README.md")
AGENT = os.path.join(BUILD, "libleakwatch.so")
PROGRAMS = os.path.join(BUILD, "tests", "programs")


def fail(what, context=""):
    print(f"FAILED: {what}\n{context}", file=sys.stderr)
    sys.exit(1)


def check(cond, what, context=""):
    if not cond:
        fail(what, context)


def promtool():
    path = os.environ.get("PROMTOOL") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or
        os.path.join(os.path.expanduser("~"), ".cache"),
        "leakwatch", "promtool", "promtool")
    check(os.access(path, os.X_OK),
          f"no promtool at {path}: run scripts/setup (scripts/test.sh does)")
    return path


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120,
                          **kwargs)


def run_ok(argv, what, **kwargs):
    r = run(argv, **kwargs)
    check(r.returncode == 0, f"{what}: exit status {r.returncode}",
          f"$ {' '.join(argv)}\n{r.stdout}{r.stderr}")
    return r


# --- PromQL metric names ------------------------------------------------------

KEYWORDS = {"and", "or", "unless", "offset", "bool", "by", "without", "on",
            "ignoring", "group_left", "group_right", "inf", "nan", "atan2"}


def metric_names(expr):
    """The metric names a PromQL expression (or Grafana's label_values())
    selects: what is left once strings, label matchers, ranges, grouping
    labels, functions, keywords and numbers are taken out."""
    m = re.fullmatch(r"\s*label_values\((?:(.*),)?\s*\w+\s*\)\s*", expr)
    if m:  # Grafana's label_values([SELECTOR,] LABEL)
        expr = m.group(1) or ""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    expr = re.sub(r"\{[^{}]*\}", " ", expr)
    expr = re.sub(r"\[[^\[\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)"
                  r"\s*\([^()]*\)", " ", expr)
    names = set()
    for t in re.finditer(r"(?<![\w.$:])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()", expr):
        if t.group(0).lower() not in KEYWORDS:
            names.add(t.group(0))
    return names


def self_test_metric_names():
    """The extraction can see a name that is not the agent's."""
    cases = {
        'up == 0': {"up"},
        'sum by (kind) (rate(a_total{x="b c"}[5m])) / on(kind) b offset 5m':
            {"a_total", "b"},
        'time() - leakwatch_x{pid=~"$pid"} > 3e2': {"leakwatch_x"},
        'label_values(foo{program=~"$program"}, pid)': {"foo"},
        'label_values(program)': set(),
    }
    for expr, want in cases.items():
        got = metric_names(expr)
        check(got == want, f"metric_names({expr!r}) = {got}, want {want}")


def rules():
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    return [r for g in doc["groups"] for r in g["rules"]]


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def panels(dash):
    """Every panel, rows' collapsed panels included, rows excluded."""
    out = []
    for p in dash.get("panels", []):
        if p.get("type") == "row":
            out.extend(p.get("panels", []))
        else:
            out.append(p)
    return out


def dashboard_queries(dash):
    queries = [t["expr"] for p in panels(dash) for t in p.get("targets", [])]
    for v in dash["templating"]["list"]:
        if v.get("type") == "query":
            q = v["query"]
            queries.append(q["query"] if isinstance(q, dict) else q)
    return queries


# --- The tests ----------------------------------------------------------------

def test_check_rules():
    r = run_ok([promtool(), "check", "rules", RULES], "promtool check rules")
    names = [rule["alert"] for rule in rules()]
    check(f"SUCCESS: {len(names)} rules found" in r.stdout,
          f"promtool did not find the {len(names)} rules", r.stdout)
    for rule in rules():
        check(rule.get("labels", {}).get("severity") in
              ("critical", "warning", "info"),
              f"{rule['alert']}: no severity label", str(rule))
        ann = rule.get("annotations", {})
        # Every series but the scan timestamp has a kind.
        labels = ("program", "pid") if "leakwatch_last_scan_timestamp_seconds" \
            in rule["expr"] else ("program", "pid", "kind")
        for key in ("summary", "description"):
            text = ann.get(key, "")
            for label in labels:
                check("$labels." + label in text,
                      f"{rule['alert']}: {key} does not name the {label}", text)
    print(f"ok: {len(names)} rules: {', '.join(names)}")


def test_test_rules():
    files = sorted(os.path.join(RULE_TESTS, f) for f in os.listdir(RULE_TESTS)
                   if f.endswith(".yml"))
    check(files, f"no unit tests in {RULE_TESTS}")
    tested = set()
    for f in files:
        with open(f) as fh:
            doc = yaml.safe_load(fh)
        for t in doc["tests"]:
            for a in t.get("alert_rule_test", []):
                if a["exp_alerts"]:
                    tested.add(a["alertname"])
    missing = {r["alert"] for r in rules()} - tested
    check(not missing, f"alerts never shown to fire by a unit test: {missing}")
    r = run_ok([promtool(), "test", "rules", *files], "promtool test rules")
    print(r.stdout, end="")


def parse_prom(text):
    """Samples of a text-format file: [(name, {label: value}, value)]."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        check(m, f"unparsed line {line!r}")
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def render(template, labels, value):
    """Prometheus' rendering of a template made of {{ $labels.NAME }} and
    {{ $value }} only (the leak alert's)."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}",
                  lambda m: labels.get(m.group(1), ""), template)
    text = text.replace("{{ $value }}", "%g" % value)
    check("{{" not in text, f"template too rich to render here: {template}")
    return text


def series_selector(name, labels):
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def test_agent_metrics():
    check(os.environ.get("PGHOST") and os.environ.get("PGPORT"),
          "no PostgreSQL server configured (PGHOST/PGPORT unset): run the "
          "tests with scripts/test.sh, which starts one")
    tool = promtool()
    with tempfile.TemporaryDirectory() as d:
        live = os.path.join(d, "leakwatch.prom")
        copy = os.path.join(d, "copy.prom")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("LEAKWATCH_") and k != "LD_PRELOAD"}
        env.update(LD_PRELOAD=AGENT, LEAKWATCH_METRICS=live,
                   LEAKWATCH_THRESHOLD_MS="300ms")
        # It polls the live file itself (20 s deadline) until it shows its 5
        # results past the threshold and reported, then copies it and exits.
        r = run([os.path.join(PROGRAMS, "pg_metrics_hold"), live, copy],
                env=env)
        check(r.returncode == 0 and os.path.exists(copy),
              f"pg_metrics_hold: exit status {r.returncode}",
              r.stdout + r.stderr)
        check(not os.path.exists(live), "the live file outlived the process")
        with open(copy) as f:
            text = f.read()

        lint = run([tool, "check", "metrics"], input=text)
        check(lint.returncode == 0 and not lint.stdout.strip(),
              "promtool check metrics complains about the agent's file",
              lint.stdout + lint.stderr + "\n" + text)

        samples = parse_prom(text)
        written = {name for name, _, _ in samples}
        for name, labels, _ in samples:
            check(os.path.basename(labels.get("program", "")) ==
                  "pg_metrics_hold" and
                  labels.get("pid", "").isdigit(),
                  f"{name}: no program or pid label", str(labels))
        used = {}
        for rule in rules():
            names = metric_names(rule["expr"])
            check(names, f"{rule['alert']}: no metric found in its expr")
            for n in names:
                used.setdefault(n, []).append("rule " + rule["alert"])
        for q in dashboard_queries(dashboard()):
            names = metric_names(q)
            check(names, f"dashboard query without a metric: {q}")
            for n in names:
                used.setdefault(n, []).append("dashboard: " + q)
        unknown = {n: where for n, where in used.items() if n not in written}
        check(not unknown,
              "the rules or the dashboard use metrics the agent does not "
              f"write: {unknown}", text)
        # A label an annotation names must be one the agent writes on the
        # rule's series (a misspelt one would render as nothing). MySQL
        # connections have `db` where PostgreSQL's have `dbname`.
        for rule in rules():
            have = {k for name, labels, _ in samples
                    if name in metric_names(rule["expr"]) for k in labels}
            if "leakwatch_connections_open" in written and \
                    any(n.startswith("leakwatch_connections_")
                        for n in metric_names(rule["expr"])):
                have.add("db")
            for key, text in rule.get("annotations", {}).items():
                for label in re.findall(r"\$labels\.(\w+)", text):
                    check(label in have, f"{rule['alert']}: its {key} names "
                          f"label {label}, which its series do not have",
                          f"{sorted(have)}\n{text}")
        documented = set(re.findall(r"^\| `(leakwatch_\w+)", open(README).read(),
                                    re.M))
        check(written == documented,
              "the agent writes other metrics than the README's table lists",
              f"written {sorted(written)}\nREADME  {sorted(documented)}")

        # The real series, held for 10 minutes, fed to the rules: the leak
        # alert fires for pg.result with the agent's own labels, at 2m (its
        # `for`), and nothing else fires (the 3 connections are a pool).
        leak = next(r for r in rules() if r["alert"] == "LeakwatchHandleLeak")
        firing = [(labels, value) for name, labels, value in samples
                  if name == "leakwatch_handles_past_threshold" and value > 0]
        check([l["kind"] for l, _ in firing] == ["pg.result"],
              "expected the 5 held results past the threshold only", text)
        exp = [{"exp_labels": dict(labels, **leak["labels"]),
                "exp_annotations": {k: render(v, labels, value)
                                    for k, v in leak["annotations"].items()}}
               for labels, value in firing]
        unit = {
            "rule_files": [RULES],
            "evaluation_interval": "1m",
            "tests": [{
                "interval": "1m",
                "input_series": [
                    {"series": series_selector(name, labels),
                     "values": "%s+0x10" % repr(value)}
                    for name, labels, value in samples],
                "alert_rule_test":
                    [{"eval_time": "1m", "alertname": "LeakwatchHandleLeak",
                      "exp_alerts": []},
                     {"eval_time": "2m", "alertname": "LeakwatchHandleLeak",
                      "exp_alerts": exp}] +
                    [{"eval_time": "10m", "alertname": r["alert"],
                      "exp_alerts": []}
                     for r in rules() if r["alert"] != "LeakwatchHandleLeak"],
            }],
        }
        unit_file = os.path.join(d, "agent-series-test.yml")
        with open(unit_file, "w") as f:
            yaml.safe_dump(unit, f)
        run_ok([tool, "test", "rules", unit_file],
               "promtool test rules on the agent's real series",)
    print(f"ok: {len(written)} metrics written, {len(used)} used by the rules "
          f"and the dashboard: {sorted(used)}")


def readme_panels():
    """The panel titles listed in the README, between its markers."""
    text = open(README).read()
    m = re.search(r"<!-- dashboard-panels -->\n(.*?)<!-- /dashboard-panels -->",
                  text, re.S)
    check(m, "README: no <!-- dashboard-panels --> list")
    return re.findall(r"^\s*- \*\*(.+?)\*\*", m.group(1), re.M)


def test_dashboard():
    dash = dashboard()
    check(isinstance(dash.get("schemaVersion"), int) and
          dash["schemaVersion"] >= 39,
          f"schemaVersion {dash.get('schemaVersion')}: not a current Grafana's")
    check(dash.get("uid") and dash.get("title"), "no uid or title")
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables.get("datasource", {})
    check(ds.get("type") == "datasource" and ds.get("query") == "prometheus",
          "no Prometheus datasource variable", str(ds))
    for name in ("program", "pid"):
        v = variables.get(name, {})
        check(v.get("type") == "query" and
              v.get("datasource", {}).get("uid") == "${datasource}",
              f"no {name} variable querying the chosen datasource", str(v))
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        check(re.search(r",\s*%s\s*\)$" % name, q),
              f"the {name} variable does not list {name} values", q)

    titles = []
    ids = set()
    for p in panels(dash):
        title = p.get("title", "")
        check(title, f"a panel without a title: {p.get('id')}")
        titles.append(title)
        check(p.get("id") not in ids, f"{title}: duplicate panel id")
        ids.add(p.get("id"))
        check(p.get("datasource", {}).get("uid") == "${datasource}",
              f"{title}: not on the datasource variable")
        targets = p.get("targets", [])
        check(targets, f"{title}: no queries")
        for t in targets:
            expr = t.get("expr", "")
            selectors = re.findall(r"leakwatch_\w+(\{[^}]*\})?", expr)
            check(selectors and all('program=~"$program"' in s and
                                    'pid=~"$pid"' in s for s in selectors),
                  f"{title}: a selector not filtered by $program and $pid",
                  expr)
            check(metric_names(expr) and
                  all(n.startswith("leakwatch_") for n in metric_names(expr)),
                  f"{title}: a query on something other than leakwatch's "
                  "metrics", expr)
    check(len(titles) == len(set(titles)), f"duplicate titles: {titles}")
    cells = {}
    for p in dash["panels"]:
        g = p["gridPos"]
        check(g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0,
              f"{p['title']}: outside the 24-column grid", str(g))
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                check((x, y) not in cells, f"{p['title']} overlaps "
                      f"{cells.get((x, y))} at column {x}, row {y}")
                cells[(x, y)] = p["title"]
    listed = readme_panels()
    check(sorted(listed) == sorted(titles),
          "the README's panel list and the dashboard's panels differ",
          f"README    {listed}\ndashboard {titles}")
    print(f"ok: {len(titles)} panels: {titles}")


TESTS = {
    "check_rules": test_check_rules,
    "test_rules": test_test_rules,
    "agent_metrics": test_agent_metrics,
    "dashboard": test_dashboard,
}

if __name__ == "__main__":
    check(TEST in TESTS, f"no test {TEST}; one of {sorted(TESTS)}")
    self_test_metric_names()
    TESTS[TEST]()
