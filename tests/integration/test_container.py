"""Tests of container/: the image recipe, the Kubernetes manifests, the systemd unit.

The Kubernetes checks run on what ``kubectl kustomize`` renders (the base in
container/k8s and the overlay container/k8s/overlays/second-cluster): the
checkers below return a list of problems, and the negative tests feed them
deliberately broken objects to show that each check catches what it is for.
The broker is then started on the rendered ConfigMap's configuration (paths
moved to tmp_path, user keys replaced by throw-away ones, the local target
added) and the real OpenSSH client runs a command through it.
"""

from __future__ import annotations

import copy
import os
import pathlib
import posixpath
import re
import shlex
import shutil
import stat
import subprocess

import pytest
import yaml

from conftest import REPO, Broker, free_port, wait_until

CONTAINER = REPO / "container"
K8S = CONTAINER / "k8s"
OVERLAY = K8S / "overlays" / "second-cluster"
CONTAINERFILE = CONTAINER / "Containerfile"
UNIT = CONTAINER / "podgate-broker.service"
VM_CONFIG = CONTAINER / "podgate.yaml.example"

NAMESPACE = "podgate"
SERVICE_ACCOUNT = "podgate"
IMPERSONATION = "podgate-impersonate"
BUILTIN_ADMIN_ROLES = {"cluster-admin", "admin", "edit"}
RUNTIME_PACKAGES = {"libssh-4", "libuv1", "libssl3", "libmsgpackc2", "libncursesw6",
                    "libvterm0", "libyaml-0-2", "libhttp-parser2.9", "libjansson4", "libwslay1",
                    "libcurl4"}
# What a Role may grant the broker: (apiGroup, resource) -> verbs. pods/exec
# "get" is kubectl's WebSocket exec (an HTTP GET) on API servers before 1.35.
ROLE_ALLOWED = {
    ("", "pods"): {"get", "list"},
    ("", "pods/exec"): {"get", "create"},
    ("apps", "deployments"): {"get"},
    ("apps", "statefulsets"): {"get"},
}
EGRESS_ALLOWED = {(53, "UDP"), (53, "TCP"), (443, "TCP"), (6443, "TCP")}
WORKLOAD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}


# ------------------------------------------------------------ rendering

def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed: cannot render the kustomizations")
    return path


def render(directory: pathlib.Path) -> list[dict]:
    r = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, f"kubectl kustomize {directory} failed:\n{r.stderr}"
    objs = [o for o in yaml.safe_load_all(r.stdout) if o is not None]
    assert objs, f"kubectl kustomize {directory} rendered nothing"
    return objs


@pytest.fixture(scope="module")
def base_objs() -> list[dict]:
    return render(K8S)


@pytest.fixture(scope="module")
def overlay_objs() -> list[dict]:
    return render(OVERLAY)


def find(objs, kind, name=None, namespace=None) -> list[dict]:
    return [o for o in objs if o.get("kind") == kind
            and (name is None or o["metadata"]["name"] == name)
            and (namespace is None or o["metadata"].get("namespace") == namespace)]


def one(objs, kind, name=None, namespace=None) -> dict:
    found = find(objs, kind, name, namespace)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def ident(o: dict) -> str:
    ns = o["metadata"].get("namespace")
    return f"{o['kind']} {ns + '/' if ns else ''}{o['metadata']['name']}"


def pod_spec(o: dict) -> dict | None:
    """The pod spec of a workload object (None for other kinds)."""
    kind = o.get("kind")
    if kind not in WORKLOAD_KINDS:
        return None
    spec = o.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec") or {})
    return ((spec.get("template") or {}).get("spec") or {})


def pod_labels(o: dict) -> dict:
    if o["kind"] == "Pod":
        return o["metadata"].get("labels") or {}
    spec = o.get("spec") or {}
    if o["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}


def broker_sts(objs) -> dict:
    return one(objs, "StatefulSet", "podgate", NAMESPACE)


def broker_container(objs) -> dict:
    cs = [c for c in pod_spec(broker_sts(objs))["containers"] if c["name"] == "broker"]
    assert len(cs) == 1, "the StatefulSet has no container named broker"
    return cs[0]


def broker_config(objs) -> dict:
    cm = one(objs, "ConfigMap", "podgate-config", NAMESPACE)
    assert "config.yaml" in (cm.get("data") or {}), "ConfigMap podgate-config has no config.yaml"
    return yaml.safe_load(cm["data"]["config.yaml"])


def config_text(objs) -> str:
    return one(objs, "ConfigMap", "podgate-config", NAMESPACE)["data"]["config.yaml"]


def mounts(container: dict) -> dict[str, dict]:
    return {m["mountPath"]: m for m in container.get("volumeMounts") or []}


def volumes(spec: dict) -> dict[str, dict]:
    return {v["name"]: v for v in spec.get("volumes") or []}


def mount_for(container: dict, path: str) -> dict | None:
    """The volume mount whose mountPath holds path (the longest one)."""
    best = None
    for mp, m in mounts(container).items():
        if path == mp or path.startswith(mp.rstrip("/") + "/"):
            if best is None or len(mp) > len(best["mountPath"]):
                best = m
    return best


# ------------------------------------------------------------ the checkers

def rbac_problems(objs) -> list[str]:
    """Wildcards, grants beyond ROLE_ALLOWED, extra or built-in bindings."""
    problems = []
    defined = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
               for o in objs if o.get("kind") in ("Role", "ClusterRole")}
    for o in objs:
        kind = o.get("kind")
        if kind in ("Role", "ClusterRole"):
            if o.get("aggregationRule"):
                problems.append(f"{ident(o)}: aggregationRule grants whatever others add")
            for rule in o.get("rules") or []:
                for field in ("verbs", "resources", "apiGroups", "resourceNames",
                              "nonResourceURLs"):
                    for v in rule.get(field) or []:
                        if "*" in v:
                            problems.append(f"{ident(o)}: wildcard {v!r} in {field}")
                if rule.get("nonResourceURLs"):
                    problems.append(f"{ident(o)}: nonResourceURLs granted")
                verbs = set(rule.get("verbs") or [])
                for group in rule.get("apiGroups") or [""]:
                    for res in rule.get("resources") or []:
                        if kind == "Role":
                            allowed = ROLE_ALLOWED.get((group, res))
                            if allowed is None:
                                problems.append(f"{ident(o)}: grants on {group}/{res}")
                            elif verbs - allowed:
                                problems.append(f"{ident(o)}: verbs {sorted(verbs - allowed)} on "
                                                f"{group or 'core'}/{res}")
                        else:
                            if (group, res) not in (("", "users"), ("", "groups")) \
                                    or verbs != {"impersonate"}:
                                problems.append(f"{ident(o)}: ClusterRole grants "
                                                f"{sorted(verbs)} on {group or 'core'}/{res}")
                            elif not rule.get("resourceNames"):
                                problems.append(f"{ident(o)}: impersonate on {res} without "
                                                f"resourceNames (any {res[:-1]})")
        elif kind in ("RoleBinding", "ClusterRoleBinding"):
            ref = o.get("roleRef") or {}
            if ref.get("name") in BUILTIN_ADMIN_ROLES:
                problems.append(f"{ident(o)}: bound to the built-in role {ref.get('name')}")
            ns = o["metadata"].get("namespace") if ref.get("kind") == "Role" else None
            if (ref.get("kind"), ns, ref.get("name")) not in defined:
                problems.append(f"{ident(o)}: roleRef {ref.get('kind')} {ref.get('name')} is "
                                f"not one of podgate's roles")
            if kind == "ClusterRoleBinding":
                if o["metadata"]["name"] != IMPERSONATION or ref.get("name") != IMPERSONATION:
                    problems.append(f"{ident(o)}: the only ClusterRoleBinding allowed is "
                                    f"{IMPERSONATION} to ClusterRole {IMPERSONATION}")
                subjects = o.get("subjects") or []
                if subjects != [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT,
                                 "namespace": NAMESPACE}]:
                    problems.append(f"{ident(o)}: subjects {subjects} (expected only the "
                                    f"broker's ServiceAccount)")
    return problems


