"""Helpers shared by the end-to-end tests: how to start siprouter, which ports are bound."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def siprouter_cmd() -> list[str]:
    """The ``siprouter`` console script of this interpreter (PATH as fallback)."""
    local = Path(sys.executable).with_name("siprouter")
    if local.exists():
        return [str(local)]
    found = shutil.which("siprouter")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from siprouter.cli import main; sys.exit(main())"]


def udp_port_bound(port: int) -> bool:
    """True when /proc/net/udp shows a socket on 127.0.0.1:port or 0.0.0.0:port."""
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                ip, p = line.split()[1].split(":")
                if int(p, 16) == port and ip in ("0100007F", "00000000"):
                    return True
    except (OSError, ValueError, StopIteration, IndexError):
        return False
    return False


def group_members(pgid: int, zombies: bool = True) -> list[int]:
    """PIDs whose process group is ``pgid`` (zombies too, unless ``zombies`` is false)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and (zombies or fields[0] != "Z"):
            members.append(int(entry))
    return sorted(members)
