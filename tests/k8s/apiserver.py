#!/usr/bin/python3
"""A small Kubernetes API server for podgate's tests.

The real ``kubectl`` talks to it: discovery, pods, namespaces, deployments
and statefulsets are served from a pods spec (a JSON or YAML file, or a dict),
and ``pods/exec`` runs the command locally as a subprocess over the
``v5.channel.k8s.io`` (or ``v4``) WebSocket protocol, under a PTY when
``tty=true``. Every request is logged (method, path, query, Authorization and
Impersonate-* headers) in memory and optionally as JSON lines.

Command line (prints one JSON line ``{"url": ..., "port": ..., "pid": ...}``
on stdout once it accepts connections, runs until SIGTERM or SIGINT)::

    python3 tests/k8s/apiserver.py --port 0 --pods pods.json \\
        [--tls-dir DIR] [--token T] [--kubeconfig OUT] [--log requests.jsonl] \\
        [--forbid USER] [--forbid-exec USER] [--forbid-impersonation] \\
        [--hang all|api|exec]

As a module::

    srv = ApiServer(spec, tls=make_tls(dir), token="t").start()   # a thread
    srv.url, srv.port, srv.requests(), srv.events(); srv.stop()

See docs/k8s-test-apiserver.md for the pods spec, the failure modes and what
kubectl prints for each of them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import datetime
import email.utils
import errno
import fcntl
import hashlib
import json
import os
import pathlib
import re
import signal
import ssl
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.parse
import uuid

from websockets.frames import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT
from websockets.server import ServerConnection
from websockets.typing import Subprotocol

SERVER_VERSION = "v1.32.4"
CHANNEL_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
# How long an exec started by kubectl waits before its command runs (see _exec).
KUBECTL_STREAM_SETUP = 0.05
CH_STDIN, CH_STDOUT, CH_STDERR, CH_ERROR, CH_RESIZE, CH_CLOSE = 0, 1, 2, 3, 4, 255
# After the command exits, how long its output may keep flowing (a background
# child still holding the PTY or a pipe); then the session ends regardless.
OUTPUT_LINGER = 2.0
WORKLOAD_KINDS = {"deployment": "Deployment", "statefulset": "StatefulSet"}
HANG_MODES = (None, "all", "api", "exec")
DISCOVERY_PATHS = {"/version", "/api", "/apis", "/api/v1", "/apis/apps", "/apis/apps/v1", "/openapi/v2",
                   "/openapi/v3"}
REASONS = {
    101: "Switching Protocols", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error",
}


# --------------------------------------------------------------------------
# The pods spec
# --------------------------------------------------------------------------

class SpecError(ValueError):
    pass


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "podgate-test:" + "/".join(parts)))


def _ts(t: float) -> str:
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _strlist(v, what) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise SpecError(f"{what} must be a list of strings")
    return list(v)


def load_spec(source) -> dict:
    """Read a pods spec from a dict, a JSON string, or a .json/.yaml path."""
    if isinstance(source, dict):
        return copy.deepcopy(source)
    if isinstance(source, (str, os.PathLike)) and not str(source).lstrip().startswith("{"):
        path = pathlib.Path(source)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml  # python3-yaml, only needed for YAML specs
            return yaml.safe_load(text) or {}
        return json.loads(text)
    return json.loads(str(source))


class Cluster:
    """The objects served, built from a pods spec:

    {"namespaces": {NS: {"pods": [POD...], "deployments": [...],
                         "statefulsets": [...], "labels": {...},
                         "forbidden_users": [...], "exec_forbidden_users": [...]}},
     "forbidden_users": [...], "exec_forbidden_users": [...]}

    POD: "name" (a bare string means a one-container pod), or
    {"name", "containers": ["app", {"name": "side", "image": "..."}],
     "phase": "Running"|"Pending"|"Succeeded"|"Failed", "labels": {...},
     "owner": {"deployment": NAME} | {"statefulset": NAME},
     "default_container": NAME, "node": "node-1", "age": SECONDS,
     "env": {...}, "workdir": DIR, "hang_exec": bool, "drop_exec": bool, "shells": ["sh", ...],
     "terminating": bool (metadata.deletionTimestamp is set),
     "forbidden_users": [...], "exec_forbidden_users": [...]}
    "shells" (on the pod, or on one container given as an object) lists the
    shells its containers have: the others (bash, dash, zsh, ...) are neither
    on the command's PATH nor runnable by path, as in a slim image. Without
    it, the container has whatever the host has.
    Workload: {"name", "selector": {...} (default {"app": NAME}), "labels"}.
    """

    def __init__(self, spec: dict, now: float | None = None):
        self.now = time.time() if now is None else now
        if not isinstance(spec, dict):
            raise SpecError("the pods spec must be an object")
        self.forbidden = set(_strlist(spec.get("forbidden_users"), "forbidden_users"))
        self.exec_forbidden = set(_strlist(spec.get("exec_forbidden_users"), "exec_forbidden_users"))
        self.namespaces: dict[str, dict] = {}
        nss = spec.get("namespaces", {})
        if not isinstance(nss, dict):
            raise SpecError("namespaces must be an object keyed by namespace name")
        for ns_name, ns in nss.items():
            self._add_namespace(ns_name, ns or {})

    def _add_namespace(self, name: str, ns: dict) -> None:
        if not isinstance(ns, dict):
            raise SpecError(f"namespace {name}: must be an object")
        entry = {
            "name": name, "labels": dict(ns.get("labels") or {}),
            "forbidden": set(_strlist(ns.get("forbidden_users"), f"{name}.forbidden_users")),
            "exec_forbidden": set(_strlist(ns.get("exec_forbidden_users"), f"{name}.exec_forbidden_users")),
            "pods": {}, "deployments": {}, "statefulsets": {},
        }
        self.namespaces[name] = entry
        for kind in ("deployments", "statefulsets"):
            for w in ns.get(kind) or []:
                if isinstance(w, str):
                    w = {"name": w}
                if "name" not in w:
                    raise SpecError(f"namespace {name}: a {kind[:-1]} needs a name")
                entry[kind][w["name"]] = {
                    "name": w["name"], "selector": dict(w.get("selector") or {"app": w["name"]}),
                    "labels": dict(w.get("labels") or w.get("selector") or {"app": w["name"]}),
                    "replicas": w.get("replicas"),
                }
        for i, p in enumerate(ns.get("pods") or []):
            if isinstance(p, str):
                p = {"name": p}
            if not isinstance(p, dict) or not isinstance(p.get("name"), str):
                raise SpecError(f"namespace {name}: pod #{i} needs a name")
            containers = []
            for c in p.get("containers") or ["app"]:
                c = {"name": c} if isinstance(c, str) else dict(c)
                if not isinstance(c.get("name"), str):
                    raise SpecError(f"pod {name}/{p['name']}: a container needs a name")
                c.setdefault("image", f"registry.invalid/{c['name']}:1.0")
                shells = c.get("shells", p.get("shells"))
                if shells is not None:
                    c["shells"] = _strlist(shells, f"pod {name}/{p['name']}: shells")
                containers.append(c)
            owner = p.get("owner") or {}
            if "kind" in owner:
                owner = {owner["kind"].lower(): owner["name"]}
            pod = {
                "name": p["name"], "namespace": name, "containers": containers,
                "phase": p.get("phase", "Running"), "labels": dict(p.get("labels") or {}),
                "owner": None, "default_container": p.get("default_container"),
                "node": p.get("node", "node-1"), "created": self.now - float(p.get("age", 3600)),
                "env": {str(k): str(v) for k, v in (p.get("env") or {}).items()},
                "workdir": p.get("workdir"), "hang_exec": bool(p.get("hang_exec")),
                "terminating": bool(p.get("terminating")),
                "drop_exec": bool(p.get("drop_exec")),
                "inprocess_cat": bool(p.get("inprocess_cat")),
                "restarts": int(p.get("restarts", 0)),
                "forbidden": set(_strlist(p.get("forbidden_users"), "forbidden_users")),
                "exec_forbidden": set(_strlist(p.get("exec_forbidden_users"), "exec_forbidden_users")),
            }
            if pod["phase"] not in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
                raise SpecError(f"pod {name}/{p['name']}: unknown phase {pod['phase']!r}")
            for kind in ("deployment", "statefulset"):
                if kind in owner:
                    wname = owner[kind]
                    ws = entry[kind + "s"]
                    if wname not in ws:
                        ws[wname] = {"name": wname, "selector": {"app": wname},
                                     "labels": {"app": wname}, "replicas": None}
                    pod["owner"] = (kind, wname)
                    for k, v in ws[wname]["selector"].items():
                        pod["labels"].setdefault(k, v)
            entry["pods"][pod["name"]] = pod

    # ---- objects as the API returns them

    def pod_object(self, pod: dict) -> dict:
        ns, name = pod["namespace"], pod["name"]
        meta = {
            "name": name, "namespace": ns, "uid": _uid("pod", ns, name), "resourceVersion": "1",
            "creationTimestamp": _ts(pod["created"]), "labels": dict(pod["labels"]),
        }
        if pod["default_container"]:
            meta["annotations"] = {"kubectl.kubernetes.io/default-container": pod["default_container"]}
        if pod["terminating"]:
            meta["deletionTimestamp"] = _ts(self.now)
            meta["deletionGracePeriodSeconds"] = 30
        if pod["owner"]:
            kind, wname = pod["owner"]
            if kind == "deployment":
                rs = f"{wname}-{hashlib.sha1(wname.encode()).hexdigest()[:10]}"
                meta["generateName"] = rs + "-"
                meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                            "uid": _uid("rs", ns, rs), "controller": True,
                                            "blockOwnerDeletion": True}]
            else:
                meta["generateName"] = wname + "-"
                meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": wname,
                                            "uid": _uid("sts", ns, wname), "controller": True,
                                            "blockOwnerDeletion": True}]
        phase = pod["phase"]
        started = _ts(pod["created"] + 2)
        statuses = []
        for c in pod["containers"]:
            st = {"name": c["name"], "image": c["image"], "imageID": "",
                  "containerID": "containerd://" + hashlib.sha256(f"{ns}/{name}/{c['name']}".encode()).hexdigest(),
                  "restartCount": pod["restarts"]}
            if phase == "Running":
                st.update(ready=True, started=True, state={"running": {"startedAt": started}})
            elif phase in ("Succeeded", "Failed"):
                code = 0 if phase == "Succeeded" else 1
                st.update(ready=False, started=False, state={"terminated": {
                    "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                    "startedAt": started, "finishedAt": _ts(pod["created"] + 60)}})
            else:
                st.update(ready=False, started=False, state={"waiting": {"reason": "ContainerCreating"}},
                          containerID=None)
                del st["containerID"]
            statuses.append(st)
        ready = "True" if phase == "Running" else "False"
        spec = {"containers": [{"name": c["name"], "image": c["image"], "imagePullPolicy": "IfNotPresent"}
                               for c in pod["containers"]],
                "restartPolicy": "Always" if phase in ("Running", "Pending") else "Never",
                "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "default", "schedulerName": "default-scheduler"}
        if pod["node"] and phase != "Pending":
            spec["nodeName"] = pod["node"]
        status = {"phase": phase, "qosClass": "BestEffort",
                  "conditions": [{"type": t, "status": "True" if t == "PodScheduled" else ready,
                                  "lastProbeTime": None, "lastTransitionTime": started}
                                 for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
                  "containerStatuses": statuses}
        if phase != "Pending":
            status["startTime"] = _ts(pod["created"])
        return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": status}

    def namespace_object(self, ns: dict) -> dict:
        labels = {"kubernetes.io/metadata.name": ns["name"], **ns["labels"]}
        return {"kind": "Namespace", "apiVersion": "v1",
                "metadata": {"name": ns["name"], "uid": _uid("ns", ns["name"]), "resourceVersion": "1",
                             "creationTimestamp": _ts(self.now - 86400), "labels": labels},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}

    def owned_pods(self, ns: dict, kind: str, name: str) -> list[dict]:
        return [p for p in ns["pods"].values() if p["owner"] == (kind, name)]

    def workload_object(self, ns: dict, kind: str, w: dict) -> dict:
        pods = self.owned_pods(ns, kind, w["name"])
        replicas = w["replicas"] if w["replicas"] is not None else len(pods)
        ready = sum(1 for p in pods if p["phase"] == "Running")
        containers = pods[0]["containers"] if pods else [{"name": "app", "image": "registry.invalid/app:1.0"}]
        obj = {
            "kind": WORKLOAD_KINDS[kind], "apiVersion": "apps/v1",
            "metadata": {"name": w["name"], "namespace": ns["name"], "uid": _uid(kind, ns["name"], w["name"]),
                         "resourceVersion": "1", "generation": 1, "labels": dict(w["labels"]),
                         "creationTimestamp": _ts(self.now - 7200)},
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(w["selector"])},
                     "template": {"metadata": {"labels": dict(w["selector"])},
                                  "spec": {"containers": [{"name": c["name"], "image": c["image"]}
                                                          for c in containers]}}},
            "status": {"observedGeneration": 1, "replicas": len(pods), "readyReplicas": ready,
                       "availableReplicas": ready, "updatedReplicas": len(pods)},
        }
        if kind == "statefulset":
            obj["spec"]["serviceName"] = w["name"]
            obj["status"]["currentReplicas"] = len(pods)
        return obj


# --------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------

class BadRequest(Exception):
    pass


def _split_terms(s: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return [t.strip() for t in terms if t.strip()]


def parse_label_selector(s: str):
    """k=v, k==v, k!=v, k, !k, k in (a,b), k notin (a,b), comma-separated."""
    reqs = []
    for term in _split_terms(s):
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\((.*)\)", term)
        if m:
            vals = {v.strip() for v in m.group(3).split(",") if v.strip()}
            reqs.append((m.group(1), m.group(2), vals))
            continue
        m = re.fullmatch(r"([\w./-]+)\s*(!=|==|=)\s*([\w.-]*)", term)
        if m:
            reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
            continue
        m = re.fullmatch(r"(!?)([\w./-]+)", term)
        if m:
            reqs.append((m.group(2), "!" if m.group(1) else "exists", None))
            continue
        raise BadRequest(f"unable to parse requirement: {term!r}")
    return reqs


def labels_match(labels: dict, reqs) -> bool:
    for key, op, val in reqs:
        have = key in labels
        v = labels.get(key)
        if op == "=" and v != val:
            return False
        if op == "!=" and v == val:
            return False
        if op == "in" and v not in val:
            return False
        if op == "notin" and have and v in val:
            return False
        if op == "exists" and not have:
            return False
        if op == "!" and have:
            return False
    return True


POD_FIELDS = {
    "metadata.name": lambda o: o["metadata"]["name"],
    "metadata.namespace": lambda o: o["metadata"]["namespace"],
    "status.phase": lambda o: o["status"]["phase"],
    "spec.nodeName": lambda o: o["spec"].get("nodeName", ""),
}


def parse_field_selector(s: str):
    reqs = []
    for term in _split_terms(s):
        m = re.fullmatch(r"([\w.]+)\s*(!=|==|=)\s*(.*)", term)
        if not m:
            raise BadRequest(f"invalid selector: {term!r}")
        if m.group(1) not in POD_FIELDS:
            raise BadRequest(f'field label not supported: {m.group(1)}')
        reqs.append((m.group(1), m.group(2) != "!=", m.group(3)))
    return reqs


# --------------------------------------------------------------------------
# Helpers for responses
# --------------------------------------------------------------------------

def status_failure(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason}
    if details is not None:
        obj["details"] = details
    obj["code"] = code
    return obj


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status = status_failure(code, reason, message, details)
        self.code = code


def not_found(kind: str, name: str, group: str = "") -> ApiError:
    d = {"name": name, "kind": kind}
    if group:
        d["group"] = group
    what = f"{kind}.{group}" if group else kind
    return ApiError(404, "NotFound", f'{what} "{name}" not found', d)


def forbidden(user: str, verb: str, resource: str, ns: str | None, name: str | None, group: str = "") -> ApiError:
    base = resource.split("/")[0]
    subject = f'{base}.{group}' if group else base
    subject = f'{subject} "{name}"' if name else subject
    scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
    msg = (f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
           f'in API group "{group}" {scope}')
    d = {"kind": base}
    if name:
        d = {"name": name, **d}
    if group:
        d["group"] = group
    return ApiError(403, "Forbidden", msg, d)


def _listing(kind: str, api_version: str, items: list) -> dict:
    return {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": "1"}, "items": items}


def _age(created: str, now: float) -> str:
    t = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    s = max(0, int(now - t.timestamp()))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _table(objs: list, kind: str, now: float) -> dict:
    """A meta.k8s.io/v1 Table, what `kubectl get` asks for when printing."""
    name_col = {"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}
    age_col = {"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0}
    rows = []
    if kind == "Pod":
        cols = [name_col,
                {"name": "Ready", "type": "string", "format": "", "description": "ready/total", "priority": 0},
                {"name": "Status", "type": "string", "format": "", "description": "phase", "priority": 0},
                {"name": "Restarts", "type": "string", "format": "", "description": "restarts", "priority": 0},
                age_col,
                {"name": "Node", "type": "string", "format": "", "description": "node", "priority": 1}]
        for o in objs:
            cs = o["status"].get("containerStatuses", [])
            status = o["status"]["phase"]
            if status == "Succeeded":
                status = "Completed"
            elif status == "Failed":
                status = "Error"
            elif status == "Pending":
                status = "ContainerCreating"
            rows.append([o["metadata"]["name"], f"{sum(1 for c in cs if c.get('ready'))}/{len(cs)}", status,
                         sum(c.get("restartCount", 0) for c in cs),
                         _age(o["metadata"]["creationTimestamp"], now), o["spec"].get("nodeName", "<none>")])
    elif kind in ("Deployment", "StatefulSet"):
        cols = [name_col,
                {"name": "Ready", "type": "string", "format": "", "description": "ready", "priority": 0},
                age_col]
        for o in objs:
            rows.append([o["metadata"]["name"], f"{o['status']['readyReplicas']}/{o['spec']['replicas']}",
                         _age(o["metadata"]["creationTimestamp"], now)])
    else:
        cols = [name_col,
                {"name": "Status", "type": "string", "format": "", "description": "phase", "priority": 0},
                age_col]
        for o in objs:
            rows.append([o["metadata"]["name"], o["status"]["phase"],
                         _age(o["metadata"]["creationTimestamp"], now)])
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "1"},
            "columnDefinitions": cols,
            "rows": [{"cells": cells, "object": {"kind": "PartialObjectMetadata",
                                                 "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}}
                     for cells, o in zip(rows, objs)]}


CORE_RESOURCES = [
    {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
     "verbs": ["get", "list", "watch"], "shortNames": ["ns"]},
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
     "verbs": ["get", "list", "watch"], "shortNames": ["po"], "categories": ["all"]},
    {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
     "verbs": ["create", "get"]},
]
APPS_RESOURCES = [
    {"name": "deployments", "singularName": "deployment", "namespaced": True, "kind": "Deployment",
     "verbs": ["get", "list", "watch"], "shortNames": ["deploy"], "categories": ["all"]},
    {"name": "statefulsets", "singularName": "statefulset", "namespaced": True, "kind": "StatefulSet",
     "verbs": ["get", "list", "watch"], "shortNames": ["sts"], "categories": ["all"]},
]
APPS_GROUP = {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
              "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}


class Request:
    def __init__(self, method, target, version, headers, raw_head):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # list of (name, value)
        self.raw_head = raw_head
        parsed = urllib.parse.urlsplit(target)
        self.path = parsed.path
        self.raw_query = parsed.query
        self.query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)

    def header(self, name: str, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def q(self, name: str, default=None):
        v = self.query.get(name)
        return v[-1] if v else default

    def qbool(self, name: str) -> bool:
        return (self.q(name, "") or "").lower() in ("1", "true", "t", "yes")


class _Conn:
    """One HTTP connection."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------

