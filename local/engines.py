"""The DynamoDB engines the project runs: moto server (the default) and dynalite (npm), or the user's own.

Only open-source engines are fetched or run (DESIGN §7). `MotoServer` runs moto's server in this
process on 127.0.0.1; `Dynalite` runs the npm package `dynalite` with `node` on a free loopback
port, fetched once into the cache (`python -m local.engines fetch-dynalite`, which `make` runs).
A user who sets `AWS_ENDPOINT_URL_DYNAMODB` brings an engine of their own (`external_endpoint`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer
    from mypy_boto3_dynamodb import DynamoDBClient

DYNALITE_VERSION: Final = "4.0.0"
DYNALITE_PACKAGE: Final = f"dynalite@{DYNALITE_VERSION}"
BYO_VARIABLE: Final = "AWS_ENDPOINT_URL_DYNAMODB"
START_TIMEOUT: Final = 30.0
# dynalite reports a new table CREATING for this long (its default is 500 ms): short, but long
# enough that code which forgets to wait for ACTIVE fails on it as it would on DynamoDB.
DYNALITE_TABLE_MS: Final = 50
log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """An engine cannot be fetched or did not start; the message is one line for the user."""


def cache_dir() -> Path:
    """Where fetched tools live: `$JOBSTATUS_CACHE`, else `$XDG_CACHE_HOME/jobstatus`, else ~/.cache."""
    if explicit := os.environ.get("JOBSTATUS_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jobstatus"


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
            time.sleep(0.05)


def external_endpoint() -> str | None:
    """The user's own DynamoDB engine (`AWS_ENDPOINT_URL_DYNAMODB`), when they set one."""
    return os.environ.get(BYO_VARIABLE) or None


def not_started(name: str, detail: str) -> EngineError:
    """The one line a user sees when an engine does not come up, with how to bring another."""
    return EngineError(
        f"{name} did not start: {detail}. Bring another DynamoDB engine with "
        f"{BYO_VARIABLE}=http://127.0.0.1:PORT (DynamoDB Local, ScyllaDB Alternator, ...)"
    )


