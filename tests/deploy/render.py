"""Renders deploy/k8s overlays with `kubectl kustomize` and reads the result."""
import functools
import os
import pathlib
import subprocess
import sys

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = sorted("overlays/" + p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
BASES = ["lws", "statefulset"]
KUBECTL = pathlib.Path(sys.executable).parent / "kubectl"


@functools.lru_cache(maxsize=None)
def render_text(path: str) -> str:
    """`kubectl kustomize deploy/k8s/<path>` (an overlay or a base)."""
    out = subprocess.run([str(KUBECTL), "kustomize", str(K8S / path)], check=True,
                         capture_output=True, text=True, timeout=120)
    return out.stdout


def render(path: str) -> list:
    return [d for d in yaml.safe_load_all(render_text(path)) if d]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} objects"
    return found[0]


def group_config(docs) -> dict:
    """The data of the rendered tandem-group ConfigMap."""
    cms = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("tandem-group")]
    assert len(cms) == 1
    return cms[0]["data"]


def pod_templates(docs):
    """(owner description, pod template, role) for every pod template: role is "leader" (the
    coordinator and node 0's ranks) or "worker" (a further node's ranks)."""
    out = []
    for d in docs:
        name = f'{d["kind"]}/{d["metadata"]["name"]}'
        if d["kind"] == "LeaderWorkerSet":
            t = d["spec"]["leaderWorkerTemplate"]
            out.append((name + " leaderTemplate", t["leaderTemplate"], "leader"))
            out.append((name + " workerTemplate", t["workerTemplate"], "worker"))
        elif d["kind"] in ("StatefulSet", "Deployment"):
            role = d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            out.append((name, d["spec"]["template"], role))
    return out


def as_pod(template, name, namespace):
    """A pod template as the Pod object a controller would create (for schema and policy tools
    that do not know LeaderWorkerSet)."""
    meta = dict(template.get("metadata", {}))
    meta["name"] = name
    meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]}


def install_prefix() -> pathlib.Path:
    return pathlib.Path(os.environ.get("TANDEM_INSTALL_PREFIX", REPO / "build" / "deploy-install"))
