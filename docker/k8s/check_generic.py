"""Structural checks for docker/k8s/generic: the proxy as its own Deployment in front of separate
blue and green Deployments of one service. Called by check_manifests.py for that directory.

Checks: every Deployment's selector matches its template; every Service selects the pods of
exactly one Deployment and targets a declared port; the proxy's config (ConfigMap) parses, its
pools name the web-blue / web-green Services on their ports, and its [fleet] endpoints are the
etcd StatefulSet's members; the proxy runs >= 2 replicas with SWITCHYARD_REPLICA from the pod
name, SWITCHYARD_STATE_DIR and the admin token from a Secret; a NetworkPolicy admits only the
proxy pods (and etcd peers) to etcd, one admits only the proxy to the web pods, and the admin
port 9900 is limited to Prometheus / the monitoring namespace; README.md documents the layout.
"""
import tomllib


def run(DIR, docs, err, matches):
    by_kind = {}
    for _, where, d in docs:
        by_kind.setdefault(d.get("kind"), []).append((where, d))
    for where, k in by_kind.get("Kustomization", []):
        for r in k.get("resources", []):
            if not (DIR / r).exists():
                err(f"{where}: resource {r} does not exist")
    pods = {}  # workload name -> (template labels, container ports by name and number)
    for kind in ("Deployment", "StatefulSet"):
        for where, d in by_kind.get(kind, []):
            spec = d["spec"]
            labels = spec["template"]["metadata"].get("labels", {})
            if not matches(spec.get("selector", {}).get("matchLabels"), labels):
                err(f"{where}: selector.matchLabels does not match template labels")
            ports = {}
            for c in spec["template"]["spec"].get("containers", []):
                for p in c.get("ports", []):
                    ports[p.get("name")] = p["containerPort"]
                    ports[p["containerPort"]] = p["containerPort"]
            pods[d["metadata"]["name"]] = (labels, ports, d)
    services = {}
    for where, s in by_kind.get("Service", []):
        sel = s["spec"].get("selector")
        owners = [n for n, (labels, _, _) in pods.items() if matches(sel, labels)]
        if len(owners) != 1:
            err(f"{where}: Service {s['metadata']['name']} must select exactly one workload's pods, selects {owners}")
            continue
        ports = pods[owners[0]][1]
        for p in s["spec"].get("ports", []):
            t = p.get("targetPort", p.get("port"))
            if t not in ports:
                err(f"{where}: targetPort {t!r} is not a port of {owners[0]}")
        services[s["metadata"]["name"]] = (owners[0], {p["port"] for p in s["spec"]["ports"]})

    proxy = pods.get("switchyard")
    if not proxy:
        err("no Deployment named switchyard")
        return
    _, _, dep = proxy
    if dep["spec"].get("replicas", 1) < 2:
        err("the proxy Deployment should run at least 2 replicas (they share state through etcd)")
    c = next((c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "switchyard"), None)
    env = {e["name"]: e for e in (c or {}).get("env", [])}
    if env.get("SWITCHYARD_REPLICA", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        err("SWITCHYARD_REPLICA must come from the pod name")
    if "SWITCHYARD_STATE_DIR" not in env:
        err("SWITCHYARD_STATE_DIR must be set (the last good config is found without reading the file)")
    if "secretKeyRef" not in env.get("SWITCHYARD_ADMIN_TOKEN", {}).get("valueFrom", {}):
        err("SWITCHYARD_ADMIN_TOKEN must come from a Secret")
    for where, wl in [(w, d) for w, d in by_kind.get("Deployment", []) if d["metadata"]["name"].startswith("web-")]:
        if wl["spec"]["template"]["metadata"]["labels"].get("switchyard.color") not in ("blue", "green"):
            err(f"{where}: web Deployments are labelled switchyard.color blue or green")

    cfgs = [d for _, d in by_kind.get("ConfigMap", []) if "switchyard.toml" in (d.get("data") or {})]
    if len(cfgs) != 1:
        err("expected one ConfigMap with switchyard.toml")
        return
    cfg = tomllib.loads(cfgs[0]["data"]["switchyard.toml"])
    for s in cfg.get("services", []):
        for color in ("blue", "green"):
            for ep in s.get(color, {}).get("endpoints", []):
                host, port = ep.rsplit(":", 1)
                owner = services.get(host)
                if not owner or int(port) not in owner[1]:
                    err(f"{s['name']}.{color} endpoint {ep} is not a Service port")
                elif pods[owner[0]][0].get("switchyard.color") != color:
                    err(f"{s['name']}.{color} endpoint {ep} reaches the other color's pods")
        listen = int(s["listen"].rsplit(":", 1)[1])
        if listen not in proxy[1]:
            err(f"{s['name']} listens on {listen}, not a proxy container port")
    etcd = pods.get("etcd")
    fleet = cfg.get("fleet") or {}
    if not etcd or not fleet.get("endpoints"):
        err("[fleet] endpoints and an etcd StatefulSet are required")
    else:
        n = etcd[2]["spec"].get("replicas", 1)
        want = [f"http://etcd-{i}.etcd:2379" for i in range(n)]
        if fleet["endpoints"] != want:
            err(f"[fleet].endpoints {fleet['endpoints']} are not the etcd members {want}")

    policies = [d for _, d in by_kind.get("NetworkPolicy", [])]
    def policy_for(labels):
        return [p for p in policies if matches(p["spec"]["podSelector"].get("matchLabels"), labels)]
    def peers(rule):
        return rule.get("from") or []
    if etcd:
        ps = policy_for(etcd[0])
        if not ps:
            err("no NetworkPolicy selects the etcd pods")
        for p in ps:
            for rule in p["spec"].get("ingress", []):
                ports = {x.get("port") for x in rule.get("ports", [])}
                if not peers(rule):
                    err(f"{p['metadata']['name']}: an etcd rule without `from` admits everyone")
                for peer in peers(rule):
                    m = (peer.get("podSelector") or {}).get("matchLabels")
                    if peer.get("namespaceSelector") or not m:
                        err(f"{p['metadata']['name']}: etcd admits more than pods of this namespace")
                    elif not (matches(m, proxy[0]) or matches(m, etcd[0])):
                        err(f"{p['metadata']['name']}: etcd admits pods other than the proxy and etcd")
                    elif matches(m, proxy[0]) and ports - {2379}:
                        err(f"{p['metadata']['name']}: the proxy needs only the client port 2379")
    for name in ("web-blue", "web-green"):
        if name not in pods:
            err(f"no Deployment {name}")
            continue
        ps = policy_for(pods[name][0])
        ok = ps and all(peers(r) and all(matches((x.get("podSelector") or {}).get("matchLabels"), proxy[0])
                                         for x in peers(r)) for p in ps for r in p["spec"].get("ingress", []))
        if not ok:
            err(f"{name}: a NetworkPolicy must admit only the proxy pods")
    for p in policy_for(proxy[0]):
        for rule in p["spec"].get("ingress", []):
            if any(x.get("port") == 9900 for x in rule.get("ports", [])):
                names = [(x.get("podSelector") or {}).get("matchLabels", {}).get("app.kubernetes.io/name") for x in peers(rule)]
                if "prometheus" not in names:
                    err(f"{p['metadata']['name']}: admin 9900 must be limited to Prometheus / monitoring")
    readme = (DIR.parent / "README.md").read_text()
    if "docker/k8s/generic" not in readme:
        err("README.md does not document docker/k8s/generic")