def security_problems(objs) -> list[str]:
    """Every container of every workload: the restricted security context, limits."""
    problems = []
    workloads = [o for o in objs if pod_spec(o) is not None]
    if not workloads:
        problems.append("no workload rendered")
    for o in workloads:
        spec = pod_spec(o)
        psc = spec.get("securityContext") or {}
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(flag):
                problems.append(f"{ident(o)}: {flag}")
        containers = [("container", c) for c in spec.get("containers") or []] + \
                     [("initContainer", c) for c in spec.get("initContainers") or []]
        if not containers:
            problems.append(f"{ident(o)}: no containers")
        for what, c in containers:
            where = f"{ident(o)} {what} {c.get('name')}"
            sc = c.get("securityContext") or {}

            def eff(key):
                return sc[key] if key in sc else psc.get(key)
            if eff("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            uid = eff("runAsUser")
            if not isinstance(uid, int) or uid == 0:
                problems.append(f"{where}: runAsUser {uid!r} (a non-zero numeric uid expected)")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("privileged"):
                problems.append(f"{where}: privileged")
            caps = sc.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []):
                problems.append(f"{where}: capabilities do not drop ALL")
            if caps.get("add"):
                problems.append(f"{where}: capabilities added: {caps['add']}")
            seccomp = eff("seccompProfile") or {}
            if seccomp.get("type") != "RuntimeDefault":
                problems.append(f"{where}: seccompProfile is {seccomp.get('type')!r}, "
                                f"not RuntimeDefault")
            res = c.get("resources") or {}
            for section in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(section) or {}):
                        problems.append(f"{where}: no resources.{section}.{r}")
    return problems


def _port_match(port, container_ports) -> bool:
    return any(port.get("port") in (cp.get("containerPort"), cp.get("name"))
               and port.get("protocol", "TCP") == cp.get("protocol", "TCP")
               for cp in container_ports)


def network_problems(objs) -> list[str]:
    """Each workload is selected by a NetworkPolicy limiting ingress and egress."""
    problems = []
    policies = find(objs, "NetworkPolicy")
    if not policies:
        return ["no NetworkPolicy rendered"]
    for o in objs:
        if pod_spec(o) is None:
            continue
        labels = pod_labels(o)
        ns = o["metadata"].get("namespace")
        selecting = [p for p in policies if p["metadata"].get("namespace") == ns
                     and not (p["spec"].get("podSelector") or {}).get("matchExpressions")
                     and (p["spec"].get("podSelector") or {}).get("matchLabels")
                     and all(labels.get(k) == v for k, v in
                             p["spec"]["podSelector"]["matchLabels"].items())]
        if not selecting:
            problems.append(f"{ident(o)}: no NetworkPolicy selects its pods {labels}")
            continue
        cports = [p for c in pod_spec(o).get("containers") or [] for p in c.get("ports") or []]
        for p in selecting:
            spec = p["spec"]
            types = set(spec.get("policyTypes") or [])
            if not {"Ingress", "Egress"} <= types:
                problems.append(f"{ident(p)}: policyTypes {sorted(types)} (both Ingress and "
                                f"Egress needed)")
            for rule in spec.get("ingress") or []:
                ports = rule.get("ports") or []
                if not ports:
                    problems.append(f"{ident(p)}: an ingress rule allows every port")
                for port in ports:
                    if not _port_match(port, cports):
                        problems.append(f"{ident(p)}: ingress to port {port} that no container "
                                        f"serves")
            for rule in spec.get("egress") or []:
                ports = rule.get("ports") or []
                to = rule.get("to") or []
                if not ports or not to:
                    problems.append(f"{ident(p)}: an egress rule without ports or destinations "
                                    f"allows too much: {rule}")
                # The peer port, to the broker's own pods (same namespace) and nowhere else.
                to_own = to and all(set(t) == {"podSelector"} and
                                    (t["podSelector"].get("matchLabels") or {}).items()
                                    <= labels.items() and t["podSelector"].get("matchLabels")
                                    for t in to)
                for port in ports:
                    if (port.get("port"), port.get("protocol", "TCP")) == (2223, "TCP") and to_own:
                        continue
                    if (port.get("port"), port.get("protocol", "TCP")) not in EGRESS_ALLOWED:
                        problems.append(f"{ident(p)}: egress to port {port}")
                for peer in to:
                    cidr = (peer.get("ipBlock") or {}).get("cidr", "")
                    if cidr.endswith("/0"):
                        problems.append(f"{ident(p)}: egress to {cidr}")
                    if "ipBlock" not in peer and not peer.get("podSelector"):
                        problems.append(f"{ident(p)}: egress to every pod of "
                                        f"{peer.get('namespaceSelector')}")
                if any(pt.get("port") == 53 for pt in ports):
                    for peer in to:
                        if (peer.get("podSelector") or {}).get("matchLabels") != \
                                {"k8s-app": "kube-dns"}:
                            problems.append(f"{ident(p)}: port 53 to {peer}, not kube-dns")
    return problems


def all_problems(objs) -> list[str]:
    return rbac_problems(objs) + security_problems(objs) + network_problems(objs)


# ------------------------------------------------------------ rendered manifests

@pytest.mark.parametrize("which", ["base", "overlay"])
def test_manifests_render_and_pass_every_check(which, base_objs, overlay_objs):
    objs = base_objs if which == "base" else overlay_objs
    assert all_problems(objs) == []
    kinds = {o["kind"] for o in objs}
    for kind in ("Namespace", "ServiceAccount", "ConfigMap", "StatefulSet", "Service",
                 "NetworkPolicy", "PodDisruptionBudget", "Role", "RoleBinding", "ClusterRole",
                 "ClusterRoleBinding"):
        assert kind in kinds, f"{which}: no {kind} rendered"
    # No private key in the repository's manifests: the Secrets are made out of band.
    assert find(objs, "Secret") == [], "a Secret is rendered: keys must not be committed"
    for o in objs:
        assert "PRIVATE KEY" not in yaml.safe_dump(o), f"{ident(o)} holds a private key"


def test_no_private_key_anywhere_in_container_dir():
    for p in CONTAINER.rglob("*"):
        if p.is_file():
            assert b"PRIVATE KEY" not in p.read_bytes(), f"{p} holds a private key"


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_statefulset_shape(which, base_objs, overlay_objs):
    base_objs = base_objs if which == "base" else overlay_objs
    sts = broker_sts(base_objs)
    spec = pod_spec(sts)
    assert sts["spec"]["replicas"] == 2
    assert spec.get("automountServiceAccountToken") is True, "in-cluster config needs the token"
    assert spec.get("serviceAccountName") == SERVICE_ACCOUNT
    one(base_objs, "ServiceAccount", SERVICE_ACCOUNT, NAMESPACE)
    # The governing Service exists and is headless.
    headless = one(base_objs, "Service", sts["spec"]["serviceName"], NAMESPACE)
    assert headless["spec"].get("clusterIP") == "None"
    c = broker_container(base_objs)
    assert {"name": "ssh", "containerPort": 2222, "protocol": "TCP"} in c["ports"]
    # The probes ask the broker over HTTP (a TCP probe passes with a hung loop).
    cfg = broker_config(base_objs)
    mport = int(cfg["metrics_listen"].rsplit(":", 1)[1])
    assert {"name": "metrics", "containerPort": mport, "protocol": "TCP"} in c["ports"]
    # The replicas find each other through the governing Service, on the peer port,
    # including a replica that is stopping (not ready) and still holds sessions.
    pport = int(cfg["peer_listen"].rsplit(":", 1)[1])
    assert {"name": "peer", "containerPort": pport, "protocol": "TCP"} in c["ports"]
    assert cfg["peers"] == {"dns": f"{headless['metadata']['name']}.{NAMESPACE}.svc.cluster.local"}
    assert {"name": "peer", "port": pport, "targetPort": "peer", "protocol": "TCP"} in \
        headless["spec"]["ports"]
    assert headless["spec"].get("publishNotReadyAddresses") is True
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = (c.get(probe) or {}).get("httpGet") or {}
        assert (get.get("path"), get.get("port")) == (path, "metrics"), f"{probe}: {c.get(probe)}"
    # One claim per replica, mounted where the config records.
    cfg = broker_config(base_objs)
    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    m = mount_for(c, cfg["recordings"])
    assert m is not None and m["name"] in claims and m["mountPath"] == cfg["recordings"], \
        f"recordings {cfg['recordings']} is not a volumeClaimTemplate mount"
    assert cfg["recordings"] == "/var/lib/podgate/recordings"


