"""sanity: RFC 3261 sanity checks, Kamailio 5.6.3 compatible (spec/sanity.md).

``sanity_check()`` runs the selected checks in Kamailio's fixed order and stops
at the first one that fails. Most failures send a stateless error reply through
sl; some are silent, and some also put the "no reply" mark on the message
(``ctx.no_reply``) so that no later reply can be sent for it.

The ordered list of check callables is computed once per mask and cached, so
the common all-pass path is one dict lookup plus one cheap call per bit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from ..routing.router import has_broken_headers
from ..sip.errors import SipError
from ..sip.headers import NameAddr, digits_value, is_digits, split_commas, unfold
from ..sip.uri import KNOWN_SCHEMES, Uri, parse_uri
from .base import Exports, Function, Module, Param

if TYPE_CHECKING:
    from ..routing.context import Context
    from ..sip.message import Header, SipMessage

log: Final = logging.getLogger("siprouter.sanity")

# ----------------------------------------------------------------- check bits
RURI_SIP_VERSION: Final = 1
RURI_SCHEME: Final = 2
REQUIRED_HEADERS: Final = 4
VIA_SIP_VERSION: Final = 8
VIA_PROTOCOL: Final = 16
CSEQ_METHOD: Final = 32
CSEQ_VALUE: Final = 64
CL: Final = 128
EXPIRES_VALUE: Final = 256
PROXY_REQUIRE: Final = 512
PARSE_URIS: Final = 1024
DIGEST: Final = 2048
DUPTAGS: Final = 4096
AUTHORIZATION: Final = 8192
VIA1_HEADER: Final = 16384

# Kamailio's execution order: via1 right after the required headers, dup-tags last.
CHECK_ORDER: Final = (RURI_SIP_VERSION, RURI_SCHEME, REQUIRED_HEADERS, VIA1_HEADER, VIA_SIP_VERSION,
                      VIA_PROTOCOL, CSEQ_METHOD, CSEQ_VALUE, CL, EXPIRES_VALUE, PROXY_REQUIRE,
                      PARSE_URIS, DIGEST, AUTHORIZATION, DUPTAGS)
ALL_CHECKS: Final = 0x7FFF            # every bit known to 5.6
MAX_CHECKS: Final = 32768             # cfg masks must be 1 .. MAX_CHECKS-1
URI_CHECK_RURI: Final = 1
URI_CHECK_FROM: Final = 2
URI_CHECK_TO: Final = 4
URI_CHECK_CONTACT: Final = 8
URI_MAX_CHECKS: Final = 16            # cfg uri masks must be 1 .. 15

REASON_MAX: Final = 127               # noreply mode keeps at most this many bytes of the reason

_LWS: Final = " \t\r\n"
_DIGITS: Final = frozenset("0123456789")
_SINGLE_HEADERS: Final[tuple[str, ...]] = ("from", "to", "call-id", "cseq", "content-length")
_REQUIRED: Final[tuple[str, ...]] = ("from", "to", "call-id", "cseq")


class Failure(NamedTuple):
    """Outcome of a failed check.

    ``code`` 0 means no reply. ``mark`` sets the message's "no reply" mark.
    ``sendable`` False means the reply exists in Kamailio but can never be built
    (a core header-parse error also breaks the reply builder), so nothing is sent.
    """

    code: int
    reason: str
    mark: bool = False
    sendable: bool = True


SILENT: Final = Failure(0, "")
MARK_NOREPLY: Final = Failure(0, "", mark=True)
BAD_HEADERS: Final = Failure(400, "Bad Headers", sendable=False)
# bit 1
VERSION_NOT_SUPPORTED: Final = Failure(505, "Version Not Supported (R-URI)")
# bit 2 / 1024
BAD_RURI: Final = Failure(400, "Bad Request URI")
UNSUPPORTED_SCHEME: Final = Failure(416, "Unsupported URI Scheme in Request URI")
# bit 32
CSEQ_NO_METHOD: Final = Failure(400, "Missing method in CSeq header")
CSEQ_METHOD_MISMATCH: Final = Failure(400, "CSeq method does not match request method")
# bit 64
CSEQ_NO_NUMBER: Final = Failure(400, "Missing number in CSeq header")
CSEQ_BAD_NUMBER: Final = Failure(400, "CSeq number is illegal")
# bit 128
CL_FAILURE: Final = Failure(400, "Content-Length Failure", sendable=False)
CL_BODY_FAILURE: Final = Failure(400, "Content-Length Body Failure")
CL_MISMATCH: Final = Failure(400, "Content-Length mis-match")
# bit 256
BAD_EXPIRES: Final = Failure(400, "Bad Expires Header")
EXPIRES_NO_NUMBER: Final = Failure(400, "Missing number in Expires header")
EXPIRES_ILLEGAL: Final = Failure(400, "Expires value is illegal")
# bit 512
BAD_PROXY_REQUIRE: Final = Failure(400, "Bad Proxy Require Header")
PROXY_REQUIRE_EXTENSION: Final = Failure(420, "Bad Proxy Require Extension")
# bit 1024
BAD_FROM: Final = Failure(400, "Invalid From Header")
BAD_TO: Final = Failure(400, "Ivalid To Header")    # sic: the typo is in Kamailio 5.6.3
BAD_CONTACT_HEADER: Final = Failure(400, "Bad Contact Header")
BAD_CONTACT_URI: Final = Failure(400, "Bad Contact URI")
# bits 2048 / 8192
BAD_AUTH_HEADER: Final = Failure(400, "Bad Auth Header")
BAD_AUTH_CREDENTIALS: Final = Failure(400, "Bad Auth Credentials")
AUTH_EMPTY_USER: Final = Failure(400, "Auth Empty User")
AUTH_EMPTY_NONCE: Final = Failure(400, "Auth Empty Nonce")
AUTH_EMPTY_RESPONSE: Final = Failure(400, "Auth Empty Response")
# bit 4096
MANY_FROM_TAGS: Final = Failure(400, "Many From Tag Params")
MANY_TO_TAGS: Final = Failure(400, "Many To Tag Params")

CheckFn = Callable[["Context", int], "Failure | None"]


# ------------------------------------------------------------------ helpers
def valid_uint(number: str) -> bool:
    """Kamailio's str2valid_uint: 1-10 ASCII digits, not above 4294967296 (sic, off by one)."""
    size = len(number)
    if size == 0 or size > 10:
        return False
    for ch in number:
        if ch not in _DIGITS:
            return False
    return size < 10 or number <= "4294967296"


