"""Messages tm builds itself, as Kamailio 5.6's tm writes them.

* our Via branch (``z9hG4bKsr<rank>.<label>.<index>``): the worker rank that
  owns the transaction is readable from a reply's top Via;
* the To-tag of local replies (``<md5>-<crc>``, tm's ``SER-TM/tags`` signature);
* local replies (``build_res_buf_from_sip_req``: 100 Trying, 408, 487, t_reply);
* hop-by-hop ACK and CANCEL rebuilt from the INVITE sent on a branch
  (``build_local_reparse``);
* locally originated requests (dispatcher keepalives).

All text is ``str`` holding latin-1 decoded wire bytes.
"""

from __future__ import annotations

import hashlib
from typing import Final

from ..routing.forward import host_port
from ..routing.replies import reply_head, totag_sums
from ..sip.headers import Via, canonical_name
from ..sip.message import SipMessage

MAGIC: Final = "z9hG4bK"
BRANCH_PREFIX: Final = "z9hG4bKsr"
_PREFIX_LEN: Final = len(BRANCH_PREFIX)


# ------------------------------------------------------------------ branch ids
def transaction_key(rank: int, label: int) -> str:
    """The part of our branch shared by all branches of one transaction."""
    return f"{BRANCH_PREFIX}{rank}.{label:x}"


def branch_owner(branch: str | None) -> int | None:
    """The worker rank written in one of our branches, or None if not ours."""
    if branch is None or not branch.startswith(BRANCH_PREFIX):
        return None
    dot = branch.find(".", _PREFIX_LEN)
    text = branch[_PREFIX_LEN:dot]
    if dot < 0 or not text.isdigit() or not text.isascii():
        return None
    return int(text)


def split_branch(branch: str) -> tuple[str, int] | None:
    """(transaction key, branch index) of one of our branches, or None."""
    key, dot, index = branch.rpartition(".")
    if not dot or not index.isdigit() or not index.isascii() or len(index) > 3:
        return None
    return key, int(index)


# ------------------------------------------------------------------ To-tags
def tag_prefix(ip: str, port: int) -> str:
    """The constant part of tm's To-tag: MD5("SER-TM/tags" + first socket) and '-'."""
    text = "SER-TM/tags" + ip.strip() + str(port).strip()
    return hashlib.md5(text.encode("latin-1")).hexdigest() + "-"


def local_totag(prefix: str, via: Via, callid: str) -> str:
    """The To-tag of a local reply to a request with this top Via and Call-ID
    (41 characters: the prefix and two CRCs, like sl's tag) [verified on 5.6.3]."""
    return prefix + totag_sums(via, callid)


# ------------------------------------------------------------------ reason phrases
_REASONS: Final = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
    380: "Alternative Service", 400: "Bad Request", 401: "Unauthorized",
    402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    410: "Gone", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}
_CLASS_REASONS: Final = ("Unspecified", "Provisional", "Successful", "Redirection", "Request Failure",
                         "Server Failure", "Global Failure")