class ApiServer:
    """A Kubernetes API server for tests.

    spec: pods spec (dict, JSON text or path). tls: (certfile, keyfile) for
    https, None for http. token: bearer token every request must carry (401
    otherwise); token_user: the user it authenticates as. forbid / forbid_exec:
    users (or "group:NAME") refused everything / pods/exec. forbid_impersonation:
    Impersonate-* headers get 403. hang: None, or which requests are read and
    never answered: "all"; "api" (all but /version and discovery, as if the
    server stopped answering after kubectl cached discovery); "exec" (only
    pods/exec). May be changed while running. log_path: JSON lines of
    requests() and events().
    """

    def __init__(self, spec=None, *, host="127.0.0.1", port=0, tls=None, token=None,
                 token_user="podgate-broker", forbid=(), forbid_exec=(), forbid_impersonation=False,
                 hang=None, log_path=None, server_version=SERVER_VERSION, protocols=None,
                 client_ca=None):
        # Client certificates signed by this CA authenticate as their CN.
        self.client_ca = client_ca
        self.cluster = Cluster(load_spec(spec) if spec is not None else {})
        # The channel protocols exec accepts, in the server's order of preference.
        self.protocols = list(protocols or CHANNEL_PROTOCOLS)
        if not all(x in CHANNEL_PROTOCOLS for x in self.protocols):
            raise ValueError(f"protocols must be among {CHANNEL_PROTOCOLS}")
        self.host = host
        self.port = port
        self.tls = tls
        self.token = token
        self.token_user = token_user
        self.forbid = set(forbid)
        self.forbid_exec = set(forbid_exec)
        self.forbid_impersonation = forbid_impersonation
        if hang not in HANG_MODES:
            raise ValueError(f"hang must be one of {HANG_MODES}")
        self.hang = hang
        self.log_path = log_path
        self.server_version = server_version
        self._log: list[dict] = []
        self._log_lock = threading.Lock()
        self._log_file = None
        self._server = None
        self._loop = None
        self._thread = None
        self._tasks: set[asyncio.Task] = set()
        self._children: set[int] = set()  # process groups of running exec commands
        self._nconns = 0  # connections accepted (each one's number is in its events)
        self._stopped = None

    # ---- public API

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def requests(self) -> list[dict]:
        with self._log_lock:
            return [dict(e) for e in self._log if e["type"] == "request"]

    def events(self) -> list[dict]:
        with self._log_lock:
            return [dict(e) for e in self._log]

    async def start_async(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        ctx = None
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            ctx.set_alpn_protocols(["http/1.1"])
            if self.client_ca:
                ctx.load_verify_locations(self.client_ca)
                ctx.verify_mode = ssl.CERT_OPTIONAL
        if self.log_path:
            self._log_file = open(self.log_path, "a", buffering=1)
        self._server = await asyncio.start_server(self._client, self.host, self.port, ssl=ctx,
                                                  limit=1 << 20, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop_async(self) -> None:
        if self._server is not None:
            self._server.close()
        for pgid in list(self._children):
            _killpg(pgid, signal.SIGKILL)
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        self._stopped.set()

    async def serve_forever(self) -> None:
        await self._stopped.wait()

    def start(self) -> "ApiServer":
        """Run the server on an event loop in a background thread."""
        ready = threading.Event()
        failure = []

        def run():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as e:  # report to the caller
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_until_complete(self.serve_forever())
            loop.close()

        self._thread = threading.Thread(target=run, name="k8s-apiserver", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self.stop_async(), self._loop)
            with contextlib.suppress(Exception):
                fut.result(10)
        self._thread.join(10)
        self._thread = None

    # ---- logging

    def _record(self, entry: dict) -> dict:
        entry.setdefault("time", time.time())
        with self._log_lock:
            self._log.append(entry)
        return entry

    def _flush_entry(self, entry: dict) -> None:
        if self._log_file:
            with self._log_lock:
                self._log_file.write(json.dumps(entry, sort_keys=True) + "\n")

    def _event(self, kind: str, **fields) -> None:
        entry = self._record({"type": kind, **fields})
        self._flush_entry(entry)

    # ---- connections

    async def _client(self, reader, writer) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        conn = _Conn(reader, writer)
        self._nconns += 1
        conn.id = self._nconns
        self._event("connection", conn=conn.id)
        try:
            while True:
                req = await self._read_request(reader)
                if req is None:
                    break
                keep = await self._handle(conn, req)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_request(self, reader) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            raise ConnectionError("bad request line")
        headers = []
        for line in lines[1:]:
            if not line:
                continue
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        req = Request(method, target, version, headers, head)
        length = int(req.header("Content-Length", "0") or 0)
        if length:
            await reader.readexactly(length)
        return req

    async def _write(self, conn: _Conn, data: bytes) -> None:
        conn.writer.write(data)
        await conn.writer.drain()

    async def _respond(self, conn: _Conn, req: Request, entry: dict, code: int, body,
                       content_type="application/json", extra=()) -> bool:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        close = (req.header("Connection", "").lower() == "close" or req.version != "HTTP/1.1"
                 or req.method == "POST")
        head = [f"HTTP/1.1 {code} {REASONS.get(code, 'Unknown')}",
                "Audit-Id: " + str(uuid.uuid4()),
                "Cache-Control: no-cache, private",
                "Content-Type: " + content_type,
                "X-Kubernetes-Pf-Flowschema-Uid: " + _uid("flowschema"),
                "Date: " + email.utils.formatdate(usegmt=True),
                f"Content-Length: {len(body)}"]
        head += list(extra)
        if close:
            head.append("Connection: close")
        entry["status"] = code
        self._flush_entry(entry)
        await self._write(conn, ("\r\n".join(head) + "\r\n\r\n").encode() + body)
        return not close

    def _user(self, req: Request, base: str | None = None) -> tuple[str, list[str]]:
        imp = req.header("Impersonate-User")
        if imp:
            return imp, req.header_all("Impersonate-Group")
        return base or self.token_user, []

    def _cert_user(self, conn) -> str | None:
        """The CN of a client certificate the TLS layer verified (client_ca), or None."""
        if not self.client_ca:
            return None
        peer = conn.writer.get_extra_info("peercert") or {}
        for rdn in peer.get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    return v
        return None

    def _denied(self, user: str, groups: list[str], *sets) -> bool:
        names = {user} | {"group:" + g for g in groups}
        return any(names & s for s in sets)

    async def _handle(self, conn: _Conn, req: Request) -> bool:
        entry = self._record({
            "type": "request", "conn": conn.id, "method": req.method, "path": req.path,
            "query": req.query,
            "raw_query": req.raw_query, "authorization": req.header("Authorization"),
            "impersonate_user": req.header("Impersonate-User"),
            "impersonate_groups": req.header_all("Impersonate-Group"),
            "impersonate_uid": req.header("Impersonate-Uid"),
            "impersonate_extra": {k[len("Impersonate-Extra-"):]: v for k, v in req.headers
                                  if k.lower().startswith("impersonate-extra-")},
            "accept": req.header("Accept"), "user_agent": req.header("User-Agent"),
            "upgrade": req.header("Upgrade"), "protocols": req.header_all("Sec-WebSocket-Protocol")
            + req.header_all("X-Stream-Protocol-Version"),
            "status": None,
        })
        if self.hang == "all" or (self.hang == "api" and req.path.rstrip("/") not in DISCOVERY_PATHS):
            return await self._hang(conn, entry)
        try:
            # Authentication (a token, or a client certificate without one),
            # then impersonation, then the request itself.
            cert_user = self._cert_user(conn)
            auth = req.header("Authorization", "")
            entry["client_cert"] = cert_user
            if self.token is not None and auth != f"Bearer {self.token}" and not (cert_user and not auth):
                raise ApiError(401, "Unauthorized", "Unauthorized")
            user, groups = self._user(req, cert_user if not auth else None)
            if req.header("Impersonate-User") and self.forbid_impersonation:
                raise ApiError(403, "Forbidden",
                               f'users "{user}" is forbidden: User "{self.token_user}" cannot impersonate '
                               f'resource "users" in API group "" at the cluster scope',
                               {"name": user, "kind": "users"})
            entry["user"] = user
            return await self._route(conn, req, entry, user, groups)
        except ApiError as e:
            return await self._respond(conn, req, entry, e.code, e.status)
        except BadRequest as e:
            return await self._respond(conn, req, entry, 400, status_failure(400, "BadRequest", str(e)))

    async def _route(self, conn, req, entry, user, groups) -> bool:
        p = req.path.rstrip("/") or "/"
        parts = [urllib.parse.unquote(x) for x in p.strip("/").split("/")] if p != "/" else []
        c = self.cluster
        if req.method not in ("GET", "HEAD") and not (req.method == "POST" and len(parts) == 7
                                                      and parts[-1] == "exec"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        table = "as=Table" in (req.header("Accept") or "")

        if p == "/version":
            major, minor = self.server_version.lstrip("v").split(".")[:2]
            return await self._respond(conn, req, entry, 200, {
                "major": major, "minor": minor, "gitVersion": self.server_version,
                "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2025-04-22T15:56:13Z",
                "goVersion": "go1.23.8", "compiler": "gc", "platform": "linux/amd64"})
        if p == "/api":
            return await self._respond(conn, req, entry, 200, {
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                "serverAddress": f"{self.host}:{self.port}"}]})
        if p == "/apis":
            return await self._respond(conn, req, entry, 200,
                                       {"kind": "APIGroupList", "apiVersion": "v1", "groups": [APPS_GROUP]})
        if p == "/api/v1":
            return await self._respond(conn, req, entry, 200, {
                "kind": "APIResourceList", "groupVersion": "v1", "resources": CORE_RESOURCES})
        if p == "/apis/apps":
            return await self._respond(conn, req, entry, 200, {"kind": "APIGroup", "apiVersion": "v1",
                                                               **APPS_GROUP})
        if p == "/apis/apps/v1":
            return await self._respond(conn, req, entry, 200, {
                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1",
                "resources": APPS_RESOURCES})
        if p in ("/healthz", "/readyz", "/livez"):
            return await self._respond(conn, req, entry, 200, b"ok", "text/plain; charset=utf-8")

        # /api/v1/...
        if parts[:2] == ["api", "v1"]:
            rest = parts[2:]
            if rest == ["namespaces"]:
                if self._denied(user, groups, self.forbid, c.forbidden):
                    raise forbidden(user, "list", "namespaces", None, None)
                items = [c.namespace_object(ns) for ns in c.namespaces.values()]
                return await self._list(conn, req, entry, "NamespaceList", "v1", items, table, "Namespace")
            if rest == ["pods"]:
                if self._denied(user, groups, self.forbid, c.forbidden):
                    raise forbidden(user, "list", "pods", None, None)
                items = [c.pod_object(pod) for ns in c.namespaces.values() for pod in ns["pods"].values()]
                return await self._list(conn, req, entry, "PodList", "v1", items, table, "Pod", pods=True)
            if len(rest) >= 2 and rest[0] == "namespaces":
                nsname = rest[1]
                ns = c.namespaces.get(nsname)
                nsdeny = self._denied(user, groups, self.forbid, c.forbidden,
                                      ns["forbidden"] if ns else set())
                if len(rest) == 2:
                    if nsdeny:
                        raise forbidden(user, "get", "namespaces", nsname, nsname)
                    if ns is None:
                        raise not_found("namespaces", nsname)
                    obj = c.namespace_object(ns)
                    return await self._respond(conn, req, entry, 200, _table([obj], "Namespace", c.now)
                                               if table else obj)
                if len(rest) == 3 and rest[2] == "pods":
                    if nsdeny:
                        raise forbidden(user, "list", "pods", nsname, None)
                    items = [c.pod_object(pod) for pod in (ns["pods"].values() if ns else [])]
                    return await self._list(conn, req, entry, "PodList", "v1", items, table, "Pod", pods=True)
                if len(rest) in (4, 5) and rest[2] == "pods":
                    name = rest[3]
                    pod = ns["pods"].get(name) if ns else None
                    if len(rest) == 5:
                        if rest[4] != "exec":
                            raise ApiError(404, "NotFound", "the server could not find the requested resource")
                        return await self._exec(conn, req, entry, user, groups, nsname, ns, name, pod)
                    if nsdeny or (pod and self._denied(user, groups, pod["forbidden"])):
                        raise forbidden(user, "get", "pods", nsname, name)
                    if pod is None:
                        raise not_found("pods", name)
                    obj = c.pod_object(pod)
                    return await self._respond(conn, req, entry, 200, _table([obj], "Pod", c.now)
                                               if table else obj)
        # /apis/apps/v1/...
        if parts[:3] == ["apis", "apps", "v1"]:
            rest = parts[3:]
            kinds = {"deployments": "deployment", "statefulsets": "statefulset"}
            if len(rest) == 1 and rest[0] in kinds:
                if self._denied(user, groups, self.forbid, c.forbidden):
                    raise forbidden(user, "list", rest[0], None, None, "apps")
                kind = kinds[rest[0]]
                items = [c.workload_object(ns, kind, w) for ns in c.namespaces.values()
                         for w in ns[rest[0]].values()]
                return await self._list(conn, req, entry, WORKLOAD_KINDS[kind] + "List", "apps/v1", items,
                                        table, WORKLOAD_KINDS[kind])
            if len(rest) in (3, 4) and rest[0] == "namespaces" and rest[2] in kinds:
                nsname, res = rest[1], rest[2]
                kind = kinds[res]
                ns = c.namespaces.get(nsname)
                nsdeny = self._denied(user, groups, self.forbid, c.forbidden, ns["forbidden"] if ns else set())
                if len(rest) == 3:
                    if nsdeny:
                        raise forbidden(user, "list", res, nsname, None, "apps")
                    items = [c.workload_object(ns, kind, w) for w in (ns[res].values() if ns else [])]
                    return await self._list(conn, req, entry, WORKLOAD_KINDS[kind] + "List", "apps/v1", items,
                                            table, WORKLOAD_KINDS[kind])
                name = rest[3]
                if nsdeny:
                    raise forbidden(user, "get", res, nsname, name, "apps")
                w = ns[res].get(name) if ns else None
                if w is None:
                    raise not_found(res, name, "apps")
                obj = c.workload_object(ns, kind, w)
                return await self._respond(conn, req, entry, 200, _table([obj], obj["kind"], c.now)
                                           if table else obj)
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {})

    async def _hang(self, conn, entry) -> bool:
        """Never answer: wait until the client closes the connection."""
        self._flush_entry(entry)
        while await conn.reader.read(65536):
            pass
        return False

    async def _list(self, conn, req, entry, kind, api_version, items, table, table_kind, pods=False) -> bool:
        sel = req.q("labelSelector")
        if sel:
            reqs = parse_label_selector(sel)
            items = [o for o in items if labels_match(o["metadata"].get("labels") or {}, reqs)]
        fsel = req.q("fieldSelector")
        if fsel:
            if not pods:
                raise BadRequest(f"field label not supported: {fsel}")
            freqs = parse_field_selector(fsel)
            items = [o for o in items if all((POD_FIELDS[f](o) == v) == eq for f, eq, v in freqs)]
        if req.qbool("watch"):
            return await self._watch(conn, req, entry)
        body = _table(items, table_kind, self.cluster.now) if table else _listing(kind, api_version, items)
        return await self._respond(conn, req, entry, 200, body)

    async def _watch(self, conn, req, entry) -> bool:
        """A watch that never reports a change; ends after timeoutSeconds."""
        entry["status"] = 200
        self._flush_entry(entry)
        await self._write(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                b"Transfer-Encoding: chunked\r\nCache-Control: no-cache, private\r\n\r\n")
        timeout = float(req.q("timeoutSeconds", "1800") or 1800)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(conn.reader.read(1), timeout)
        await self._write(conn, b"0\r\n\r\n")
        return False

    # ---- exec

    def _exec_error(self, user, groups, nsname, ns, name, pod, req) -> tuple[ApiError | None, dict]:
        """The error a pods/exec request gets (None when it may run), and its options."""
        c = self.cluster
        if self._denied(user, groups, self.forbid, self.forbid_exec, c.forbidden, c.exec_forbidden,
                        ns["forbidden"] if ns else set(), ns["exec_forbidden"] if ns else set(),
                        pod["forbidden"] if pod else set(), pod["exec_forbidden"] if pod else set()):
            return forbidden(user, "create", "pods/exec", nsname, name), {}
        if pod is None:
            return not_found("pods", name), {}
        container = req.q("container", "")
        names = [x["name"] for x in pod["containers"]]
        if not container:
            if len(names) == 1:
                container = names[0]
            else:
                return ApiError(400, "BadRequest", f"a container name must be specified for pod {name}, "
                                                   f"choose one of: [{' '.join(names)}]"), {}
        elif container not in names:
            return ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}"), {}
        if pod["phase"] in ("Succeeded", "Failed"):
            return ApiError(400, "BadRequest", "cannot exec into a container in a completed pod; "
                                               f"current phase is {pod['phase']}"), {}
        if pod["phase"] == "Pending":
            return ApiError(400, "BadRequest", f"pod {name} does not have a host assigned"), {}
        command = req.query.get("command", [])
        if not command:
            return ApiError(400, "BadRequest", "you must specify at least 1 command"), {}
        opts = {"container": container, "command": command, "tty": req.qbool("tty"),
                "stdin": req.qbool("stdin"), "stdout": req.qbool("stdout"), "stderr": req.qbool("stderr")}
        if not (opts["stdin"] or opts["stdout"] or opts["stderr"]):
            return ApiError(400, "BadRequest", "you must specify at least one of stdin, stdout, stderr"), {}
        return None, opts

    async def _exec(self, conn, req, entry, user, groups, nsname, ns, name, pod) -> bool:
        err, opts = self._exec_error(user, groups, nsname, ns, name, pod, req)
        if err is not None:
            return await self._respond(conn, req, entry, err.code, err.status)
        if self.hang == "exec" or pod["hang_exec"]:
            return await self._hang(conn, entry)
        if req.method == "POST" or (req.header("Upgrade") or "").lower() != "websocket":
            # SPDY (kubectl's fallback) or a plain request: only WebSockets are served.
            if req.header("Upgrade"):
                msg = (f"upgrade to {req.header('Upgrade')} is not supported by this test API server; "
                       "use WebSockets (v5.channel.k8s.io)")
            else:
                msg = "Upgrade request required"
            return await self._respond(conn, req, entry, 400, status_failure(400, "BadRequest", msg))
        offered = [x.strip() for h in req.header_all("Sec-WebSocket-Protocol") for x in h.split(",")]
        if not any(x in self.protocols for x in offered):
            return await self._respond(conn, req, entry, 400, status_failure(
                400, "BadRequest", f"none of the offered subprotocols {offered} is supported; "
                                   f"supported: {self.protocols}"))
        ws = ServerConnection(subprotocols=[Subprotocol(x) for x in self.protocols])
        ws.select_subprotocol = lambda client, server: next(x for x in server if x in client)
        ws.receive_data(req.raw_head)
        events = ws.events_received()
        response = ws.accept(events[0])
        if response.status_code != 101:
            return await self._respond(conn, req, entry, 400, status_failure(
                400, "BadRequest", (response.body or b"").decode(errors="replace").strip()))
        ws.send_response(response)
        entry["status"] = 101
        entry["subprotocol"] = response.headers.get("Sec-WebSocket-Protocol")
        self._flush_entry(entry)
        await self._write(conn, b"".join(ws.data_to_send()))
        if pod["drop_exec"]:
            # The stream ends at once, without a status on channel 3.
            self._event("exec-dropped", pod=pod["name"])
            ws.send_close(1000)
            await self._write(conn, b"".join(ws.data_to_send()))
            return False
        if (req.header("User-Agent") or "").startswith("kubectl/"):
            # kubectl (client-go's WebSocket executor) starts reading the
            # connection before it has registered its streams, and drops a
            # frame for a stream it does not know yet ("Unknown stream id 1,
            # discarding message"). A kubelet's container runtime takes tens of
            # milliseconds to start the command; so does this server for kubectl,
            # which gives no signal of its own when its streams are ready.
            await asyncio.sleep(KUBECTL_STREAM_SETUP)
        session = ExecSession(self, conn, ws, pod, opts, entry["subprotocol"])
        await session.run()
        return False


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _wait_fd(fd: int, write: bool) -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    cb = (lambda: fut.done() or fut.set_result(None))
    (loop.add_writer if write else loop.add_reader)(fd, cb)
    try:
        await fut
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)


