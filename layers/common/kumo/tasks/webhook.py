"""Webhook calls: SSRF-safe target checks, HMAC-SHA256 signing and one classified delivery.

The API checks a target when a task is created (`check_target`, `check_headers`); the worker
calls `deliver`, which checks again, because DNS answers change between creation and delivery.
Standard library only: the Lambda layer ships neither requests nor urllib3. `http.client` and
`ssl` are imported inside `deliver` so the API functions that only validate do not pay for them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import re
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    import http.client

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_METHODS: frozenset[str] = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

USER_AGENT = "Kumo-Webhooks/1"
SECRET_PREFIX = "whsec_"  # noqa: S105 (a marker, not a secret)
MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 512
MAX_HEADERS = 20
MAX_HEADER_NAME = 64
MAX_HEADER_VALUE = 1024
# Headers that would change how the request is framed or routed, or that Kumo sets itself.
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade"}
)
RESERVED_HEADER_PREFIX = "kumo-"

_DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 7230 token characters.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible ASCII, space and tab: http.client sends header values as Latin-1 and a CR or LF
# would let a value start a header of its own.
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
# A host name after IDNA: letters, digits, '-' and '_' in dot-separated labels.
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
# Hosts the resolver may read as a number ('2130706433', '0x7f.1', '0177.1'); only those are
# handed to inet_aton, which accepts trailing junk after a space on glibc.
_NUMERIC_HOST = re.compile(r"[0-9][0-9a-fA-FxX.]*")
_LOCALHOST_ADDRESSES = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def _networks(*pairs: tuple[str, str]) -> tuple[tuple[Any, str], ...]:
    return tuple((ipaddress.ip_network(network), label) for network, label in pairs)


# Most specific first: the first match names the reason in the error message.
_BLOCKED_V4 = _networks(
    ("169.254.169.254/32", "link-local, cloud metadata"),
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignment"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
_BLOCKED_V6 = _networks(
    ("fd00:ec2::254/128", "unique local, cloud metadata"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/8", "reserved"),
    ("100::/64", "discard-only"),
    ("2001::/23", "IETF protocol assignment"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeTarget(ValueError):
    """The URL may not be called; str(error) is a clear message for API users."""

    reason: str  # slug: "url", "scheme", "host", "port", "credentials", "address"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one call ended. Holds nothing secret: it is stored in the task's run log."""

    outcome: Literal["succeeded", "retry", "failed"]
    status_code: int | None  # None when no response arrived
    # Short and machine-friendly: "timeout", "connection refused", "http 503",
    # "redirect not followed (302)", "unsafe target: ...", "dns: ..."; None on success.
    error: str | None
    excerpt: str  # first 512 characters of the response body, invalid UTF-8 replaced
    duration_ms: int


class _Target(NamedTuple):
    scheme: str
    host: str  # lowercase ASCII (IDNA), IPv6 without brackets
    port: int
    path: str  # path and query, as sent on the request line
    normalised: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


# --- URL checks ------------------------------------------------------------------------------


def normalise_url(url: str) -> str:
    """Canonical form used for de-duplication: lowercase scheme and host (IDNA-encoded), default
    port dropped, fragment dropped, empty path -> "/", query kept as is.

    Raises UnsafeTarget when the URL is not a usable http(s) URL: unparsable, another scheme,
    no host, credentials, or a bad port.
    """
    return _parse(url).normalised


def check_target(url: str, *, allow_loopback: bool, resolve: bool = True) -> str:
    """Validate a webhook URL at creation time and return normalise_url(url).

    Literal addresses (including the numeric forms the resolver accepts) and localhost names
    are always checked; with resolve=True every address the name resolves to is checked too.
    A name that does not resolve is accepted: `deliver` resolves and checks it again.
    """
    target = _parse(url)
    fixed = _fixed_addresses(target.host)
    if fixed is not None:
        _require_allowed(target.host, fixed, allow_loopback=allow_loopback)
    elif resolve:
        # A name that does not resolve yet is accepted; delivery resolves and checks again.
        with contextlib.suppress(socket.gaierror):
            _resolve(target, allow_loopback=allow_loopback)
    return target.normalised