def parse_str_list(text: str) -> list[str]:
    """Kamailio's parse_str_list: comma separated, each item trimmed; '' gives no items."""
    text = text.strip(_LWS)
    if not text:
        return []
    return [item.strip(_LWS) for item in text.split(",")]


def kamailio_uri(text: str) -> Uri | None:
    """The URI if Kamailio's parse_uri() accepts it (sip, sips, tel, tels, urn), else None."""
    try:
        uri = parse_uri(text)
    except SipError:
        return None
    return uri if uri.scheme in KNOWN_SCHEMES else None


# A strict subset of what parse_uri() accepts for sip/sips: everything it matches
# parses (once the port is checked), anything else goes through the real parser.
# (The only '@' is the one after the user part, and the user part has no '?'.)
_SIMPLE_SIP_URI: Final = re.compile(r'[sS][iI][pP][sS]?:(?:[^\s<>"@?]+@)?[A-Za-z0-9._-]+'
                                    r'(?::([0-9]{1,5}))?(?:[;?][^@]*)?', re.ASCII)


_URI_OK: Final[dict[str, bool]] = {}


def uri_text_ok(text: str) -> bool:
    """True when Kamailio's parse_uri() accepts ``text`` (cached by text)."""
    known = _URI_OK.get(text)
    if known is None:
        known = _uri_text_ok(text)
        if len(_URI_OK) >= 8192:
            _URI_OK.clear()
        _URI_OK[text] = known
    return known


def _uri_text_ok(text: str) -> bool:
    """True when Kamailio's parse_uri() accepts ``text`` (fast path for plain sip URIs)."""
    match = _SIMPLE_SIP_URI.fullmatch(text)
    if match is not None:
        port = match.group(1)
        if port is None or int(port) <= 65535:
            return True
    return kamailio_uri(text) is not None


_DIGEST_PARAMS: Final = frozenset(("username", "realm", "nonce", "uri", "response", "cnonce",
                                   "opaque", "qop", "nc", "algorithm"))
# Kamailio tests for 'n' (not '\n') after the scheme name; reproduced on purpose.
_AFTER_DIGEST: Final = frozenset(" \rn\t,")