async def _read_fd(fd: int) -> bytes:
    """Next chunk from a non-blocking fd; b"" at EOF (EIO on a PTY master)."""
    while True:
        try:
            return os.read(fd, 65536)
        except BlockingIOError:
            await _wait_fd(fd, False)
        except OSError as e:
            if e.errno == errno.EIO:
                return b""
            raise


async def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
            view = view[n:]
        except BlockingIOError:
            await _wait_fd(fd, True)


KNOWN_SHELLS = frozenset({"sh", "bash", "rbash", "dash", "zsh", "ksh", "mksh", "ash", "busybox",
                          "fish", "csh", "tcsh"})
_shell_paths: dict[tuple, str] = {}


def _shells_only_path(shells, program: str) -> str:
    """A PATH for a container that has only these shells: one directory of links to
    every program of the host's PATH but the other shells. Raises ENOENT (as the
    container runtime would) when program is one of the shells it lacks."""
    if os.path.basename(program) in KNOWN_SHELLS - set(shells):
        raise FileNotFoundError(errno.ENOENT, "executable file not found in $PATH")
    key = tuple(sorted(shells))
    if key not in _shell_paths:
        import atexit
        import shutil
        import tempfile
        d = tempfile.mkdtemp(prefix="podgate-k8s-shells-")
        atexit.register(shutil.rmtree, d, True)
        for bindir in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
            with contextlib.suppress(OSError):
                for name in os.listdir(bindir):
                    if name in KNOWN_SHELLS and name not in shells:
                        continue
                    with contextlib.suppress(FileExistsError):
                        os.symlink(os.path.join(bindir, name), os.path.join(d, name))
        _shell_paths[key] = d
    return _shell_paths[key]


