"""`tandem worker --local-ranks N` (tools/cli/local_ranks.h), real processes: one worker per
rank on consecutive ports, a rank that dies comes back on its port, ranks that keep dying end the
supervisor with status 1, SIGTERM ends everything with status 0."""
import os
import pathlib
import re
import signal
import socket
import subprocess
import time

import pytest

import pods
import render

ENV = {"TANDEM_GROUP_SECRET": "local-ranks-test-secret-0123456789", "PATH": "/usr/bin:/bin"}
HOST = "127.0.7.1"


def children(pid):
    path = pathlib.Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def accepts(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def rank_pid(log_path, rank):
    """The pid of the newest start of local rank `rank` in the supervisor's log."""
    found = re.findall(rf"local rank {rank} started: pid (\d+)", log_path.read_text())
    return int(found[-1]) if found else None


@pytest.fixture
def supervisor(tmp_path):
    started = []

    def start(port, *flags):
        log = tmp_path / f"supervisor{len(started)}.log"
        p = subprocess.Popen([str(render.install_prefix() / "bin" / "tandem"), "worker", "--listen",
                              f"{HOST}:{port}", "--local-ranks", "2", "--threads", "1", *flags],
                             env=ENV, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        started.append(p)
        return p, log

    yield start
    for p in started:
        pods._kill_group(p)


def test_ranks_listen_restart_on_their_port_and_stop_on_sigterm(supervisor):
    p, log = supervisor(7300, "--metrics-port", "7310")
    pods.wait_for(lambda: accepts(7300) and accepts(7301), 30, "both ranks listening")
    assert pods.health(f"{HOST}:7301") == "SERVING"
    assert sorted(children(p.pid)) == sorted([rank_pid(log, 0), rank_pid(log, 1)])
    assert accepts(7310) and accepts(7311)  # metrics: base + rank

    first = rank_pid(log, 1)
    os.kill(first, signal.SIGKILL)
    pods.wait_for(lambda: rank_pid(log, 1) not in (None, first), 15, "rank 1 restarted")
    pods.wait_for(lambda: pods.health(f"{HOST}:7301") == "SERVING", 30, "rank 1 back on 7301")
    text = log.read_text()
    assert f"local rank 1 (pid {first}) was killed by signal 9; restarting it on {HOST}:7301" in text
    assert rank_pid(log, 0) in children(p.pid)  # its sibling kept running

    ranks = children(p.pid)
    start = time.monotonic()
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=15) == 0
    assert time.monotonic() - start < 5
    for pid in ranks:
        assert not pathlib.Path(f"/proc/{pid}").exists() or \
            "zombie" in pathlib.Path(f"/proc/{pid}/status").read_text()


def test_ranks_that_keep_dying_end_the_supervisor_with_status_1(supervisor):
    with socket.socket() as taken:  # rank 1's port is taken: it exits at once, every time
        taken.bind((HOST, 7321))
        taken.listen()
        p, log = supervisor(7320)
        assert p.wait(timeout=60) == 1
    text = log.read_text()
    assert "rank exits within" in text and "exiting 1" in text, text
    assert len(re.findall(r"local rank 1 started", text)) == 6, text
    assert not accepts(7320)  # rank 0 was stopped too


def test_flags_are_checked():
    tandem = str(render.install_prefix() / "bin" / "tandem")
    for flags, message in [
        (["--listen", f"{HOST}:0", "--local-ranks", "2"], "needs --listen HOST:PORT"),
        (["--listen", f"{HOST}:65535", "--local-ranks", "2"], "in [1, 65535]"),
        (["--listen", f"{HOST}:7000", "--local-ranks", "0"], "--local-ranks 0 is outside [1, 64]"),
        (["--listen", f"{HOST}:7000", "--local-ranks", "2", "--port-file", "x"], "--port-file does not apply"),
    ]:
        r = subprocess.run([tandem, "worker", *flags], env=ENV, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2 and message in r.stderr, (flags, r.stderr)
    r = subprocess.run([tandem, "worker", "--listen", f"{HOST}:7000", "--local-ranks", "2"],
                       env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "secret" in r.stderr, r.stderr
