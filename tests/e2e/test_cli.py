"""End to end: the ``siprouter`` command line (real processes, 127.0.0.1 only).

Ports: 5790 router, 5791/5792 the dispatcher destinations (plain sockets
standing in for backends), 5795 the router that must never bind.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.e2e.procs import group_members, siprouter_cmd, udp_port_bound

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CFG = ROOT / "examples" / "loadbalancer.cfg"
EXAMPLE_LIST = ROOT / "examples" / "dispatcher.list"
HOST = "127.0.0.1"
PORT = 5790
BACKENDS = (5791, 5792)
NEVER_BOUND_PORT = 5795
CMD_TIMEOUT = 30  # seconds, for one-shot commands (check, --version, a failing run)



def siprouter(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(siprouter_cmd() + list(args), cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=CMD_TIMEOUT)




def options(n: int, local_port: int, port: int = PORT) -> bytes:
    return (f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{local_port};branch=z9hG4bK-cli-{os.getpid()}-{n}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{HOST}:{local_port}>;tag=cli{n}\r\n"
            f"To: <sip:{HOST}:{port}>\r\n"
            f"Call-ID: cli-{os.getpid()}-{n}@{HOST}\r\n"
            f"CSeq: {n} OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def invite(local_port: int) -> bytes:
    body = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=audio 6000 RTP/AVP 0\r\n")
    return (f"INVITE sip:service@{HOST}:{PORT} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{local_port};branch=z9hG4bK-cli-inv-{local_port}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: sipp <sip:sipp@{HOST}:{local_port}>;tag=cli-inv\r\n"
            f"To: <sip:service@{HOST}:{PORT}>\r\n"
            f"Call-ID: cli-inv-{os.getpid()}-{local_port}@{HOST}\r\n"
            "CSeq: 1 INVITE\r\n"
            f"Contact: <sip:sipp@{HOST}:{local_port}>\r\n"
            "Content-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def ask(sock: socket.socket, data: bytes, port: int = PORT, timeout: float = 0.5) -> bytes | None:
    sock.settimeout(timeout)
    sock.sendto(data, (HOST, port))
    try:
        reply, _ = sock.recvfrom(65535)
    except (TimeoutError, ConnectionRefusedError):
        return None
    return reply


def write_cfg(directory: Path, port: int = PORT, children: int | None = None,
              replace: tuple[str, str] | None = None) -> Path:
    """examples/loadbalancer.cfg adapted to ``directory`` (listen port, list file)."""
    text = EXAMPLE_CFG.read_text()
    text = text.replace("listen=udp:127.0.0.1:5060", f"listen=udp:{HOST}:{port}")
    text = text.replace('"examples/dispatcher.list"', '"dispatcher.list"')
    if children is not None:
        text, n = re.subn(r"(?m)^children=\d+$", f"children={children}", text)
        assert n == 1
    if replace is not None:
        old, new = replace
        assert text.count(old) == 1, f"{old!r} is not once in the example cfg"
        text = text.replace(old, new)
    (directory / "dispatcher.list").write_text(
        "".join(f"1 sip:{HOST}:{p} 0 0 weight=50\n" for p in BACKENDS))
    cfg = directory / "router.cfg"
    cfg.write_text(text)
    return cfg


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def assert_located(stderr: str, path: str, line: int) -> None:
    """stderr has a ``FILE:LINE:COL: reason`` line for ``path`` and ``line``."""
    pattern = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<reason>\S.*)$")
    found = []
    for text in stderr.splitlines():
        m = pattern.match(text)
        if m:
            found.append(m)
            if (Path(m["file"]).name == Path(path).name and int(m["line"]) == line
                    and int(m["col"]) >= 1):
                return
    pytest.fail(f"no '{Path(path).name}:{line}:COL: reason' error line; got:\n{stderr}")


class RunningRouter:
    def __init__(self, cfg: Path, port: int = PORT):
        self.cfg = cfg
        self.port = port
        self.log = cfg.with_suffix(".log")
        deadline = time.monotonic() + 5  # a previous test's router may be winding down
        while udp_port_bound(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not udp_port_bound(port), f"UDP {HOST}:{port} is already in use"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(siprouter_cmd() + ["run", "-f", str(cfg)],
                                         cwd=cfg.parent, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.pgid = self.proc.pid
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((HOST, 0))
            deadline = time.monotonic() + 20
            n = 0
            while True:
                if self.proc.poll() is not None:
                    pytest.fail(f"siprouter exited with {self.proc.returncode}:\n{self.output()}")
                n += 1
                reply = ask(s, options(n, s.getsockname()[1], port), port, 0.2)
                if reply is not None and reply.startswith(b"SIP/2.0 200 "):
                    break
                if time.monotonic() > deadline:
                    self.kill()
                    pytest.fail(f"siprouter did not answer OPTIONS:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL whatever is left of the group and wait until it is gone."""
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        # orphaned zombies may never be reaped here (PID 1 may not reap):
        # only wait for live processes, which could still hold the port
        deadline = time.monotonic() + 5
        while group_members(self.pgid, zombies=False) and time.monotonic() < deadline:
            time.sleep(0.02)

    def terminate(self, limit: float) -> float:
        """SIGTERM the group, wait until it is empty; returns the seconds it took."""
        t0 = time.monotonic()
        os.killpg(self.pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            pass
        while group_members(self.pgid) and time.monotonic() - t0 < limit:
            time.sleep(0.02)
        return time.monotonic() - t0


@pytest.fixture
def router(tmp_path: Path):
    r = RunningRouter(write_cfg(tmp_path))
    yield r
    if r.proc.poll() is None:
        r.terminate(limit=3.0)
    r.kill()


# --------------------------------------------------------------------------
# --version, check


def test_version() -> None:
    result = siprouter("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"siprouter {version('siprouter')}"


def test_check_example_from_repo_root() -> None:
    result = siprouter("check", "-f", "examples/loadbalancer.cfg", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration OK" in result.stdout
    assert result.stderr == ""


def test_check_example_copy(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path)
    result = siprouter("check", "-f", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


BROKEN = {
    # name: (text to replace once in the example, replacement, text marking the error line)
    "syntax_missing_paren": ("if (has_totag()) {", "if (has_totag() {", "if (has_totag() {"),
    "syntax_missing_semicolon": ('sl_send_reply("404", "Not here");',
                                 'sl_send_reply("404", "Not here")\n\t\tsl_send_reply("500", "x");',
                                 'sl_send_reply("404", "Not here")'),
    "unknown_module": ('loadmodule "xlog.so"\n', 'loadmodule "xlog.so"\nloadmodule "nosuch.so"\n',
                       'loadmodule "nosuch.so"'),
    "unknown_function": ("record_route();", "record_routez();", "record_routez();"),
    "unknown_modparam": ('modparam("maxfwd", "max_limit", 70)',
                         'modparam("maxfwd", "max_limitx", 70)', '"max_limitx"'),
    "bad_modparam_value": ('modparam("maxfwd", "max_limit", 70)',
                           'modparam("maxfwd", "max_limit", "seventy")', '"seventy"'),
    "modparam_unknown_module": ('modparam("maxfwd", "max_limit", 70)',
                                'modparam("nosuch", "max_limit", 70)', 'modparam("nosuch"'),
    "wrong_argument_count": ('sl_send_reply("404", "Not here");', 'sl_send_reply("404");',
                             'sl_send_reply("404");'),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_check_broken_cfg(tmp_path: Path, name: str) -> None:
    old, new, marker = BROKEN[name]
    cfg = write_cfg(tmp_path, replace=(old, new))
    result = siprouter("check", "-f", str(cfg), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "configuration OK" not in result.stdout
    assert_located(result.stderr, str(cfg), line_of(cfg, marker))
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("directive", ["include_file", "import_file"])
def test_check_error_in_included_file(tmp_path: Path, directive: str) -> None:
    (tmp_path / "routes.inc").write_text(
        "# included request_route\n"
        "request_route {\n"
        "\tsl_send_reply(\"200\", \"OK\")\n"  # line 3: no ';'
        "\texit;\n"
        "}\n")
    example = EXAMPLE_CFG.read_text()
    head = example[:example.index("request_route {")]
    cfg = write_cfg(tmp_path)
    cfg.write_text(head.replace("listen=udp:127.0.0.1:5060", f"listen=udp:{HOST}:{PORT}")
                   .replace('"examples/dispatcher.list"', '"dispatcher.list"')
                   + f'{directive} "routes.inc"\n')
    result = siprouter("check", "-f", str(cfg), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_located(result.stderr, "routes.inc", 3)


def test_check_missing_include(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path, replace=("request_route {", 'include_file "nowhere.inc"\nrequest_route {'))
    result = siprouter("check", "-f", str(cfg), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_located(result.stderr, str(cfg), line_of(cfg, "nowhere.inc"))


def test_check_missing_file(tmp_path: Path) -> None:
    result = siprouter("check", "-f", str(tmp_path / "missing.cfg"), cwd=tmp_path)
    assert result.returncode == 1
    assert "missing.cfg" in result.stderr


# --------------------------------------------------------------------------
# run


def test_run_broken_cfg_exits_before_binding(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path, port=NEVER_BOUND_PORT,
                    replace=("record_route();", "record_routez();"))
    assert not udp_port_bound(NEVER_BOUND_PORT)
    proc = subprocess.Popen(siprouter_cmd() + ["run", "-f", str(cfg)], cwd=tmp_path,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    bound = False
    deadline = time.monotonic() + CMD_TIMEOUT
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            bound = bound or udp_port_bound(NEVER_BOUND_PORT)
            time.sleep(0.005)
        assert proc.poll() is not None, "siprouter run kept running on a broken cfg"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 1, stdout + stderr
    assert not bound, "siprouter bound its port although the cfg does not compile"
    assert not udp_port_bound(NEVER_BOUND_PORT)
    assert_located(stderr, str(cfg), line_of(cfg, "record_routez"))
    assert not group_members(proc.pid), "processes left behind"


def test_run_sigterm_stops_all_workers(tmp_path: Path) -> None:
    r = RunningRouter(write_cfg(tmp_path, children=3))
    try:
        members = group_members(r.pgid)
        assert r.pgid in members
        assert len(members) >= 4, f"expected the supervisor and 3 workers, got {members}"
        elapsed = r.terminate(limit=2.0)
        left = group_members(r.pgid)
        assert not left, f"processes {left} still alive {elapsed:.2f} s after SIGTERM"
        assert elapsed < 2.0
        assert r.proc.returncode == 0, r.output()
        assert not udp_port_bound(PORT)
        assert "Traceback" not in r.output()
    finally:
        r.kill()


def test_malformed_datagrams_are_dropped(router: RunningRouter) -> None:
    # the dispatcher destinations: nothing may be forwarded there either
    backends = []
    for port in BACKENDS:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, port))
        s.settimeout(0)
        backends.append(s)
    clients = []
    try:
        workers = group_members(router.pgid)
        # several source ports: SO_REUSEPORT spreads them over the workers
        for _ in range(8):
            c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            c.bind((HOST, 0))
            clients.append(c)
        for c in clients:
            port = c.getsockname()[1]
            full = invite(port)
            garbage = [
                bytes(range(256)) * 2,                     # binary
                b"\x00" * 64,
                b"\xff\xfe garbage that is not SIP at all \r\n\r\n" * 3,
                full[:40],                                 # in the request line's neighbourhood
                full[:full.index(b"Call-ID")],             # cut before Call-ID / CSeq
                full[:full.index(b"Call-ID") + 12],        # cut inside a header line
                b"INVITE sip:service@127.0.0.1:5790 SIP/2.0\r\nVia: SIP/2.0/UDP",
            ]
            for data in garbage:
                c.sendto(data, (HOST, PORT))
        time.sleep(1.0)
        for s in clients + backends:
            s.setblocking(False)
            try:
                data = s.recv(65535)
            except BlockingIOError:
                continue
            where = "forwarded" if s in backends else "answered"
            pytest.fail(f"a malformed datagram was {where}: {data[:200]!r}\n{router.output()}")
        # still alive and answering, from the same source ports (same workers)
        for n, c in enumerate(clients):
            reply = ask(c, options(1000 + n, c.getsockname()[1]), timeout=2.0)
            assert reply is not None and reply.startswith(b"SIP/2.0 200 "), (
                f"no 200 to OPTIONS after malformed input: {reply!r}\n{router.output()}")
        assert group_members(router.pgid) == workers, (
            f"worker processes changed (crash + restart?)\n{router.output()}")
        assert "Traceback" not in router.output()
    finally:
        for s in backends + clients:
            s.close()


def test_body_truncated_invite_gets_sanity_400(router: RunningRouter) -> None:
    """Cut inside the body: a complete header, so sanity answers (as Kamailio does)."""
    backends = []
    for port in BACKENDS:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, port))
        s.setblocking(False)
        backends.append(s)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.bind((HOST, 0))
            full = invite(c.getsockname()[1])
            reply = ask(c, full[:-10], timeout=2.0)
        assert reply is not None and reply.startswith(b"SIP/2.0 400 Content-Length mis-match\r\n"), (
            f"{reply!r}\n{router.output()}")
        time.sleep(0.2)
        for s in backends:
            with pytest.raises(BlockingIOError):
                s.recv(65535)
    finally:
        for s in backends:
            s.close()
