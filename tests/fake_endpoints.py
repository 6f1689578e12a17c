"""A local stand-in for the endpoints that submit talks to: a recording HTTP server, the answers of the KFP
v2beta1 API and of Vertex AI's REST API (with Google's token endpoint), and application default credentials
whose token endpoint is the local one. The real kfp Client and aiplatform run against it, with no network."""
import base64
import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


@contextlib.contextmanager
def endpoint(answer):
    """A local HTTP server on 127.0.0.1: records every request ({method, path, query, body, headers}) and replies
    answer(request) -> (status, JSON). Each connection times out after 10 s; the server stops with the block."""
    requests = []

    class Handler(BaseHTTPRequestHandler):
        timeout = 10
        protocol_version = "HTTP/1.1"

        def handle_one(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            url = urlsplit(self.path)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            request = {"method": self.command, "path": url.path, "query": parse_qs(url.query), "body": body,
                       "headers": {k.lower(): v for k, v in self.headers.items()}}
            requests.append(request)
            status, reply = answer(request)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def kfp_answers(runs=(), experiment=True):
    """The KFP v2beta1 REST API, as much of it as the client uses: healthz, experiments, runs."""
    def answer(request):
        method, path = request["method"], request["path"]
        if path == "/apis/v2beta1/healthz":
            return 200, {"multi_user": False}
        if path == "/apis/v2beta1/experiments" and method == "GET":
            return 200, ({"experiments": [{"experiment_id": "e-1", "display_name": "modelsearch"}], "total_size": 1}
                         if experiment else {})
        if path == "/apis/v2beta1/experiments" and method == "POST":
            return 200, {"experiment_id": "e-1", "display_name": request["body"]["display_name"]}
        if path == "/apis/v2beta1/runs" and method == "GET":
            return 200, {"runs": list(runs), "total_size": len(runs)}
        if path == "/apis/v2beta1/runs" and method == "POST":
            return 200, {"run_id": "r-1", "display_name": request["body"]["display_name"], "state": "PENDING",
                         "experiment_id": request["body"]["experiment_id"]}
        return 404, {"error": f"no {method} {path}"}
    return answer


def vertex_answers(jobs=(), project="proj", region="us-central1"):
    """Google's OAuth token endpoint, Cloud Storage's bucket lookup and Vertex AI's pipelineJobs (REST)."""
    def answer(request):
        method, path = request["method"], request["path"]
        if path == "/token":
            return 200, {"access_token": "token-1", "expires_in": 3600, "token_type": "Bearer"}
        if path.startswith("/storage/v1/b/"):  # the bucket of the pipeline root exists
            return 200, {"name": path.split("/")[4], "kind": "storage#bucket"}
        parent = f"/v1/projects/{project}/locations/{region}"
        if path == f"{parent}/pipelineJobs" and method == "GET":
            return 200, {"pipelineJobs": list(jobs)}
        if path == f"{parent}/pipelineJobs" and method == "POST":
            job_id = request["query"]["pipelineJobId"][0]
            return 200, {**request["body"], "name": f"projects/{project}/locations/{region}/pipelineJobs/{job_id}",
                         "state": "PIPELINE_STATE_PENDING"}
        if path.startswith("/v1/projects/p/secrets/"):
            return 200, {"name": path[len("/v1/"):-len(":access")],
                         "payload": {"data": base64.b64encode(b"s3cret").decode()}}
        return 404, {"error": {"code": 404, "message": f"no {method} {path}", "status": "NOT_FOUND"}}
    return answer


@pytest.fixture
def google_credentials(tmp_path, monkeypatch):
    """Application default credentials: a service-account key (made here) whose token endpoint is the local one,
    so the clients authenticate as they would in a pod, with no network."""
    import google.auth.credentials
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    # google-auth looks up a service account's Regional Access Boundary at iamcredentials.googleapis.com after
    # each token refresh, in a background thread, with no setting to turn it off or point it elsewhere.
    monkeypatch.setattr(google.auth.credentials.CredentialsWithRegionalAccessBoundary,
                        "_is_regional_access_boundary_lookup_required", lambda self: False)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()

    def use(url):
        path = tmp_path / "adc.json"
        path.write_text(json.dumps({"type": "service_account", "project_id": "proj", "private_key_id": "k1",
                                    "private_key": key, "client_email": "submitter@proj.iam.gserviceaccount.com",
                                    "client_id": "1", "token_uri": f"{url}/token"}))
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)  # the bucket check aiplatform makes before submitting
        monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    return use
