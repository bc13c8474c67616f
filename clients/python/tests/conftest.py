"""Fixtures: a real `tandem serve` (the built-in default model) and the tandem-openai gateway, each in
its own process group, killed at teardown.

TANDEM_BIN names the tandem binary (default: build/bin/tandem of the repository).
"""

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
TANDEM = os.environ.get("TANDEM_BIN", str(REPO / "build" / "bin" / "tandem"))
START_TIMEOUT = 60


class Proc:
    """A child process in its own process group whose stdout announces 'listening on HOST:PORT'."""

    def __init__(self, argv, env=None):
        self.argv = argv
        # stderr to a file (a full pipe would block the child); stdout drained after the listening line.
        self.log = tempfile.TemporaryFile(mode="w+")
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                  start_new_session=True, env=env)
        self.address = None
        deadline = time.monotonic() + START_TIMEOUT
        lines = []
        # The first stdout line is the listening line (stdout carries nothing else before it).
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"listening on (\S+):(\d+)", line)
            if m:
                self.address = f"{m.group(1)}:{m.group(2)}"
                self.port = int(m.group(2))
                threading.Thread(target=self.p.stdout.read, daemon=True).start()
                return
        self.stop()
        raise RuntimeError(f"{argv[0]} did not start: stdout {''.join(lines)!r} stderr "
                           f"{self.stderr()[-2000:]!r}")

    def stderr(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
            except ProcessLookupError:
                pass
        # Whatever is left in the group (workers) goes too.
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def start_serve(*extra):
    if not os.access(TANDEM, os.X_OK):
        pytest.fail(f"{TANDEM} not found: build Tandem first (tools/build.sh) or set TANDEM_BIN")
    return Proc([TANDEM, "serve", "--port", "0", "--tp", "1", "--pp", "1", "--slots", "16",
                 "--blocks", "256", *extra])


# The chat template the gateway fixtures use (the built-in model has none of its own).
TEST_CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}\n{% endfor %}"
                      "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def start_gateway(server, *extra, chat_template=True):
    """The gateway for `server`; with chat_template (unless extra names one), TEST_CHAT_TEMPLATE."""
    args = [sys.executable, "-m", "tandem_client.gateway", "--server", server, "--port", "0", *extra]
    if chat_template and "--chat-template" not in extra:
        args += ["--chat-template", _test_chat_template_file()]
    return Proc(args)


_template_dir = None


def _test_chat_template_file():
    global _template_dir
    if _template_dir is None:
        _template_dir = tempfile.TemporaryDirectory(prefix="tandem-gateway-test-")
        with open(os.path.join(_template_dir.name, "chat.jinja"), "w") as f:
            f.write(TEST_CHAT_TEMPLATE)
    return os.path.join(_template_dir.name, "chat.jinja")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server():
    s = start_serve()
    yield s
    s.stop()


API_KEY = "test-key-0123456789abcdef"


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory):
    f = tmp_path_factory.mktemp("keys") / "api-keys"
    f.write_text(f"# test keys\n{API_KEY} name=tests\n")
    s = start_serve("--api-keys-file", str(f))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def gateway(server):
    g = start_gateway(server.address)
    yield g
    g.stop()


@pytest.fixture(scope="session")
def keyed_gateway(keyed_server):
    g = start_gateway(keyed_server.address)
    yield g
    g.stop()
