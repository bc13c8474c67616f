"""The rendered manifests: schemas, the LeaderWorkerSet fields, the group's parameters, the
security settings and the policy check (docs/deploy.md, "What is checked")."""
import json
import pathlib
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

import render
from lws_schema import check_leader_worker_set

# Kubernetes 1.30 and the newest version kubernetes-validate knows.
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]

# checkov checks we do not follow, each with the reason.
CHECKOV_SKIPS = {
    # Image by digest: the manifests name a tag (`images:` in each overlay) because the digest is
    # known only once the image is built; a production overlay pins it with `images: [{name:
    # tandem, digest: sha256:...}]` (docs/deploy.md, "Upgrades").
    "CKV_K8S_43": "image digest is set per deployment, not in the checked-in overlays",
}


@pytest.fixture(scope="module", params=render.BASES + render.OVERLAYS)
def rendered(request):
    return request.param, render.render(request.param)


def test_overlays_exist():
    for name in ["tiny-cpu", "tiny-cpu-statefulset", "8b-1gpu", "56b-tp8-pp2",
                 "56b-tp8-pp2-statefulset"]:
        assert "overlays/" + name in render.OVERLAYS


@pytest.mark.parametrize("version", VERSIONS)
def test_strict_schema(rendered, version):
    name, docs = rendered
    checked = 0
    for d in docs:
        if d["kind"] == "LeaderWorkerSet":
            continue  # not a built-in kind: its pod templates are checked as Pods below
        kubernetes_validate.validate(d, version, strict=True)
        checked += 1
    for owner, template, role in render.pod_templates(docs):
        kubernetes_validate.validate(render.as_pod(template, "p", "tandem"), version, strict=True)
        checked += 1
    assert checked >= 6, name


def test_a_broken_manifest_fails_the_schema_check():
    _, docs = "lws", render.render("lws")
    service = render.one(docs, "Service", "tandem-api")
    service["spec"]["portz"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, VERSIONS[0], strict=True)


def test_leader_worker_set_fields(rendered):
    name, docs = rendered
    for lws in render.by_kind(docs, "LeaderWorkerSet"):
        assert check_leader_worker_set(lws) == [], name


def test_lws_checker_finds_mistakes():
    lws = render.one(render.render("lws"), "LeaderWorkerSet")
    lws["spec"]["leaderWorkerTemplate"]["restartPolicy"] = "Always"
    lws["spec"]["leaderWorkerTemplate"]["sise"] = 2
    lws["spec"]["replicas"] = "2"
    problems = check_leader_worker_set(lws)
    assert any("restartPolicy" in p for p in problems), problems
    assert any("sise" in p for p in problems), problems
    assert any("replicas" in p for p in problems), problems


def nodes_of(config):
    tp, pp, per_node = (int(config[k]) for k in ("TANDEM_TP", "TANDEM_PP", "TANDEM_GPUS_PER_NODE"))
    assert per_node % tp == 0, "a TP group must stay inside one node"
    assert (tp * pp) % per_node == 0
    return tp * pp // per_node


def test_group_size_matches_the_parameters(rendered):
    name, docs = rendered
    config = render.group_config(docs)
    nodes = nodes_of(config)
    per_node = int(config["TANDEM_GPUS_PER_NODE"])
    for lws in render.by_kind(docs, "LeaderWorkerSet"):
        assert lws["spec"]["leaderWorkerTemplate"]["size"] == nodes, name
    leaders = [s for s in render.by_kind(docs, "StatefulSet") if s["metadata"]["name"] == "tandem-leader"]
    workers = [s for s in render.by_kind(docs, "StatefulSet") if s["metadata"]["name"] == "tandem-worker"]
    if leaders:
        assert workers[0]["spec"]["replicas"] == leaders[0]["spec"]["replicas"] * (nodes - 1), name
    # Every pod's ranks get the node's GPUs (none in the CPU overlays).
    for owner, template, _ in render.pod_templates(docs):
        ranks = [c for c in template["spec"]["containers"] if c["name"] == "ranks"]
        assert len(ranks) == 1, owner
        resources = ranks[0]["resources"]
        gpus = [resources.get(k, {}).get("nvidia.com/gpu") for k in ("requests", "limits")]
        if "tiny" in name:
            assert gpus == [None, None], owner
        else:
            assert gpus == [per_node, per_node], owner
        ports = {p["name"]: p["containerPort"] for p in ranks[0]["ports"]}
        assert ports["worker"] == int(config["TANDEM_WORKER_PORT"]), owner
        assert ports["worker-metrics"] == int(config["TANDEM_WORKER_METRICS_PORT"]), owner