def parse_digest(body: str) -> tuple[int, dict[str, str]]:
    """Kamailio's parse_credentials on a header body.

    Returns ``(0, params)`` for Digest credentials, ``(1, {})`` for another scheme
    and ``(-2, {})`` for a Digest parse error. Like Kamailio's parser it is
    lenient: after each value it just looks for the next comma, and a quoted
    value ends at the next quote.
    """
    text = body.lstrip(_LWS)
    if len(text) < 7:
        return 1, {}
    if text[:6].lower() != "digest" or text[6] not in _AFTER_DIGEST:
        return 1, {}
    rest = text[7:].lstrip(_LWS)
    params: dict[str, str] = {}
    while True:
        eq = rest.find("=")
        if eq < 0:
            return -2, {}
        name = rest[:eq].strip(_LWS).lower()
        rest = rest[eq + 1:].lstrip(_LWS)
        if not rest:
            return -2, {}
        if rest[0] == '"':
            end = rest.find('"', 1)
            if len(rest) < 2 or end < 0:
                return -2, {}
            value = rest[1:end]
            rest = rest[end + 1:]
        else:
            i = 0
            size = len(rest)
            while i < size and rest[i] not in " \t\r\n,":
                i += 1
            if i == 0:
                return -2, {}
            value = rest[:i]
            rest = rest[i:]
        if name in _DIGEST_PARAMS:
            params[name] = value
        comma = rest.find(",")
        if comma < 0:
            return 0, params
        rest = rest[comma + 1:].lstrip(_LWS)


def check_digest_params(params: dict[str, str]) -> Failure | None:
    """Kamailio's check_dig_cred plus sanity's empty-value checks."""
    if "username" not in params or "realm" not in params or "nonce" not in params \
            or "uri" not in params or "response" not in params:
        return BAD_AUTH_CREDENTIALS
    qop = params.get("qop")
    if qop is not None and qop.strip(_LWS).lower() in ("auth", "auth-int") \
            and ("cnonce" not in params or "nc" not in params):
        return BAD_AUTH_CREDENTIALS
    if not params["username"]:
        return AUTH_EMPTY_USER
    if not params["nonce"]:
        return AUTH_EMPTY_NONCE
    if not params["response"]:
        return AUTH_EMPTY_RESPONSE
    return None


def full_parse_ok(msg: SipMessage) -> bool:
    """False when parsing all headers fails in 5.6 (strict duplicates, two Max-Forwards)."""
    if has_broken_headers(msg):
        return False
    return msg.first_repeated(_SINGLE_HEADERS) is None


def _count_tags(addr: NameAddr) -> int:
    return sum(1 for key, _ in addr.params if key.lower() == "tag")


class _NotApplicable(Exception):
    """A non-Digest credential stopped the digest check."""


# ------------------------------------------------------------------ module
_SANITY_ROUTES: Final = frozenset(("request", "reply", "onreply"))


