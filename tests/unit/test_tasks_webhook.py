"""kumo.tasks.webhook: SSRF checks, signatures and deliveries to real receivers on 127.0.0.1."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kumo.tasks.webhook import (
    ALLOWED_METHODS,
    DeliveryResult,
    UnsafeTarget,
    check_headers,
    check_target,
    deliver,
    new_secret,
    normalise_url,
    sign,
    verify_signature,
)

SECRET = "whsec_unit-test-secret"
PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


# --- a receiver: a real HTTP server on 127.0.0.1 ---------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: Message
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    # Hold the answer until the test ends: the client's timeout fires first.
    stall: bool = False


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[Recorded] = []
        self.connections = 0
        self.replies: dict[str, Reply] = {}
        self.server_names: list[str | None] = []
        self.released = threading.Event()
        if tls is not None:
            tls.sni_callback = self._record_sni
            self.socket = tls.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        port: int = self.server_address[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reply(self, path: str, reply: Reply) -> None:
        self.replies[path] = reply

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections += 1
        return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or stop reading leave broken pipes behind; they are expected.
        pass

    def _record_sni(self, sslobj: Any, name: str | None, context: Any) -> None:
        self.server_names.append(name)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append(Recorded(self.command, self.path, self.headers, body))
        reply = self.server.replies.get(self.path.partition("?")[0], Reply())
        if reply.stall:
            self.server.released.wait(5)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def start_receiver() -> Iterator[Callable[..., Receiver]]:
    """Starts receivers in daemon threads; every one is stopped when the test ends."""
    running: list[tuple[Receiver, threading.Thread]] = []

    def start(tls: ssl.SSLContext | None = None) -> Receiver:
        server = Receiver(tls)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        running.append((server, thread))
        return server

    yield start
    for server, thread in running:
        server.released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def receiver(start_receiver: Callable[..., Receiver]) -> Receiver:
    return start_receiver()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound on 127.0.0.1 that never listens: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# --- DNS and sockets under the test's control ------------------------------------------------


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that looks up a name without saying what it resolves to fails: no real DNS."""

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"unexpected DNS lookup of {host!r}")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[str]]:
    """Install answers: fake_dns(name=[addresses], ...); returns the names looked up, in order.

    A name given a list of lists answers with the next list on each lookup (DNS rebinding).
    """

    def install(answers: dict[str, list[str] | list[list[str]]]) -> list[str]:
        lookups: list[str] = []
        remaining = {name: list(value) for name, value in answers.items()}

        def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
            lookups.append(host)
            if host not in remaining or not remaining[host]:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            addresses = remaining[host]
            if isinstance(addresses[0], list):
                addresses = addresses.pop(0) if len(addresses) > 1 else addresses[0]
            return [
                (
                    socket.AF_INET6 if ":" in ip else socket.AF_INET,
                    socket.SOCK_STREAM,
                    socket.IPPROTO_TCP,
                    "",
                    (ip, port, 0, 0) if ":" in ip else (ip, port),
                )
                for ip in addresses
            ]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        return lookups

    return install


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a socket fails the test: the call must be refused before connecting."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", refuse)


def call(url: str, **overrides: Any) -> DeliveryResult:
    arguments: dict[str, Any] = {
        "url": url,
        "method": "POST",
        "headers": {},
        "body": b'{"event":"tick"}',
        "secret": SECRET,
        "delivery_id": "delivery-1",
        "attempt": 1,
        "timeout": 2.0,
        "allow_loopback": True,
    }
    return deliver(**(arguments | overrides))


# --- deliver: what the receiver gets ---------------------------------------------------------


def test_deliver_signature_verifies_at_receiver(receiver):
    # When Kumo calls the receiver
    call(f"{receiver.url}/hook", body=b'{"n":1}')

    # Then the receiver can verify the signature over the exact body it got, with the secret
    (request,) = receiver.requests
    header = request.headers["Kumo-Signature"]
    assert request.body == b'{"n":1}'
    assert verify_signature(SECRET, header, request.body, now=int(time.time()))
    assert header.startswith(f"t={request.headers['Kumo-Timestamp']},v1=")


def test_deliver_sends_kumo_headers(receiver):
    # When Kumo calls the receiver with a body
    before = int(time.time())
    call(f"{receiver.url}/hook", delivery_id="dlv-42", attempt=3)

    # Then every Kumo header is present
    (request,) = receiver.requests
    headers = request.headers
    assert headers["User-Agent"] == "Kumo-Webhooks/1"
    assert headers["Content-Type"] == "application/json"
    assert headers["Kumo-Delivery"] == "dlv-42"
    assert headers["Kumo-Attempt"] == "3"
    assert before <= int(headers["Kumo-Timestamp"]) <= int(time.time())
    assert headers["Host"] == f"127.0.0.1:{receiver.port}"