def written_paths(cfg: dict) -> dict[str, str]:
    """Every directory the broker writes, as the config names it (defaults filled in)."""
    paths = {"recordings": cfg["recordings"]}
    for k in (cfg.get("targets") or {}).get("kubernetes") or []:
        paths[f"cache_dir of {k['name']}"] = k.get("cache_dir") or \
            posixpath.join(cfg["recordings"], ".kube", k["name"])
    if cfg.get("audit_log", "-") != "-":
        paths["audit_log"] = posixpath.dirname(cfg["audit_log"])
    return paths


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_writable_dirs_for_a_read_only_root(which, base_objs, overlay_objs):
    """Everything the broker writes is on a writable volume; no setting is dead."""
    objs = base_objs if which == "base" else overlay_objs
    sts = broker_sts(objs)
    c = broker_container(objs)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    vols = volumes(pod_spec(sts))
    claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates") or []}
    for what, path in [("/tmp", "/tmp")] + list(written_paths(broker_config(objs)).items()):
        m = mount_for(c, path)
        assert m is not None and not m.get("readOnly") and \
            (m["name"] in claims or "emptyDir" in vols.get(m["name"], {})), \
            f"{what} ({path}) is not on a writable volume"
    # kubectl's environment is built from scratch: variables for it here do nothing.
    env = {e["name"] for e in c.get("env") or []}
    assert not env & {"KUBECACHEDIR", "HOME", "KUBECONFIG"}, env
    # Every volume is mounted by some container (no dead emptyDir).
    used = {m["name"] for ct in pod_spec(sts)["containers"] + pod_spec(sts).get("initContainers", [])
            for m in ct.get("volumeMounts") or []}
    assert set(vols) <= used, set(vols) - used


def test_config_file_mount_allows_reload(base_objs):
    """The command names the ConfigMap's file, mounted as a directory (SIGHUP sees edits)."""
    sts = broker_sts(base_objs)
    c = broker_container(base_objs)
    argv = (c.get("command") or []) + (c.get("args") or [])
    i = argv.index("--config")
    path = argv[i + 1]
    m = mount_for(c, posixpath.dirname(path))
    assert m is not None and m["mountPath"] == posixpath.dirname(path)
    assert "subPath" not in m, "a subPath mount never sees ConfigMap updates"
    vol = volumes(pod_spec(sts))[m["name"]]
    assert vol["configMap"]["name"] == "podgate-config"
    assert posixpath.basename(path) == "config.yaml"
    cm = one(base_objs, "ConfigMap", "podgate-config", NAMESPACE)
    assert cm["metadata"]["name"] == "podgate-config", "the ConfigMap name must be stable"


def test_keys_come_from_secrets(base_objs):
    """host_key and signing_key are copied by an init container from the two Secrets."""
    sts = broker_sts(base_objs)
    spec = pod_spec(sts)
    vols = volumes(spec)
    c = broker_container(base_objs)
    cfg = broker_config(base_objs)
    assert cfg["host_key"] == "/etc/podgate/keys/host_ed25519"
    assert cfg["signing_key"] == "/etc/podgate/signing/signing_ed25519"
    assert cfg["peer_key"] == "/etc/podgate/peer/peer_ed25519"
    inits = spec.get("initContainers") or []
    for key, secret in ((cfg["host_key"], "podgate-host-key"),
                        (cfg["signing_key"], "podgate-signing-key"),
                        (cfg["peer_key"], "podgate-peer-key")):
        m = mount_for(c, key)
        assert m is not None and m["mountPath"] == posixpath.dirname(key), f"{key} not mounted"
        assert vols[m["name"]].get("emptyDir", {}).get("medium") == "Memory", \
            f"{key} should live in memory only"
        writers = [i for i in inits if any(im["name"] == m["name"] and not im.get("readOnly")
                                           for im in i.get("volumeMounts") or [])]
        assert writers, f"no init container fills {m['name']}"
        secret_vols = [n for n, v in vols.items() if v.get("secret", {}).get("secretName") == secret]
        assert secret_vols, f"no volume from Secret {secret}"
        init = writers[0]
        assert any(im["name"] in secret_vols for im in init.get("volumeMounts") or []), \
            f"init container {init['name']} does not read Secret {secret}"
        script = " ".join(init.get("command") or []) + " " + " ".join(init.get("args") or [])
        assert key in script and "0600" in script, f"{key} is not installed mode 0600"


@pytest.mark.parametrize("overlay", ["base", "internal-lb", "cluster-ip"])
def test_service_exposure(overlay, base_objs):
    """Private networks only by default; each overlay is a Service the API server accepts."""
    objs = base_objs if overlay == "base" else render(K8S / "overlays" / overlay)
    svc = one(objs, "Service", "podgate", NAMESPACE)
    spec = svc["spec"]
    if overlay == "cluster-ip":
        assert spec["type"] == "ClusterIP"
        # The API server refuses these on a ClusterIP Service.
        assert "externalTrafficPolicy" not in spec and "loadBalancerSourceRanges" not in spec
        assert "healthCheckNodePort" not in spec
    else:
        assert spec["type"] == "LoadBalancer" and spec["externalTrafficPolicy"] == "Local"
        ranges = spec.get("loadBalancerSourceRanges") or []
        assert ranges and not any(r in ("0.0.0.0/0", "::/0") for r in ranges), ranges
    notes = svc["metadata"].get("annotations") or {}
    if overlay == "internal-lb":
        assert notes["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
        assert notes["networking.gke.io/load-balancer-type"] == "Internal"
        assert notes["service.beta.kubernetes.io/azure-load-balancer-internal"] == "true"
    else:
        assert not any("internal" in k for k in notes)
    # Everything else is the base's.
    assert broker_sts(objs) == broker_sts(base_objs)


def test_service_pdb_namespace(base_objs):
    one(base_objs, "Namespace", NAMESPACE)
    svc = one(base_objs, "Service", "podgate", NAMESPACE)
    assert svc["spec"]["type"] in ("LoadBalancer", "ClusterIP")
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] in ([(22, "ssh")],
                                                                           [(22, 2222)])
    labels = pod_labels(broker_sts(base_objs))
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    pdb = one(base_objs, "PodDisruptionBudget", "podgate", NAMESPACE)
    assert pdb["spec"]["minAvailable"] == 1
    assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())


def rule_identities(cfg: dict, rule: dict) -> tuple[set[str], set[str]]:
    """The users and groups a rule impersonates, "{user}" expanded for each user it covers."""
    imp = rule.get("impersonate")
    if not imp:
        return set(), set()
    if imp is True:
        imp = {"user": "{user}", "groups": []}
    covered = {u["name"] for u in cfg["users"]
               if u["name"] in (rule.get("users") or [])
               or set(u.get("groups") or []) & set(rule.get("groups") or [])}
    users = {imp["user"].replace("{user}", u) for u in covered}
    groups = {g.replace("{user}", u) for g in imp.get("groups") or [] for u in covered}
    return users, groups


