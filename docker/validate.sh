#!/usr/bin/env bash
# Offline validation of everything under docker/ (no Docker engine, no cluster).
# Run from the repository root: docker/validate.sh
set -euo pipefail

cd "$(git rev-parse --show-toplevel 2>/dev/null || pwd)"
[[ -f docker/compose.yaml ]] || { echo "run from the repository root" >&2; exit 2; }

step() { printf '\n== %s\n' "$*"; }
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

# ---------------------------------------------------------------- tools
apt_missing=()
command -v docker-compose >/dev/null 2>&1 || apt_missing+=(docker-compose)
command -v promtool >/dev/null 2>&1 || apt_missing+=(prometheus)
command -v amtool >/dev/null 2>&1 || apt_missing+=(prometheus-alertmanager)
if ((${#apt_missing[@]})); then
  step "installing ${apt_missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi
if ! python3 -c 'import yaml, tomllib' >/dev/null 2>&1; then
  step "installing pyyaml"
  python3 -m pip install --quiet pyyaml
fi

# ---------------------------------------------------------------- compose
step "docker-compose config"
docker-compose -f docker/compose.yaml config -q
echo "compose.yaml OK ($(docker-compose -f docker/compose.yaml config --services | wc -l) services)"
python3 - <<'PY'
import tomllib
cfg = tomllib.load(open("docker/switchyard.toml", "rb"))
names = [s["name"] for s in cfg["services"]]
assert names == cfg["rollout"]["order"] == ["auth", "ac", "integrity", "fv", "gs", "pgc", "ec"], names
assert cfg["constitutional_hash"] == "cdd01ef066bc6cf2"
svc = {s["name"]: s for s in cfg["services"]}
# The spec's per-service triggers: auth's JWT failures (401) and ac's inference failures > 0.1 %.
assert any(401 in t["status"] and t["above"] == 0.001 for t in svc["auth"]["triggers"]["status_rate"]), svc["auth"]
assert svc["ac"]["triggers"]["error_rate"]["above"] == 0.001, svc["ac"]
print("switchyard.toml OK")
fleet = tomllib.load(open("docker/switchyard-fleet.toml", "rb"))
f = fleet.pop("fleet")
assert fleet == cfg, "switchyard-fleet.toml must equal switchyard.toml plus [fleet]"
assert f["store"] == "etcd" and f["endpoints"] == ["http://etcd:2379"], f
print("switchyard-fleet.toml OK (switchyard.toml + [fleet])")
PY
echo "fleet profile: $(docker-compose -f docker/compose.yaml --profile fleet config --services | grep -c '^switchyard-') replicas"

# ---------------------------------------------------------------- traces and logs
step "jaeger + vector (compose), [tracing] and [access_log]"
python3 docker/check_observability.py

# ---------------------------------------------------------------- prometheus
step "promtool check config"
promtool check config docker/prometheus/prometheus.yml
step "promtool check rules"
promtool check rules docker/prometheus/alerts.yml
step "promtool test rules"
promtool test rules docker/prometheus/alerts_test.yml

# ---------------------------------------------------------------- alertmanager
step "amtool check-config"
am=docker/alertmanager/alertmanager.yml
amtool check-config "$am"
step "alertmanager routes"
route() { # expected receiver, then labels
  local want=$1; shift
  local got
  got=$(amtool config routes test --config.file="$am" "$@" 2>/dev/null)
  [[ $got == "$want" ]] || { echo "route for $*: got '$got', want '$want'" >&2; exit 1; }
  echo "$* -> $got"
}
route critical alertname=SwitchyardRollback severity=critical service=ac
route high alertname=SwitchyardP95LatencyHigh severity=high service=ac color=green role=candidate
route critical alertname=SwitchyardLivePoolDown severity=critical service=ac color=blue
route monitoring alertname=SwitchyardConfigReloadFailed severity=medium
route dashboards-only alertname=SwitchyardThroughputLow severity=info service=ac
route escalation-team-lead alertname=SwitchyardIncidentUnacknowledged severity=critical escalation=team-lead service=ac
route escalation-eng-manager alertname=SwitchyardIncidentUnacknowledged severity=critical escalation=eng-manager service=ac
route escalation-director alertname=SwitchyardIncidentUnacknowledged severity=critical escalation=director service=ac
python3 - "$am" <<'PY'
import sys, yaml
am = yaml.safe_load(open(sys.argv[1]))
rules = yaml.safe_load(open("docker/prometheus/alerts.yml"))
names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
for inh in am["inhibit_rules"]:
    for m in inh["target_matchers"]:
        if m.startswith("alertname=~"):
            for n in m.split('"')[1].split("|"):
                assert n in names, f"inhibit rule names unknown alert {n}"
assert any('alertname="SwitchyardRollback"' in m for i in am["inhibit_rules"] for m in i["source_matchers"])
print("inhibition names only alerts defined in alerts.yml")
PY
am_bin=$(command -v prometheus-alertmanager || command -v alertmanager || true)
if [[ -n $am_bin ]]; then
  step "alertmanager inhibition (live, loopback)"
  am_dir=$(mktemp -d)
  am_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$am_bin" --config.file="$am" --storage.path="$am_dir" --web.listen-address="127.0.0.1:$am_port" \
    --cluster.listen-address= >"$am_dir/log" 2>&1 &
  am_pid=$!
  trap 'kill $am_pid 2>/dev/null || true; rm -rf "$am_dir"' EXIT
  python3 - "$am_port" <<'PY'
import json, sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}/api/v2/alerts"
def alert(name, sev, service, **extra):
    return {"labels": {"alertname": name, "severity": sev, "service": service, **extra}}
fired = [alert("SwitchyardRollback", "critical", "ac", trigger="error_rate"),
         alert("SwitchyardErrorRateHigh", "high", "ac", color="blue", role="candidate"),
         alert("SwitchyardErrorRateHigh", "high", "ac", color="green", role="live"),
         alert("SwitchyardErrorRateHigh", "high", "gs", color="blue", role="candidate")]
for _ in range(50):
    try:
        req = urllib.request.Request(base, json.dumps(fired).encode(), {"content-type": "application/json"})
        urllib.request.urlopen(req, timeout=2)
        break
    except OSError:
        time.sleep(0.2)
want = {("SwitchyardRollback", "ac", None): "active", ("SwitchyardErrorRateHigh", "ac", "blue"): "suppressed",
        ("SwitchyardErrorRateHigh", "ac", "green"): "active", ("SwitchyardErrorRateHigh", "gs", "blue"): "active"}
for _ in range(50):
    got = {(a["labels"]["alertname"], a["labels"]["service"], a["labels"].get("color")): a["status"]["state"]
           for a in json.load(urllib.request.urlopen(base, timeout=2))}
    if got == want:
        break
    time.sleep(0.2)
assert got == want, f"inhibition: got {got}, want {want}"
print("rollback of ac suppresses its candidate's (blue) per-trigger alert; ac's live release and gs stay active")
PY
  kill $am_pid 2>/dev/null || true
fi

# ---------------------------------------------------------------- grafana
step "grafana dashboards"
for f in docker/grafana/dashboards/*.json; do
  python3 -m json.tool "$f" >/dev/null
  echo "valid JSON: $f"
done
n=$(ls docker/grafana/dashboards/*.json | wc -l)
[[ $n -eq 5 ]] || { echo "expected 5 dashboards, found $n" >&2; exit 1; }
python3 docker/grafana/gen_dashboards.py --check
for f in docker/grafana/provisioning/*/*.yaml; do
  python3 -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' "$f"
  echo "valid YAML: $f"
done

# ---------------------------------------------------------------- metric names
step "metric names (docker/metric-names.txt) and dashboard PromQL"
python3 docker/check_metric_names.py

# ---------------------------------------------------------------- k8s
step "kubernetes manifests"
python3 docker/k8s/check_manifests.py
python3 docker/k8s/check_manifests.py docker/k8s/fleet
python3 docker/k8s/check_manifests.py docker/k8s/generic

# ---------------------------------------------------------------- status page
step "src/admin/status.html"
python3 - <<'PY'
import re
html = open("src/admin/status.html", encoding="utf-8").read()
bad = re.findall(r'''(?:src|href)\s*=\s*["'](?:https?:)?//[^"']+''', html)
bad += re.findall(r'''@import|url\(\s*["']?(?:https?:)?//''', html)
assert not bad, f"external assets: {bad}"
for needle in ('fetch(', '/status', '/incidents', 'data-service', 'data-field'):
    assert needle in html, f"missing {needle!r}"
print(f"status.html OK ({len(html)} bytes, self-contained)")
PY

printf '\nALL CHECKS PASSED\n'