def test_deliver_passes_user_headers(receiver):
    # When the task carries extra headers
    call(receiver.url, headers={"Authorization": "Bearer abc", "X-Trace": "t-1"})

    # Then the receiver gets them unchanged
    (request,) = receiver.requests
    assert request.headers["Authorization"] == "Bearer abc"
    assert request.headers["X-Trace"] == "t-1"


def test_deliver_own_headers_replace_user_duplicates(receiver):
    # When the user's headers name one Kumo also sets
    call(receiver.url, headers={"user-agent": "mine/1", "X-Keep": "yes"})

    # Then the receiver gets Kumo's value once
    (request,) = receiver.requests
    assert request.headers.get_all("User-Agent") == ["Kumo-Webhooks/1"]
    assert request.headers["X-Keep"] == "yes"


def test_deliver_sends_method_path_and_query(receiver):
    # When the task is a PUT to a path with a query
    call(f"{receiver.url}/a/b?x=1&y=two", method="PUT")

    # Then the request line is the same
    (request,) = receiver.requests
    assert (request.method, request.path) == ("PUT", "/a/b?x=1&y=two")


def test_deliver_without_body_sends_no_content_type(receiver):
    # When a GET task has no body
    call(receiver.url, method="GET", body=None)

    # Then nothing announces a JSON body, and the signature covers the empty body
    (request,) = receiver.requests
    assert "Content-Type" not in request.headers
    assert request.body == b""
    assert verify_signature(SECRET, request.headers["Kumo-Signature"], b"", now=int(time.time()))


def test_deliver_result_never_contains_secret(receiver):
    # Given a receiver that echoes nothing secret
    receiver.reply("/", Reply(500, b"boom"))

    # When a delivery fails
    result = call(receiver.url)

    # Then the secret appears nowhere in the result
    assert SECRET not in repr(result)


# --- deliver: classification -----------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_deliver_2xx_succeeds(receiver, status):
    receiver.reply("/", Reply(status, b"" if status == 204 else b"thanks"))

    result = call(receiver.url)

    assert (result.outcome, result.status_code, result.error) == ("succeeded", status, None)


def test_deliver_success_keeps_response_excerpt(receiver):
    receiver.reply("/", Reply(200, b'{"received":true}'))

    result = call(receiver.url)

    assert result.excerpt == '{"received":true}'
    assert result.duration_ms >= 0


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_deliver_retryable_status_is_retried(receiver, status):
    receiver.reply("/", Reply(status, b"try later"))

    result = call(receiver.url)

    assert (result.outcome, result.status_code) == ("retry", status)
    assert result.error == f"http {status}"
    assert result.excerpt == "try later"


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_deliver_client_error_fails(receiver, status):
    receiver.reply("/", Reply(status, b"no"))

    result = call(receiver.url)

    assert (result.outcome, result.status_code) == ("failed", status)
    assert result.error == f"http {status}"


def test_deliver_redirect_is_not_followed(start_receiver):
    # Given a receiver that redirects to a second one
    first, second = start_receiver(), start_receiver()
    first.reply("/", Reply(302, b"", {"Location": f"{second.url}/landing"}))

    # When Kumo calls the first
    result = call(first.url)

    # Then the call fails without retry and the redirect target is never contacted
    assert (result.outcome, result.status_code) == ("failed", 302)
    assert result.error == "redirect not followed (302)"
    assert second.connections == 0
    assert second.requests == []


def test_deliver_slow_receiver_times_out_for_retry(receiver):
    # Given a receiver that answers long after the timeout
    receiver.reply("/", Reply(stall=True))

    # When Kumo calls it with a short timeout
    result = call(receiver.url, timeout=0.3)

    # Then the call is given up after about the timeout and retried later
    assert (result.outcome, result.status_code, result.error) == ("retry", None, "timeout")
    assert 250 <= result.duration_ms < 3000


def test_deliver_connection_refused_is_retried(closed_port):
    result = call(f"http://127.0.0.1:{closed_port}/")

    assert (result.outcome, result.status_code) == ("retry", None)
    assert result.error == "connection refused"


