#!/usr/bin/env python3
"""Generate the Switchyard Grafana dashboards (docker/grafana/dashboards/*.json).

The JSON files are committed; this script is the source of truth for them.
    python3 docker/grafana/gen_dashboards.py          # rewrite the JSON files
    python3 docker/grafana/gen_dashboards.py --check  # fail if they are stale
Every query may only use the metric names in docker/metric-names.txt
(docker/validate.sh enforces that).
"""
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'service=~"$service"'
SELC = 'service=~"$service", color=~"$color"'
# Joins a per-color series with the role and release that color has now (switchyard_release_info).
ROLE = " * on (service, color) group_left (role, release) switchyard_release_info"
ROLE_LEGEND = "{{service}} {{role}} {{release}} ({{color}})"
COLOR_OVERRIDES = [
    {"matcher": {"id": "byRegexp", "options": ".*blue.*"},
     "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}}]},
    {"matcher": {"id": "byRegexp", "options": ".*green.*"},
     "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "green"}}]},
]


class Layout:
    def __init__(self):
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def newline(self):
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0

    def pid(self):
        self.next_id += 1
        return self.next_id - 1


def target(expr, legend="", ref="A", instant=False, fmt=None):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref,
         "range": not instant, "instant": instant}
    if fmt:
        t["format"] = fmt
    return t


def thresholds(steps):
    return {"mode": "absolute",
            "steps": [{"color": c, "value": v} for c, v in steps]}


def panel(L, kind, title, targets, w=12, h=8, unit=None, desc="", minv=None,
          maxv=None, steps=None, options=None, custom=None, overrides=None,
          decimals=None, mappings=None):
    defaults = {}
    if unit:
        defaults["unit"] = unit
    if minv is not None:
        defaults["min"] = minv
    if maxv is not None:
        defaults["max"] = maxv
    if decimals is not None:
        defaults["decimals"] = decimals
    if steps:
        defaults["thresholds"] = thresholds(steps)
    if mappings:
        defaults["mappings"] = mappings
    if custom:
        defaults["custom"] = custom
    if kind == "timeseries":
        defaults.setdefault("custom", {}).setdefault("lineWidth", 1)
        defaults["custom"].setdefault("fillOpacity", 10)
        defaults["custom"].setdefault("showPoints", "never")
        if steps:
            defaults["custom"]["thresholdsStyle"] = {"mode": "line+area"}
            defaults["color"] = {"mode": "palette-classic"}
    if kind in ("stat", "gauge", "bargauge") and steps:
        defaults["color"] = {"mode": "thresholds"}
    refs = "ABCDEFGH"
    tg = []
    for i, t in enumerate(targets):
        t = dict(t)
        t["refId"] = refs[i]
        tg.append(t)
    p = {"id": L.pid(), "type": kind, "title": title, "description": desc,
         "datasource": DS, "gridPos": L.place(w, h), "targets": tg,
         "fieldConfig": {"defaults": defaults,
                         "overrides": overrides if overrides is not None else []},
         "options": options or {}}
    if kind == "timeseries" and not options:
        p["options"] = {"legend": {"displayMode": "table", "placement": "bottom",
                                   "calcs": ["lastNotNull", "max"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}}
    return p


def row(L, title):
    L.newline()
    p = {"id": L.pid(), "type": "row", "title": title, "collapsed": False,
         "gridPos": {"x": 0, "y": L.y, "w": 24, "h": 1}, "panels": []}
    L.y += 1
    return p


def variables(with_color=True):
    v = [
        {"name": "datasource", "label": "Datasource", "type": "datasource",
         "query": "prometheus", "current": {"text": "Prometheus", "value": "prometheus"},
         "hide": 0, "refresh": 1, "options": [], "regex": ""},
        {"name": "service", "label": "Service", "type": "query", "datasource": DS,
         "query": {"query": "label_values(switchyard_green_weight_percent, service)",
                   "refId": "service"},
         "definition": "label_values(switchyard_green_weight_percent, service)",
         "multi": True, "includeAll": True, "allValue": ".*",
         "current": {"text": ["All"], "value": ["$__all"]}, "refresh": 2, "sort": 0,
         "hide": 0, "options": [], "regex": ""},
    ]
    if with_color:
        v.append({"name": "color", "label": "Color", "type": "custom",
                  "query": "blue,green", "multi": True, "includeAll": True,
                  "allValue": "blue|green",
                  "current": {"text": ["All"], "value": ["$__all"]}, "hide": 0,
                  "options": [{"text": "All", "value": "$__all", "selected": True},
                              {"text": "blue", "value": "blue", "selected": False},
                              {"text": "green", "value": "green", "selected": False}]})
    return {"list": v}


def dashboard(uid, title, desc, refresh, panels, tags, time_from="now-6h", color_var=True):
    return {
        "uid": uid, "title": title, "description": desc, "tags": ["switchyard"] + tags,
        "editable": False, "graphTooltip": 1, "refresh": refresh,
        "schemaVersion": 39, "version": 1, "timezone": "utc",
        "time": {"from": time_from, "to": "now"},
        "timepicker": {"refresh_intervals": ["10s", "30s", "1m", "5m", "15m"]},
        "templating": variables(color_var),
        "annotations": {"list": [
            {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
             "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
             "name": "Annotations & Alerts", "type": "dashboard"},
            {"name": "Rollbacks", "datasource": DS, "enable": True,
             "iconColor": "red", "step": "30s",
             "expr": "increase(switchyard_rollbacks_total{" + SEL + "}[1m]) > 0",
             "titleFormat": "Rollback {{service}}", "textFormat": "trigger={{trigger}}",
             "tagKeys": "service,trigger"},
        ]},
        "links": [{"title": "Switchyard", "type": "dashboards", "tags": ["switchyard"],
                   "asDropdown": True, "includeVars": True, "keepTime": True}],
        "panels": panels,
    }


STATE_MAPPINGS = [{"type": "value", "options": {
    "0": {"text": "stable", "color": "blue", "index": 0},
    "1": {"text": "canary", "color": "yellow", "index": 1},
    "2": {"text": "promoted", "color": "green", "index": 2},
    "3": {"text": "rolled_back", "color": "red", "index": 3},
    "4": {"text": "paused", "color": "purple", "index": 4}}}]
# One number per service from the one-hot switchyard_service_state gauge:
# keep the series that are 1 and multiply by the state's code.
STATE_EXPR = ("max by (service) ("
              "(switchyard_service_state{" + SEL + ', state="canary"} == 1) * 1'
              " or (switchyard_service_state{" + SEL + ', state="promoted"} == 1) * 2'
              " or (switchyard_service_state{" + SEL + ', state="rolled_back"} == 1) * 3'
              " or (switchyard_service_state{" + SEL + ', state="paused"} == 1) * 4'
              " or (switchyard_service_state{" + SEL + ', state="stable"} == 1) * 0)')


def state_timeline(L, w=24, h=6):
    return panel(L, "state-timeline", "Service state", [target(STATE_EXPR, "{{service}}")],
                 w=w, h=h, mappings=STATE_MAPPINGS,
                 desc="stable / canary / promoted / rolled_back / paused, from switchyard_service_state.",
                 custom={"fillOpacity": 80, "lineWidth": 0},
                 options={"showValue": "auto", "mergeValues": True, "rowHeight": 0.8,
                          "legend": {"showLegend": False}})


# ------------------------------------------------------------ overview
def constitutional_overview():
    L = Layout()
    ps = []
    ps.append(row(L, "Constitutional compliance (target >= 95 %)"))
    ps.append(panel(L, "stat", "Green compliance (window)",
                    [target("switchyard_window_compliance{" + SEL + ', color="green"}'
                            " and on (service, color) switchyard_window_samples > 0",
                            "{{service}}", instant=True)],
                    w=10, h=6, unit="percentunit", decimals=1,
                    steps=[("red", None), ("orange", 0.95), ("green", 0.97)],
                    desc="Windowed compliance of green per service (only where green has samples).",
                    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background",
                             "graphMode": "area", "textMode": "value_and_name"}))
    ps.append(panel(L, "stat", "Violations (hash mismatches, range)",
                    [target("sum(increase(switchyard_hash_mismatches_total{" + SEL + "}[$__range]))",
                            instant=True)],
                    w=5, h=6, unit="short", decimals=0,
                    steps=[("green", None), ("red", 1)],
                    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}))
    ps.append(panel(L, "stat", "Migration",
                    [target("max(switchyard_migration_active)", instant=True)],
                    w=4, h=6,
                    mappings=[{"type": "value", "options": {
                        "0": {"text": "idle", "color": "blue"},
                        "1": {"text": "ACTIVE", "color": "yellow"}}}],
                    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}))
    ps.append(panel(L, "stat", "Rollbacks (range)",
                    [target("sum(increase(switchyard_rollbacks_total{" + SEL + "}[$__range]))",
                            instant=True)],
                    w=5, h=6, decimals=0, steps=[("green", None), ("red", 1)],
                    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}))
    ps.append(panel(L, "timeseries", "Compliance score by service and color",
                    [target("switchyard_window_compliance{" + SELC + "}"
                            " and on (service, color) switchyard_window_samples > 0",
                            "{{service}} {{color}}")],
                    w=16, h=9, unit="percentunit", minv=0.8, maxv=1,
                    steps=[("red", None), ("transparent", 0.95)],
                    desc="switchyard_window_compliance over control.window (5m). Red band: below 95 %."))
    ps.append(panel(L, "bargauge", "Principle breakdown (latest)",
                    [target("(sum by (principle) (rate(switchyard_principle_compliance_sum{" + SELC + "}[5m])) / sum by (principle) (rate(switchyard_principle_compliance_count{" + SELC + "}[5m])))",
                            "{{principle}}", instant=True)],
                    w=8, h=9, unit="percentunit", minv=0, maxv=1,
                    steps=[("red", None), ("orange", 0.9), ("green", 0.95)],
                    desc="Per-principle adherence (spec 4.1: alert < 90 % for any principle). "
                         "Empty when upstreams do not send the per-principle header.",
                    options={"orientation": "horizontal", "displayMode": "gradient",
                             "reduceOptions": {"calcs": ["lastNotNull"]}, "showUnfilled": True}))
    ps.append(row(L, "Violations and principles"))
    ps.append(panel(L, "timeseries", "Violation count (hash mismatches / 5m)",
                    [target("sum by (service, color) (increase(switchyard_hash_mismatches_total{"
                            + SELC + "}[5m]))", "{{service}} {{color}}")],
                    w=12, h=8, unit="short", decimals=0,
                    custom={"drawStyle": "bars", "fillOpacity": 80}, overrides=COLOR_OVERRIDES))
    ps.append(panel(L, "timeseries", "Principle adherence over time",
                    [target("(sum by (service, principle) (rate(switchyard_principle_compliance_sum{" + SELC + "}[5m])) / sum by (service, principle) (rate(switchyard_principle_compliance_count{" + SELC + "}[5m])))",
                            "{{service}} {{principle}}")],
                    w=12, h=8, unit="percentunit", maxv=1,
                    steps=[("red", None), ("transparent", 0.9)]))
    ps.append(state_timeline(L, w=16, h=7))
    ps.append(panel(L, "bargauge", "Green traffic weight",
                    [target("switchyard_green_weight_percent{" + SEL + "}", "{{service}}", instant=True)],
                    w=8, h=7, unit="percent", minv=0, maxv=100,
                    steps=[("blue", None), ("green", 1)],
                    options={"orientation": "horizontal", "displayMode": "basic",
                             "reduceOptions": {"calcs": ["lastNotNull"]}, "showUnfilled": True}))
    return dashboard("switchyard-constitutional-overview", "Switchyard / Constitutional overview",
                     "Constitutional compliance, violations (hash mismatches) and per-principle breakdown (spec 4.1).",
                     "30s", ps, ["constitutional"])


