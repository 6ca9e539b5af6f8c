"""The shared conformance corpus (oracle: Kamailio 5.6.3) against siprouter, as one test.

Takes a few minutes (many cases wait for silence). Deselect with
``-m "not conformance"``. The runner uses the fixed UDP ports 6050-6106 and
6060 on 127.0.0.1 (see ../shared/conformance/README.md).
"""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e import procs

RUN_TIMEOUT = 900  # seconds; the full corpus takes about 2-3 minutes
PORT_WAIT = 120  # seconds to wait for another conformance run to release its ports
RUNNER_PORTS = (6050, 6051, 6060, *range(6101, 6107))


def siprouter_cmd() -> str:
    return " ".join(shlex.quote(part) for part in procs.siprouter_cmd())

def busy_ports() -> list[int]:
    busy = []
    for port in RUNNER_PORTS:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


@pytest.mark.conformance
def test_conformance_corpus(shared: Path, tmp_path: Path) -> None:
    conformance = shared / "conformance"
    runner = conformance / "run_conformance.py"
    cases = conformance / "cases"
    assert runner.is_file(), f"missing {runner}"
    n_cases = len([p for p in cases.glob("*.json") if p.name != "divergences.json"])
    assert n_cases > 0, f"no cases in {cases}"

    deadline = time.monotonic() + PORT_WAIT
    while (busy := busy_ports()) and time.monotonic() < deadline:
        time.sleep(1)
    assert not busy, (f"UDP ports {busy} on 127.0.0.1 stay in use (another conformance "
                      "run?); the runner needs 6050-6106")

    log_dir = tmp_path / "logs"
    argv = [sys.executable, str(runner), "--server", f"{siprouter_cmd()} run -f {{cfg}}",
            "--cases", str(cases), "--log-dir", str(log_dir)]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
        pytest.fail(f"conformance runner still running after {RUN_TIMEOUT} s\n{out or ''}")

    lines = result.stdout.splitlines()
    fails = [line for line in lines if line.startswith("FAIL ")]
    final = lines[-1] if lines else ""
    m = re.fullmatch(r"(\d+) passed, (\d+) failed", final)
    report = "\n".join(
        [f"exit code {result.returncode}; final line {final!r}; server logs in {log_dir}",
         f"{len(fails)} failing case(s):", *fails]
        + (["--- stderr ---", result.stderr[-4000:]] if result.stderr.strip() else []))
    if fails or result.returncode != 0 or not m:
        print(report)
    assert m is not None, f"no 'N passed, M failed' final line\n{report}\n{result.stdout[-3000:]}"
    assert result.returncode == 0 and int(m[2]) == 0 and not fails, report
    assert int(m[1]) == n_cases, f"{m[1]} cases passed, the corpus has {n_cases}\n{report}"