def config_namespaces(cfg: dict) -> dict[tuple[str, str], set[str]]:
    """{(kind, impersonated name): namespaces} reached in the in-cluster target by the rules."""
    in_cluster = {t["name"] for t in (cfg.get("targets") or {}).get("kubernetes") or []
                  if not t.get("kubeconfig")}
    out: dict[tuple[str, str], set[str]] = {}
    for rule in cfg.get("rules") or []:
        users, groups = rule_identities(cfg, rule)
        for target in rule.get("targets") or []:
            m = re.fullmatch(r"([^:]+):([^/]+)/.*", target)
            if not m or m.group(1) not in in_cluster:
                continue
            assert not re.search(r"[*?\[]", m.group(2)), \
                f"rule target {target}: name the namespace, RBAC is per namespace"
            # Either the user or one of the groups needs exec there: the groups here.
            for who in [("Group", g) for g in groups] or [("User", u) for u in users]:
                out.setdefault(who, set()).add(m.group(2))
    return out


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_rbac_matches_the_config(which, base_objs, overlay_objs):
    """Impersonation names exactly what the rules impersonate; a Role per namespace."""
    objs = base_objs if which == "base" else overlay_objs
    cfg = broker_config(objs)
    users, groups = set(), set()
    for rule in cfg["rules"]:
        u, g = rule_identities(cfg, rule)
        users |= u
        groups |= g
    # Impersonated names are apart from any identity provider's: "podgate:NAME".
    assert users and all(n.startswith("podgate:") for n in users | groups), (users, groups)
    role = one(objs, "ClusterRole", IMPERSONATION)
    named = {res: set(r.get("resourceNames") or []) for r in role["rules"]
             for res in r["resources"]}
    assert named == {"users": users, "groups": groups}
    assert [b["metadata"]["name"] for b in find(objs, "ClusterRoleBinding")] == [IMPERSONATION]

    reach = config_namespaces(cfg)
    assert reach, "no rule reaches the in-cluster target"
    for (kind, name), namespaces in reach.items():
        for ns in namespaces:
            role = one(objs, "Role", namespace=ns)
            grants = {(g, res): set(r["verbs"]) for r in role["rules"]
                      for g in r["apiGroups"] for res in r["resources"]}
            assert "create" in grants.get(("", "pods/exec"), set())
            bindings = find(objs, "RoleBinding", namespace=ns)
            assert any(s == {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT,
                             "namespace": NAMESPACE}
                       for b in bindings for s in b["subjects"]), f"no binding for the SA in {ns}"
            # The impersonated identity itself needs exec there.
            assert any(s.get("kind") == kind and s.get("name") == name
                       for b in bindings if b["roleRef"]["name"] == role["metadata"]["name"]
                       for s in b["subjects"]), f"{kind} {name} may not exec in {ns}"


def test_network_policy_reaches_dns_and_an_api_server(base_objs, overlay_objs):
    for objs, cidrs in ((base_objs, 1), (overlay_objs, 2)):
        pol = one(objs, "NetworkPolicy", "podgate", NAMESPACE)
        dns = [r for r in pol["spec"]["egress"] if {p["port"] for p in r["ports"]} == {53}]
        assert dns and {p["protocol"] for p in dns[0]["ports"]} == {"UDP", "TCP"}
        api = [peer["ipBlock"]["cidr"] for r in pol["spec"]["egress"] for peer in r["to"]
               if "ipBlock" in peer]
        assert len(api) == cidrs, api
        assert [p["port"] for p in pol["spec"]["ingress"][0]["ports"]] == [2222]
        # The peer port: from the broker's own pods only, and to them.
        pport = int(broker_config(objs)["peer_listen"].rsplit(":", 1)[1])
        labels = pod_labels(broker_sts(objs))
        ins = [r for r in pol["spec"]["ingress"] if pport in {p["port"] for p in r["ports"]}]
        assert len(ins) == 1 and [p["port"] for p in ins[0]["ports"]] == [pport]
        assert ins[0]["from"] and all(set(f) == {"podSelector"} and
                                      f["podSelector"]["matchLabels"].items() <= labels.items()
                                      for f in ins[0]["from"]), ins
        outs = [r for r in pol["spec"]["egress"] if pport in {p["port"] for p in r["ports"]}]
        assert len(outs) == 1 and all(set(t) == {"podSelector"} for t in outs[0]["to"]), outs


def test_overlay_adds_the_second_cluster(base_objs, overlay_objs):
    base_cfg, cfg = broker_config(base_objs), broker_config(overlay_objs)
    assert cfg["users"] == base_cfg["users"], "the overlay's users drifted from the base"
    for k in ("listen", "host_key", "signing_key", "recordings", "audit_log"):
        assert cfg[k] == base_cfg[k], k
    base_targets = base_cfg["targets"]["kubernetes"]
    targets = cfg["targets"]["kubernetes"]
    assert targets[:len(base_targets)] == base_targets
    added = [t for t in targets if t.get("kubeconfig")]
    assert [t["kubeconfig"] for t in added] == ["/etc/podgate/clusters/second.kubeconfig"]
    path = added[0]["kubeconfig"]
    c = broker_container(overlay_objs)
    m = mount_for(c, path)
    assert m is not None and m.get("readOnly"), f"{path} is not mounted read-only"
    vol = volumes(pod_spec(broker_sts(overlay_objs)))[m["name"]]
    assert vol["secret"]["secretName"] == "podgate-cluster-second"
    assert {"key": "second.kubeconfig", "path": posixpath.relpath(path, m["mountPath"])} in \
        vol["secret"]["items"]
    # Everything else of the base is still there.
    assert {ident(o) for o in base_objs} == {ident(o) for o in overlay_objs}


# ------------------------------------------------------------ the checkers catch breakage

def _broker(objs):
    return broker_container(objs)


def _init(objs):
    return pod_spec(broker_sts(objs))["initContainers"][0]


def _sc(c):
    return c.setdefault("securityContext", {})


def _role(objs):
    return find(objs, "Role")[0]


