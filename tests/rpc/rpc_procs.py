"""Helpers of the control-plane tests: a running ``siprouter run``, ``siprouter ctl``, SIP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import siprouter_cmd

HOST = "127.0.0.1"


class Router:
    """``siprouter run -f`` in its own session, stopped with SIGTERM."""

    def __init__(self, cfg: Path, ctl: str, options: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.ctl = ctl
        self.log = cfg.with_suffix(".log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(siprouter_cmd() + ["run", "-f", str(cfg),
                                                            *(options or [])],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"siprouter exited with {self.proc.returncode}:\n{self.output()}")
            if os.path.exists(ctl.removeprefix("unix:")):
                return
            time.sleep(0.05)
        pytest.fail(f"the ctl socket {ctl} did not appear:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        """SIGTERM to the process group (systemd's and a terminal's way); the exit status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def ctl(router: Router, *args: str, address: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(siprouter_cmd() + ["ctl", "-s", address or router.ctl, *args],
                          capture_output=True, text=True, timeout=30)


def ctl_ok(router: Router, *args: str) -> Any:
    out = ctl(router, *args)
    assert out.returncode == 0, f"siprouter ctl {' '.join(args)}: {out.stderr}"
    return json.loads(out.stdout)


def options(sock: socket.socket, sip_port: int, user: str = "", max_forwards: int = 70) -> bytes:
    """An OPTIONS request to the router at HOST:sip_port, Via = ``sock``."""
    port = sock.getsockname()[1]
    branch = "z9hG4bK" + uuid.uuid4().hex
    ruri = f"sip:{user + '@' if user else ''}{HOST}:{sip_port}"
    return (f"OPTIONS {ruri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{port};branch={branch}\r\n"
            f"Max-Forwards: {max_forwards}\r\n"
            f"From: <sip:test@{HOST}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <{ruri}>\r\n"
            f"Call-ID: {uuid.uuid4().hex}@{HOST}\r\n"
            f"CSeq: 1 OPTIONS\r\n"
            f"Content-Length: 0\r\n\r\n").encode()
