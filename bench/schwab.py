"""A local server speaking Schwab's OAuth token protocol, slow on purpose, that keeps score.

``POST /v1/oauth/token`` with HTTP Basic client credentials and
``grant_type=refresh_token&refresh_token=...`` answers, after ``latency`` seconds,
a new access token and a new (rotated) refresh token, as Schwab does.

It counts what the provider_refresh scenario must prove never happens:
- a double refresh: a refresh token presented again after it was already exchanged
  (two workers refreshed the same connection, or a retry re-sent a spent token);
- a lost token: at the end, a connection whose stored refresh token is not the
  newest one this server issued for it (the next refresh would fail and the user
  would have to connect again).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import secrets
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs


class Ledger:
    """Every chain of refresh tokens: chain -> the tokens issued, in order."""

    def __init__(self):
        self._lock = threading.Lock()
        self.chain_of: dict[str, str] = {}   # refresh token -> chain
        self.latest: dict[str, str] = {}     # chain -> newest refresh token
        self.spent: set[str] = set()
        self.refreshes = 0
        self.double_refreshes = 0
        self.unknown_tokens = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.first_refresh_at: dict[str, float] = {}  # chain -> monotonic time of its first refresh

    def register(self, chain: str, refresh_token: str) -> None:
        with self._lock:
            self.chain_of[refresh_token] = chain
            self.latest[chain] = refresh_token

    def exchange(self, refresh_token: str) -> tuple[str, str] | None:
        """(access, new refresh) for a live token; None (invalid_grant) otherwise."""
        with self._lock:
            now = time.monotonic()
            self.first_at = self.first_at or now
            self.last_at = now
            chain = self.chain_of.get(refresh_token)
            if chain is None:
                self.unknown_tokens += 1
                return None
            if refresh_token in self.spent:
                self.double_refreshes += 1
                return None
            self.spent.add(refresh_token)
            self.refreshes += 1
            self.first_refresh_at.setdefault(chain, now)
            new_refresh = f"rt.{chain}.{secrets.token_urlsafe(24)}"
            self.chain_of[new_refresh] = chain
            self.latest[chain] = new_refresh
            return f"at.{chain}.{secrets.token_urlsafe(24)}", new_refresh

    def lost(self, stored: dict[str, str]) -> list[str]:
        """Chains whose stored refresh token (chain -> token) is not the newest issued."""
        with self._lock:
            return [chain for chain, newest in self.latest.items() if stored.get(chain) != newest]

    def refreshed_chains(self) -> int:
        with self._lock:
            return len({self.chain_of[t] for t in self.spent})


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files): clients trust it through
    REQUESTS_CA_BUNDLE, so production's https-only SCHWAB_API_BASE_URL check holds."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fake-schwab.pem", directory / "fake-schwab.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _TLSThreadingHTTPServer(ThreadingHTTPServer):
    """TLS handshakes in each connection's own thread, not in the accept loop."""

    ssl_context: ssl.SSLContext | None = None
    request_queue_size = 256  # read by listen() in the constructor

    def finish_request(self, request, client_address):
        if self.ssl_context is not None:
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)


class SchwabServer:
    def __init__(self, *, latency: float = 0.05, client_id: str = "bench-client",
                 client_secret: str = "bench-secret", tls: bool = False):  # a local fake's credential
        self.ledger = Ledger()
        self.latency = latency
        expected = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The status line and headers go out in one write and the body in another: with
            # Nagle's algorithm on, the body then waits for the client's delayed ACK (about
            # 40 ms on Linux): every call took about 90 ms instead of the 50 ms asked for.
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                return

            def _send(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # http.server API
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                time.sleep(server.latency)
                if not self.path.rstrip("/").endswith("/oauth/token"):
                    return self._send(404, {"error": "not_found"})
                if self.headers.get("Authorization") != expected:
                    return self._send(401, {"error": "invalid_client"})
                if form.get("grant_type") != ["refresh_token"] or not form.get("refresh_token"):
                    return self._send(400, {"error": "unsupported_grant_type"})
                issued = server.ledger.exchange(form["refresh_token"][0])
                if issued is None:
                    return self._send(400, {"error": "invalid_grant",
                                            "error_description": "refresh token is invalid"})
                access, refresh = issued
                return self._send(200, {"access_token": access, "refresh_token": refresh,
                                        "token_type": "Bearer", "expires_in": 1800, "scope": "api",
                                        "id_token": "bench"})

            def do_GET(self):  # accounts and the rest are not part of this scenario
                time.sleep(server.latency)
                self._send(200, {})

        self._httpd = _TLSThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.ca_file: Path | None = None
        self.ca_bundle: Path | None = None
        if tls:
            self._dir = Path(tempfile.mkdtemp(prefix="fake-schwab-"))
            self.ca_file, key_file = self_signed_certificate(self._dir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.ca_file, key_file)
            self._httpd.ssl_context = context
            # What clients trust (REQUESTS_CA_BUNDLE): the public roots requests uses by
            # default plus this certificate, so loading the bundle costs what it costs
            # against the real Schwab.
            import certifi

            self.ca_bundle = self._dir / "ca-bundle.pem"
            self.ca_bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + self.ca_file.read_bytes())
        self.port = self._httpd.server_address[1]
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-schwab", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