def error_text(code: int) -> str:
    """Kamailio's error_text(): the reason phrase of a reply tm generates itself."""
    text = _REASONS.get(code)
    if text is not None:
        return text
    return _CLASS_REASONS[min(max(code // 100, 0), 6)]


# internal error code -> (SIP code, text) of tm's error replies (err2reason_phrase)
_ERRORS: Final = {
    -477: (477, "Unfortunately error on sending to next hop occurred"),
    -478: (478, "Unresolvable destination"),
    -400: (400, "Bad Request"),
    -479: (479, "Regretfully, we were not able to process the URI"),
    -9: (400, "Transaction tuple incomplete"),
    -13: (400, "Bad To"),
    -11: (500, "Error in external logic"),
    -12: (500, "Forking capacity exceeded"),
    -487: (487, "Transaction canceled"),
}


def error_reply(error: int) -> tuple[int, str]:
    """Code and reason of the reply tm sends when relaying failed with ``error``."""
    code, text = _ERRORS.get(error, (500, "I'm terribly sorry, server error occurred"))
    return code, f"{text} ({abs(error)}/TM)"


# ------------------------------------------------------------------ local replies
def local_reply(msg: SipMessage, src_ip: str, src_port: int, force_rport: bool, code: int,
                reason: str, to_tag: str | None, extra: list[str] | tuple[str, ...] = (),
                server_header: str | None = None) -> str:
    """A reply built from a received request (Kamailio's build_res_buf_from_sip_req).

    The head of :func:`reply_head`, then ``extra`` header lines, Server and
    Content-Length: 0.
    """
    parts = reply_head(msg, code, reason, (src_ip, src_port), force_rport, to_tag)
    parts.extend(extra)
    if server_header:
        parts.append(server_header + "\r\n")
    parts.append("Content-Length: 0\r\n\r\n")
    return "".join(parts)


# ------------------------------------------------------------------ ACK and CANCEL
def hop_request(invite: str, method: str, to_line: str | None = None,
                reason: str = "") -> str:
    """An ACK or CANCEL rebuilt from the INVITE sent on a branch (build_local_reparse).

    The request line with ``method``; of the headers, in the INVITE's order, the
    first Via, From, To (``to_line`` instead when given, a whole header line),
    Call-ID, CSeq (method replaced), Route, Max-Forwards and Content-Length (as 0);
    then ``reason`` (Reason header lines) [verified on 5.6.3].
    """
    first_end = invite.find("\r\n")
    head_end = invite.find("\r\n\r\n")
    if head_end < 0:
        head_end = len(invite)
    parts = [method + invite[invite.find(" "):first_end] + "\r\n"]
    lines = invite[first_end + 2:head_end].split("\r\n")
    # join folded continuation lines to their header
    i = 1
    while i < len(lines):
        if lines[i][:1] in (" ", "\t"):
            lines[i - 1] += "\r\n" + lines.pop(i)
        else:
            i += 1
    first_via = True
    for line in lines:
        colon = line.find(":")
        if colon <= 0:
            continue
        key = canonical_name(line[:colon].strip(" \t"))
        if key == "via":
            if first_via:
                parts.append(line + "\r\n")
                first_via = False
        elif key == "cseq":
            j = colon
            while j < len(line) and line[j] in ": \t0123456789":
                j += 1
            parts.append(line[:j] + method + "\r\n")
        elif key == "to":
            parts.append(to_line if to_line is not None else line + "\r\n")
        elif key in ("from", "call-id", "route", "max-forwards"):
            parts.append(line + "\r\n")
        elif key == "content-length":
            parts.append(line[:colon].rstrip(" \t") + ": 0\r\n")
    parts.append(reason)
    parts.append("\r\n")
    return "".join(parts)


def reason_header(cause: int, text: str | None = None) -> str:
    """``Reason: SIP;cause=N[;text="..."]`` for a CANCEL tm generates."""
    if text:
        return f'Reason: SIP;cause={cause};text="{text}"\r\n'
    return f"Reason: SIP;cause={cause}\r\n"


# ------------------------------------------------------------------ local requests
def local_request(method: str, ruri: str, to_uri: str, from_uri: str, from_tag: str,
                  callid: str, cseq: int, local: tuple[str, int], branch: str,
                  headers: str = "", user_agent: str | None = None) -> str:
    """A request tm originates (the dispatcher keepalive shape) [verified on 5.6.3]."""
    via_host = host_port(local[0], local[1])
    parts = [f"{method} {ruri} SIP/2.0\r\n",
             f"Via: SIP/2.0/UDP {via_host};branch={branch}\r\n",
             f"To: <{to_uri}>\r\n",
             f"From: <{from_uri}>;tag={from_tag}\r\n",
             f"CSeq: {cseq} {method}\r\n",
             f"Call-ID: {callid}\r\n",
             "Max-Forwards: 70\r\n",
             "Content-Length: 0\r\n"]
    if headers:
        parts.append(headers if headers.endswith("\r\n") else headers + "\r\n")
    if user_agent:
        parts.append(user_agent + "\r\n")
    parts.append("\r\n")
    return "".join(parts)