class SanityModule(Module):
    exports = Exports(
        name="sanity",
        params=(
            Param("default_checks", int, 3047),
            Param("uri_checks", int, 7),
            Param("proxy_require", str, ""),
            Param("autodrop", int, 1),
            Param("noreply", int, 0),
        ),
        functions=(
            Function("sanity_check", "sanity_check", (), ("int", "int"),
                     routes=_SANITY_ROUTES),
            Function("sanity_reply", "sanity_reply", (), kemi=("sanity_reply",),
                     routes=_SANITY_ROUTES),
            # KEMI-only exports (-1 on failure, no mask validation). Their names
            # cannot be written in a cfg file, so the cfg language cannot call them.
            Function("kemi:sanity_check", "kemi_sanity_check", ("int", "int"),
                     kemi=("sanity_check",), routes=_SANITY_ROUTES),
            Function("kemi:sanity_check_defaults", "kemi_sanity_check_defaults", (),
                     kemi=("sanity_check_defaults",), routes=_SANITY_ROUTES),
        ),
        kemi_module="sanity",
        depends=("sl",),
    )

    def __init__(self, router: Any) -> None:
        super().__init__(router)
        self._plans: dict[int, tuple[CheckFn, ...]] = {}
        self._sl: Any = None
        self._default_checks = 3047
        self._default_uri_checks = 7
        self._proxy_require: frozenset[str] = frozenset()
        self._autodrop = True
        self._noreply = False
        # noreply mode: what the last failed check would have sent, and for which message
        self._info_msg: SipMessage | None = None
        self._info: Failure | None = None
        self._by_bit: dict[int, CheckFn] = {
            RURI_SIP_VERSION: self._check_ruri_version,
            RURI_SCHEME: self._check_ruri_scheme,
            REQUIRED_HEADERS: self._check_required_headers,
            VIA1_HEADER: self._check_via1,
            CSEQ_METHOD: self._check_cseq_method,
            CSEQ_VALUE: self._check_cseq_value,
            CL: self._check_cl,
            EXPIRES_VALUE: self._check_expires,
            PROXY_REQUIRE: self._check_proxy_require,
            PARSE_URIS: self._check_parse_uris,
            DIGEST: self._check_digest,
            AUTHORIZATION: self._check_authorization,
            DUPTAGS: self._check_duptags,
            # VIA_SIP_VERSION and VIA_PROTOCOL are no-ops in 5.6: never in a plan
        }

    # ------------------------------------------------------------ lifecycle
    def init(self) -> None:
        sl = self.router.modules.get("sl")
        if sl is None or not hasattr(sl, "send_stateless"):
            raise ValueError("sanity: the sl module is required")
        self._sl = sl
        self._default_checks = int(self.params["default_checks"])
        self._default_uri_checks = int(self.params["uri_checks"])
        self._proxy_require = frozenset(parse_str_list(str(self.params["proxy_require"])))
        self._autodrop = bool(self.params["autodrop"])
        self._noreply = bool(self.params["noreply"])
        self._plans.clear()

    def plan(self, checks: int) -> tuple[CheckFn, ...]:
        """The ordered check callables for a message-check mask (cached)."""
        checks &= ALL_CHECKS
        found = self._plans.get(checks)
        if found is None:
            by_bit = self._by_bit
            found = tuple(by_bit[bit] for bit in CHECK_ORDER if checks & bit and bit in by_bit)
            self._plans[checks] = found
        return found

    # ------------------------------------------------------------ cfg functions
    def sanity_check(self, ctx: Context, msg_checks: int | None = None,
                     uri_checks: int | None = None) -> int:
        """1 passed; failure: 0 (autodrop, ends the script) or -1; -1 for bad arguments."""
        if msg_checks is None:
            msg_checks = self._default_checks
        elif not 0 < msg_checks < MAX_CHECKS:
            log.error("sanity_check: invalid message checks mask %r", msg_checks)
            return -1
        if uri_checks is None:
            uri_checks = self._default_uri_checks
        elif not 0 < uri_checks < URI_MAX_CHECKS:
            log.error("sanity_check: invalid URI checks mask %r", uri_checks)
            return -1
        if self.run_checks(ctx, msg_checks, uri_checks):
            return 1
        return 0 if self._autodrop else -1

    def kemi_sanity_check(self, ctx: Context, msg_checks: int, uri_checks: int) -> int:
        """KEMI: 1 passed, -1 failed (autodrop ignored, masks not validated)."""
        return 1 if self.run_checks(ctx, msg_checks, uri_checks) else -1

    def kemi_sanity_check_defaults(self, ctx: Context) -> int:
        return 1 if self.run_checks(ctx, self._default_checks, self._default_uri_checks) else -1

    def sanity_reply(self, ctx: Context) -> int:
        """noreply mode: send the reply the last failed check kept for this message."""
        msg = ctx.msg
        if not msg.is_request or msg.method == "ACK" or not self._noreply:
            return 1
        if ctx.no_reply:
            return -2
        info = self._info
        if info is None or info.code == 0 or self._info_msg is not msg:
            info = Failure(500, "Server Sanity Failure")
        if not info.sendable:
            return -1
        result: int = self._sl.send_stateless(ctx, info.code, info.reason)
        return 1 if result > 0 else (-2 if result == -2 else -1)

    # ------------------------------------------------------------ engine
    def run_checks(self, ctx: Context, msg_checks: int, uri_checks: int) -> bool:
        """Run the checks of ``msg_checks`` in order; True when all pass."""
        if self._noreply:
            self._info_msg = None
            self._info = None
        plan = self._plans.get(msg_checks)
        if plan is None:
            plan = self.plan(msg_checks)
        for check in plan:
            failure = check(ctx, uri_checks)
            if failure is not None:
                self._failed(ctx, failure)
                return False
        return True

    def _failed(self, ctx: Context, failure: Failure) -> None:
        msg = ctx.msg
        if log.isEnabledFor(logging.DEBUG):
            log.debug("sanity check failed: %s %s (%r from %s:%d)", failure.code or "-",
                      failure.reason or "no reply", msg, ctx.src[0], ctx.src[1])
        if failure.mark:
            ctx.no_reply = True
        if failure.code == 0:
            return
        # never a reply to a SIP reply or to an ACK
        if not msg.is_request or msg.method == "ACK":
            return
        if self._noreply:
            self._info_msg = msg
            reason = failure.reason
            if len(reason) > REASON_MAX:
                failure = failure._replace(reason=reason[:REASON_MAX])
            self._info = failure
            return
        if not failure.sendable:
            return
        if self._sl is None:
            self._sl = self.router.modules["sl"]
        self._sl.send_stateless(ctx, failure.code, failure.reason)

    # ------------------------------------------------------------ checks
    # Each check returns None when it passes, else the Failure.

    def _check_ruri_version(self, ctx: Context, uri_checks: int) -> Failure | None:
        msg = ctx.msg
        if not msg.is_request:
            return SILENT
        version = msg.version
        if version == "SIP/2.0" or not version:
            return None
        sep = version.find("/")
        if sep < 0:
            return SILENT
        if version[sep + 1:] != "2.0":
            return VERSION_NOT_SUPPORTED
        return None

    def _ruri_ok(self, ctx: Context) -> bool:
        try:
            uri = ctx.uri
        except SipError:
            return False
        return uri.scheme in KNOWN_SCHEMES

    def _check_ruri_scheme(self, ctx: Context, uri_checks: int) -> Failure | None:
        if not ctx.msg.is_request:
            return SILENT
        if not self._ruri_ok(ctx):
            return BAD_RURI
        # Kamailio's 416 branch (URI type "error" after a successful parse) cannot
        # happen with this parser: every scheme it accepts has a type.
        return None

    def _check_required_headers(self, ctx: Context, uri_checks: int) -> Failure | None:
        msg = ctx.msg
        if msg.missing(_REQUIRED) is not None:
            return MARK_NOREPLY
        if not full_parse_ok(msg):    # (this includes a repeated required header)
            return BAD_HEADERS
        return None

    def _check_via1(self, ctx: Context, uri_checks: int) -> Failure | None:
        try:
            via = ctx.msg.via1
        except SipError:
            return MARK_NOREPLY
        return None if via.host else MARK_NOREPLY

    def _check_cseq_method(self, ctx: Context, uri_checks: int) -> Failure | None:
        msg = ctx.msg
        if not msg.is_request:
            return SILENT    # a reply has no request-line method to compare with
        if not msg.has_header("cseq"):
            return SILENT
        try:
            method = msg.cseq.method
        except SipError:
            return MARK_NOREPLY
        if method == msg.method:
            return None
        if not method:
            return CSEQ_NO_METHOD
        return CSEQ_METHOD_MISMATCH

    def _check_cseq_value(self, ctx: Context, uri_checks: int) -> Failure | None:
        msg = ctx.msg
        if not msg.has_header("cseq"):
            return SILENT
        try:
            number = msg.cseq.number
        except SipError:
            return MARK_NOREPLY
        if len(number) < 10 and is_digits(number):
            return None
        if not number:
            return CSEQ_NO_NUMBER
        return None if valid_uint(number) else CSEQ_BAD_NUMBER

    def _check_cl(self, ctx: Context, uri_checks: int) -> Failure | None:
        msg = ctx.msg
        hdr = msg.header("content-length")
        if hdr is None:
            return None    # missing Content-Length is fine (Kamailio only logs)
        if "content-length" in msg.repeated():
            return CL_FAILURE
        value = hdr.value
        if not is_digits(value):
            return CL_FAILURE
        if not msg.complete:
            return CL_BODY_FAILURE
        if digits_value(value) != len(msg.text) - msg.body_start:
            return CL_MISMATCH
        return None

    def _check_expires(self, ctx: Context, uri_checks: int) -> Failure | None:
        hdr = ctx.msg.header("expires")
        if hdr is None:
            return None
        text = hdr.value.strip(_LWS)
        if not text:
            return BAD_EXPIRES
        end = 0
        size = len(text)
        while end < size and text[end] not in _LWS:
            end += 1
        token = text[:end]
        if not token:
            return EXPIRES_NO_NUMBER
        return None if valid_uint(token) else EXPIRES_ILLEGAL

    def _check_proxy_require(self, ctx: Context, uri_checks: int) -> Failure | None:
        msg = ctx.msg
        hdr = msg.header("proxy-require")
        if hdr is None:
            return None
        tokens = parse_str_list(hdr.value)
        if not tokens:
            return BAD_PROXY_REQUIRE
        supported = self._proxy_require
        for token in tokens:
            if token not in supported:
                if msg.is_request and msg.method != "ACK":
                    # a reply lump: it goes into any reply sent for this message
                    ctx.reply_lumps.append(f"Unsupported: {token}\r\n")
                return PROXY_REQUIRE_EXTENSION
        return None

    def _check_parse_uris(self, ctx: Context, uri_checks: int) -> Failure | None:
        msg = ctx.msg
        if uri_checks & URI_CHECK_RURI:
            if not msg.is_request or not self._ruri_ok(ctx):
                return BAD_RURI
        if uri_checks & URI_CHECK_FROM:
            failure = self._check_addr(msg, "from", BAD_FROM)
            if failure is not None:
                return failure
        if uri_checks & URI_CHECK_TO:
            failure = self._check_addr(msg, "to", BAD_TO)
            if failure is not None:
                return failure
        if uri_checks & URI_CHECK_CONTACT:
            return self._check_contact(msg)
        return None

    @staticmethod
    def _check_addr(msg: SipMessage, key: str, bad: Failure) -> Failure | None:
        hdr = msg.header(key)
        if hdr is None or not hdr.value:
            return MARK_NOREPLY
        try:
            addr = msg.name_addr(key)
        except SipError:
            return bad
        if addr is None:
            return MARK_NOREPLY
        return None if uri_text_ok(addr.uri_text) else bad

    @staticmethod
    def _check_contact(msg: SipMessage) -> Failure | None:
        headers = msg.headers_named("contact")
        if not headers:
            return None    # Kamailio only logs a missing Contact
        first: NameAddr | None = None
        for index, hdr in enumerate(headers):
            value = unfold(hdr.value).strip(_LWS)
            if not value:
                return BAD_CONTACT_HEADER
            if value == "*":
                continue
            try:
                addrs = [NameAddr(part) for part in split_commas(value)]
            except SipError:
                return BAD_CONTACT_HEADER
            if index == 0:
                first = addrs[0]
        if first is None:
            return None
        return None if uri_text_ok(first.uri_text) else BAD_CONTACT_URI

    def _digest_only(self, ctx: Context) -> Failure | None:
        """Check every Authorization, then every Proxy-Authorization header.

        Raises _NotApplicable at the first credential that is not Digest.
        """
        msg = ctx.msg
        if not full_parse_ok(msg):
            return BAD_HEADERS
        headers: list[Header] = (msg.headers_named("authorization")
                                 + msg.headers_named("proxy-authorization"))
        if not headers:
            return None
        for hdr in headers:
            ret, params = parse_digest(hdr.value)
            if ret == 1:
                raise _NotApplicable
            if ret < 0:
                return BAD_AUTH_HEADER
            failure = check_digest_params(params)
            if failure is not None:
                return failure
        return None

    def _check_digest(self, ctx: Context, uri_checks: int) -> Failure | None:
        try:
            return self._digest_only(ctx)
        except _NotApplicable:
            return SILENT      # e.g. Basic credentials: fail without a reply

    def _check_authorization(self, ctx: Context, uri_checks: int) -> Failure | None:
        try:
            return self._digest_only(ctx)
        except _NotApplicable:
            return None        # other schemes are accepted here

    def _check_duptags(self, ctx: Context, uri_checks: int) -> Failure | None:
        msg = ctx.msg
        try:
            from_ = msg.from_
            to = msg.to
        except SipError:
            return MARK_NOREPLY
        if from_ is None or to is None:
            return MARK_NOREPLY
        if _count_tags(from_) > 1:
            return MANY_FROM_TAGS
        if _count_tags(to) > 1:
            return MANY_TO_TAGS
        return None