def test_deliver_excerpt_is_first_512_characters(receiver):
    # Given a response of 100 000 two-byte characters
    receiver.reply("/", Reply(200, "é".encode() * 100_000))

    result = call(receiver.url)

    assert result.outcome == "succeeded"
    assert result.excerpt == "é" * 512


def test_deliver_excerpt_replaces_invalid_utf8(receiver):
    receiver.reply("/", Reply(200, b"\xff\xfe not utf-8"))

    result = call(receiver.url)

    assert result.excerpt == "\ufffd\ufffd not utf-8"


def test_deliver_unknown_method_fails_without_request(receiver):
    result = call(receiver.url, method="TRACE")

    assert (result.outcome, result.error) == ("failed", "method not allowed (TRACE)")
    assert receiver.connections == 0


def test_deliver_invalid_headers_fail_without_request(receiver):
    result = call(receiver.url, headers={"Host": "internal"})

    assert result.outcome == "failed"
    assert result.error is not None and result.error.startswith("invalid headers: header Host")
    assert receiver.connections == 0


# --- deliver: SSRF guard ---------------------------------------------------------------------


def test_deliver_refuses_loopback_without_connection(receiver):
    # When loopback is not allowed (AWS), a receiver on 127.0.0.1 is refused
    result = call(receiver.url, allow_loopback=False)

    # Then no connection was made and the failure is final
    assert result.outcome == "failed"
    assert result.error is not None and result.error.startswith("unsafe target: 127.0.0.1 is")
    assert receiver.connections == 0


def test_deliver_refuses_metadata_address_without_connecting(no_sockets):
    result = call("http://169.254.169.254/latest/meta-data/", allow_loopback=False)

    assert result.outcome == "failed"
    assert result.error is not None and "cloud metadata" in result.error


def test_deliver_refuses_name_resolving_to_private_address(fake_dns, no_sockets):
    fake_dns({"hooks.example.test": ["10.1.2.3"]})

    result = call("https://hooks.example.test/in", allow_loopback=False)

    assert (result.outcome, result.status_code) == ("failed", None)
    assert result.error == (
        "unsafe target: hooks.example.test points at 10.1.2.3, which is a blocked address "
        "(private); webhooks may only call public addresses"
    )


def test_deliver_refuses_name_with_one_private_address(fake_dns, no_sockets):
    fake_dns({"hooks.example.test": [PUBLIC_V4, "192.168.0.10"]})

    result = call("https://hooks.example.test/in", allow_loopback=False)

    assert result.outcome == "failed"
    assert result.error is not None and "192.168.0.10" in result.error


def test_deliver_unresolvable_name_is_retried(fake_dns, no_sockets):
    fake_dns({})

    result = call("https://gone.example.test/", allow_loopback=False)

    assert (result.outcome, result.error) == ("retry", "dns: Name or service not known")


def test_deliver_connects_to_the_checked_address(receiver, fake_dns):
    # Given a name whose second answer would point somewhere else (DNS rebinding)
    lookups = fake_dns({"hooks.example.test": [["127.0.0.1"], ["127.0.0.2"]]})

    # When Kumo calls it (loopback allowed, as on the local stack)
    result = call(f"http://hooks.example.test:{receiver.port}/pinned")

    # Then the name was resolved once, and the request went to that address with the name as Host
    assert result.outcome == "succeeded"
    assert lookups == ["hooks.example.test"]
    (request,) = receiver.requests
    assert request.headers["Host"] == f"hooks.example.test:{receiver.port}"


# --- deliver over TLS ------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca: Path
    chain: Path
    key: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A throw-away CA and a server certificate for hooks.example.test only."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common_name: str) -> Any:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Kumo test CA"))
        .issuer_name(name("Kumo test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("hooks.example.test"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.example.test")]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    paths = Certificates(folder / "ca.pem", folder / "chain.pem", folder / "key.pem")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture
def tls_receiver(start_receiver: Callable[..., Receiver], certificates: Certificates) -> Receiver:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.chain, certificates.key)
    return start_receiver(context)