def test_pods_pass_a_security_review(rendered):
    name, docs = rendered
    config = render.group_config(docs)
    for owner, template, role in render.pod_templates(docs):
        spec = template["spec"]
        assert spec["automountServiceAccountToken"] is False, owner
        sc = spec["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] >= 10000, owner
        assert sc["seccompProfile"]["type"] == "RuntimeDefault", owner
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["shm"]["emptyDir"]["medium"] == "Memory", owner
        assert "emptyDir" in volumes["tmp"], owner
        if not "tiny" in name:
            assert volumes["models"]["persistentVolumeClaim"]["readOnly"] is True, owner
        anti = spec["affinity"]["podAntiAffinity"]
        assert anti, owner
        for c in spec["containers"] + spec.get("initContainers", []):
            csc = c["securityContext"]
            assert csc["readOnlyRootFilesystem"] is True, (owner, c["name"])
            assert csc["allowPrivilegeEscalation"] is False, (owner, c["name"])
            assert csc["capabilities"]["drop"] == ["ALL"], (owner, c["name"])
            assert "limits" in c["resources"] and "requests" in c["resources"], (owner, c["name"])
            mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
            assert "/tmp" in mounts, (owner, c["name"])  # mkdtemp, UCX
            if c["name"] in ("coordinator", "ranks"):
                assert {"startupProbe", "readinessProbe", "livenessProbe"} <= c.keys(), (owner, c["name"])
                assert mounts["/models"]["readOnly"] is True, (owner, c["name"])
            if c["name"] == "ranks":
                assert "/dev/shm" in mounts, owner
        # Graceful drain: the grace period covers preStop + the drain timeout.
        if role == "leader":
            coordinator = [c for c in spec["containers"] if c["name"] == "coordinator"][0]
            pre_stop = int(coordinator["lifecycle"]["preStop"]["exec"]["command"][1])
            assert spec["terminationGracePeriodSeconds"] >= pre_stop + int(config["TANDEM_DRAIN_TIMEOUT"]) + 5
            startup = coordinator["startupProbe"]
            assert startup["periodSeconds"] * startup["failureThreshold"] > int(config["TANDEM_START_TIMEOUT"]), owner
    pdb = render.one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] >= 1  # drains can proceed, one group at a time
    render.one(docs, "NetworkPolicy")


def test_coordinator_probes_see_not_serving(rendered):
    # The API port opens before the workers load (docs/serving.md, "Loading"), so a TCP check
    # would pass while loading: every coordinator probe asks gRPC health, or, where the API speaks
    # TLS, GET /ready on the plaintext metrics port (200 exactly when health is SERVING).
    name, docs = rendered
    config = render.group_config(docs)
    tls = False
    for owner, template, role in render.pod_templates(docs):
        if role != "leader":
            continue
        coordinator = [c for c in template["spec"]["containers"] if c["name"] == "coordinator"][0]
        env = {e["name"]: e.get("value") for e in coordinator.get("env", [])}
        tls = tls or "TANDEM_TLS_DIR" in env
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = coordinator[probe]
            assert "tcpSocket" not in p, (owner, probe)
            if "TANDEM_TLS_DIR" in env:
                assert p["httpGet"] == {"path": "/ready", "port": int(config["TANDEM_METRICS_PORT"])}, (owner, probe)
            else:
                assert p["grpc"]["port"] == 50051, (owner, probe)
    if name in ("overlays/56b-tp8-pp2", "overlays/56b-tp8-pp2-statefulset"):
        assert tls, name  # the overlays with components/tls-api-keys