def wait_table_active(client: DynamoDBClient, name: str, timeout: float = 30.0) -> None:
    """Wait until table `name` exists and is ACTIVE (dynalite and DynamoDB say CREATING first)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            if client.describe_table(TableName=name)["Table"].get("TableStatus") == "ACTIVE":
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name} not ACTIVE within {timeout:.0f}s")
        time.sleep(0.02)


# --- moto server -------------------------------------------------------------------------------


class MotoServer:
    """moto's server in this process on 127.0.0.1 (it binds 0.0.0.0 unless told)."""

    name: Final = "moto"

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._server: ThreadedMotoServer | None = None

    @property
    def endpoint(self) -> str:
        """The endpoint URL to give botocore."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start it and wait until it answers; `EngineError` when it does not."""
        from moto.server import ThreadedMotoServer

        from local.moto_tuning import install

        install()  # the same answers, without moto's per-request overheads (see local.moto_tuning)
        # werkzeug logs every request moto serves; the caller's own output is enough.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        try:
            wait_for_http(f"{self.endpoint}/moto-api/", timeout)
        except TimeoutError as error:
            self.stop()
            raise not_started("moto server", str(error)) from None
        return self

    def reset(self) -> None:
        """Empty every moto backend of this process (a server in a process that used moto before
        would otherwise see that earlier state: moto keeps it in module globals)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - a loopback URL we built
            pass

    def stop(self) -> None:
        """Stop the server (moto's state stays in this process until `reset`)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class MotoProcess:
    """moto server in a process of its own on 127.0.0.1, for DynamoDB in the local stack.

    Its own process keeps moto's CPU-heavy expression handling (about 4 ms of CPU per conditional
    UpdateItem with `local.moto_tuning`, 7.6 ms without, on a shared 2-core machine,
    `python -m bench.local_engines`) off the stack's
    interpreter lock, and it serves one request at a time (see
    `serve_moto`). It reads its stdin until end of file, so it exits with the stack even after
    a `kill -9`, when the pipe closes.
    """

    name: Final = "moto"

    def __init__(self, port: int | None = None, *, dynamodb_tuned: bool = True):
        self.port = port or free_port()
        self._dynamodb_tuned = dynamodb_tuned  # False: moto's DynamoDB as shipped (for the bench)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The endpoint URL to give botocore (`AWS_ENDPOINT_URL_DYNAMODB`)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start the process and wait until it answers; `EngineError` (one line) when it does not."""
        command = [sys.executable, "-m", "local.engines", "serve-moto", str(self.port)]
        if not self._dynamodb_tuned:
            command.append(DYNAMODB_AS_SHIPPED)
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_http(f"{self.endpoint}/moto-api/", timeout)
        except TimeoutError as error:
            self.stop()
            raise not_started("moto server", str(error)) from None
        return self

    def stop(self) -> None:
        """Stop the process: close its stdin, then terminate it if it lingers."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


DYNAMODB_AS_SHIPPED: Final = "--dynamodb-as-shipped"


def serve_moto(port: int, dynamodb_tuned: bool = True) -> int:
    """Run moto server on 127.0.0.1:`port`, one request at a time, until stdin ends (`MotoProcess`'s child).

    One request at a time: moto's DynamoDB has no locks, so two threads running conditional
    UpdateItems on one item can both pass the condition and the older version win, which
    DynamoDB never allows (measured here with concurrent projectors). Served in turn, each
    request is atomic, as on DynamoDB.
    """
    import threading

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from local.moto_tuning import install

    install(dynamodb=dynamodb_tuned)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", port, app, threaded=False, request_handler=MotoRequestHandler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="moto", daemon=True
    ).start()
    try:
        sys.stdin.buffer.read()
    finally:
        server.shutdown()
    return 0


# --- dynalite ----------------------------------------------------------------------------------


def dynalite_root() -> Path:
    """The npm prefix dynalite is installed under, in the cache."""
    return cache_dir() / "dynalite"


def dynalite_script(root: Path | None = None) -> Path | None:
    """dynalite's `cli.js` in the cache, if the pinned version is fetched."""
    package = (root or dynalite_root()) / "node_modules" / "dynalite"
    manifest = package / "package.json"
    if not manifest.is_file() or f'"version": "{DYNALITE_VERSION}"' not in manifest.read_text():
        return None
    return package / "cli.js"


def dynalite_unavailable() -> str | None:
    """Why dynalite cannot run here (no node, or no npm to fetch it), or None when it can."""
    if shutil.which("node") is None:
        return "node not found on PATH: install Node.js (with npm) to run dynalite"
    if dynalite_script() is None and shutil.which("npm") is None:
        return f"npm not found on PATH: install it to fetch {DYNALITE_PACKAGE}"
    return None


def fetch_dynalite(root: Path | None = None, quiet: bool = False) -> Path:
    """`npm install` the pinned dynalite into the cache (once); its `cli.js`.

    A fetch always says so on stderr: npm's own progress on a terminal, a spinner there when
    `quiet`, else one line before and one after.
    """
    root = root or dynalite_root()
    if found := dynalite_script(root):
        return found
    npm = shutil.which("npm")
    if npm is None:
        raise EngineError(f"npm not found on PATH: install it to fetch {DYNALITE_PACKAGE}")
    root.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--prefix", str(root), DYNALITE_PACKAGE, "--no-audit", "--no-fund"]
    note = f"fetching {DYNALITE_PACKAGE} with npm into {root} (once)"
    started = time.monotonic()
    if not quiet and sys.stdout.isatty():
        print(f"{note} ...", flush=True)
        result = subprocess.run(command, check=False, stdin=subprocess.DEVNULL)  # npm's own progress
    elif sys.stderr.isatty():
        from rich.console import Console

        with Console(stderr=True).status(f"{note} ..."):
            result = subprocess.run([*command, "--silent"], check=False, stdin=subprocess.DEVNULL)
    else:
        print(f"{note} ...", file=sys.stderr, flush=True)
        result = subprocess.run([*command, "--silent"], check=False, stdin=subprocess.DEVNULL)
    print(f"{DYNALITE_PACKAGE}: npm install took {time.monotonic() - started:.0f} s", file=sys.stderr)
    found = dynalite_script(root)
    if result.returncode != 0 or found is None:
        raise EngineError(f"npm install {DYNALITE_PACKAGE} failed (exit {result.returncode})")
    return found


class Dynalite:
    """A dynalite process on 127.0.0.1, in memory."""

    name: Final = "dynalite"

    def __init__(self, port: int | None = None, script: Path | None = None):
        self.port = port or free_port()
        self._script = script
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The endpoint URL to give botocore (`AWS_ENDPOINT_URL_DYNAMODB`)."""
        return f"http://127.0.0.1:{self.port}"

    def command(self, script: Path) -> list[str]:
        """The command line that runs dynalite's `script` on this port, loopback only."""
        return [
            "node",
            str(script),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--createTableMs",
            str(DYNALITE_TABLE_MS),
            "--deleteTableMs",
            str(DYNALITE_TABLE_MS),
            "--updateTableMs",
            str(DYNALITE_TABLE_MS),
        ]

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start the process and wait until it answers; `EngineError` (one line) when it does not."""
        if reason := dynalite_unavailable():
            raise not_started("dynalite", reason)
        script = self._script or fetch_dynalite(quiet=True)
        self._process = subprocess.Popen(
            self.command(script), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                last = stderr.strip().splitlines()[-1:] or [f"exit {self._process.returncode}"]
                self.stop()
                raise not_started("dynalite", f"node exited: {last[0]}")
            try:
                wait_for_http(self.endpoint, timeout=0.2)
                return self
            except TimeoutError:
                if time.monotonic() > deadline:
                    self.stop()
                    detail = f"nothing answered at {self.endpoint} within {timeout:.0f}s"
                    raise not_started("dynalite", detail) from None

    def stop(self) -> None:
        """Stop the process (terminate, then kill if it lingers)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            with contextlib.suppress(OSError):
                process.stderr.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m local.engines fetch-dynalite [--quiet]`: fetch dynalite into the cache.

    Without npm it says so and exits 0: the dynalite tests are then skipped with that reason.
    """
    args = sys.argv[1:] if argv is None else argv
    shipped = [DYNAMODB_AS_SHIPPED]
    if args[:1] == ["serve-moto"] and len(args) in (2, 3) and args[1].isdigit() and args[2:] in ([], shipped):
        return serve_moto(int(args[1]), dynamodb_tuned=args[2:] != shipped)
    if not args or args[0] != "fetch-dynalite" or set(args[1:]) - {"--quiet"}:
        print("usage: python -m local.engines fetch-dynalite [--quiet]", file=sys.stderr)
        return 2
    quiet = "--quiet" in args
    if reason := dynalite_unavailable():
        print(f"dynalite not fetched: {reason}; its tests will be skipped", file=sys.stderr)
        return 0
    try:
        script = fetch_dynalite(quiet=quiet)
    except EngineError as error:
        print(f"dynalite not fetched: {error}; its tests will be skipped", file=sys.stderr)
        return 0
    if not quiet:
        print(script)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