@pytest.fixture
def trust_test_ca(monkeypatch: pytest.MonkeyPatch, certificates: Certificates) -> None:
    """deliver's default context trusts the test CA (and only it)."""
    real = ssl.create_default_context

    def create_default_context(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        return real(cafile=str(certificates.ca))

    monkeypatch.setattr(ssl, "create_default_context", create_default_context)


def test_deliver_https_uses_host_name_for_sni_and_verification(
    tls_receiver, fake_dns, trust_test_ca
):
    # Given a name resolving to the TLS receiver, whose certificate names only that host
    fake_dns({"hooks.example.test": ["127.0.0.1"]})

    # When Kumo calls it over https
    result = call(f"https://hooks.example.test:{tls_receiver.port}/secure")

    # Then the certificate matched the name (not the address) and SNI carried the name
    assert result.outcome == "succeeded"
    assert tls_receiver.server_names == ["hooks.example.test"]
    (request,) = tls_receiver.requests
    assert request.headers["Host"] == f"hooks.example.test:{tls_receiver.port}"


def test_deliver_https_certificate_for_another_name_is_retried(
    tls_receiver, fake_dns, trust_test_ca
):
    fake_dns({"other.example.test": ["127.0.0.1"]})

    result = call(f"https://other.example.test:{tls_receiver.port}/")

    assert (result.outcome, result.status_code) == ("retry", None)
    assert result.error is not None and result.error.startswith("tls: Hostname mismatch")
    assert tls_receiver.requests == []


def test_deliver_https_untrusted_certificate_is_retried(tls_receiver, fake_dns):
    fake_dns({"hooks.example.test": ["127.0.0.1"]})

    result = call(f"https://hooks.example.test:{tls_receiver.port}/")

    assert result.outcome == "retry"
    assert result.error is not None and result.error.startswith("tls: ")
    assert tls_receiver.requests == []


# --- check_target ----------------------------------------------------------------------------


def test_unsafe_target_is_a_value_error_with_reason():
    with pytest.raises(ValueError) as caught:
        check_target("ftp://example.com/", allow_loopback=False)

    assert isinstance(caught.value, UnsafeTarget)
    assert caught.value.reason == "scheme"
    assert str(caught.value) == "only http and https URLs can be called, not 'ftp'"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://example.com:70/_",
        "example.com/hook",
    ],
)
def test_check_target_refuses_other_schemes(url):
    with pytest.raises(UnsafeTarget) as caught:
        check_target(url, allow_loopback=False)

    assert caught.value.reason == "scheme"


@pytest.mark.parametrize("url", ["http:///hook", "http://", "http://:8080/", "http:example.com"])
def test_check_target_refuses_missing_host(url):
    with pytest.raises(UnsafeTarget) as caught:
        check_target(url, allow_loopback=False)

    assert caught.value.reason == "host"


@pytest.mark.parametrize(
    "url",
    ["http://user:secret@example.com/", "https://token@example.com/", "http://a@127.0.0.1/"],
)
def test_check_target_refuses_credentials(url):
    with pytest.raises(UnsafeTarget) as caught:
        check_target(url, allow_loopback=False)

    assert caught.value.reason == "credentials"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com:0/",
        "http://example.com:70000/",
        "http://example.com:-1/",
        "http://example.com:8o/",
        "http://[2001:db8::1]:99999/",
    ],
)
def test_check_target_refuses_bad_port(url):
    with pytest.raises(UnsafeTarget) as caught:
        check_target(url, allow_loopback=False)

    assert caught.value.reason == "port"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::]/",
        "http://[ff02::1]/",
        "http://[2002:7f00:1::]/",
        "http://0.0.0.0/",
        "http://0/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://127.0.0.1./",
        "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",
        "http://localhost/",
        "http://LOCALHOST./",
        "http://api.localhost/",
        "http://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3/",
    ],
)
def test_check_target_refuses_blocked_addresses(url):
    # Literal addresses and localhost names are refused without any DNS lookup (no_dns)
    with pytest.raises(UnsafeTarget) as caught:
        check_target(url, allow_loopback=False)

    assert caught.value.reason == "address"
    assert str(caught.value).endswith("webhooks may only call public addresses")


def test_check_target_names_the_resolved_address(fake_dns):
    fake_dns({"internal.example.test": ["10.1.2.3"]})

    with pytest.raises(UnsafeTarget) as caught:
        check_target("https://internal.example.test/hook", allow_loopback=False)

    assert caught.value.reason == "address"
    assert str(caught.value).startswith("internal.example.test points at 10.1.2.3")


def test_check_target_refuses_name_with_one_private_address(fake_dns):
    fake_dns({"mixed.example.test": [PUBLIC_V4, "172.20.0.5"]})

    with pytest.raises(UnsafeTarget, match=re.escape("172.20.0.5")):
        check_target("https://mixed.example.test/", allow_loopback=False)


