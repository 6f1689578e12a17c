"""A private MariaDB server on a temporary data directory, for tests and benchmarks of the MySQL trial store.

No system service and nothing beyond loopback: `mariadb-install-db` fills a fresh data directory and
`mariadbd` serves it on 127.0.0.1 at a free port until stop(). The trial store logs in as a user of its
own with a mysql_native_password password: ml-metadata 1.17.1's MySQL client cannot log in with MariaDB's
ed25519 plugin ("mysql_real_connect failed" with an empty error), and a password login over TCP is what a
trainer pod does against the cluster's MariaDB. MLMD creates each database on first connection.

    with MariaDB() as server:
        store = TrialStore(server.store_config("study1"))
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time

USER = "modelsearch"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _greets(port: int) -> bool:
    """Whether a MySQL server answers on the port with its handshake (protocol 10): it accepts logins."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            packet = s.recv(5)
    except OSError:
        return False
    return len(packet) == 5 and packet[4] == 10


class MariaDB:
    def __init__(self, root: str | None = None, start_timeout: float = 60.0):
        self.root = root
        self.start_timeout = start_timeout
        self.port = 0
        self.password = secrets.token_hex(12)
        self._process = None
        self._own_root = root is None

    def __enter__(self) -> "MariaDB":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def store_config(self, database: str) -> dict:
        """The trial-store config (modelsearch.trialstore.connection_config) of `database` on this server."""
        return {"mysql": {"host": "127.0.0.1", "port": self.port, "database": database, "user": USER,
                          "password": self.password}}

    def sql(self, database: str, statements: str) -> str:
        """Runs SQL on `database` with the mariadb client (for what MLMD's API cannot do); returns its output."""
        done = subprocess.run(["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{self.port}", f"-u{USER}",
                               f"-p{self.password}", database, "-e", statements], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"mariadb failed: {done.stderr}")
        return done.stdout

    def start(self) -> "MariaDB":
        path = os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin"  # mariadbd lives in sbin, often not on PATH
        install_db, mariadbd = (shutil.which(tool, path=path) for tool in ("mariadb-install-db", "mariadbd"))
        if not (install_db and mariadbd):
            raise RuntimeError("mariadbd or mariadb-install-db not found: install mariadb-server (apt-get install "
                               "mariadb-server; .ci/run does) to run the MySQL trial-store tests")
        self.root = self.root or tempfile.mkdtemp(prefix="mariadb-")
        data = os.path.join(self.root, "data")
        # As root, both refuse to run unless told which user owns the files: that is root itself here.
        user = [f"--user={pwd.getpwuid(0).pw_name}"] if os.geteuid() == 0 else []
        install = subprocess.run(
            [install_db, "--no-defaults", f"--datadir={data}", *user, "--skip-test-db",
             "--auth-root-authentication-method=socket"], capture_output=True, text=True)
        if install.returncode:
            raise RuntimeError(f"mariadb-install-db failed:\n{install.stdout}\n{install.stderr}")
        init = os.path.join(self.root, "init.sql")
        with open(init, "w") as f:
            f.write(f"CREATE OR REPLACE USER '{USER}'@'127.0.0.1' IDENTIFIED VIA mysql_native_password "
                    f"USING PASSWORD('{self.password}');\nGRANT ALL PRIVILEGES ON *.* TO '{USER}'@'127.0.0.1';\n")
        log = os.path.join(self.root, "error.log")
        for _ in range(3):  # another process may take the free port before mariadbd binds it: try another
            self.port = _free_port()
            self._process = subprocess.Popen(
                [mariadbd, "--no-defaults", f"--datadir={data}", *user,
                 "--bind-address=127.0.0.1", f"--port={self.port}", f"--socket={self.root}/mysqld.sock",
                 f"--pid-file={self.root}/mysqld.pid", f"--log-error={log}", f"--tmpdir={self.root}",
                 f"--init-file={init}", "--skip-name-resolve"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + self.start_timeout
            while self._process.poll() is None and time.monotonic() < deadline:
                if _greets(self.port):
                    return self
                time.sleep(0.1)
            exited = self._process.poll() is not None
            self.stop(remove=False)
            with open(log) as f:
                text = f.read()
            if not (exited and "Address already in use" in text):
                break
        raise RuntimeError(f"mariadbd did not start on 127.0.0.1; its log ({log}):\n{text[-3000:]}")

    def stop(self, remove: bool = True) -> None:
        if self._process is not None:
            self._process.terminate()  # SIGTERM: a clean shutdown
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if remove and self._own_root and self.root:
            shutil.rmtree(self.root, ignore_errors=True)
