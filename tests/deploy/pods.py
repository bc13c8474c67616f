"""Runs rendered pods as local processes, the way a kubelet would run them: every container's
command, args and environment exactly as rendered (envFrom ConfigMaps, fieldRefs, the variables the
LWS controller injects), each volume a directory of the pod, the image's /opt/tandem the install
tree, and the pods' DNS names mapped to 127.0.x.y addresses through a private /etc/hosts (each
container runs in its own mount namespace: `unshare -m`, needs root)."""
import os
import pathlib
import shutil
import signal
import subprocess
import time

import grpc

IMAGE_PREFIX = "/opt/tandem"  # where deploy/Dockerfile installs Tandem


def health(address, timeout=2.0):
    """grpc.health.v1 Check of the whole server, as the kubelet's gRPC probe does: SERVING,
    NOT_SERVING, UNKNOWN, or None when it does not answer."""
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=lambda _: b"",
                                    response_deserializer=lambda b: b)
        try:
            reply = check(None, timeout=timeout)
        except grpc.RpcError:
            return None
    return {b"": "UNKNOWN", b"\x08\x01": "SERVING", b"\x08\x02": "NOT_SERVING"}.get(reply, repr(reply))


def wait_for(predicate, timeout, what):
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Cluster:
    """The pods of one test; kill() ends every process group it started."""

    def __init__(self, root: pathlib.Path, prefix: pathlib.Path, configmaps: dict, secrets: dict):
        self.root = root
        self.prefix = prefix
        self.configmaps = configmaps  # name -> data
        self.secrets = secrets        # name -> data
        self.hosts = {}               # DNS name -> IP
        self.pods = []

    def add_host(self, name, ip):
        self.hosts[name] = ip
        lines = ["127.0.0.1 localhost"] + [f"{ip} {n}" for n, ip in sorted(self.hosts.items())]
        (self.root / "hosts").write_text("\n".join(lines) + "\n")

    def pod(self, name, template, ip, injected_env=None, dns_names=()):
        # The pod's IP becomes an address of this (private) network namespace's loopback, as
        # the pod IP is an address of the pod's interface: UCX and Gloo look the interface up.
        subprocess.run(["ip", "addr", "replace", f"{ip}/32", "dev", "lo"], check=True)
        pod = Pod(self, name, template, ip, injected_env or {})
        for n in dns_names:
            self.add_host(n, ip)
        self.pods.append(pod)
        return pod

    def kill(self):
        for pod in self.pods:
            pod.kill()