def test_check_target_accepts_name_resolving_to_public_addresses(fake_dns):
    lookups = fake_dns({"hooks.example.test": [PUBLIC_V4, PUBLIC_V6]})

    url = check_target("https://Hooks.Example.test/in?x=1", allow_loopback=False)

    assert url == "https://hooks.example.test/in?x=1"
    assert lookups == ["hooks.example.test"]


def test_check_target_accepts_public_literal_without_dns():
    assert check_target(f"http://{PUBLIC_V4}:8080/x", allow_loopback=False) == (
        f"http://{PUBLIC_V4}:8080/x"
    )


def test_check_target_accepts_unresolvable_name(fake_dns):
    fake_dns({})

    assert check_target("https://not-yet.example.test/", allow_loopback=False) == (
        "https://not-yet.example.test/"
    )


def test_check_target_without_resolve_makes_no_lookup():
    # no_dns fails the test on any lookup
    assert check_target("https://hooks.example.test/", allow_loopback=False, resolve=False) == (
        "https://hooks.example.test/"
    )


def test_check_target_without_resolve_still_checks_literals():
    with pytest.raises(UnsafeTarget):
        check_target("http://10.0.0.1/", allow_loopback=False, resolve=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://127.9.9.9/",
        "http://[::1]:8080/",
        "http://localhost:3000/",
        "http://api.localhost/",
    ],
)
def test_check_target_allow_loopback_accepts_loopback(url):
    assert check_target(url, allow_loopback=True) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://192.168.1.1/",
        "http://0.0.0.0:8080/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
    ],
)
def test_check_target_allow_loopback_still_refuses_other_ranges(url):
    with pytest.raises(UnsafeTarget):
        check_target(url, allow_loopback=True)


def test_check_target_allow_loopback_refuses_name_resolving_to_private(fake_dns):
    fake_dns({"hooks.example.test": ["127.0.0.1", "10.0.0.1"]})

    with pytest.raises(UnsafeTarget, match=re.escape("10.0.0.1")):
        check_target("http://hooks.example.test/", allow_loopback=True)


# --- normalise_url ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("https://example.com:443/a/b?x=1#part", "https://example.com/a/b?x=1"),
        ("http://example.com:80/", "http://example.com/"),
        ("http://example.com:8080", "http://example.com:8080/"),
        ("https://example.com:80/", "https://example.com:80/"),
        ("http://example.com/Path?B=2&a=1", "http://example.com/Path?B=2&a=1"),
        ("http://example.com/?", "http://example.com/"),
        ("http://example.com:/x", "http://example.com/x"),
        ("http://[2001:DB8::1]:8443/x", "http://[2001:db8::1]:8443/x"),
        ("http://B\u00fccher.example/", "http://xn--bcher-kva.example/"),
    ],
)
def test_normalise_url_canonical_form(url, expected):
    assert normalise_url(url) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "url"),
        ("http://[::1", "url"),
        ("http://exa mple.com/", "url"),
        ("http://example.com/\r\nX-Injected: 1", "url"),
        ("http://[not-ipv6]/", "url"),
        ("http://[127.0.0.1]/", "url"),
        ("http://[::1]x/", "host"),
        ("http://[v1.x]/", "host"),
        ("http://exa_mple%2ecom/", "host"),
        ("http://" + "a" * 64 + ".example/", "host"),
        ("http://example.com:http/", "port"),
    ],
)
def test_normalise_url_refuses_unusable_urls(url, reason):
    with pytest.raises(UnsafeTarget) as caught:
        normalise_url(url)

    assert caught.value.reason == reason


# --- check_headers ---------------------------------------------------------------------------


def test_check_headers_returns_valid_headers_as_new_dict():
    given = {"Authorization": "Bearer abc", "X-Trace": "t-1 \t ok", "user-agent": "mine"}

    checked = check_headers(given)

    assert checked == given
    assert checked is not given


def test_check_headers_accepts_twenty():
    assert len(check_headers({f"X-H{n}": "v" for n in range(20)})) == 20


def test_check_headers_refuses_more_than_twenty():
    with pytest.raises(ValueError, match="at most 20 headers"):
        check_headers({f"X-H{n}": "v" for n in range(21)})


@pytest.mark.parametrize("name", ["", "X Trace", "X:Trace", "X-\u00dcmlaut", "X-(1)", "x" * 65])
def test_check_headers_refuses_invalid_names(name):
    with pytest.raises(ValueError, match="header name"):
        check_headers({name: "v"})