def test_metrics_ports_stay_off_the_services(rendered):
    _, docs = rendered
    for s in render.by_kind(docs, "Service"):
        assert all(p["port"] not in (9090, 9100) for p in s["spec"]["ports"]), s["metadata"]["name"]


def test_checkov_policy(tmp_path):
    # What is deployed: the overlays (the bases have no namespace and no image tag of their own).
    files = 0
    for name in render.OVERLAYS:
        docs = render.render(name)
        out = [d for d in docs if d["kind"] != "LeaderWorkerSet"]
        # checkov does not know LeaderWorkerSet: check its pod templates as the Pods LWS creates.
        for i, (owner, template, role) in enumerate(render.pod_templates(docs)):
            if owner.startswith("LeaderWorkerSet"):
                out.append(render.as_pod(template, f"tandem-{role}-{i}", "tandem"))
        (tmp_path / f"{name.replace('/', '-')}.yaml").write_text(yaml.safe_dump_all(out))
        files += 1
    checkov = pathlib.Path(sys.executable).parent / "checkov"
    result = subprocess.run(
        [str(checkov), "-d", str(tmp_path), "--framework", "kubernetes", "--skip-download",
         "--quiet", "--compact", "-o", "json", "--skip-check", ",".join(CHECKOV_SKIPS)],
        capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    summary = reports[0]["summary"]
    failed = [f'{c["check_id"]} {c["resource"]} {c["file_path"]}'
              for r in reports for c in r["results"].get("failed_checks", [])]
    assert failed == [], "\n".join(failed)
    assert summary["passed"] > 100 * files // 10, summary


def test_statefulset_pods_are_the_leader_worker_set_pods():
    """statefulset/statefulsets.yaml was generated from lws/leaderworkerset.yaml: the pod templates
    must stay the same but for the StatefulSet's naming variables."""
    lws = render.one(render.render("lws"), "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]
    docs = render.render("statefulset")
    for name, template in [("tandem-leader", lws["leaderTemplate"]), ("tandem-worker", lws["workerTemplate"])]:
        sts = render.one(docs, "StatefulSet", name)["spec"]["template"]
        for c in sts["spec"]["containers"]:
            c["env"] = [e for e in c["env"] if e["name"] not in
                        ("POD_NAME", "TANDEM_WORKERS_STATEFULSET", "TANDEM_WORKERS_SERVICE")]
        assert sts == template, name


# checkov checks of deploy/Dockerfile we do not follow, each with the reason.
DOCKERFILE_SKIPS = {
    # Kubernetes ignores HEALTHCHECK; the manifests' gRPC probes check health (docs/deploy.md).
    "CKV_DOCKER_2": "health is checked by the pods' probes",
    # The bases are build arguments (so the CUDA variant can swap them); their defaults are the
    # tags debian:12 and debian:12-slim, which checkov cannot see through the ARG.
    "CKV_DOCKER_7": "FROM ${BUILD_BASE} / ${RUNTIME_BASE}: tagged defaults",
}


def test_dockerfile_policy_and_layout():
    dockerfile = render.REPO / "deploy" / "Dockerfile"
    checkov = pathlib.Path(sys.executable).parent / "checkov"
    result = subprocess.run(
        [str(checkov), "-f", str(dockerfile), "--framework", "dockerfile", "--skip-download",
         "--quiet", "--compact", "-o", "json", "--skip-check", ",".join(DOCKERFILE_SKIPS)],
        capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    failed = [c["check_id"] for c in report["results"].get("failed_checks", [])]
    assert failed == [] and report["summary"]["passed"] > 20, (failed, report["summary"])
    text = dockerfile.read_text()
    # The runtime stage is the install tree plus the packages derived from it, run as non-root.
    runtime = text[text.rindex("\nFROM "):]
    assert "COPY --from=build /opt/tandem /opt/tandem" in runtime
    assert runtime.count("COPY") == 1
    assert "runtime-packages.txt" in runtime and "tini" in runtime
    assert "USER 10001" in runtime
    assert "cmake --install /build --prefix /opt/tandem --strip" in text
    ignore = (render.REPO / "deploy" / "Dockerfile.dockerignore").read_text().split()
    assert "build*/" in ignore and ".git" in ignore