def _parse(url: str) -> _Target:
    if not isinstance(url, str) or not url:
        raise UnsafeTarget("the URL is empty", reason="url")
    # urlsplit silently drops tabs and newlines and http.client refuses control characters,
    # so a URL with any of them is refused rather than repaired.
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise UnsafeTarget("the URL contains spaces or control characters", reason="url")
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise UnsafeTarget(f"the URL cannot be parsed ({error})", reason="url") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        shown = f"'{scheme}'" if scheme else "no scheme"
        raise UnsafeTarget(f"only http and https URLs can be called, not {shown}", reason="scheme")
    netloc = parts.netloc
    if "@" in netloc:
        raise UnsafeTarget(
            "user names and passwords in the URL are not allowed; send credentials in a header",
            reason="credentials",
        )
    host, port_text = _split_netloc(netloc)
    host = _ascii_host(host)
    port = _port(port_text, scheme)
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    shown_host = f"[{host}]" if ":" in host else host
    shown_port = "" if port == _DEFAULT_PORTS[scheme] else f":{port}"
    # Non-ASCII characters in the path or query are percent-encoded for the request line;
    # existing escapes and reserved characters are left alone.
    request_path = quote(path + query, safe="".join(chr(c) for c in range(0x21, 0x7F)))
    return _Target(
        scheme=scheme,
        host=host,
        port=port,
        path=request_path,
        normalised=f"{scheme}://{shown_host}{shown_port}{path}{query}",
    )