@pytest.mark.parametrize(
    "name",
    [
        "Host",
        "content-length",
        "Transfer-Encoding",
        "CONNECTION",
        "Upgrade",
        "Kumo-Signature",
        "kumo-anything",
    ],
)
def test_check_headers_refuses_reserved_names(name):
    with pytest.raises(ValueError, match=f"header {re.escape(name)} is set by Kumo"):
        check_headers({name: "v"})


@pytest.mark.parametrize(
    "value",
    ["a\r\nX-Injected: 1", "a\nb", "a\rb", "nul\x00", "caf\u00e9", "x" * 1025],
)
def test_check_headers_refuses_invalid_values(value):
    with pytest.raises(ValueError, match="X-Trace"):
        check_headers({"X-Trace": value})


def test_check_headers_refuses_same_name_twice():
    with pytest.raises(ValueError, match="more than once"):
        check_headers({"X-Trace": "1", "x-trace": "2"})


# --- signatures ------------------------------------------------------------------------------


def test_sign_matches_documented_scheme():
    # The same vector is in docs/webhooks.md
    header = sign("whsec_test_secret", 1700000000, b'{"hello":"world"}')

    assert header == (
        "t=1700000000,v1=86748dbec9cc87a9219f8a96632da703271bf5e85aa0afa2b310c37ba059d514"
    )


def test_sign_is_hmac_sha256_of_timestamp_dot_body():
    expected = hmac.new(b"key", b"1234.payload", hashlib.sha256).hexdigest()

    assert sign("key", 1234, b"payload") == f"t=1234,v1={expected}"


def test_verify_signature_accepts_own_signature():
    header = sign(SECRET, 1_700_000_000, b"{}")

    assert verify_signature(SECRET, header, b"{}", now=1_700_000_000)


def test_verify_signature_rejects_tampered_body():
    header = sign(SECRET, 1_700_000_000, b'{"amount":1}')

    assert not verify_signature(SECRET, header, b'{"amount":9}', now=1_700_000_000)


def test_verify_signature_rejects_wrong_secret():
    header = sign(SECRET, 1_700_000_000, b"{}")

    assert not verify_signature("whsec_other", header, b"{}", now=1_700_000_000)


@pytest.mark.parametrize("offset", [-301, 301, -86_400])
def test_verify_signature_rejects_timestamp_outside_tolerance(offset):
    header = sign(SECRET, 1_700_000_000, b"{}")

    assert not verify_signature(SECRET, header, b"{}", now=1_700_000_000 - offset)


@pytest.mark.parametrize("offset", [-300, 300])
def test_verify_signature_accepts_timestamp_at_tolerance(offset):
    header = sign(SECRET, 1_700_000_000, b"{}")

    assert verify_signature(SECRET, header, b"{}", now=1_700_000_000 + offset)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "t=1700000000",
        "v1=" + "0" * 64,
        "t=abc,v1=" + "0" * 64,
        "t=-1,v1=" + "0" * 64,
        "t=1700000000,t=1700000000,v1=" + "0" * 64,
        "t=1700000000,v1=\u00e9",
        "t=1700000000;v1=" + "0" * 64,
    ],
)
def test_verify_signature_rejects_garbage_header(header):
    assert not verify_signature(SECRET, header, b"{}", now=1_700_000_000)


def test_verify_signature_accepts_one_of_several_v1_values():
    # During a secret rotation the header carries a signature per secret
    old = sign("whsec_old", 1_700_000_000, b"{}").partition(",v1=")[2]
    new = sign(SECRET, 1_700_000_000, b"{}").partition(",v1=")[2]
    header = f"t=1700000000,v1={old},v1={new}"

    assert verify_signature(SECRET, header, b"{}", now=1_700_000_000)
    assert verify_signature("whsec_old", header, b"{}", now=1_700_000_000)
    assert not verify_signature("whsec_third", header, b"{}", now=1_700_000_000)


def test_verify_signature_ignores_unknown_schemes():
    header = sign(SECRET, 1_700_000_000, b"{}") + ",v2=future"

    assert verify_signature(SECRET, header, b"{}", now=1_700_000_000)


# --- secrets and constants -------------------------------------------------------------------


def test_new_secret_is_prefixed_urlsafe_base64_of_32_bytes():
    secret = new_secret()

    assert re.fullmatch(r"whsec_[A-Za-z0-9_-]{43}", secret)


def test_new_secret_is_random():
    assert len({new_secret() for _ in range(20)}) == 20


def test_allowed_methods_are_the_api_methods():
    assert frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"}) == ALLOWED_METHODS