BREAKAGES = {
    "wildcard verb": (rbac_problems, lambda o: _role(o)["rules"][0]["verbs"].append("*")),
    "wildcard resource": (rbac_problems, lambda o: _role(o)["rules"][0]["resources"].append("*")),
    "wildcard apiGroup": (rbac_problems, lambda o: _role(o)["rules"][2]["apiGroups"].append("*")),
    "extra verb": (rbac_problems, lambda o: _role(o)["rules"][0]["verbs"].append("delete")),
    "secrets read": (rbac_problems, lambda o: _role(o)["rules"].append(
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})),
    "impersonate anyone": (rbac_problems, lambda o: one(o, "ClusterRole", IMPERSONATION)
                           ["rules"][0].pop("resourceNames")),
    "impersonate wildcard name": (rbac_problems, lambda o: one(o, "ClusterRole", IMPERSONATION)
                                  ["rules"][0]["resourceNames"].append("*")),
    "second ClusterRoleBinding": (rbac_problems, lambda o: o.append(
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "podgate-view"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "view"},
         "subjects": [{"kind": "ServiceAccount", "name": "podgate", "namespace": "podgate"}]})),
    "impersonation bound to cluster-admin": (rbac_problems, lambda o: one(
        o, "ClusterRoleBinding", IMPERSONATION)["roleRef"].update(name="cluster-admin")),
    "RoleBinding to admin": (rbac_problems, lambda o: find(o, "RoleBinding")[0]["roleRef"].update(
        kind="ClusterRole", name="admin")),
    "RoleBinding to edit": (rbac_problems, lambda o: find(o, "RoleBinding")[0]["roleRef"].update(
        kind="ClusterRole", name="edit")),
    "impersonation for every SA": (rbac_problems, lambda o: one(
        o, "ClusterRoleBinding", IMPERSONATION)["subjects"].append(
        {"kind": "Group", "name": "system:serviceaccounts",
         "apiGroup": "rbac.authorization.k8s.io"})),
    "root fs writable": (security_problems,
                         lambda o: _sc(_broker(o)).update(readOnlyRootFilesystem=False)),
    "escalation allowed": (security_problems,
                           lambda o: _sc(_broker(o)).pop("allowPrivilegeEscalation")),
    "capabilities kept": (security_problems, lambda o: _sc(_init(o))["capabilities"].update(
        drop=["NET_RAW"])),
    "capability added": (security_problems, lambda o: _sc(_broker(o))["capabilities"].update(
        add=["NET_BIND_SERVICE"])),
    "root allowed": (security_problems, lambda o: (
        _sc(_broker(o)).pop("runAsNonRoot"),
        pod_spec(broker_sts(o))["securityContext"].pop("runAsNonRoot"))),
    "runs as uid 0": (security_problems, lambda o: _sc(_init(o)).update(runAsUser=0)),
    "seccomp unconfined": (security_problems, lambda o: _sc(_broker(o)).update(
        seccompProfile={"type": "Unconfined"})),
    "privileged": (security_problems, lambda o: _sc(_init(o)).update(privileged=True)),
    "no memory limit": (security_problems, lambda o: _broker(o)["resources"]["limits"].pop(
        "memory")),
    "init without limits": (security_problems, lambda o: _init(o)["resources"].pop("limits")),
    "host network": (security_problems, lambda o: pod_spec(broker_sts(o)).update(
        hostNetwork=True)),
    "no NetworkPolicy": (network_problems, lambda o: o.remove(one(o, "NetworkPolicy"))),
    "policy selects nothing": (network_problems, lambda o: one(o, "NetworkPolicy")["spec"]
                               ["podSelector"]["matchLabels"].update(app="other")),
    "ingress only": (network_problems, lambda o: one(o, "NetworkPolicy")["spec"].update(
        policyTypes=["Ingress"])),
    "egress anywhere": (network_problems, lambda o: one(o, "NetworkPolicy")["spec"]
                        ["egress"].append({})),
    "egress to the internet": (network_problems, lambda o: one(o, "NetworkPolicy")["spec"]
                               ["egress"].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                                                  "ports": [{"port": 443,
                                                             "protocol": "TCP"}]})),
    "egress to a database": (network_problems, lambda o: one(o, "NetworkPolicy")["spec"]
                             ["egress"][1]["ports"].append({"port": 5432, "protocol": "TCP"})),
    "ingress on every port": (network_problems, lambda o: one(o, "NetworkPolicy")["spec"]
                              ["ingress"].append({"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]})),
}


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_checkers_catch_a_broken_manifest(name, base_objs):
    checker, breaks = BREAKAGES[name]
    objs = copy.deepcopy(base_objs)
    assert checker(objs) == [], "the unbroken manifests must pass first"
    breaks(objs)
    assert checker(objs), f"{checker.__name__} did not notice: {name}"


# ------------------------------------------------------------ the image recipe

def containerfile_stages() -> list[dict]:
    """FROM blocks of the Containerfile: {"from", "as", "lines"} with continuations joined."""
    text = CONTAINERFILE.read_text()
    text = re.sub(r"\\\n", " ", text)
    args = {}
    stages = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip()
            continue
        if word == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            stages.append({"from": image, "as": parts[2] if len(parts) > 2 else None,
                           "lines": []})
            continue
        assert stages, f"instruction before FROM: {line}"
        stages[-1]["lines"].append((word, rest.strip()))
    return stages


def apt_installed(stage) -> set[str]:
    pkgs = set()
    for word, rest in stage["lines"]:
        if word == "RUN":
            for cmd in re.split(r"&&|;", rest):
                t = shlex.split(cmd)
                if t[:2] == ["apt-get", "install"]:
                    pkgs |= {x for x in t[2:] if not x.startswith("-")}
    return pkgs


def test_containerfile_stages():
    stages = containerfile_stages()
    assert len(stages) == 3, [s["from"] for s in stages]
    build, kubectl_stage, runtime = stages
    assert build["from"].endswith("debian:bookworm")
    runs = " ".join(rest for word, rest in build["lines"] if word == "RUN")
    assert "meson setup build --buildtype=release" in runs and "ninja -C build" in runs
    assert re.fullmatch(r"registry\.k8s\.io/kubectl:v1\.(3\d)\.\d+", kubectl_stage["from"]), \
        kubectl_stage["from"]
    assert runtime["from"].endswith("debian:bookworm-slim")
    assert runtime["as"] is None


def test_runtime_image_holds_only_runtime_libraries_and_no_keys(base_objs):
    runtime = containerfile_stages()[-1]
    assert apt_installed(runtime) == RUNTIME_PACKAGES
    build_stage_names = {s["as"] for s in containerfile_stages()[:-1]}
    for word, rest in runtime["lines"]:
        assert word != "ADD", "ADD in the runtime stage"
        if word == "COPY":
            m = re.match(r"--from=(\S+)\s", rest)
            assert m and m.group(1) in build_stage_names, f"COPY from the context: {rest}"
            assert not re.search(r"key|ed25519|\.pem|kubeconfig", rest), rest
    inst = {}
    for word, rest in runtime["lines"]:
        inst.setdefault(word, []).append(rest)
    users = inst["USER"]
    assert len(users) == 1 and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[0]), users
    sts_uid = pod_spec(broker_sts(base_objs))["securityContext"]["runAsUser"]
    assert users[0].split(":")[0] == str(sts_uid), "image user and runAsUser differ"
    assert "2222" in inst["EXPOSE"][0].split()
    assert any("/var/lib/podgate/recordings" in v for v in inst["VOLUME"])
    entry = yaml.safe_load(inst["ENTRYPOINT"][-1])
    assert [posixpath.basename(entry[0])] + entry[1:] == \
        ["podgate-broker", "--config", "/etc/podgate/config.yaml"], entry


def owning_package(path: str) -> str:
    """The Debian package that installed a library (trying /usr-merged spellings too)."""
    real = os.path.realpath(path)
    candidates = []
    for p in (path, real):
        candidates += [p, p[4:] if p.startswith("/usr/") else "/usr" + p]
    for p in candidates:
        r = subprocess.run(["dpkg-query", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    return f"? ({path})"


def package_closure(packages) -> set[str]:
    """The packages and everything they depend on (as installed here)."""
    seen, todo = set(), list(packages)
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        r = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", pkg],
                           capture_output=True, text=True)
        for dep in r.stdout.split(","):
            name = dep.split("|")[0].strip().split(" ")[0].split(":")[0]
            if name:
                todo.append(name)
    return seen


def test_runtime_packages_cover_the_binaries(build):
    """Each library the binaries link directly comes with RUNTIME_PACKAGES (or libc)."""
    if shutil.which("dpkg-query") is None or shutil.which("readelf") is None:
        pytest.skip("needs dpkg-query and readelf (a Debian host)")
    ignore = re.compile(r"^(libc6|libgcc-s1|libstdc\+\+6|libasan\d+|libubsan\d+|"
                        r"libclang-rt.*|libllvm.*)(:\w+)?$")
    ldconfig = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True,
                              check=True).stdout
    installed = package_closure(RUNTIME_PACKAGES)
    missing = {}
    for name in ("broker", "player"):
        binary = build.require(name)
        dyn = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True,
                             check=True).stdout
        for soname in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn):
            m = re.search(rf"^\s*{re.escape(soname)} \([^)]*\) => (\S+)", ldconfig, re.M)
            if not m:
                continue  # a sanitizer runtime outside ldconfig's paths
            pkg = owning_package(m.group(1))
            if not ignore.match(pkg) and pkg not in installed:
                missing[soname] = pkg
    assert missing == {}, f"libraries linked but not installed in the runtime image: {missing}"