class ExecSession:
    """One pods/exec over the channel protocol: the command runs locally."""

    def __init__(self, server: ApiServer, conn: _Conn, ws: ServerConnection, pod: dict, opts: dict,
                 protocol: str):
        self.server = server
        self.conn = conn
        self.ws = ws
        self.pod = pod
        self.opts = opts
        self.protocol = protocol
        # Frames of stdin waiting for the command, few as a kubelet's buffers
        # are: a command that stops reading soon stops the client's writes.
        self.stdin_q: asyncio.Queue = asyncio.Queue(maxsize=16)
        self.first_size = asyncio.Event()
        self.size = None
        self.master = None
        self.stdin_fd = None
        self.write_lock = asyncio.Lock()
        self.client_closed = False
        self.pings = 0

    async def send(self, channel: int, data: bytes) -> None:
        async with self.write_lock:
            if self.ws.state.name != "OPEN":
                return
            self.ws.send_binary(bytes([channel]) + data)
            await self._flush()

    async def _flush(self) -> None:
        out = self.ws.data_to_send()
        data = b"".join(out)
        if data:
            self.conn.writer.write(data)
        if out and out[-1] == b"":
            with contextlib.suppress(Exception):
                if self.conn.writer.can_write_eof():
                    self.conn.writer.write_eof()
        await self.conn.writer.drain()

    def _env(self) -> dict:
        env = dict(os.environ)
        env.pop("TERM", None)
        if self.opts["tty"]:
            env["TERM"] = "xterm"
        env.update(HOSTNAME=self.pod["name"], PODGATE_K8S_NAMESPACE=self.pod["namespace"],
                   PODGATE_K8S_POD=self.pod["name"], PODGATE_K8S_CONTAINER=self.opts["container"])
        env.update(self.pod["env"])
        return env

    async def run(self) -> None:
        server, opts, pod = self.server, self.opts, self.pod
        server._event("exec-start", namespace=pod["namespace"], pod=pod["name"], container=opts["container"],
                      command=opts["command"], tty=opts["tty"], stdin=opts["stdin"], protocol=self.protocol)
        reader_task = asyncio.create_task(self._read_client())
        proc = None
        pumps = []
        writer_task = None
        try:
            if opts["tty"]:
                # kubectl sends the terminal size right after connecting: start the
                # command with it when it comes soon, as a terminal would.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.first_size.wait(), 1.0)
            words = self._inprocess_words()
            if words is not None:
                await self._serve_cat(words, reader_task)
                return
            try:
                proc, pumps = await self._spawn()
            except OSError as e:
                await self._finish_error(f"error executing command in container: failed to exec in container: "
                                         f"exec: \"{opts['command'][0]}\": {e.strerror}", None)
                return
            server._children.add(proc.pid)
            writer_task = asyncio.create_task(self._write_stdin()) if opts["stdin"] else None
            wait_task = asyncio.create_task(proc.wait())
            await asyncio.wait({wait_task, reader_task}, return_when=asyncio.FIRST_COMPLETED)
            if not wait_task.done():
                # The client went away: end the command like a hangup would.
                _killpg(proc.pid, signal.SIGHUP)
                try:
                    await asyncio.wait_for(asyncio.shield(wait_task), 2)
                except asyncio.TimeoutError:
                    _killpg(proc.pid, signal.SIGKILL)
                    await wait_task
                server._event("exec-end", pod=pod["name"], exit_code=_exit_code(proc.returncode),
                              client_gone=True, pings=self.pings)
                return
            if pumps:
                await asyncio.wait(pumps, timeout=OUTPUT_LINGER)
            code = _exit_code(proc.returncode)
            server._event("exec-end", pod=pod["name"], exit_code=code, client_gone=False,
                          pings=self.pings)
            if code == 0:
                status = {"metadata": {}, "status": "Success"}
            else:
                status = {"metadata": {}, "status": "Failure",
                          "message": "command terminated with non-zero exit code: error executing command "
                                     f"[{' '.join(opts['command'])}], exit code {code}",
                          "reason": "NonZeroExitCode",
                          "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
            await self._end(status, reader_task)
        except (ConnectionError, OSError):
            pass
        finally:
            for t in pumps:
                t.cancel()
            if writer_task is not None:
                writer_task.cancel()
            reader_task.cancel()
            if proc is not None:
                # The session is over: nothing it started outlives it.
                _killpg(proc.pid, signal.SIGKILL)
                server._children.discard(proc.pid)
            for fd in {self.master, self.stdin_fd} - {None}:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _inprocess_words(self) -> str | None:
        """WORDS when this exec is `SHELL -c 'echo WORDS; exec cat'` without a TTY
        into an inprocess_cat pod (served by _serve_cat), else None."""
        cmd = self.opts["command"]
        if not self.pod["inprocess_cat"] or self.opts["tty"] or len(cmd) < 3 or cmd[-2] != "-c":
            return None
        m = re.fullmatch(r"echo ([^;'\"$`\\]*); exec cat", cmd[-1])
        return m.group(1) if m else None

    async def _serve_cat(self, words: str, reader_task) -> None:
        """`echo WORDS; exec cat` served by this process instead of a child: WORDS
        and a newline on stdout, then stdin echoed to stdout until it closes (exit
        0), or until the client goes. No process, no pipes: a socket per exec, so
        that thousands of execs fit under the open file limit."""
        server, pod, opts = self.server, self.pod, self.opts
        if opts["stdout"]:
            await self.send(CH_STDOUT, words.encode() + b"\n")
        while opts["stdin"]:
            get = asyncio.ensure_future(self.stdin_q.get())
            await asyncio.wait({get, reader_task}, return_when=asyncio.FIRST_COMPLETED)
            if not get.done():
                get.cancel()
                server._event("exec-end", pod=pod["name"], exit_code=0, client_gone=True,
                              pings=self.pings)
                return
            data = get.result()
            if data is None:
                break
            if opts["stdout"]:
                await self.send(CH_STDOUT, data)
        server._event("exec-end", pod=pod["name"], exit_code=0, client_gone=False, pings=self.pings)
        await self._end({"metadata": {}, "status": "Success"}, reader_task)

    async def _finish_error(self, message: str, reader_task) -> None:
        status = status_failure(500, "InternalError", f"Internal error occurred: {message}",
                                {"causes": [{"message": message}]})
        self.server._event("exec-end", pod=self.pod["name"], exit_code=None, error=message)
        await self._end(status, reader_task)

    async def _end(self, status: dict, reader_task) -> None:
        await self.send(CH_ERROR, json.dumps(status).encode())
        async with self.write_lock:
            if self.ws.state.name == "OPEN":
                self.ws.send_close(1000)
                await self._flush()
        # Wait (briefly) for the client's close frame or its end of the connection.
        if reader_task is not None:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(reader_task), 5)

    async def _spawn(self):
        opts, pod = self.opts, self.pod
        cmd = list(opts["command"])
        kw = dict(env=self._env(), cwd=pod["workdir"] or None)
        container = next((c for c in pod["containers"] if c["name"] == opts["container"]), {})
        if container.get("shells") is not None:
            kw["env"]["PATH"] = _shells_only_path(container["shells"], cmd[0])
        pumps = []
        if opts["tty"]:
            master, slave = os.openpty()
            self.master = master
            if self.size:
                _set_winsize(master, *self.size)
            else:
                _set_winsize(master, 80, 24)
            try:
                # setsid -c: a new session whose controlling terminal is the PTY,
                # so that resizes reach the command as SIGWINCH.
                proc = await asyncio.create_subprocess_exec(
                    "setsid", "-w", "-c", *cmd, stdin=slave, stdout=slave, stderr=slave, **kw)
            finally:
                os.close(slave)
            os.set_blocking(master, False)
            self.stdin_fd = None
            pumps.append(asyncio.create_task(self._pump(master, CH_STDOUT if opts["stdout"] else None)))
            return proc, pumps
        fds_close = []
        if opts["stdin"]:
            r, w = os.pipe()
            stdin, self.stdin_fd = r, w
            os.set_blocking(w, False)
            fds_close.append(r)
        else:
            stdin = subprocess.DEVNULL
        outs = {}
        for ch, want in ((CH_STDOUT, opts["stdout"]), (CH_STDERR, opts["stderr"])):
            if want:
                r, w = os.pipe()
                os.set_blocking(r, False)
                outs[ch] = (r, w)
                fds_close.append(w)
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=stdin,
                stdout=outs[CH_STDOUT][1] if CH_STDOUT in outs else subprocess.DEVNULL,
                stderr=outs[CH_STDERR][1] if CH_STDERR in outs else subprocess.DEVNULL,
                start_new_session=True, **kw)
        except OSError:
            for r, w in outs.values():
                os.close(r)
            raise
        finally:
            for fd in fds_close:
                os.close(fd)
        for ch, (r, _w) in outs.items():
            pumps.append(asyncio.create_task(self._pump(r, ch, close=True)))
        return proc, pumps

    async def _pump(self, fd: int, channel: int | None, close=False) -> None:
        try:
            while True:
                data = await _read_fd(fd)
                if not data:
                    break
                if channel is not None:
                    await self.send(channel, data)
        finally:
            if close:
                with contextlib.suppress(OSError):
                    os.close(fd)

    async def _write_stdin(self) -> None:
        fd = self.master if self.opts["tty"] else self.stdin_fd
        while True:
            data = await self.stdin_q.get()
            if data is None:
                if not self.opts["tty"] and self.stdin_fd is not None:
                    os.close(self.stdin_fd)
                    self.stdin_fd = None
                return
            try:
                await _write_fd(fd, data)
            except OSError:  # the command is gone or closed its stdin
                return

    async def _read_client(self) -> None:
        """Frames from kubectl: stdin, resize, close; pings are answered."""
        partial = None
        reader = self.conn.reader
        while True:
            data = await reader.read(65536)
            if not data:
                self.ws.receive_eof()
            else:
                self.ws.receive_data(data)
            for ev in self.ws.events_received():
                if ev.opcode in (OP_BINARY, OP_TEXT):
                    partial = bytearray(ev.data)
                elif ev.opcode == OP_CONT and partial is not None:
                    partial += ev.data
                else:
                    if ev.opcode == OP_CLOSE:
                        self.client_closed = True
                    elif ev.opcode == OP_PING:
                        self.pings += 1
                    continue
                if ev.fin:
                    await self._message(bytes(partial))
                    partial = None
            async with self.write_lock:
                await self._flush()
            if not data or self.ws.state.name == "CLOSED" or self.client_closed:
                return

    async def _message(self, msg: bytes) -> None:
        if not msg:
            return
        ch, payload = msg[0], msg[1:]
        if ch == CH_STDIN:
            if payload and self.opts["stdin"]:
                await self.stdin_q.put(payload)
        elif ch == CH_RESIZE:
            try:
                size = json.loads(payload)
                w, h = int(size["Width"]), int(size["Height"])
            except (ValueError, KeyError, TypeError):
                return
            self.server._event("resize", pod=self.pod["name"], width=w, height=h)
            self.size = (w, h)
            self.first_size.set()
            if self.master is not None:
                _set_winsize(self.master, w, h)
        elif ch == CH_CLOSE and self.protocol == "v5.channel.k8s.io":
            if payload[:1] == bytes([CH_STDIN]):
                self.server._event("stdin-close", pod=self.pod["name"])
                if self.opts["stdin"] and not self.opts["tty"]:
                    await self.stdin_q.put(None)


