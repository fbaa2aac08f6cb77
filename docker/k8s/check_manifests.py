#!/usr/bin/env python3
"""Offline structural checks for docker/k8s (no cluster, no kubeconform).

Checks: every document has apiVersion/kind/metadata.name; kustomization
resources exist; Deployment selector matches its template labels; container
ports are valid and uniquely named; probes hit declared ports, with liveness
/healthz and readiness /readyz on the admin port 9900 for switchyard; every
volumeMount references a declared volume; the config is mounted as a directory
(no subPath, so ConfigMap updates hot-reload); ConfigMap/PVC/Secret references
resolve; Services select the Deployment's pods and target declared ports (one
per 8000-8006 plus admin 9900); the NetworkPolicy selects the pods and limits
9900 as documented; the embedded switchyard.toml parses and matches the ports
and carries the spec's per-service triggers (auth 401 > 0.1 %, ac errors >
0.1 %) and a [tracing] endpoint with the access log on stdout; blue (the app container) outlives Switchyard's preStop + drain within
the grace period; README.md states the switchyard container's resources as
deployment.yaml sets them.

The fleet variant's etcd must admit only the Switchyard pods (and its own members). The
generic layout (docker/k8s/generic: the proxy in front of separate blue and green
Deployments) has checks of its own, in check_generic.py.

Usage (from the repo root): python3 docker/k8s/check_manifests.py [DIR]
"""
import sys
import tomllib
from pathlib import Path

import yaml

DIR = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
# docker/k8s/fleet: replicas share state through etcd, so no PVC and a [fleet] section.
FLEET = DIR.name == "fleet"
errors = []


def err(msg):
    errors.append(msg)


def load():
    docs = []
    paths = sorted(DIR.glob("*.yaml"))
    if FLEET:  # the admin Secret is documented once, next to the single-replica variant
        paths.append(DIR.parent / "secret.example.yaml")
    for path in paths:
        for i, d in enumerate(yaml.safe_load_all(path.read_text())):
            if d is None:
                continue
            where = f"{path.name}[{i}]"
            for key in ("apiVersion", "kind"):
                if not d.get(key):
                    err(f"{where}: missing {key}")
            if d.get("kind") != "Kustomization" and not (d.get("metadata") or {}).get("name"):
                err(f"{where}: missing metadata.name")
            docs.append((path.name, where, d))
    return docs


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_probe(where, c, kind, path, port_names, port_nums, expect=None):
    p = c.get(kind)
    if not p:
        if expect:
            err(f"{where}: container {c['name']} has no {kind}")
        return
    h = p.get("httpGet") or p.get("tcpSocket")
    if not h:
        if not p.get("exec"):
            err(f"{where}: {c['name']}.{kind} has no handler")
        return
    port = h.get("port")
    if port not in port_names and port not in port_nums:
        err(f"{where}: {c['name']}.{kind} port {port!r} is not a container port")
    if expect:
        want_path, want_port = expect
        if p.get("httpGet", {}).get("path") != want_path:
            err(f"{where}: {c['name']}.{kind} path must be {want_path}")
        resolved = port_names.get(port, port)
        if resolved != want_port:
            err(f"{where}: {c['name']}.{kind} must use port {want_port}, got {resolved}")


