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
PY

# ---------------------------------------------------------------- prometheus
step "promtool check config"
promtool check config docker/prometheus/prometheus.yml
step "promtool check rules"
promtool check rules docker/prometheus/alerts.yml
step "promtool test rules"
promtool test rules docker/prometheus/alerts_test.yml

# ---------------------------------------------------------------- grafana
step "grafana dashboards"
for f in docker/grafana/dashboards/*.json; do
  python3 -m json.tool "$f" >/dev/null
  echo "valid JSON: $f"
done
n=$(ls docker/grafana/dashboards/*.json | wc -l)
[[ $n -eq 4 ]] || { echo "expected 4 dashboards, found $n" >&2; exit 1; }
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