def _set_winsize(fd: int, width: int, height: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


# --------------------------------------------------------------------------
# TLS material and kubeconfig
# --------------------------------------------------------------------------

def make_tls(directory, hosts=("127.0.0.1", "localhost", "::1")) -> dict:
    """A self-signed CA and a server certificate for `hosts` (openssl CLI).

    Returns {"ca": PATH, "cert": PATH, "key": PATH}; reuses files already there.
    """
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca, ca_key, cert, key = d / "ca.crt", d / "ca.key", d / "server.crt", d / "server.key"
    paths = {"ca": str(ca), "cert": str(cert), "key": str(key)}
    if ca.exists() and cert.exists() and key.exists():
        return paths
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "3650",
        "-subj", "/CN=podgate-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    csr = d / "server.csr"
    run("req", "-new", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=podgate-test-apiserver")
    san = ",".join(("IP:" if re.fullmatch(r"[\d.]+|[0-9a-fA-F:]+", h) and (":" in h or "." in h)
                    else "DNS:") + h for h in hosts)
    ext = d / "server.ext"
    ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "3650", "-extfile", str(ext))
    os.chmod(key, 0o600)
    return paths


def kubeconfig_dict(url: str, *, ca_file=None, token=None, context="podgate-test",
                    namespace="default", user="podgate-broker") -> dict:
    cluster = {"server": url}
    if ca_file:
        cluster["certificate-authority-data"] = base64.b64encode(pathlib.Path(ca_file).read_bytes()).decode()
    u = {"token": token} if token else {}
    return {"apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": user, "user": u}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": user,
                                                      "namespace": namespace}}],
            "current-context": context}