def _split_netloc(netloc: str) -> tuple[str, str]:
    if netloc.startswith("["):
        end = netloc.find("]")
        rest = netloc[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            raise UnsafeTarget("the host in the URL is not valid", reason="host")
        host = netloc[1:end]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeTarget(f"'[{host}]' is not a valid IPv6 address", reason="host") from None
        return host, rest[1:]
    host, _, port_text = netloc.partition(":")
    return host, port_text


def _ascii_host(host: str) -> str:
    if not host:
        raise UnsafeTarget("the URL has no host", reason="host")
    if ":" in host:  # an IPv6 literal, already validated
        return host.lower()
    # The resolver applies IDNA (with NFKC) to non-ASCII names, so checks must see the same
    # ASCII name: 127.0.0.1 written in fullwidth digits (U+FF11...) is 127.0.0.1 to it.
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise UnsafeTarget(f"'{host}' is not a valid host name", reason="host") from None
    host = host.lower()
    name = host.removesuffix(".")
    # Labels over 63 characters would make the resolver's IDNA step raise UnicodeError.
    too_long = len(name) > 253 or any(len(label) > 63 for label in name.split("."))
    if too_long or not _HOST_NAME.fullmatch(name):
        raise UnsafeTarget(f"'{host}' is not a valid host name", reason="host")
    return host


def _port(text: str, scheme: str) -> int:
    if not text:
        return _DEFAULT_PORTS[scheme]
    if not (text.isascii() and text.isdigit() and len(text) <= 5 and 1 <= int(text) <= 65535):
        raise UnsafeTarget(
            f"the port must be a number from 1 to 65535, not '{text}'", reason="port"
        )
    return int(text)


# --- address checks --------------------------------------------------------------------------


def _literal_ip(host: str) -> IPAddress | None:
    """The address a host denotes without DNS: IPv4, IPv6 or a numeric form like '0x7f.1'."""
    name = host.removesuffix(".")
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(name):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None
    return None


def _is_localhost(host: str) -> bool:
    # RFC 6761: 'localhost' and every name under it are loopback, whatever DNS says.
    name = host.removesuffix(".")
    return name == "localhost" or name.endswith(".localhost")


def _address_problem(ip: IPAddress, *, allow_loopback: bool) -> str | None:
    """None when the address may be called, else what kind of address it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            # ::ffff:a.b.c.d reaches a.b.c.d: judge it as that address.
            return _address_problem(ip.ipv4_mapped, allow_loopback=allow_loopback)
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            problem = _address_problem(embedded, allow_loopback=False)
            if problem is not None:
                return f"{problem}, embedded in IPv6"
        blocked = _BLOCKED_V6
    else:
        blocked = _BLOCKED_V4
    if allow_loopback and any(ip in network for network in _LOOPBACK):
        return None
    for network, label in blocked:
        if ip in network:
            return label
    # A second net: whatever the running Python's ipaddress tables know about beyond the
    # lists above (they grow with new IANA registrations).
    if ip.is_private or ip.is_reserved or ip.is_multicast or ip.is_link_local:
        return "special-purpose"
    if not ip.is_global:
        return "not globally reachable"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _require_allowed(host: str, addresses: list[IPAddress], *, allow_loopback: bool) -> None:
    for ip in addresses:
        problem = _address_problem(ip, allow_loopback=allow_loopback)
        if problem is None:
            continue
        name = host.removesuffix(".")
        where = f"{name} is" if _literal_ip(host) == ip else f"{name} points at {ip}, which is"
        raise UnsafeTarget(
            f"{where} a blocked address ({problem}); webhooks may only call public addresses",
            reason="address",
        )


class _Address(NamedTuple):
    family: socket.AddressFamily
    sockaddr: tuple[Any, ...]


def _fixed_addresses(host: str) -> list[IPAddress] | None:
    """The addresses a host stands for without DNS: a literal address or a localhost name."""
    literal = _literal_ip(host)
    if literal is not None:
        return [literal]
    if _is_localhost(host):
        return list(_LOCALHOST_ADDRESSES)
    return None


def _checked_addresses(target: _Target, *, allow_loopback: bool) -> list[_Address]:
    """Every address the host stands for, all of them allowed, in the resolver's order."""
    fixed = _fixed_addresses(target.host)
    if fixed is None:
        return _resolve(target, allow_loopback=allow_loopback)
    _require_allowed(target.host, fixed, allow_loopback=allow_loopback)
    return [_sockaddr(ip, target.port) for ip in fixed]


def _resolve(target: _Target, *, allow_loopback: bool) -> list[_Address]:
    """Resolve the name once and check every answer.

    Raises UnsafeTarget if any address is blocked (one bad answer among good ones is how DNS
    rebinding gets in), socket.gaierror if the name does not resolve.
    """
    infos = socket.getaddrinfo(
        target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    resolved: list[_Address] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = _Address(family, tuple(sockaddr))
        if address not in resolved:
            resolved.append(address)
    if not resolved:
        raise socket.gaierror(socket.EAI_NONAME, "no IPv4 or IPv6 address")
    addresses = [ipaddress.ip_address(address.sockaddr[0]) for address in resolved]
    _require_allowed(target.host, addresses, allow_loopback=allow_loopback)
    return resolved


def _sockaddr(ip: IPAddress, port: int) -> _Address:
    if isinstance(ip, ipaddress.IPv4Address):
        return _Address(socket.AF_INET, (str(ip), port))
    return _Address(socket.AF_INET6, (str(ip), port, 0, 0))


# --- headers ---------------------------------------------------------------------------------


def check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Validate user-supplied extra headers and return them as a new dict.

    At most 20; names are RFC 7230 tokens of up to 64 characters; values are printable ASCII
    (space and tab allowed, no CR/LF) of up to 1024 characters. Host, Content-Length,
    Transfer-Encoding, Connection, Upgrade and every Kumo-* name are refused.
    Raises ValueError naming the offending header.
    """
    if len(headers) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers are allowed, got {len(headers)}")
    checked: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        if len(name) > MAX_HEADER_NAME:
            raise ValueError(f"header name {name!r} is longer than {MAX_HEADER_NAME} characters")
        lowered = name.lower()
        if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_HEADER_PREFIX):
            raise ValueError(f"header {name} is set by Kumo and cannot be given")
        if lowered in seen:
            raise ValueError(f"header {name} is given more than once")
        if not isinstance(value, str):
            raise ValueError(f"the value of header {name} must be a string")
        if len(value) > MAX_HEADER_VALUE:
            raise ValueError(
                f"the value of header {name} is longer than {MAX_HEADER_VALUE} characters"
            )
        if not _HEADER_VALUE.fullmatch(value):
            raise ValueError(
                f"the value of header {name} may only hold printable ASCII (no line breaks)"
            )
        seen.add(lowered)
        checked[name] = value
    return checked


# --- signatures ------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Value of the Kumo-Signature header: 't=<timestamp>,v1=<hex HMAC-SHA256>'.

    The HMAC key is the secret's UTF-8 bytes; the message is f"{timestamp}." followed by the
    body bytes exactly as sent. The timestamp is inside the MAC so it cannot be swapped.
    """
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str, header: str, body: bytes, *, now: int, tolerance: int = 300
) -> bool:
    """What a receiver does: True when one v1 value matches and t is within tolerance of now.

    Several v1 values are allowed so a sender can sign with an old and a new secret while the
    secret is rotated. Anything malformed is False, never an exception.
    """
    if not isinstance(header, str):
        return False
    timestamps: list[str] = []
    candidates: list[str] = []
    for item in header.split(","):
        if not item.strip():
            continue
        key, sep, value = item.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            timestamps.append(value.strip())
        elif key == "v1":
            candidates.append(value.strip())
        # Other keys (future schemes) are ignored so receivers keep working when one is added.
    if len(timestamps) != 1 or not candidates:
        return False
    (stamp,) = timestamps
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        return False
    timestamp = int(stamp)
    # Old signatures are refused so a captured request cannot be replayed later.
    if abs(now - timestamp) > tolerance:
        return False
    expected = _mac(secret, timestamp, body).encode()
    matched = False
    for candidate in candidates:
        # Every candidate is compared, in constant time, so timing tells nothing.
        matched |= hmac.compare_digest(expected, candidate.encode("ascii", "replace"))
    return matched


def new_secret() -> str:
    """A signing secret: 'whsec_' + 32 random bytes, URL-safe base64 without padding."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


# --- delivery --------------------------------------------------------------------------------


def deliver(
    *,
    url: str,
    method: str,
    headers: Mapping[str, str],
    body: bytes | None,
    secret: str,
    delivery_id: str,
    attempt: int,
    timeout: float,
    allow_loopback: bool,
) -> DeliveryResult:
    """Call the webhook once and classify the outcome for the retry logic.

    The host is resolved once, every address is checked, and the connection goes to a checked
    address (http.client never resolves the name again). TLS verifies the certificate against
    the host name. Redirects are not followed. Never raises for network or HTTP problems.
    """
    started = time.monotonic()

    def result(
        outcome: Literal["succeeded", "retry", "failed"],
        error: str | None,
        status_code: int | None = None,
        excerpt: str = "",
    ) -> DeliveryResult:
        duration_ms = int((time.monotonic() - started) * 1000)
        return DeliveryResult(outcome, status_code, error, excerpt, duration_ms)

    verb = method.upper()
    if verb not in ALLOWED_METHODS:
        return result("failed", f"method not allowed ({method})")
    try:
        extra = check_headers(headers)
    except ValueError as error:
        return result("failed", f"invalid headers: {error}")
    try:
        target = _parse(url)
        addresses = _checked_addresses(target, allow_loopback=allow_loopback)
    except UnsafeTarget as error:
        return result("failed", f"unsafe target: {error}")
    except socket.gaierror as error:
        return result("retry", f"dns: {error.strerror or error}")

    payload = body if body is not None else b""
    timestamp = int(time.time())
    # Kumo's own headers replace a user header of the same name (compared case-insensitively).
    own = {"User-Agent": USER_AGENT}
    if body is not None:
        own["Content-Type"] = "application/json"
    own |= {
        "Kumo-Delivery": delivery_id,
        "Kumo-Attempt": str(attempt),
        "Kumo-Timestamp": str(timestamp),
        "Kumo-Signature": sign(secret, timestamp, payload),
    }
    own_names = {name.lower() for name in own}
    request_headers = {"Host": target.host_header}
    request_headers |= {k: v for k, v in extra.items() if k.lower() not in own_names}
    request_headers |= own

    import http.client

    connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    try:
        # The socket is already connected to a checked address; with `sock` set,
        # http.client never calls connect() and so never resolves the name itself.
        connection.sock = _connect(target, addresses, timeout)
        connection.request(verb, target.path, body=body, headers=request_headers)
        response = connection.getresponse()
        status = response.status
        data = _read_body(response)
    except (OSError, http.client.HTTPException) as error:
        return result("retry", _network_error(error))
    finally:
        connection.close()

    excerpt = _excerpt(data)
    if 200 <= status < 300:
        return result("succeeded", None, status, excerpt)
    if 300 <= status < 400:
        return result("failed", f"redirect not followed ({status})", status, excerpt)
    if status in (408, 429) or 500 <= status < 600:
        return result("retry", f"http {status}", status, excerpt)
    return result("failed", f"http {status}", status, excerpt)


def _connect(target: _Target, addresses: list[_Address], timeout: float) -> socket.socket:
    """A socket connected to the first checked address that answers, TLS-wrapped for https.

    The addresses share one connect budget of `timeout`, so a host with many dead addresses
    cannot stretch the call.
    """
    deadline = time.monotonic() + timeout
    last_error: OSError = TimeoutError("timed out")
    sock: socket.socket | None = None
    for family, sockaddr in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        candidate = socket.socket(family, socket.SOCK_STREAM)
        candidate.settimeout(remaining)
        try:
            candidate.connect(sockaddr)
        except OSError as error:
            candidate.close()
            last_error = error
            continue
        sock = candidate
        break
    if sock is None:
        raise last_error
    sock.settimeout(timeout)
    if target.scheme == "http":
        return sock
    import ssl

    context = ssl.create_default_context()
    try:
        # SNI and certificate verification use the name from the URL, not the address.
        return context.wrap_socket(sock, server_hostname=target.host.removesuffix("."))
    except BaseException:
        sock.close()
        raise


def _read_body(response: http.client.HTTPResponse) -> bytes:
    import http.client

    try:
        return response.read(MAX_RESPONSE_BYTES)
    except (OSError, http.client.HTTPException) as error:
        # The status line already carries the receiver's answer; a body cut short by a
        # timeout or a reset does not change it. IncompleteRead keeps what did arrive.
        partial = getattr(error, "partial", b"")
        return partial[:MAX_RESPONSE_BYTES] if isinstance(partial, bytes) else b""


def _excerpt(data: bytes) -> str:
    # 4 bytes per character at most, so this slice always holds the first 512 characters.
    return data[: EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS]


def _network_error(error: BaseException) -> str:
    import http.client
    import ssl

    if isinstance(error, http.client.RemoteDisconnected):
        return "connection closed without a response"
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"tls: {error.verify_message or 'certificate verify failed'}"
    if isinstance(error, ssl.SSLError):
        return f"tls: {error.reason or error}"
    if isinstance(error, http.client.HTTPException):
        return f"bad response: {type(error).__name__}"
    if isinstance(error, OSError) and error.strerror:
        return f"network: {error.strerror.lower()}"
    return f"network: {type(error).__name__}"
