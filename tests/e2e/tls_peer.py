"""Certificates and a TLS peer for the upstream-TLS tests.

`TestPki` makes a throw-away CA and certificates with `openssl` (as tools/dev_cert.sh does);
`TlsPeer` is a loopback TLS server that presents one of them and, once a handshake completes,
relays the plaintext to a target (the mock upstream or the token-service), counting what it
saw: an impostor when Envoy must refuse it, a legitimate TLS front when Envoy must accept it.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PROVIDER_HOSTS = ("api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com")


@dataclass(frozen=True)
class Cert:
    """A certificate chain file and its private key."""

    cert: Path
    key: Path


class TestPki:
    """A CA of our own under `root`, and certificates it (or nobody) signs."""

    __test__ = False  # not a pytest class

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        #: The test CA's certificate: trust it with --provider-ca-file / --token-service-tls-ca.
        self.ca = root / "ca.crt"
        self._ca_key = root / "ca.key"
        self._openssl(
            "req", "-x509", *self._new_key(self._ca_key), "-out", str(self.ca), "-days", "2",
            "-subj", "/CN=ptk test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def issue(self, name: str, dns_names: tuple[str, ...]) -> Cert:
        """A server certificate for dns_names, signed by the test CA."""
        cert, key, csr, ext = (self.root / f"{name}.{x}" for x in ("crt", "key", "csr", "ext"))
        self._openssl("req", *self._new_key(key), "-out", str(csr), "-subj", f"/CN={dns_names[0]}")
        ext.write_text(f"subjectAltName={self._san(dns_names)}\nbasicConstraints=CA:FALSE\n"
                       "extendedKeyUsage=serverAuth\n")
        self._openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca),
                      "-CAkey", str(self._ca_key), "-CAcreateserial", "-out", str(cert),
                      "-days", "2", "-extfile", str(ext))
        return Cert(cert, key)

    def self_signed(self, name: str, dns_names: tuple[str, ...]) -> Cert:
        """A certificate for dns_names that no CA signed (what an impostor can make)."""
        cert, key = self.root / f"{name}.crt", self.root / f"{name}.key"
        self._openssl("req", "-x509", *self._new_key(key), "-out", str(cert), "-days", "2",
                      "-subj", f"/CN={dns_names[0]}",
                      "-addext", f"subjectAltName={self._san(dns_names)}")
        return Cert(cert, key)

    @staticmethod
    def _san(dns_names: tuple[str, ...]) -> str:
        return ",".join(f"DNS:{n}" for n in dns_names)

    @staticmethod
    def _new_key(path: Path) -> list[str]:
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(path)]

    @staticmethod
    def _openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


class TlsPeer:
    """A TLS server on 127.0.0.1 presenting `cert`; after a completed handshake it relays
    bytes both ways to `target` (set it before traffic arrives)."""

    def __init__(self, cert: Cert) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert.cert, cert.key)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.target: tuple[str, int] | None = None
        self._lock = threading.Lock()
        #: Connections accepted / whose first byte was not a TLS handshake record (plaintext
        #: HTTP, key included, sent to a TLS port) / that completed or failed the handshake.
        self.connections = 0
        self.plaintext_connections = 0
        self.handshakes = 0
        self.failed_handshakes = 0
        #: Plaintext bytes the client (Envoy) sent after a completed handshake.
        self.bytes_from_client = 0
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        self._count("connections")
        conn.settimeout(10)
        try:
            first = conn.recv(1, socket.MSG_PEEK)
            if first and first != b"\x16":  # 0x16: a TLS handshake record
                self._count("plaintext_connections")
            tls = self._context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            self._count("failed_handshakes")
            conn.close()
            return
        self._count("handshakes")
        if self.target is None:
            tls.close()
            return
        upstream = socket.create_connection(self.target, timeout=10)
        self._open.append(upstream)
        threading.Thread(target=self._pump, args=(upstream, tls, False), daemon=True).start()
        self._pump(tls, upstream, True)

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_client:
                    self._count("bytes_from_client", len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def settle(self, timeout: float = 5) -> None:
        """Wait until every accepted connection has finished its handshake one way or the
        other (Envoy may answer its client before this thread has counted the failure)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.handshakes + self.failed_handshakes >= self.connections:
                    return
            time.sleep(0.02)

    def close(self) -> None:
        self._server.close()
        for s in self._open:
            try:
                s.close()
            except OSError:
                pass