def seconds(d):
    """A humantime duration as written in switchyard.toml ("30s", "500ms", "1m")."""
    d = str(d).strip()
    for suffix, mult in (("ms", 0.001), ("s", 1), ("m", 60)):
        if d.endswith(suffix) and d[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(d[: -len(suffix)]) * mult
    raise ValueError(f"unsupported duration {d!r}")


def prestop_sleep(c):
    cmd = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command") or []
    return float(cmd[1]) if cmd[:1] == ["sleep"] and len(cmd) == 2 else None


def check_shutdown(where, pod, drain):
    """Blue must keep serving until Switchyard has drained, all within the grace period."""
    by_name = {c["name"]: c for c in pod.get("containers", [])}
    proxy, app = by_name.get("switchyard"), by_name.get("app")
    if not proxy or not app:
        err(f"{where}: expected containers switchyard and app")
        return
    proxy_wait, app_wait = prestop_sleep(proxy) or 0.0, prestop_sleep(app)
    if app_wait is None:
        err(f"{where}: app (blue) needs a preStop sleep so it is not stopped under the drain")
        return
    if app_wait < proxy_wait + drain:
        err(f"{where}: app preStop {app_wait}s < switchyard preStop {proxy_wait}s + drain {drain}s")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace <= app_wait:
        err(f"{where}: terminationGracePeriodSeconds {grace} leaves blue no time after its preStop {app_wait}s")


def check_readme_resources(where, pod):
    proxy = next((c for c in pod.get("containers", []) if c["name"] == "switchyard"), None)
    if not proxy:
        return
    res = proxy.get("resources", {})
    readme = ((DIR.parent if FLEET else DIR) / "README.md").read_text()  # the fleet variant is documented there too
    want = (f"requests **{res['requests']['cpu']} CPU / {res['requests']['memory']}**",
            f"limits **{res['limits']['cpu']} CPU / {res['limits']['memory']}**")
    for w in want:
        if w not in readme:
            err(f"README.md does not state the switchyard resources as deployment.yaml: missing {w!r}")


def check_triggers(where, cfg):
    svc = {s["name"]: s for s in cfg.get("services", [])}
    auth = (svc.get("auth", {}).get("triggers") or {}).get("status_rate") or []
    if not any(401 in t.get("status", []) and t.get("above") == 0.001 for t in auth):
        err(f"{where}: auth needs triggers.status_rate [401] above 0.001 (spec: JWT failures > 0.1 %)")
    ac = (svc.get("ac", {}).get("triggers") or {}).get("error_rate") or {}
    if ac.get("above") != 0.001:
        err(f"{where}: ac needs triggers.error_rate above 0.001 (spec: inference failures > 0.1 %)")


def check_observability(where, cfg):
    endpoint = str(cfg.get("tracing", {}).get("endpoint", ""))
    if not endpoint.startswith(("http://", "https://")):
        err(f"{where}: [tracing] endpoint must be the OTLP/HTTP collector URL, got {endpoint!r}")
    log = cfg.get("access_log", {})
    if log.get("enabled", True) is not True or "path" in log:
        err(f"{where}: the access log must stay on stdout for the cluster's log agent")


def check_etcd_policy(policies, pod_labels):
    """In the fleet, etcd is reachable only from the Switchyard pods and etcd's own members."""
    etcd = {"app.kubernetes.io/name": "etcd", "app.kubernetes.io/part-of": "acge"}
    selecting = [(w, p) for _, w, p in policies if matches(p["spec"]["podSelector"].get("matchLabels"), etcd)]
    if not selecting:
        err("no NetworkPolicy restricts access to etcd")
    for where, p in selecting:
        for rule in p["spec"].get("ingress", []):
            peers = rule.get("from") or []
            if not peers:
                err(f"{where}: an etcd rule without `from` admits everyone")
            for peer in peers:
                m = (peer.get("podSelector") or {}).get("matchLabels")
                if peer.get("namespaceSelector") or not (matches(m, pod_labels) or matches(m, etcd)):
                    err(f"{where}: etcd admits pods other than Switchyard's and etcd's own")


def main():
    if DIR.name == "generic":
        from check_generic import run
        docs = load()
        run(DIR, docs, err, matches)
        print(f"checked {len(docs)} documents in {DIR}")
        return
    docs = load()
    by_kind = {}
    for fname, where, d in docs:
        by_kind.setdefault(d.get("kind"), []).append((fname, where, d))
    names = lambda k: {d["metadata"]["name"] for _, _, d in by_kind.get(k, [])}

    # kustomization
    for fname, where, k in by_kind.get("Kustomization", []):
        for r in k.get("resources", []):
            if not (DIR / r).exists():
                err(f"{where}: resource {r} does not exist")
        if "secret.example.yaml" in k.get("resources", []):
            err(f"{where}: secret.example.yaml must not be deployed")
    if not by_kind.get("Kustomization"):
        err("no kustomization.yaml")

    deployments = by_kind.get("Deployment", [])
    if len(deployments) != 1:
        err(f"expected exactly one Deployment, found {len(deployments)}")
        return
    _, dwhere, dep = deployments[0]
    spec = dep["spec"]
    tmpl = spec["template"]
    pod_labels = tmpl["metadata"].get("labels", {})
    if not matches(spec.get("selector", {}).get("matchLabels"), pod_labels):
        err(f"{dwhere}: selector.matchLabels does not match template labels")
    pod = tmpl["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    all_ports = {}
    for c in pod.get("containers", []):
        for key in ("name", "image"):
            if not c.get(key):
                err(f"{dwhere}: container without {key}")
        port_names, port_nums = {}, set()
        for p in c.get("ports", []):
            n = p.get("containerPort")
            if not isinstance(n, int) or not 1 <= n <= 65535:
                err(f"{dwhere}: {c['name']} bad containerPort {n!r}")
            if p.get("name"):
                if p["name"] in all_ports or len(p["name"]) > 15:
                    err(f"{dwhere}: port name {p['name']!r} duplicate or > 15 chars")
                port_names[p["name"]] = n
                all_ports[p["name"]] = n
            port_nums.add(n)
        is_proxy = c["name"] == "switchyard"
        check_probe(dwhere, c, "livenessProbe", None, port_names, port_nums,
                    ("/healthz", 9900) if is_proxy else None)
        check_probe(dwhere, c, "readinessProbe", None, port_names, port_nums,
                    ("/readyz", 9900) if is_proxy else None)
        check_probe(dwhere, c, "startupProbe", None, port_names, port_nums)
        mounts = {}
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                err(f"{dwhere}: {c['name']} mounts undeclared volume {m['name']!r}")
            mounts[m["mountPath"]] = m
        for e in c.get("env", []):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref and ref["name"] not in names("Secret"):
                err(f"{dwhere}: env {e['name']} references unknown Secret {ref['name']}")
        if is_proxy:
            if set(port_nums) != set(range(8000, 8007)) | {9900}:
                err(f"{dwhere}: switchyard must expose 8000-8006 and 9900, has {sorted(port_nums)}")
            cfg = mounts.get("/etc/switchyard")
            if not cfg:
                err(f"{dwhere}: config not mounted at /etc/switchyard")
            elif cfg.get("subPath"):
                err(f"{dwhere}: config mount uses subPath (breaks hot reload)")
            elif "configMap" not in volumes.get(cfg["name"], {}):
                err(f"{dwhere}: /etc/switchyard is not a ConfigMap volume")
            st = mounts.get("/var/lib/switchyard")
            want = "emptyDir" if FLEET else "persistentVolumeClaim"
            if not st or want not in volumes.get(st["name"], {}):
                err(f"{dwhere}: /var/lib/switchyard must be a {want}")
            envs = {e["name"] for e in c.get("env", [])}
            if FLEET:
                rep = [e for e in c.get("env", []) if e["name"] == "SWITCHYARD_REPLICA"]
                if not rep or rep[0].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
                    err(f"{dwhere}: SWITCHYARD_REPLICA must come from the pod name (downward API)")
            if "SWITCHYARD_ADMIN_TOKEN" not in envs:
                err(f"{dwhere}: SWITCHYARD_ADMIN_TOKEN env missing")
            res = c.get("resources", {})
            if not (res.get("requests") and res.get("limits")):
                err(f"{dwhere}: switchyard resources requests/limits missing")
            if c.get("args", [])[:1] != ["run"]:
                err(f"{dwhere}: switchyard args must start with run")
    if FLEET:
        if spec.get("replicas") != 3 or spec.get("strategy", {}).get("type") == "Recreate":
            err(f"{dwhere}: the fleet runs replicas: 3 with rolling updates")
        if by_kind.get("PersistentVolumeClaim"):
            err("the fleet variant must not use a (ReadWriteOnce) PVC")
        for _, where, ss in by_kind.get("StatefulSet", []):
            if ss["spec"].get("replicas") != 3:
                err(f"{where}: etcd runs 3 members")
    elif spec.get("replicas") != 1:
        err(f"{dwhere}: the single-replica variant (ReadWriteOnce state) runs replicas: 1")
    for vname, v in volumes.items():
        if "configMap" in v and v["configMap"]["name"] not in names("ConfigMap"):
            err(f"{dwhere}: volume {vname} references unknown ConfigMap")
        if "persistentVolumeClaim" in v and \
                v["persistentVolumeClaim"]["claimName"] not in names("PersistentVolumeClaim"):
            err(f"{dwhere}: volume {vname} references unknown PVC")

    # services
    svc_ports = set()
    for _, where, s in by_kind.get("Service", []):
        if FLEET and s["spec"].get("selector", {}).get("app.kubernetes.io/name") == "etcd":
            continue
        if not matches(s["spec"].get("selector"), pod_labels):
            err(f"{where}: Service {s['metadata']['name']} selector does not match Deployment pods")
        for p in s["spec"].get("ports", []):
            t = p.get("targetPort", p.get("port"))
            if isinstance(t, str) and t not in all_ports:
                err(f"{where}: targetPort {t!r} is not a named container port")
            if isinstance(t, int) and t not in all_ports.values():
                err(f"{where}: targetPort {t} is not a container port")
            svc_ports.add(p["port"])
    if svc_ports != set(range(8000, 8007)) | {9900}:
        err(f"Services must cover 8000-8006 and 9900, cover {sorted(svc_ports)}")

    # network policy
    if FLEET:
        check_etcd_policy(by_kind.get("NetworkPolicy", []), pod_labels)
    for _, where, np in by_kind.get("NetworkPolicy", []):
        if np["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "etcd":
            continue
        if not matches(np["spec"]["podSelector"].get("matchLabels"), pod_labels):
            err(f"{where}: podSelector does not select the Switchyard pods")
        admin_rules = [r for r in np["spec"].get("ingress", [])
                       if any(p.get("port") == 9900 for p in r.get("ports", []))]
        if not admin_rules:
            err(f"{where}: no rule for admin port 9900")
        for r in admin_rules:
            peers = r.get("from") or []
            ok_pod = any((p.get("podSelector") or {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                         == "prometheus" for p in peers)
            ok_ns = any((p.get("namespaceSelector") or {}).get("matchLabels", {})
                        .get("kubernetes.io/metadata.name") == "monitoring" for p in peers)
            if not (peers and ok_pod and ok_ns):
                err(f"{where}: 9900 must be limited to prometheus pods and namespace monitoring")
        for r in np["spec"].get("ingress", []):
            for p in r.get("ports", []):
                lo, hi = p.get("port"), p.get("endPort", p.get("port"))
                if lo <= 9900 <= hi and r not in admin_rules:
                    err(f"{where}: another rule opens 9900")
    if not by_kind.get("NetworkPolicy"):
        err("no NetworkPolicy")

    # embedded config
    for _, where, cm in by_kind.get("ConfigMap", []):
        text = (cm.get("data") or {}).get("switchyard.toml")
        if text is None:
            err(f"{where}: ConfigMap has no switchyard.toml key")
            continue
        try:
            cfg = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            err(f"{where}: switchyard.toml: {e}")
            continue
        if cfg.get("state_dir") != "/var/lib/switchyard":
            err(f"{where}: state_dir must be /var/lib/switchyard")
        if not str(cfg.get("admin", {}).get("listen", "")).endswith(":9900"):
            err(f"{where}: admin.listen must use port 9900")
        listen = {int(s["listen"].rsplit(":", 1)[1]) for s in cfg.get("services", [])}
        if listen != set(range(8000, 8007)):
            err(f"{where}: services must listen on 8000-8006, got {sorted(listen)}")
        fleet = cfg.get("fleet")
        if FLEET and not (fleet and fleet.get("endpoints") and fleet.get("store", "etcd") == "etcd"):
            err(f"{where}: [fleet] with etcd endpoints required")
        if not FLEET and fleet:
            err(f"{where}: [fleet] belongs in docker/k8s/fleet")
        order = cfg.get("rollout", {}).get("order", [])
        if order != [s["name"] for s in cfg.get("services", [])]:
            err(f"{where}: rollout.order does not match services")
        check_triggers(where, cfg)
        check_observability(where, cfg)
        check_shutdown(dwhere, pod, seconds(cfg.get("limits", {}).get("drain_timeout", "30s")))
    check_readme_resources(dwhere, pod)

    print(f"checked {len(docs)} documents in {DIR}")


if __name__ == "__main__":
    main()
    for e in errors:
        print("ERROR: " + e, file=sys.stderr)
    sys.exit(1 if errors else 0)
