"""deploy/k8s/common/tandem-pod.sh without a cluster: the addresses it computes for every group
of both variants, and the mistakes it refuses (a `tandem` stub on PATH records the command)."""
import os
import pathlib
import subprocess

import pytest

import render

SCRIPT = render.K8S / "common" / "tandem-pod.sh"


@pytest.fixture
def stub(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tandem").write_text('#!/bin/sh\necho "tandem $*"\n')
    (bin_dir / "tandem").chmod(0o755)
    return bin_dir


def run(stub, role, **env):
    base = {"PATH": f"{stub}:/usr/bin:/bin", "POD_IP": "10.1.2.3", "TANDEM_TP": "8",
            "TANDEM_PP": "2", "TANDEM_GPUS_PER_NODE": "8", "TANDEM_MODEL": "/models/m"}
    base.update(env)
    r = subprocess.run(["/bin/sh", str(SCRIPT), role], env=base, capture_output=True, text=True,
                       timeout=30)
    return r.returncode, r.stdout, r.stderr


def workers_of(stdout):
    args = stdout.split()
    return args[args.index("--workers") + 1].split(",")


def test_lws_coordinator_addresses_its_own_group_in_rank_order(stub):
    for group in range(3):
        rc, out, err = run(stub, "coordinator", LWS_LEADER_ADDRESS=f"tandem-{group}.tandem.ns",
                           LWS_GROUP_SIZE="2", LWS_WORKER_INDEX="0")
        assert rc == 0, err
        expected = [f"10.1.2.3:{7000 + i}" for i in range(8)] + \
                   [f"tandem-{group}-1.tandem.ns:{7000 + i}" for i in range(8)]
        assert workers_of(out) == expected
        assert "--host 10.1.2.3" in out and "--rendezvous-host 10.1.2.3" in out


def test_statefulset_coordinator_addresses_its_own_group(stub):
    seen = set()
    for group in range(3):
        rc, out, err = run(stub, "coordinator", TANDEM_PP="4", POD_NAME=f"tandem-leader-{group}",
                           TANDEM_WORKERS_STATEFULSET="tandem-worker",
                           TANDEM_WORKERS_SERVICE="tandem-worker")
        assert rc == 0, err
        hosts = [w.rsplit(":", 1)[0] for w in workers_of(out)[8:]]
        pods = sorted(set(hosts))
        assert pods == [f"tandem-worker-{group * 3 + k}.tandem-worker" for k in range(3)]
        assert not seen & set(pods)  # no two groups share a worker pod
        seen |= set(pods)


def test_ranks_command(stub):
    rc, out, err = run(stub, "ranks", TANDEM_GROUP_SECRET_FILE="/etc/s",
                       TANDEM_WORKER_METRICS_PORT="9100")
    assert rc == 0, err
    assert out.strip() == ("tandem worker --listen 10.1.2.3:7000 --local-ranks 8 "
                           "--group-secret-file /etc/s --metrics-port 9100")


@pytest.mark.parametrize("env,message", [
    ({"LWS_LEADER_ADDRESS": "tandem-0.tandem.ns", "LWS_GROUP_SIZE": "1"},
     "LWS_GROUP_SIZE=1 but tp x pp / gpus per node = 2 pods"),
    ({"TANDEM_GPUS_PER_NODE": "4", "TANDEM_TP": "8"}, "not a multiple of TANDEM_TP=8"),
    ({"TANDEM_GPUS_PER_NODE": "8", "TANDEM_TP": "4", "TANDEM_PP": "1"}, "do not fill whole nodes"),
])
def test_mistakes_are_refused(stub, env, message):
    rc, out, err = run(stub, "coordinator", **env)
    assert rc == 2 and message in err, (rc, out, err)


def test_model_check_names_the_path(stub, tmp_path):
    rc, _, err = run(stub, "model", TANDEM_MODEL=str(tmp_path / "missing"))
    assert rc == 2 and f"no checkpoint at TANDEM_MODEL={tmp_path / 'missing'}" in err