def test_build_context_excludes_build_dirs_and_state():
    lines = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    for pattern in (".git", "build", "build-*", "state"):
        assert pattern in lines, f".dockerignore does not exclude {pattern}"


def fake_engine(bindir: pathlib.Path, name: str, works: bool):
    log = bindir / f"{name}.log"
    script = f"""#!/bin/sh
echo "$PWD $*" >> {shlex.quote(str(log))}
case "$1" in
  info) exit {0 if works else 1} ;;
  build) exit 0 ;;
esac
exit 3
"""
    p = bindir / name
    p.write_text(script)
    p.chmod(0o755)
    return log


def run_make_image(tmp_path, docker_works: bool, podman_works: bool | None):
    """`make image` with only fake engines on PATH (and what make and the script need)."""
    tools = {t: shutil.which(t) for t in ("make", "sh", "dirname", "id")}
    if None in tools.values():
        pytest.skip(f"needs {[t for t, p in tools.items() if p is None]}")
    bindir = tmp_path / "bin"
    bindir.mkdir(parents=True)
    for t, p in tools.items():
        (bindir / t).symlink_to(p)
    logs = {"docker": fake_engine(bindir, "docker", docker_works)}
    if podman_works is not None:
        logs["podman"] = fake_engine(bindir, "podman", podman_works)
    env = dict(os.environ, PATH=str(bindir))
    env.pop("IMAGE", None)
    env.pop("ENGINE", None)
    env.pop("MAKEFLAGS", None)
    r = subprocess.run([str(bindir / "make"), "-s", "-C", str(REPO), "image"],
                       capture_output=True, text=True, env=env, timeout=60)
    return r, {k: (v.read_text().splitlines() if v.exists() else []) for k, v in logs.items()}


def test_make_image_without_an_engine_says_so(tmp_path):
    r, logs = run_make_image(tmp_path, docker_works=False, podman_works=False)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    # make's own closing line ("make: ***" or, nested, "make[1]: ***") is not ours.
    ours = [ln for ln in r.stderr.splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", ln)]
    assert len(ours) == 1, r.stderr
    assert "no container engine available" in ours[0]
    assert "podman build -f container/Containerfile" in ours[0]
    assert "docker" in ours[0] and "podman" in ours[0]
    assert not any(" build " in f" {ln} " for v in logs.values() for ln in v)


def test_make_image_uses_a_working_engine(tmp_path):
    r, logs = run_make_image(tmp_path, docker_works=True, podman_works=None)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert logs["docker"][-1] == f"{REPO} build -f container/Containerfile -t podgate:latest ."
    r2, logs2 = run_make_image(tmp_path / "second", docker_works=True, podman_works=True)
    assert r2.returncode == 0 and logs2["podman"][-1].endswith(" build -f container/Containerfile "
                                                               "-t podgate:latest .")
    assert not any(" build " in ln for ln in logs2["docker"]), "podman is preferred"


# ------------------------------------------------------------ systemd

def unit_entries() -> list[tuple[str, str, str]]:
    section, out = None, []
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        out.append((section, k.strip(), v.strip()))
    return out


def unit_values(key: str) -> list[str]:
    return [v for s, k, v in unit_entries() if k == key]


def test_unit_settings():
    want = {
        "User": "podgate", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
        "StateDirectory": "podgate", "PrivateTmp": "yes", "CapabilityBoundingSet": "",
        "Restart": "on-failure", "ProtectHome": "yes", "ProtectKernelTunables": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter": "@system-service", "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes", "UMask": "0077", "KillMode": "mixed",
    }
    for k, v in want.items():
        assert unit_values(k) == [v], f"{k}={unit_values(k)} (want {v!r})"
    assert unit_values("DynamicUser") in ([], ["no"])
    assert "/bin/kill -HUP $MAINPID" in unit_values("ExecReload")
    assert unit_values("ExecStart") == [
        "/usr/local/bin/podgate-broker --config /etc/podgate/config.yaml"]
    assert unit_values("AmbientCapabilities") in ([], [""])


def test_unit_makes_every_path_the_vm_config_writes_writable():
    cfg = yaml.safe_load(VM_CONFIG.read_text())
    writable = [f"/var/lib/{d}" for d in unit_values("StateDirectory")] + \
               [f"/var/log/{d}" for d in unit_values("LogsDirectory")] + \
               [f"/var/cache/{d}" for d in unit_values("CacheDirectory")] + \
               [p for v in unit_values("ReadWritePaths") for p in v.split()]
    paths = {k: cfg[k] for k in ("host_key", "signing_key", "recordings", "audit_log")}
    paths.update(written_paths(cfg))
    for key, path in paths.items():
        assert path.startswith("/") and any(path == w or path.startswith(w.rstrip("/") + "/")
                                            for w in writable), \
            f"{key} {path} is not writable under ProtectSystem=strict ({writable})"
    # kubectl's environment is built from scratch: these would do nothing.
    env = dict(v.split("=", 1) for v in unit_values("Environment"))
    assert not set(env) & {"KUBECACHEDIR", "HOME", "KUBECONFIG"}, env


@pytest.fixture
def unit_copy(build, tmp_path) -> pathlib.Path:
    """The unit with its podgate-broker paths pointing at the built binary."""
    if not os.path.exists("/usr/bin/systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    binary = build.require("broker")
    text = UNIT.read_text().replace("/usr/local/bin/podgate-broker", str(binary))
    assert str(binary) in text
    path = tmp_path / UNIT.name
    path.write_text(text)
    return path


def test_systemd_analyze_verify(unit_copy):
    r = subprocess.run(["/usr/bin/systemd-analyze", "verify", str(unit_copy)],
                       capture_output=True, text=True, timeout=60)
    about_ours = [ln for ln in (r.stdout + r.stderr).splitlines()
                  if unit_copy.name in ln or str(unit_copy) in ln]
    assert r.returncode == 0 and about_ours == [], r.stdout + r.stderr


def test_systemd_analyze_verify_notices_a_bad_unit(unit_copy):
    """The check above would see a mistake: an unknown directive is reported."""
    unit_copy.write_text(unit_copy.read_text().replace("UMask=0077", "UMask=0077\nProtectEverything=yes"))
    r = subprocess.run(["/usr/bin/systemd-analyze", "verify", str(unit_copy)],
                       capture_output=True, text=True, timeout=60)
    assert "ProtectEverything" in r.stdout + r.stderr


def test_systemd_exposure_is_low(unit_copy):
    r = subprocess.run(["/usr/bin/systemd-analyze", "security", "--offline=true", "--no-pager",
                        str(unit_copy)], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 and "offline" in r.stderr:
        pytest.skip("systemd-analyze security --offline is not supported here")
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
    assert m, r.stdout[-2000:] + r.stderr
    assert float(m.group(1)) <= 2.0, r.stdout


def check_config(build, text: str, directory: pathlib.Path) -> subprocess.CompletedProcess:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "check.yaml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return subprocess.run([str(build.require("broker")), "--check-config", str(path)],
                          capture_output=True, text=True, timeout=30)


def kubeconfigs_here(text: str, directory: pathlib.Path) -> str:
    """The config with each kubeconfig path moved to an empty file in directory: the
    broker refuses kubeconfigs that do not exist, and the deployment's are not here."""
    directory.mkdir(parents=True, exist_ok=True)

    def move(m):
        path = directory / pathlib.PurePosixPath(m.group(2)).name
        path.touch()
        return m.group(1) + str(path)
    return re.sub(r"^(\s*-?\s*kubeconfig: )(\S+)$", move, text, flags=re.M)


def test_vm_config_example_is_valid(build, tmp_path):
    r = check_config(build, kubeconfigs_here(VM_CONFIG.read_text(), tmp_path / "kube"), tmp_path)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stdout + r.stderr


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_rendered_configmap_is_valid(which, build, base_objs, overlay_objs, tmp_path):
    r = check_config(build, kubeconfigs_here(config_text(base_objs if which == "base" else
                                                          overlay_objs), tmp_path / "kube"),
                     tmp_path)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stdout + r.stderr


# ------------------------------------------------------------ the broker on the ConfigMap

class ConfigMapBroker(Broker):
    """A Broker whose config file is a given dict (the rendered ConfigMap's), port filled in."""

    def __init__(self, *args, config: dict, **kw):
        super().__init__(*args, **kw)
        self.config = config

    def config_text(self) -> str:
        d = copy.deepcopy(self.config)
        d["listen"] = f"127.0.0.1:{self.port}"
        return yaml.safe_dump(d, sort_keys=False)


def test_broker_runs_the_configmap_config(build, keys, base_objs, tmp_path):
    """The ConfigMap's config, as the pod would see it, serves a session and records it."""
    cfg = broker_config(base_objs)
    work = tmp_path / "pod"
    (work / "state").mkdir(parents=True)
    # The keys as docs/deploy.md makes them for the Secrets, then "mounted"
    # (copied 0600, as the init container does).
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "podgate-host",
                    "-f", str(secrets / "host_ed25519")], check=True, timeout=60,
                   stdin=subprocess.DEVNULL)
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (the signing key is made with it)")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out",
                    str(secrets / "signing_ed25519")], check=True, timeout=60,
                   stdin=subprocess.DEVNULL, capture_output=True)
    os.chmod(secrets / "signing_ed25519", 0o600)
    pub = subprocess.run([str(build.require("player")), "key", "--key",
                          str(secrets / "signing_ed25519")], capture_output=True, timeout=30)
    assert pub.returncode == 0 and b"PUBLIC KEY" in pub.stdout, pub
    (secrets / "signing_ed25519.pub").write_bytes(pub.stdout)
    paths = {"host_key": work / "etc/keys/host_ed25519",
             "signing_key": work / "etc/signing/signing_ed25519",
             "redaction_key": work / "etc/signing/redaction_key",
             "recordings": work / "var/recordings"}
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "podgate-peer",
                    "-f", str(secrets / "peer_ed25519")], check=True, timeout=60,
                   stdin=subprocess.DEVNULL)
    paths["peer_key"] = work / "etc/peer/peer_ed25519"
    cfg["peer_listen"] = f"127.0.0.1:{free_port()}"
    cfg["peer_keys"] = [(secrets / "peer_ed25519.pub").read_text().strip()]
    for key, secret in (("host_key", "host_ed25519"), ("signing_key", "signing_ed25519"),
                        ("peer_key", "peer_ed25519")):
        paths[key].parent.mkdir(parents=True)
        shutil.copyfile(secrets / secret, paths[key])
        os.chmod(paths[key], 0o600)
    for k, p in paths.items():
        assert posixpath.basename(cfg[k]) == p.name
        cfg[k] = str(p)

    # The users' example keys give way to throw-away ones; groups stay.
    users = {u["name"]: {"groups": u.get("groups") or []} for u in cfg["users"]}
    for u in cfg["users"]:
        u["keys"] = [keys(u["name"]).pub]

    # As rendered (paths aside), the config is valid.
    r = check_config(build, yaml.safe_dump(cfg), tmp_path / "check")
    assert r.returncode == 0, r.stdout + r.stderr

    # The smoke session needs a target that runs here: add the local one
    # (the Kubernetes target is kept; it needs a cluster to serve a session).
    cfg["targets"]["local"] = {"shell": "/bin/sh", "allow_broker_user": True}
    cfg["rules"].append({"users": ["alice"], "targets": ["local"]})
    r = check_config(build, yaml.safe_dump(cfg), tmp_path / "check2")
    assert r.returncode == 0, r.stdout + r.stderr

    b = ConfigMapBroker(build, work, keys, users=users,
                        settings={"host_key": cfg["host_key"], "recordings": cfg["recordings"],
                                  "audit_log": cfg["audit_log"]},
                        config=cfg)
    try:
        b.start()
        assert b.settings["audit_log"] == "-"
        res = b.ssh("alice", "local", "--", "echo", "ok")
        assert res.returncode == 0 and res.stdout == b"ok\n", res
        rec = b.recording_for("echo ok")
        assert rec.data("o") == b"ok\n"
        assert rec.exit() == {"status": 0}
        assert rec.header["who"]["user"] == "alice"
        # bob's rules reach only the cluster: no local session for him.
        denied = b.ssh("bob", "local", "--", "echo", "ok")
        assert (denied.returncode, denied.stdout) == (1, b""), denied
        assert denied.stderr.decode().strip() == \
            "podgate: access to 'local' denied: no rule grants it", denied.stderr
        # The audit log went to stdout, as JSON lines for the log pipeline.
        wait_until(lambda: b.audit(), 10, "audit events on stdout")
        # The key stayed as mounted: the broker made no new one.
        assert stat.S_IMODE(os.stat(paths["signing_key"]).st_mode) == 0o600
        assert (paths["host_key"].read_bytes() ==
                (secrets / "host_ed25519").read_bytes())
        # Recordings are signed with signing_key and verify with its public
        # half, as docs/deploy.md tells reviewers.
        assert rec.header.get("signer"), rec.header
        v = subprocess.run([str(build.require("player")), "verify", "--key",
                            str(secrets / "signing_ed25519.pub"), str(rec.path)],
                           capture_output=True, text=True, timeout=60)
        assert v.returncode == 0, v.stdout + v.stderr
    finally:
        rc = b.stop()
        b.check_clean(rc)