class Pod:
    def __init__(self, cluster, name, template, ip, injected_env):
        self.cluster = cluster
        self.name = name
        self.template = template
        self.ip = ip
        self.injected_env = injected_env
        self.procs = {}  # container name -> Popen
        self.incarnation = 0
        self.dir = None

    # --- the kubelet's part -------------------------------------------------------------
    def _volumes(self):
        """Fresh directories for the pod's volumes (emptyDirs start empty in a new pod)."""
        self.incarnation += 1
        self.dir = self.cluster.root / f"{self.name}.{self.incarnation}"
        paths = {}
        for v in self.template["spec"]["volumes"]:
            d = self.dir / "volumes" / v["name"]
            d.mkdir(parents=True)
            if "configMap" in v:
                data = self._configmap(v["configMap"]["name"])
                for key, text in data.items():
                    (d / key).write_text(text)
                    (d / key).chmod(v["configMap"].get("defaultMode", 0o644))
            elif "secret" in v:
                for key, text in self.cluster.secrets[v["secret"]["secretName"]].items():
                    (d / key).write_text(text)
                    (d / key).chmod(0o600)
            paths[v["name"]] = d
        return paths

    def _configmap(self, name):
        return self.cluster.configmaps[name]

    def _map(self, value, mounts):
        """A path inside the container as the path of this machine the pod sees there."""
        for mount_path, host in sorted(mounts.items(), key=lambda m: -len(m[0])):
            if value == mount_path or value.startswith(mount_path + "/"):
                return str(host) + value[len(mount_path):]
        return value

    def _environment(self, container, mounts):
        env = dict(self.injected_env)
        for source in container.get("envFrom", []):
            env.update(self._configmap(source["configMapRef"]["name"]))
        for e in container.get("env", []):
            if "value" in e:
                env[e["name"]] = e["value"]
            else:
                field = e["valueFrom"]["fieldRef"]["fieldPath"]
                env[e["name"]] = {"status.podIP": self.ip, "metadata.name": self.name}[field]
        env = {k: self._map(v, mounts) for k, v in env.items()}
        # What the image provides (deploy/Dockerfile: PATH=/opt/tandem/bin:...), on this machine.
        env.update({"PATH": f"{self.cluster.prefix}/bin:/usr/bin:/bin", "HOME": str(self.dir)})
        return env

    def _start(self, container, volumes):
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", [])}
        mounts[IMAGE_PREFIX] = self.cluster.prefix
        argv = [self._map(a, mounts) for a in container.get("command", []) + container.get("args", [])]
        env = self._environment(container, mounts)
        log = open(self.dir / f'{container["name"]}.log', "ab")
        wrapper = ["unshare", "-m", "--", "/bin/sh", "-c",
                   'mount --bind "$0" /etc/hosts && exec "$@"', str(self.cluster.root / "hosts")]
        return subprocess.Popen(wrapper + argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def start(self, init_timeout=120):
        """Init containers in order (each must exit 0), then the containers."""
        volumes = self._volumes()
        self.volumes = volumes
        for c in self.template["spec"].get("initContainers", []):
            p = self._start(c, volumes)
            try:
                rc = p.wait(timeout=init_timeout)
            finally:
                _kill_group(p)
            assert rc == 0, f"{self.name}: init container {c['name']} exited {rc}: {self.log(c['name'])}"
        for c in self.template["spec"]["containers"]:
            self.procs[c["name"]] = self._start(c, volumes)

    def restart_container(self, name, sig=signal.SIGTERM, grace=45):
        """What the kubelet does when a liveness probe fails: stop the container (SIGTERM, then
        SIGKILL after the grace period) and start it again in the same pod."""
        p = self.procs[name]
        rc = _stop(p, sig, grace)
        c = [c for c in self.template["spec"]["containers"] if c["name"] == name][0]
        self.procs[name] = self._start(c, self.volumes)
        return rc

    def terminate(self, grace=45):
        """Pod deletion: SIGTERM to every container, SIGKILL after the grace period. Exit codes."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        return {name: _stop(p, None, grace) for name, p in self.procs.items()}

    def kill(self):
        for p in self.procs.values():
            _kill_group(p)

    def main_pid(self, container):
        """The pid of the container's program: the child of its tini."""
        tini = self.procs[container].pid
        children = pathlib.Path(f"/proc/{tini}/task/{tini}/children").read_text().split()
        assert len(children) == 1, (self.name, container, children)
        return int(children[0])

    def log(self, container):
        path = self.dir / f"{container}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, container):
        """The container's log over every incarnation of this pod."""
        out = []
        for d in sorted(self.cluster.root.glob(f"{self.name}.*")):
            path = d / f"{container}.log"
            if path.exists():
                out.append(path.read_text(errors="replace"))
        return "".join(out)


def _stop(p, sig, grace):
    """`sig` to the container's first process (tini, as the runtime does), SIGKILL to whatever is
    left after `grace` seconds; the exit code, or None when it had to be killed."""
    if sig is not None and p.poll() is None:
        p.send_signal(sig)
    try:
        rc = p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        rc = None
    _kill_group(p)
    return rc


def _descendants(pid):
    out = []
    path = pathlib.Path(f"/proc/{pid}/task/{pid}/children")
    try:
        children = [int(c) for c in path.read_text().split()]
    except OSError:
        return out
    for c in children:
        out.append(c)
        out.extend(_descendants(c))
    return out


def _kill_group(p):
    """SIGKILL to the container's processes: its first process and every descendant (tini puts
    its child in a process group of its own), as the runtime ends a container's cgroup."""
    for pid in [p.pid] + _descendants(p.pid):
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def can_run():
    """Why the simulation cannot run here ('' when it can)."""
    if os.geteuid() != 0:
        return "needs root for a private /etc/hosts (unshare -m, mount --bind)"
    if os.readlink("/proc/self/ns/net") == os.environ.get("TANDEM_HOST_NETNS", os.readlink("/proc/self/ns/net")):
        return "needs a private network namespace (tests/deploy/run.sh makes one)"
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux)"
    r = subprocess.run(["unshare", "-m", "--", "true"], capture_output=True)
    if r.returncode != 0:
        return "unshare -m is not permitted here: " + r.stderr.decode(errors="replace")
    return ""
