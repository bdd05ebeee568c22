"""https to a checked address: the connection goes to the IP, yet SNI, the certificate check and the Host
header all use the URL's name (a TLS receiver on 127.0.0.1 with a certificate for `receiver.test`)."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from webhooks.http import post
from webhooks.ssrf import CheckedUrl

pytestmark = pytest.mark.unit

NAME = "receiver.test"


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[int, Path, dict[str, Any]]]:
    cert, key = self_signed(tmp_path)
    seen: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            seen["host"] = self.headers.get("host")
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: seen.__setitem__("sni", name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield server.server_address[1], cert, seen
    finally:
        server.shutdown()
        server.server_close()


def checked(port: int, host: str = NAME) -> CheckedUrl:
    return CheckedUrl(f"https://{host}:{port}/hook", "https", host, port, "/hook", ("127.0.0.1",))


def test_https_goes_to_the_checked_address_with_the_names_sni_certificate_and_host(tls_receiver):
    port, cert, seen = tls_receiver
    answer = post(checked(port), {"webhook-id": "j.v"}, b"{}", ca_certs=str(cert))
    assert (answer.status, answer.error) == (204, None)
    assert seen == {"sni": NAME, "host": f"{NAME}:{port}"}


def test_a_certificate_for_another_name_fails_the_attempt(tls_receiver):
    port, cert, _ = tls_receiver
    answer = post(checked(port, host="other.test"), {"webhook-id": "j.v"}, b"{}", ca_certs=str(cert))
    assert answer.status is None
    assert "certificate" in (answer.error or "").lower() or "hostname" in (answer.error or "").lower(), (
        answer.error
    )


def test_an_untrusted_certificate_fails_the_attempt(tls_receiver):
    port, _, _ = tls_receiver
    answer = post(checked(port), {"webhook-id": "j.v"}, b"{}")  # the system's CAs only
    assert answer.status is None
    assert "certificate" in (answer.error or "").lower(), answer.error