def write_kubeconfig(path, url: str, **kw) -> str:
    p = pathlib.Path(path)
    p.write_text(json.dumps(kubeconfig_dict(url, **kw), indent=2) + "\n")
    os.chmod(p, 0o600)
    return str(p)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Kubernetes API server for podgate's tests")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--pods", help="pods spec, JSON or YAML")
    ap.add_argument("--tls-dir", help="serve https with a CA and certificate kept (or made) in DIR")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--token", help="bearer token every request must carry")
    ap.add_argument("--token-user", default="podgate-broker", help="the user the token stands for")
    ap.add_argument("--forbid", action="append", default=[], metavar="USER",
                    help="refuse everything to USER (or group:NAME); repeatable")
    ap.add_argument("--forbid-exec", action="append", default=[], metavar="USER",
                    help="refuse pods/exec to USER (or group:NAME); repeatable")
    ap.add_argument("--forbid-impersonation", action="store_true",
                    help="refuse requests with Impersonate-User (403)")
    ap.add_argument("--hang", choices=["all", "api", "exec"],
                    help="read requests and never answer: all of them; all but /version and "
                         "discovery; exec only")
    ap.add_argument("--log", help="append requests and exec events as JSON lines")
    ap.add_argument("--kubeconfig", help="write a kubeconfig for this server to this path")
    ap.add_argument("--namespace", default="default", help="namespace of the kubeconfig's context")
    ap.add_argument("--server-version", default=SERVER_VERSION)
    ap.add_argument("--protocol", action="append", default=[], choices=CHANNEL_PROTOCOLS,
                    help="a channel protocol exec accepts (repeatable, in order of preference; "
                         "default: v5 then v4)")
    a = ap.parse_args(argv)

    tls = None
    ca = None
    if a.tls_dir:
        m = make_tls(a.tls_dir, hosts=tuple({a.host, "127.0.0.1", "localhost"}))
        tls, ca = (m["cert"], m["key"]), m["ca"]
    elif a.tls_cert:
        tls = (a.tls_cert, a.tls_key or a.tls_cert)
    try:
        srv = ApiServer(load_spec(a.pods) if a.pods else {}, host=a.host, port=a.port, tls=tls, token=a.token,
                        token_user=a.token_user, forbid=a.forbid, forbid_exec=a.forbid_exec,
                        forbid_impersonation=a.forbid_impersonation, hang=a.hang,
                        log_path=a.log, server_version=a.server_version,
                        protocols=a.protocol or None)
    except (SpecError, OSError, ValueError) as e:
        print(f"apiserver: {e}", file=sys.stderr)
        return 2

    async def amain():
        await srv.start_async()
        if a.kubeconfig:
            write_kubeconfig(a.kubeconfig, srv.url, ca_file=ca, token=a.token, namespace=a.namespace)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(srv.stop_async()))
        print(json.dumps({"url": srv.url, "port": srv.port, "pid": os.getpid()}), flush=True)
        await srv.serve_forever()

    asyncio.run(amain())
    return 0


if __name__ == "__main__":
    sys.exit(main())
