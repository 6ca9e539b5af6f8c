#!/usr/bin/env python3
"""Cold-cache footprint of one message: how many memory lines the router touches.

At benchmark rates a worker sleeps between datagrams and finds its caches cold
each time, so its CPU per message follows the number of distinct 64-byte lines
of code and data it touches far more than its instruction count (see
docs/performance.md, "Cold caches"). This tool measures that number
deterministically: it runs Router.handle() in-process under valgrind's
cachegrind with a 2 MiB last-level cache, overwrites 4 MiB of memory before
each message (so every message starts cold), and subtracts a run that only does
the overwriting. The result is last-level misses per message, in total and by
function.

    python3 bench/footprint.py a            # OPTIONS through ../shared/bench/kam-sl.cfg
    python3 bench/footprint.py b --top 40   # a stateless call through kam-lb.cfg

Run it against the build whose figures you want (PYTHONPATH=/path/to/src for a
compiled copy). Needs valgrind (Debian package ``valgrind``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(os.environ.get("SIPROUTER_SHARED", Path(__file__).resolve().parents[2] / "shared"))
LOCAL = ("127.0.0.1", 5060)
UAC = ("127.0.0.1", 5080)


def options(n: int) -> list[tuple[bytes, tuple[str, int]]]:
    """Scenario a: OPTIONS requests as SIPp sends them (a new Call-ID, tag and branch each)."""
    return [((f"OPTIONS sip:service@127.0.0.1:5060 SIP/2.0\r\n"
              f"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-{i}-1-0\r\n"
              f"From: sipp <sip:sipp@127.0.0.1:5080>;tag={i}SIPpTag001\r\n"
              f"To: <sip:service@127.0.0.1:5060>\r\nCall-ID: {i}-12345@127.0.0.1\r\n"
              "CSeq: 1 OPTIONS\r\nContact: <sip:sipp@127.0.0.1:5080>\r\nMax-Forwards: 70\r\n"
              "Accept: application/sdp\r\nContent-Length: 0\r\n\r\n").encode(), UAC)
            for i in range(n)]


def calls(router: object, n: int) -> list[tuple[bytes, tuple[str, int]]]:
    """Scenario b: INVITE, 180, 200, ACK, BYE, 200 per call, recorded through ``router``."""
    handle = router.handle  # type: ignore[attr-defined]
    out: list[tuple[bytes, tuple[str, int]]] = []

    def send(data: str, src: tuple[str, int]) -> list:  # type: ignore[type-arg]
        out.append((data.encode(), src))
        return handle(data.encode(), src, LOCAL, 1.0)   # type: ignore[no-any-return]

    for i in range(n):
        party = (f"From: sipp <sip:sipp@127.0.0.1:5080>;tag={i}SIPpTag001\r\n"
                 f"To: <sip:service@127.0.0.1:5060>{{to_tag}}\r\nCall-ID: {i}-2424@127.0.0.1\r\n")
        fwd = send(f"INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-{i}-1-0\r\n"
                   + party.format(to_tag="") + "CSeq: 1 INVITE\r\n"
                   "Contact: sip:sipp@127.0.0.1:5080\r\nMax-Forwards: 70\r\n"
                   "Content-Length: 0\r\n\r\n", UAC)[0]
        head = fwd.data.decode().split("\r\n\r\n")[0].split("\r\n")
        vias = "".join(h + "\r\n" for h in head if h.startswith("Via:"))
        rrs = [h.split(":", 1)[1].strip() for h in head if h.lower().startswith("record-route:")]
        answered = party.format(to_tag=f";tag={i}UAS")
        for status in ("180 Ringing", "200 OK"):
            send(f"SIP/2.0 {status}\r\n{vias}{answered}"
                 + "".join(f"Record-Route: {r}\r\n" for r in rrs)
                 + f"CSeq: 1 INVITE\r\nContact: <sip:{fwd.dst[0]}:{fwd.dst[1]}>\r\n"
                 "Content-Length: 0\r\n\r\n", fwd.dst)
        for seq, method in ((1, "ACK"), (2, "BYE")):
            sent = send(f"{method} sip:{fwd.dst[0]}:{fwd.dst[1]} SIP/2.0\r\n"
                        f"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-{i}-{seq}-{method}\r\n"
                        f"{answered}CSeq: {seq} {method}\r\n"
                        + "".join(f"Route: {r}\r\n" for r in rrs)
                        + "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", UAC)
        bye = sent[0].data.decode().split("\r\n\r\n")[0].split("\r\n")
        bye_vias = "".join(h + "\r\n" for h in bye if h.startswith("Via:"))
        send(f"SIP/2.0 200 OK\r\n{bye_vias}{answered}CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
             sent[0].dst)
    return out


def child(scenario: str, count: int, mode: str) -> None:
    """Inside valgrind: build the messages, then overwrite memory (and handle one) per message."""
    import gc

    from siprouter.config.loader import load

    os.chdir(SHARED / "bench")
    cfg = "kam-sl.cfg" if scenario == "a" else "kam-lb.cfg"
    messages = options(count + 20) if scenario == "a" else calls(load(cfg), count // 6 + 4)
    router = load(cfg)     # a fresh one: stateless replay gives the same branches
    handle = router.handle
    for data, src in messages[:20]:
        handle(data, src, LOCAL, 1.0)
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    junk, zero = bytearray(4 << 20), bytes(4 << 20)
    for data, src in messages[20:20 + count]:
        junk[:] = zero
        if mode == "run":
            handle(data, src, LOCAL, 1.0)


def misses(path: str) -> dict[str, int]:
    """Last-level misses (instruction + data read + data write) by function."""
    text = subprocess.run(["cg_annotate", "--show=ILmr,DLmr,DLmw", "--threshold=0", "--auto=no",
                           path], capture_output=True, text=True, check=True).stdout
    found: dict[str, int] = {}
    number = r"([\d,]+)\s+(?:\([^)]*\)\s+)?"
    for line in text.splitlines():
        match = re.match(r"\s*" + number * 3 + r"(\S.*)$", line)
        if match:
            total = sum(int(match.group(i).replace(",", "")) for i in (1, 2, 3))
            found[match.group(4)] = found.get(match.group(4), 0) + total
    return found


def summary(path: str) -> dict[str, int]:
    """The whole run's event totals (``events:`` and ``summary:`` lines of the output)."""
    names: list[str] = []
    values: list[int] = []
    with open(path) as out:
        for line in out:
            if line.startswith("events:"):
                names = line.split()[1:]
            elif line.startswith("summary:"):
                values = [int(v) for v in line.split()[1:]]
    return dict(zip(names, values, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=("a", "b"))
    parser.add_argument("--messages", type=int, default=240)
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    parser.add_argument("--child", choices=("run", "idle"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.scenario, args.messages, args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        result = {}
        instructions: dict[str, int] = {}
        for mode in ("idle", "run"):
            out = os.path.join(tmp, mode)
            subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=yes",
                            "--LL=2097152,16,64", f"--cachegrind-out-file={out}",
                            sys.executable, __file__, args.scenario, "--messages",
                            str(args.messages), "--child", mode],
                           check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"})
            result[mode] = misses(out)
            instructions[mode] = summary(out)["Ir"]
    per = {name: (result["run"].get(name, 0) - result["idle"].get(name, 0)) / args.messages
           for name in set(result["run"]) | set(result["idle"])}
    total = per.pop("PROGRAM TOTALS", 0.0)
    print(f"scenario {args.scenario}: {total:.0f} last-level misses per message, "
          f"{(instructions['run'] - instructions['idle']) / args.messages / 1000:.1f}k "
          "instructions")
    for name, value in sorted(per.items(), key=lambda item: -item[1])[:args.top]:
        print(f"{value:8.0f}  {name[-110:]}")


if __name__ == "__main__":
    main()