# ------------------------------------------------------------ violations
def violations():
    L = Layout()
    ps = []
    ps.append(row(L, "Violation trends"))
    ps.append(panel(L, "timeseries", "Hash mismatches per second",
                    [target("sum by (service, color) (rate(switchyard_hash_mismatches_total{"
                            + SELC + "}[$__rate_interval]))", "{{service}} {{color}}")],
                    w=12, h=8, unit="reqps", overrides=COLOR_OVERRIDES))
    ps.append(panel(L, "timeseries", "Services below 95 % compliance",
                    [target("count by (color) ((switchyard_window_compliance{" + SELC + "} < 0.95)"
                            " and on (service, color) switchyard_window_samples > 0)", "{{color}}")],
                    w=12, h=8, unit="short", decimals=0, overrides=COLOR_OVERRIDES,
                    custom={"drawStyle": "bars", "fillOpacity": 70}))
    ps.append(panel(L, "timeseries", "Principles below 90 %",
                    [target("count by (service) ((sum by (service, principle) (rate(switchyard_principle_compliance_sum{" + SELC + "}[5m])) / sum by (service, principle) (rate(switchyard_principle_compliance_count{" + SELC + "}[5m]))) < 0.9)",
                            "{{service}}")],
                    w=12, h=8, unit="short", decimals=0, custom={"drawStyle": "bars", "fillOpacity": 70}))
    ps.append(panel(L, "timeseries", "Error rate (window)",
                    [target("switchyard_window_error_rate{" + SELC + "}"
                            " and on (service, color) switchyard_window_samples > 0", "{{service}} {{color}}")],
                    w=12, h=8, unit="percentunit", steps=[("transparent", None), ("red", 0.01)]))
    ps.append(row(L, "Violation types"))
    ps.append(panel(L, "piechart", "Rollbacks by trigger (range)",
                    [target("sum by (trigger) (increase(switchyard_rollbacks_total{" + SEL + "}[$__range]))",
                            "{{trigger}}", instant=True)],
                    w=8, h=9, unit="short", decimals=0,
                    options={"pieType": "donut", "reduceOptions": {"calcs": ["lastNotNull"]},
                             "legend": {"displayMode": "table", "placement": "right", "values": ["value"]}}))
    ps.append(panel(L, "bargauge", "Upstream errors by kind (range)",
                    [target("sum by (kind) (increase(switchyard_upstream_errors_total{" + SELC + "}[$__range]))",
                            "{{kind}}", instant=True)],
                    w=8, h=9, unit="short", decimals=0, steps=[("green", None), ("orange", 1)],
                    options={"orientation": "horizontal", "displayMode": "gradient",
                             "reduceOptions": {"calcs": ["lastNotNull"]}}))
    ps.append(panel(L, "bargauge", "Responses by status class (range)",
                    [target("sum by (status_class) (increase(switchyard_requests_total{" + SELC + "}[$__range]))",
                            "{{status_class}}", instant=True)],
                    w=8, h=9, unit="short", decimals=0,
                    options={"orientation": "horizontal", "displayMode": "gradient",
                             "reduceOptions": {"calcs": ["lastNotNull"]}}))
    ps.append(row(L, "Resolution status"))
    ps.append(state_timeline(L, w=24, h=7))
    ps.append(panel(L, "timeseries", "Traffic redirection: green weight",
                    [target("switchyard_green_weight_percent{" + SEL + "}", "{{service}}")],
                    w=12, h=8, unit="percent", minv=0, maxv=100,
                    custom={"lineInterpolation": "stepAfter", "fillOpacity": 10},
                    desc="A rollback sets green to 0 %: the step down confirms redirection to blue."))
    ps.append(panel(L, "table", "Rollbacks by service and trigger (range)",
                    [target("sum by (service, trigger) (increase(switchyard_rollbacks_total{" + SEL +
                            "}[$__range])) > 0", instant=True, fmt="table")],
                    w=12, h=8, decimals=0,
                    options={"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]}))
    return dashboard("switchyard-violations", "Switchyard / Constitutional violations",
                     "Violation trends, types and resolution (spec 4.1 constitutional_violations).",
                     "1m", ps, ["constitutional", "violations"], time_from="now-24h")


# ------------------------------------------------------------ audit
def audit():
    L = Layout()
    ps = []
    ps.append(row(L, "Decision trail"))
    ps.append(panel(L, "timeseries", "Control-loop decisions",
                    [target("sum by (decision) (increase(switchyard_control_decisions_total{" + SEL +
                            "}[$__rate_interval]))", "{{decision}}")],
                    w=16, h=9, unit="short", decimals=0,
                    custom={"drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal"}},
                    overrides=[
                        {"matcher": {"id": "byName", "options": n},
                         "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": c}}]}
                        for n, c in (("hold", "blue"), ("advance", "green"),
                                     ("rollback", "red"), ("inconclusive", "yellow"))]))
    ps.append(panel(L, "table", "Decisions by service (range)",
                    [target("sum by (service, decision) (increase(switchyard_control_decisions_total{"
                            + SEL + "}[$__range]))", instant=True, fmt="table")],
                    w=8, h=9, decimals=0,
                    options={"showHeader": True},
                    ))
    ps.append(panel(L, "timeseries", "Rollout step (0-based, -1 = no plan)",
                    [target("switchyard_rollout_step{" + SEL + "}", "{{service}}")],
                    w=12, h=8, decimals=0, custom={"lineInterpolation": "stepAfter"}))
    ps.append(panel(L, "timeseries", "Green weight over time",
                    [target("switchyard_green_weight_percent{" + SEL + "}", "{{service}}")],
                    w=12, h=8, unit="percent", minv=0, maxv=100,
                    custom={"lineInterpolation": "stepAfter"}))
    ps.append(row(L, "Rollbacks and incidents"))
    ps.append(panel(L, "timeseries", "Rollbacks (incidents) over time",
                    [target("sum by (service, trigger) (increase(switchyard_rollbacks_total{" + SEL +
                            "}[$__rate_interval]))", "{{service}} / {{trigger}}")],
                    w=12, h=8, unit="short", decimals=0, custom={"drawStyle": "bars", "fillOpacity": 80}))
    ps.append(panel(L, "timeseries", "Rollback decision -> swap time",
                    [target("histogram_quantile(0.5, sum by (le) (rate(switchyard_rollback_swap_seconds_bucket[$__range])))", "p50"),
                     target("histogram_quantile(0.99, sum by (le) (rate(switchyard_rollback_swap_seconds_bucket[$__range])))", "p99"),
                     target("max(increase(switchyard_rollback_swap_seconds_sum[$__range]) / increase(switchyard_rollback_swap_seconds_count[$__range]))", "mean")],
                    w=12, h=8, unit="s", steps=[("transparent", None), ("red", 120)],
                    desc="Spec 3.1: rollback execution < 2 minutes."))
    ps.append(row(L, "Compliance history"))
    ps.append(panel(L, "timeseries", "Compliance history",
                    [target("switchyard_window_compliance{" + SELC + "}"
                            " and on (service, color) switchyard_window_samples > 0", "{{service}} {{color}}")],
                    w=24, h=8, unit="percentunit", maxv=1, steps=[("red", None), ("transparent", 0.95)]))
    ps.append(row(L, "Configuration and notifications"))
    ps.append(panel(L, "stat", "Config generation",
                    [target("max(switchyard_config_generation)", instant=True)],
                    w=6, h=6, decimals=0,
                    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "graphMode": "area"}))
    ps.append(panel(L, "timeseries", "Config reloads",
                    [target("sum by (result) (increase(switchyard_config_reloads_total[$__rate_interval]))",
                            "{{result}}")],
                    w=9, h=6, decimals=0, custom={"drawStyle": "bars", "fillOpacity": 80},
                    overrides=[{"matcher": {"id": "byName", "options": "error"},
                                "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}}]}]))
    ps.append(panel(L, "timeseries", "Alert notifications",
                    [target("sum by (severity, result) (increase(switchyard_alerts_total[$__rate_interval]))",
                            "{{severity}} {{result}}")],
                    w=9, h=6, decimals=0, custom={"drawStyle": "bars", "fillOpacity": 80}))
    return dashboard("switchyard-audit", "Switchyard / Constitutional audit",
                     "Decision trail, rollbacks and incidents, compliance history (spec 4.1 constitutional_audit).",
                     "5m", ps, ["constitutional", "audit"], time_from="now-7d", color_var=True)


# ------------------------------------------------------------ performance
def performance():
    L = Layout()
    ps = []
    ps.append(row(L, "Latency (window, per service and color)"))
    for q, thr, w in (("p50", None, 12), ("p95", 2, 12), ("p99", 5, 12), ("max", None, 12)):
        ps.append(panel(L, "timeseries", f"{q} latency",
                        [target(f"(switchyard_window_{q}_seconds{{{SELC}}}"
                                " and on (service, color) switchyard_window_samples > 0)" + ROLE,
                                ROLE_LEGEND)],
                        w=w, h=8, unit="s",
                        steps=[("transparent", None), ("red", thr)] if thr else None,
                        desc=f"switchyard_window_{q}_seconds by role and release" + (f"; alert > {thr}s" if thr else "")))
    ps.append(panel(L, "timeseries", "p95 from request histogram",
                    [target("histogram_quantile(0.95, sum by (le, service, color) (rate("
                            "switchyard_request_duration_seconds_bucket{" + SELC + "}[$__rate_interval])))",
                            "{{service}} {{color}}")],
                    w=24, h=8, unit="s", steps=[("transparent", None), ("red", 2)],
                    desc="Computed by Prometheus from switchyard_request_duration_seconds buckets (cross-check of the window gauge)."))
    ps.append(row(L, "Throughput"))
    ps.append(panel(L, "timeseries", "Requests per second",
                    [target("sum by (service, color) (rate(switchyard_requests_total{" + SELC +
                            "}[$__rate_interval]))", "{{service}} {{color}}")],
                    w=12, h=8, unit="reqps", overrides=COLOR_OVERRIDES,
                    custom={"stacking": {"mode": "normal"}, "fillOpacity": 30}))
    ps.append(panel(L, "stat", "Total RPS (target >= 1000)",
                    [target("sum(switchyard_window_rps{" + SELC + "})", instant=True)],
                    w=4, h=8, unit="reqps", steps=[("orange", None), ("green", 1000)],
                    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background",
                             "graphMode": "area"}))
    ps.append(panel(L, "timeseries", "In-flight requests",
                    [target("switchyard_in_flight_requests{" + SEL + "}", "{{service}}")],
                    w=8, h=8, unit="short"))
    ps.append(panel(L, "timeseries", "Window RPS",
                    [target("switchyard_window_rps{" + SELC + "}", "{{service}} {{color}}")],
                    w=12, h=8, unit="reqps"))
    ps.append(panel(L, "timeseries", "Candidate share over time",
                    [target("switchyard_candidate_weight_percent{" + SEL + "}", "{{service}} candidate"),
                     target("switchyard_green_weight_percent{" + SEL + "}", "{{service}} green")],
                    w=12, h=8, unit="percent", minv=0, maxv=100,
                    desc="The candidate's share whichever color it runs in; green's share for dashboards made before colors alternated.",
                    custom={"lineInterpolation": "stepAfter"}))
    ps.append(row(L, "Errors and availability"))
    ps.append(panel(L, "timeseries", "Error rate (window)",
                    [target("(switchyard_window_error_rate{" + SELC + "}"
                            " and on (service, color) switchyard_window_samples > 0)" + ROLE, ROLE_LEGEND)],
                    w=8, h=8, unit="percentunit", steps=[("transparent", None), ("red", 0.01)]))
    ps.append(panel(L, "timeseries", "Availability (window)",
                    [target("(switchyard_window_availability{" + SELC + "}"
                            " and on (service, color) switchyard_window_samples > 0)" + ROLE, ROLE_LEGEND)],
                    w=8, h=8, unit="percentunit", maxv=1, steps=[("red", None), ("transparent", 0.999)]))
    ps.append(panel(L, "timeseries", "5xx / transport errors per second",
                    [target("sum by (service, color) (rate(switchyard_requests_total{" + SELC +
                            ', status_class=~"5xx|error"}[$__rate_interval]))', "{{service}} {{color}}")],
                    w=8, h=8, unit="reqps", overrides=COLOR_OVERRIDES))
    ps.append(panel(L, "timeseries", "Upstream errors by kind",
                    [target("sum by (service, color, kind) (rate(switchyard_upstream_errors_total{" + SELC +
                            "}[$__rate_interval]))", "{{service}} {{color}} {{kind}}")],
                    w=8, h=8, unit="reqps"))
    ps.append(panel(L, "timeseries", "Retries per second",
                    [target("sum by (service) (rate(switchyard_retries_total{" + SEL + "}[$__rate_interval]))",
                            "{{service}}")],
                    w=8, h=8, unit="reqps"))
    ps.append(panel(L, "timeseries", "Stats samples dropped",
                    [target("rate(switchyard_stats_dropped_total[$__rate_interval])", "dropped")],
                    w=8, h=8, unit="short", steps=[("transparent", None), ("orange", 0.001)]))
    return dashboard("switchyard-performance", "Switchyard / Performance",
                     "Latency p50/p95/p99/max, RPS, in-flight, errors per service and color; green weight (spec 4.2).",
                     "10s", ps, ["performance"], time_from="now-1h")



# ------------------------------------------------------------ on call
INFO = "switchyard_release_info{" + SEL + "}"


def oncall():
    L = Layout()
    ps = []
    ps.append(row(L, "Releases by role (switchyard_release_info)"))
    ps.append(panel(L, "table", "Live and candidate releases",
                    [target("max by (service, role, release, color) (" + INFO + ")", instant=True, fmt="table")],
                    w=10, h=8,
                    desc="Each color's role (live, candidate, idle) and release, now. Join any per-color series "
                         "with `* on (service, color) group_left (role, release) switchyard_release_info`.",
                    options={"showHeader": True, "sortBy": [{"displayName": "service", "desc": False}]}))
    ps.append(panel(L, "timeseries", "Candidate share",
                    [target("switchyard_candidate_weight_percent{" + SEL + "}"
                            ' * on (service) group_left (release, color) switchyard_release_info{role="candidate"}',
                            "{{service}} candidate {{release}} ({{color}})")],
                    w=8, h=8, unit="percent", minv=0, maxv=100, custom={"lineInterpolation": "stepAfter"},
                    desc="switchyard_candidate_weight_percent: the release under rollout, in either color."))
    ps.append(panel(L, "stat", "Rollout step (1-based)",
                    [target("switchyard_rollout_step_number{" + SEL + "}", "{{service}} step", instant=True),
                     target("switchyard_rollout_steps{" + SEL + "}", "{{service}} of", instant=True)],
                    w=3, h=8, decimals=0,
                    desc="switchyard_rollout_step_number as switchyard status prints it (step 2/3 is 2); 0 = no step in effect.",
                    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "textMode": "value_and_name"}))
    ps.append(panel(L, "stat", "Migration",
                    [target("max(switchyard_migration_active)", instant=True)],
                    w=3, h=8, mappings=[{"type": "value", "options": {
                        "0": {"text": "idle", "color": "blue", "index": 0},
                        "1": {"text": "active", "color": "orange", "index": 1}}}],
                    desc="1 while a candidate takes traffic or runs its plan, through the last step's hold.",
                    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}))
    ps.append(row(L, "Health score (spec 5.3: > 90)"))
    ps.append(panel(L, "stat", "Health score (whole proxy)",
                    [target('switchyard_system_health_score{service="_overall"}', instant=True)],
                    w=6, h=7, decimals=1, minv=0, maxv=100, steps=[("red", None), ("orange", 90), ("green", 95)],
                    desc="Request-weighted over every service; NaN (no value) without traffic.",
                    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}))
    ps.append(panel(L, "timeseries", "Health score by service",
                    [target("switchyard_system_health_score{" + SEL + ', service!="_overall"}', "{{service}}")],
                    w=18, h=7, minv=0, maxv=100, steps=[("red", None), ("transparent", 90)]))
    ps.append(row(L, "Incidents and paging"))
    ps.append(panel(L, "stat", "Unacknowledged incidents",
                    [target("sum(switchyard_incidents_unacknowledged{" + SEL + "})", instant=True)],
                    w=4, h=7, decimals=0, steps=[("green", None), ("red", 1)],
                    desc="Critical incidents nobody acknowledged (switchyard ack ID --by NAME, or the status page's Ack).",
                    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}))
    ps.append(panel(L, "bargauge", "Unacknowledged by service",
                    [target("switchyard_incidents_unacknowledged{" + SEL + "} > 0", "{{service}}", instant=True)],
                    w=6, h=7, decimals=0, steps=[("green", None), ("red", 1)],
                    options={"orientation": "horizontal", "displayMode": "basic",
                             "reduceOptions": {"calcs": ["lastNotNull"]}}))
    ps.append(panel(L, "timeseries", "Pages and alerts sent",
                    [target("sum by (severity, result) (increase(switchyard_alerts_total[5m]))",
                            "{{severity}} {{result}}")],
                    w=8, h=7, unit="short",
                    desc="Alert webhook deliveries by severity and result (failed deliveries page nobody)."))
    ps.append(panel(L, "stat", "Live endpoints up",
                    [target('sum by (service) (switchyard_endpoint_up{' + SEL + ', role="live"})', "{{service}}",
                            instant=True)],
                    w=6, h=7, decimals=0, steps=[("red", None), ("green", 1)],
                    desc="0 = the live pool is down: every request fails and no rollback helps (SwitchyardLivePoolDown).",
                    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background",
                             "textMode": "value_and_name"}))
    ps.append(row(L, "Fleet (etcd; only with [fleet])"))
    ps.append(panel(L, "stat", "Store up",
                    [target("switchyard_fleet_store_up", "{{instance}}", instant=True)],
                    w=8, h=6, mappings=[{"type": "value", "options": {
                        "0": {"text": "unreachable", "color": "red", "index": 0},
                        "1": {"text": "up", "color": "green", "index": 1}}}],
                    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background",
                             "textMode": "value_and_name"}))
    ps.append(panel(L, "stat", "Leader",
                    [target("switchyard_fleet_leader", "{{instance}}", instant=True)],
                    w=8, h=6, mappings=[{"type": "value", "options": {
                        "0": {"text": "follower", "color": "blue", "index": 0},
                        "1": {"text": "leader", "color": "green", "index": 1}}}],
                    desc="Exactly one replica should lead (SwitchyardFleetNoLeader fires when none does).",
                    options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background",
                             "textMode": "value_and_name"}))
    ps.append(panel(L, "stat", "Replicas",
                    [target("max(switchyard_fleet_replicas)", instant=True)],
                    w=4, h=6, decimals=0,
                    options={"reduceOptions": {"calcs": ["lastNotNull"]}}))
    ps.append(panel(L, "stat", "Apply lag p95",
                    [target("histogram_quantile(0.95, sum by (le) (rate(switchyard_fleet_apply_lag_seconds_bucket[5m])))",
                            instant=True)],
                    w=4, h=6, unit="s", steps=[("green", None), ("orange", 1)],
                    options={"reduceOptions": {"calcs": ["lastNotNull"]}}))
    return dashboard("switchyard-oncall", "Switchyard - On call: releases, health, incidents, fleet",
                     "Which release is live and which is the candidate, the health score, unacknowledged "
                     "incidents and paging, the live pool's endpoints, and the fleet (store, leader, replicas).",
                     "30s", ps, ["oncall"], time_from="now-3h", color_var=False)

DASHBOARDS = {
    "switchyard-constitutional-overview.json": constitutional_overview,
    "switchyard-violations.json": violations,
    "switchyard-audit.json": audit,
    "switchyard-performance.json": performance,
    "switchyard-oncall.json": oncall,
}


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    for name, fn in DASHBOARDS.items():
        text = json.dumps(fn(), indent=2, sort_keys=False) + "\n"
        path = OUT / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("stale dashboards (run python3 docker/grafana/gen_dashboards.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
