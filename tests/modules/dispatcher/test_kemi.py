"""KEMI: KSR.dispatcher.* and the ``event_callback`` that replaces the event routes."""

from __future__ import annotations

import textwrap
from pathlib import Path

from siprouter.config.loader import load
from siprouter.routing.router import Router
from tests.modules.dispatcher.support import dispatcher, flags_by_uri, request, send, sent_to

SCRIPT = """\
    import KSR as KSR

    EVENTS = []

    def mod_init():
        return Handler()

    class Handler:
        def ksr_request_route(self, msg):
            user = KSR.pv.get("$rU")
            if KSR.dispatcher.ds_select_dst(1, 4) < 0:
                KSR.sl.sl_send_reply(503, "none")
                return 1
            if user == "mark":
                KSR.dispatcher.ds_mark_dst_state("ip")
            if user == "next":
                KSR.dispatcher.ds_next_dst()
            if user == "limit":
                KSR.dispatcher.ds_select_dst_limit(1, 4, 1)
                EVENTS.append(("cnt", KSR.pv.get("$xavp(_dsctx_=>cnt)")))
            KSR.forward()
            return 1

        def ds_event(self, msg, evname):
            EVENTS.append((evname, KSR.pv.get("$ru"), KSR.pv.get("$dsv(code)"),
                           KSR.pv.get("$dsv(reason)"), KSR.pv.get("$dsv(flags)")))
            return 1
    """

CFG = """\
listen=udp:127.0.0.1:58200
auto_aliases=no
loadmodule "sl.so"
loadmodule "dispatcher.so"
loadmodule "app_python3.so"
modparam("app_python3", "load", "{script}")
modparam("dispatcher", "list_file", "{listfile}")
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "event_callback", "ds_event")
cfgengine "python"
"""


def kemi_router(tmp_path: Path) -> Router:
    (tmp_path / "handler.py").write_text(textwrap.dedent(SCRIPT))
    (tmp_path / "d.list").write_text("1 sip:127.0.0.1:58221 0 0\n1 sip:127.0.0.1:58222 0 0\n")
    cfg = tmp_path / "kemi.cfg"
    cfg.write_text(CFG.format(script=tmp_path / "handler.py", listfile=tmp_path / "d.list"))
    return load(cfg)


def test_kemi_functions_and_event_callback(tmp_path: Path) -> None:
    router = kemi_router(tmp_path)
    script = router.modules["app_python3"].script_module  # type: ignore[attr-defined]
    assert sent_to(send(router, request("mark", callid="k1"))) == [58222]
    assert flags_by_uri(dispatcher(router))["sip:127.0.0.1:58222"] == "IP"
    assert script.EVENTS == [("dispatcher:dst-down", "sip:mark@127.0.0.1:58200", 820, None, 0)]
    assert sent_to(send(router, request("next", callid="k2"))) == [58221]  # no next left
    send(router, request("limit", callid="k3"))
    assert script.EVENTS[-1] == ("cnt", 1)
