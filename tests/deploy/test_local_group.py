"""One rendered model group, run as local processes from the install tree (pods.py): it serves,
survives losing a pod as the manifests say, and two replicas never touch each other's workers."""
import re
import signal
import subprocess

import pytest

import pods
import render


SECRET = {"tandem-group-secret": {"secret": "local-simulation-group-secret-0123456789"}}
SKIP = pods.can_run()
pytestmark = pytest.mark.skipif(bool(SKIP), reason=SKIP)


def configmaps(docs):
    return {d["metadata"]["name"]: d["data"] for d in render.by_kind(docs, "ConfigMap")}


def generate(address, tokens=4):
    r = subprocess.run([str(render.install_prefix() / "bin" / "tandem"), "generate", "Hello",
                        "--server", address, "--max-new-tokens", str(tokens), "--ignore-eos"],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def claims(log):
    """The coordinator pids that claimed the workers whose log this is."""
    return {int(m) for m in re.findall(r"claimed by coordinator '[^:']*:(\d+):", log)}


def lws_group(cluster, docs, group):
    """Group `group` of the rendered LeaderWorkerSet, its pods named and addressed as the LWS
    controller names them: <set>-<g> (leader), <set>-<g>-<k>, DNS <pod>.<set>.<namespace>."""
    lws = render.one(docs, "LeaderWorkerSet")
    name, ns = lws["metadata"]["name"], lws["metadata"]["namespace"]
    t = lws["spec"]["leaderWorkerTemplate"]
    size = t["size"]
    leader_address = f"{name}-{group}.{name}.{ns}"
    out = []
    for k in range(size):
        pod_name = f"{name}-{group}" if k == 0 else f"{name}-{group}-{k}"
        env = {"LWS_LEADER_ADDRESS": leader_address, "LWS_GROUP_SIZE": str(size),
               "LWS_WORKER_INDEX": str(k)}
        out.append(cluster.pod(pod_name, t["leaderTemplate"] if k == 0 else t["workerTemplate"],
                               f"127.0.{group + 1}.{10 + k}", env,
                               dns_names=[f"{pod_name}.{name}.{ns}"]))
    return out


@pytest.fixture
def cluster(tmp_path):
    docs = render.render("overlays/tiny-cpu")
    c = pods.Cluster(tmp_path, render.install_prefix(), configmaps(docs), SECRET)
    c.docs = docs
    yield c
    c.kill()


def test_install_tree_runs():
    prefix = render.install_prefix()
    assert not str(prefix).startswith(str(render.REPO)), "install outside the checkout"
    tandem = prefix / "bin" / "tandem"
    r = subprocess.run([str(tandem), "version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("version: ") and "backends: cpu" in r.stdout, r.stdout
    assert (prefix / "share" / "tandem" / "tokenizer.json").is_file()
    # The runtime image installs exactly these packages: each library tandem loads belongs to
    # one, and none is a development package.
    r = subprocess.run(["bash", str(render.REPO / "deploy" / "runtime-packages.sh"), str(prefix)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    packages = r.stdout.split()
    assert "libc6" in packages and any(p.startswith("libgrpc++") for p in packages), packages
    assert [p for p in packages if p.endswith("-dev")] == [], packages


def test_lws_group_serves_loses_a_pod_and_recovers_and_replicas_stay_apart(cluster):
    docs = cluster.docs
    assert render.one(docs, "LeaderWorkerSet")["spec"]["replicas"] == 2
    groups = [lws_group(cluster, docs, g) for g in range(2)]
    for group in groups:
        for pod in group:
            pod.start()
    addresses = [f"{g[0].ip}:50051" for g in groups]
    for address in addresses:
        pods.wait_for(lambda: pods.health(address) == "SERVING", 120, f"{address} SERVING")
        rc, out = generate(address)
        assert rc == 0, out

    # Two replicas never touch each other's workers: every rank was claimed only by the
    # coordinator of its own group.
    def check_apart():
        for group in groups:
            coordinator = group[0].main_pid("coordinator")
            for pod in group:
                seen = claims(pod.logs("ranks"))
                assert seen <= {coordinator} | set(getattr(pod, "old_coordinators", ())), (pod.name, seen)
    check_apart()

    # The worker pod of group 0 dies (node lost, OOM-killed): SIGKILL, then the controller
    # recreates it under the same name (restartPolicy None: only that pod).
    lost = groups[0][1]
    lost.kill()
    pods.wait_for(lambda: pods.health(addresses[0]) == "NOT_SERVING", 30, "NOT_SERVING")
    lost.start()
    # The other group never noticed.
    assert pods.health(addresses[1]) == "SERVING"
    rc, out = generate(addresses[1])
    assert rc == 0, out

    # What happens when a worker pod dies and the controller recreates it (docs/deploy.md, "When
    # a pod dies"): the same coordinator rebuilds its group (re-contacts the recreated pod's
    # address, claims every rank at a new epoch, reloads) and serves again; no restart.
    leader = groups[0][0]
    coordinator = leader.main_pid("coordinator")
    pods.wait_for(lambda: pods.health(addresses[0]) == "SERVING", 120, "SERVING again")
    assert leader.main_pid("coordinator") == coordinator
    rc, out = generate(addresses[0])
    assert rc == 0, out
    check_apart()

    # Pod deletion: every container exits 0 within the grace period (drain, SIGTERM to ranks).
    for group in groups:
        for pod in group:
            codes = pod.terminate(grace=45)
            assert all(rc == 0 for rc in codes.values()), (pod.name, codes, pod.log("coordinator"))


def test_statefulset_group_serves(tmp_path):
    docs = render.render("overlays/tiny-cpu-statefulset")
    c = pods.Cluster(tmp_path, render.install_prefix(), configmaps(docs), SECRET)
    try:
        leaders = render.one(docs, "StatefulSet", "tandem-leader")
        workers = render.one(docs, "StatefulSet", "tandem-worker")
        assert leaders["spec"]["replicas"] == 2 and workers["spec"]["replicas"] == 2
        # Group 1: pod tandem-leader-1 and its node 1, tandem-worker-1 (1 x (nodes - 1) + 0).
        leader = c.pod("tandem-leader-1", leaders["spec"]["template"], "127.0.5.10")
        worker = c.pod("tandem-worker-1", workers["spec"]["template"], "127.0.5.11",
                       dns_names=["tandem-worker-1.tandem-worker"])
        # A decoy at the other group's name: group 1 must not use it.
        decoy = c.pod("tandem-worker-0", workers["spec"]["template"], "127.0.6.11",
                      dns_names=["tandem-worker-0.tandem-worker"])
        for pod in (leader, worker, decoy):
            pod.start()
        address = f"{leader.ip}:50051"
        pods.wait_for(lambda: pods.health(address) == "SERVING", 120, "SERVING")
        rc, out = generate(address)
        assert rc == 0, out
        coordinator = leader.main_pid("coordinator")
        assert claims(worker.log("ranks")) == {coordinator}
        assert claims(decoy.log("ranks")) == set()
        for pod in (leader, worker, decoy):
            codes = pod.terminate(grace=45)
            assert all(rc == 0 for rc in codes.values()), (pod.name, codes)
    finally:
        c.kill()