# ------------------------------------------------------------ the pod as shipped: read-only root

RO_ROOT_SETUP = r"""
set -eu
# The pod's view: the root file system read-only, and writable only what the
# StatefulSet mounts writable (given as arguments up to "--").
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/secrets/kubernetes.io/serviceaccount
cp "$SA"/token "$SA"/ca.crt "$SA"/namespace /run/secrets/kubernetes.io/serviceaccount/
mount -o remount,ro /run
mount -o remount,bind,ro /
while [ "$1" != -- ]; do mount --bind "$1" "$1"; mount -o remount,bind,rw "$1"; shift; done
shift
exec "$@"
"""

KUBE_PODS = {"namespaces": {"prod": {"pods": [{"name": "web-0", "containers": ["app"]}]}}}


def can_make_mount_namespaces() -> bool:
    if shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        "mount -t tmpfs tmpfs /mnt"], capture_output=True, timeout=30)
    return r.returncode == 0


@pytest.mark.parametrize("transport", ["native", "kubectl"])
@pytest.mark.parametrize("which", ["base", "overlay"])
def test_configmap_config_opens_pod_sessions_on_a_read_only_root(which, transport, build, keys,
                                                                   base_objs, overlay_objs,
                                                                   tmp_path):
    """The shipped StatefulSet, as the pod runs it: in-cluster credentials, '/' read-only,
    only the volumes it mounts writable. A pod session opens, with and without a PTY."""
    import sys
    sys.path.insert(0, str(REPO / "tests" / "k8s"))
    from fixture import k8s_apiserver

    if os.geteuid() != 0 or not can_make_mount_namespaces():
        pytest.skip("needs root and mount namespaces (unshare --mount)")
    objs = base_objs if which == "base" else overlay_objs
    cfg = broker_config(objs)
    c = broker_container(objs)
    root = tmp_path / "root"  # the pod's "/" for the paths the config names

    def at(path: str) -> pathlib.Path:
        return root / path.lstrip("/")

    # Every mount of the broker container exists; the writable ones are bound writable.
    writable = []
    for m in c.get("volumeMounts") or []:
        at(m["mountPath"]).mkdir(parents=True, exist_ok=True)
        if not m.get("readOnly"):
            writable.append(str(at(m["mountPath"])))
    for key in ("host_key", "signing_key", "peer_key"):
        p = at(cfg[key])
        assert mount_for(c, cfg[key]) is not None, f"{key} {cfg[key]} is on no volume"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(p)], check=True,
                       timeout=60, stdin=subprocess.DEVNULL) if key != "signing_key" else \
            subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(p)],
                           check=True, timeout=60, capture_output=True)
        os.chmod(p, 0o600)
    cfg["host_key"], cfg["signing_key"] = str(at(cfg["host_key"])), str(at(cfg["signing_key"]))
    cfg["peer_key"] = str(at(cfg["peer_key"]))
    # The redaction key, as the init container copies it from its Secret.
    assert mount_for(c, cfg["redaction_key"]) is not None
    at(cfg["redaction_key"]).write_text(os.urandom(32).hex() + "\n")
    os.chmod(at(cfg["redaction_key"]), 0o600)
    cfg["redaction_key"] = str(at(cfg["redaction_key"]))
    cfg["peer_listen"] = f"127.0.0.1:{free_port()}"
    cfg["peer_keys"] = [pathlib.Path(cfg["peer_key"] + ".pub").read_text().strip()]
    cfg["recordings"] = str(at(cfg["recordings"]))
    for k in cfg["targets"]["kubernetes"]:
        k.setdefault("transport", transport)
        for key in ("cache_dir", "kubeconfig"):
            if k.get(key):
                k[key] = str(at(k[key]))
    # Only the in-cluster one ("main") is served here; further clusters of the overlay
    # keep their entries but get a kubeconfig that exists.
    users = {u["name"]: {"groups": u.get("groups") or []} for u in cfg["users"]}
    for u in cfg["users"]:
        u["keys"] = [keys(u["name"]).pub]

    with k8s_apiserver(KUBE_PODS, tmp_path / "api") as k8s:
        sa = tmp_path / "serviceaccount"
        sa.mkdir()
        (sa / "token").write_text(k8s.token)
        shutil.copyfile(k8s.ca, sa / "ca.crt")
        (sa / "namespace").write_text("podgate")
        for k in cfg["targets"]["kubernetes"]:
            if k.get("kubeconfig"):
                pathlib.Path(k["kubeconfig"]).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(k8s.kubeconfig, k["kubeconfig"])
        b = ConfigMapBroker(build, tmp_path / "work", keys, users=users,
                            settings={"host_key": cfg["host_key"], "recordings": cfg["recordings"],
                                      "audit_log": cfg["audit_log"]},
                            config=cfg,
                            env={"SA": str(sa), "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                                 "KUBERNETES_SERVICE_PORT": str(k8s.port)})
        b.wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c", RO_ROOT_SETUP,
                  "ro-root", *writable, "--"]
        try:
            b.start()
            res = b.ssh("alice", "prod/web-0", "--", "echo", "exec-ok")
            assert (res.returncode, res.stdout) == (0, b"exec-ok\n"), (res.stderr, b.log_tail())
            res = b.ssh("alice", "prod/web-0", "--", "echo", "pty-ok", opts=["-tt"])
            assert res.returncode == 0 and b"pty-ok" in res.stdout, (res, b.log_tail())
            # The sessions reached the API server as podgate:alice, through the pod's token.
            execs = [r for r in k8s.requests() if r["path"].endswith("/exec")]
            assert len(execs) >= 2 and all(r["impersonate_user"] == "podgate:alice" for r in execs), execs
            rec = b.recording_for("echo exec-ok")
            assert rec.data("o") == b"exec-ok\n" and rec.exit() == {"status": 0}
            # Nothing was written outside the writable volumes: kubectl's cache is there too.
            assert (pathlib.Path(cfg["recordings"]) / ".kube" / "main").is_dir() == \
                (transport == "kubectl")
        finally:
            rc = b.stop()
            b.check_clean(rc)


# ------------------------------------------------------------ the object-storage overlay

STORAGE_OVERLAY = K8S / "overlays" / "object-storage"


def test_object_storage_overlay(build, base_objs, tmp_path):
    objs = render(STORAGE_OVERLAY)
    assert all_problems(objs) == []
    assert find(objs, "Secret") == [], "a Secret is rendered: credentials must not be committed"
    assert {ident(o) for o in base_objs} == {ident(o) for o in objs}
    base_cfg, cfg = broker_config(base_objs), broker_config(objs)
    assert {k: v for k, v in cfg.items() if k != "storage"} == base_cfg
    s3 = cfg["storage"]["s3"]
    assert set(s3) == {"endpoint", "region", "bucket", "prefix", "path_style", "credentials",
                       "segment_seconds", "keep_local"}
    assert s3["endpoint"].startswith("https://") and s3["keep_local"] is False
    # The credentials files come read-only from the Secret, nowhere else.
    c = broker_container(objs)
    for key in ("access_key_file", "secret_key_file"):
        path = s3["credentials"][key]
        m = mount_for(c, path)
        assert m is not None and m.get("readOnly"), f"{path} is not mounted read-only"
        vol = volumes(pod_spec(broker_sts(objs)))[m["name"]]
        assert vol["secret"]["secretName"] == "podgate-s3-credentials"
        assert {"key": posixpath.basename(path), "path": posixpath.relpath(path, m["mountPath"])} \
            in vol["secret"]["items"]
    # Egress to the endpoint on 443, beside DNS and the API server.
    pol = one(objs, "NetworkPolicy", "podgate", NAMESPACE)
    cidrs = [peer["ipBlock"]["cidr"] for r in pol["spec"]["egress"] for peer in r["to"]
             if "ipBlock" in peer]
    assert len(cidrs) == 2 and "203.0.113.30/32" in cidrs
    r = check_config(build, config_text(objs), tmp_path)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stdout + r.stderr


def test_systemd_s3_dropin_loads_the_credentials(unit_copy, build, tmp_path):
    """The drop-in verifies with the unit, and the config it documents loads."""
    dropin = CONTAINER / "podgate-broker-s3.conf"
    d = unit_copy.parent / (unit_copy.name + ".d")
    d.mkdir()
    (d / "s3.conf").write_text(dropin.read_text())
    r = subprocess.run(["/usr/bin/systemd-analyze", "verify", str(unit_copy)],
                       capture_output=True, text=True, timeout=60)
    about_ours = [ln for ln in (r.stdout + r.stderr).splitlines() if "s3.conf" in ln
                  or unit_copy.name in ln]
    assert r.returncode == 0 and about_ours == [], r.stdout + r.stderr
    creds = dict(v.split("=", 1)[1].split(":", 1) for v in dropin.read_text().splitlines()
                 if v.startswith("LoadCredential="))
    assert set(creds) == {"s3-access-key-id", "s3-secret-access-key"}
    # The storage block in the drop-in's comment, as a configuration.
    lines = dropin.read_text().splitlines()
    start = lines.index("#   storage:")
    block = []
    for ln in lines[start:]:
        if not ln.startswith("#   "):
            break
        if ln.strip() != "#       ...":
            block.append(ln[4:])
    text = "\n".join(block).replace("s3:", "s3:\n    endpoint: https://s3.eu-west-1.amazonaws.com"
                                     "\n    bucket: podgate-recordings", 1)
    cfg = yaml.safe_load(text)
    paths = cfg["storage"]["s3"]["credentials"]
    for key, name in (("access_key_file", "s3-access-key-id"),
                      ("secret_key_file", "s3-secret-access-key")):
        assert paths[key] == f"/run/credentials/{UNIT.name}/{name}"
    r = check_config(build, kubeconfigs_here(VM_CONFIG.read_text(), tmp_path / "clusters") +
                     yaml.safe_dump(cfg), tmp_path)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stdout + r.stderr
