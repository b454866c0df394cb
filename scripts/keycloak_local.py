#!/usr/bin/env python3
"""Run a real Keycloak server without Docker, for the enforcer's tests and benchmark.

Why: the enforcer's promise -- a hijacked session is dead at the IdP -- can
only be shown against a real IdP. Keycloak's distribution is a zip on Maven
Central (``org.keycloak:keycloak-quarkus-dist``); it is fetched once with
Maven, unpacked and *built* (Quarkus augmentation) into a per-version cache
outside the repo, then started with ``kc.sh start --optimized``:

* ``--db=dev-mem`` (in-memory H2) and ``--cache=local``: no files written,
  no cluster discovery, so several servers (parallel test sessions, other
  work trees) can run from one cached distribution at the same time;
* the build runs once, under a file lock, in ``fetch``: a server start never
  rewrites the shared distribution (``start-dev`` would re-augment it);
* ``--proxy-headers=xforwarded``: Keycloak records the client address from
  ``X-Forwarded-For``, so tests can present logins from different networks;
* HTTP on a free loopback port (plus a free management port), a bootstrap
  admin from ``KC_BOOTSTRAP_ADMIN_USERNAME``/``_PASSWORD``.

Stdlib only, like ``kafka_local.py`` (whose helpers it reuses), so it runs
with a plain ``python3`` and loads from the pytest plugin
(``tests/keycloak_plugin.py``).

CLI::

    scripts/keycloak_local.py fetch                       # download + build once
    scripts/keycloak_local.py start [--port N] [--dir D]  # prints http://127.0.0.1:PORT
    scripts/keycloak_local.py status|stop [--dir D]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kafka_local as _kl  # a sibling script, not a package

DEFAULT_VERSION = os.environ.get("SESSIONWARDEN_KEYCLOAK_VERSION", "26.5.6")
ARTIFACT = "org.keycloak:keycloak-quarkus-dist:{version}:zip"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO_ROOT / ".keycloak-local"
STATE_FILE = "state.json"
OWNER_MARKER = ".keycloak-local-run-dir"
SERVER_LOG = "keycloak.log"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"  # a throw-away loopback test server, never a deployment
# Build-time options: fixed here, applied once by `kc.sh build` in fetch().
BUILD_OPTIONS = ("--db=dev-mem", "--cache=local", "--health-enabled=false",
                 "--metrics-enabled=false")


class KeycloakLocalError(RuntimeError):
    """Raised when Keycloak cannot be fetched, started or stopped."""


def _log(msg: str) -> None:
    print(f"keycloak-local: {msg}", file=sys.stderr, flush=True)


def keycloak_home(version: str = DEFAULT_VERSION) -> Path:
    """Per-version cache dir (``~/.cache/sessionwarden/keycloak-<version>``)."""
    return _kl.cache_root() / f"keycloak-{version}"


def dist_dir(version: str = DEFAULT_VERSION) -> Path:
    return keycloak_home(version) / f"keycloak-{version}"


def fetch(version: str = DEFAULT_VERSION, *, quiet: bool = False) -> Path:
    """Download, unpack and build the distribution into the cache; return its dir.

    Idempotent: the ``.complete`` marker is written only after the build, so
    an interrupted fetch is redone, never half-used.
    """
    home = keycloak_home(version)
    dist = dist_dir(version)
    marker = home / ".complete"
    if marker.is_file() and (dist / "bin" / "kc.sh").is_file():
        return dist
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KeycloakLocalError("Maven ('mvn') is not on PATH; it is needed to fetch Keycloak")
    with _kl._file_lock(home / ".lock"):
        if marker.is_file() and (dist / "bin" / "kc.sh").is_file():
            return dist
        t0 = time.monotonic()
        if not quiet:
            _log(f"fetching {ARTIFACT.format(version=version)} with Maven into {home}")
        with tempfile.TemporaryDirectory(dir=home, prefix="fetch-") as tmp_s:
            tmp = Path(tmp_s)
            cmd = [mvn, "-q", "-B", f"{_kl.DEPENDENCY_PLUGIN}:copy",
                   f"-Dartifact={ARTIFACT.format(version=version)}",
                   f"-DoutputDirectory={tmp}"]
            res = subprocess.run(cmd, check=False, cwd=tmp, stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True)
            archive = tmp / f"keycloak-quarkus-dist-{version}.zip"
            if res.returncode != 0 or not archive.is_file():
                output = (res.stdout + res.stderr).strip().splitlines()[-30:]
                raise KeycloakLocalError(
                    f"mvn failed to fetch Keycloak {version} (exit {res.returncode}):\n"
                    + "\n".join(output))
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp / "unzipped")
            unpacked = tmp / "unzipped" / f"keycloak-{version}"
            for script in (unpacked / "bin").glob("*.sh"):
                script.chmod(0o755)
            _build(unpacked)
            if dist.exists():
                shutil.rmtree(dist)
            os.replace(unpacked, dist)
        marker.write_text(json.dumps({"version": version, "build": BUILD_OPTIONS}))
        if not quiet:
            _log(f"fetched and built Keycloak {version} in {time.monotonic() - t0:.1f}s")
    return dist


def _build(dist: Path) -> None:
    """Quarkus augmentation with the fixed build options (about 40 s, once)."""
    env = _java_env()
    res = subprocess.run([str(dist / "bin" / "kc.sh"), "build", *BUILD_OPTIONS], check=False,
                         cwd=dist, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise KeycloakLocalError(f"kc.sh build failed (exit {res.returncode}):\n"
                                 + (res.stdout + res.stderr)[-3000:])


def _java_env() -> dict[str, str]:
    """kc.sh finds java through JAVA_HOME or PATH: pin the one kafka_local picks."""
    env = dict(os.environ)
    java = Path(_kl.java_executable()).resolve()
    env.setdefault("JAVA_HOME", str(java.parent.parent))
    return env


def _ready(base_url: str, timeout: float = 2.0) -> bool:
    """True once the master realm's OpenID configuration is served."""
    url = f"{base_url}/realms/master/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def read_state(run_dir: Path) -> dict[str, object] | None:
    try:
        data = json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class LocalKeycloak:
    """One Keycloak server with its log and state in ``run_dir``; a context manager."""

    def __init__(self, run_dir: Path | str | None = None, *, version: str = DEFAULT_VERSION,
                 port: int | None = None, die_with_parent: bool = False,
                 heap: str = "768m") -> None:
        self.run_dir = Path(run_dir if run_dir is not None else DEFAULT_DIR).resolve()
        self.version = version
        self.port = port
        self.die_with_parent = die_with_parent
        self.heap = heap
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._t0 = time.monotonic()

    @property
    def log_path(self) -> Path:
        return self.run_dir / SERVER_LOG

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise KeycloakLocalError("Keycloak not started")
        return f"http://127.0.0.1:{self.port}"

    def _prepare_dir(self) -> None:
        state = read_state(self.run_dir)
        pid = state.get("pid") if state else None
        if isinstance(pid, int) and _kl._pid_alive(pid):
            raise KeycloakLocalError(f"a Keycloak (pid {pid}) already runs in {self.run_dir}")
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            if not (self.run_dir / OWNER_MARKER).exists():
                raise KeycloakLocalError(f"{self.run_dir} is not empty and not a "
                                         "keycloak-local dir; refusing to use it")
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / OWNER_MARKER).write_text("created by scripts/keycloak_local.py\n")

    def start(self, timeout: float = 180.0) -> str:
        """Start a fresh server and block until it serves the master realm."""
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the server process and return at once (`wait_ready` waits).

        With `die_with_parent`, call this from the thread that lives as long
        as the server should: the kernel's parent-death signal fires when the
        *thread* that forked the child exits, not the process.
        """
        dist = fetch(self.version)
        self._prepare_dir()
        ports = _kl._free_ports(2)
        if self.port is None:
            self.port = ports[0]
        management = next(p for p in ports if p != self.port)
        env = _java_env()
        env.update({"KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
                    "KC_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
                    "JAVA_OPTS_KC_HEAP": f"-Xms128m -Xmx{self.heap}"})
        cmd = [str(dist / "bin" / "kc.sh"), "start", "--optimized", "--http-enabled=true",
               "--hostname-strict=false", "--proxy-headers=xforwarded",
               f"--http-port={self.port}", "--http-host=127.0.0.1",
               f"--http-management-port={management}", "--log-console-output=default"]
        self._t0 = time.monotonic()
        with open(self.log_path, "ab") as log_fh:
            self._proc = subprocess.Popen(
                cmd, cwd=self.run_dir, env=env, stdin=subprocess.DEVNULL, stdout=log_fh,
                stderr=subprocess.STDOUT, start_new_session=True,
                # kc.sh forwards SIGTERM to its java child.
                preexec_fn=_kl._pdeathsig_preexec() if self.die_with_parent else None)  # noqa: PLW1509
        self._pid = self._proc.pid
        (self.run_dir / STATE_FILE).write_text(json.dumps({
            "pid": self._pid, "port": self.port, "base_url": self.base_url,
            "version": self.version, "log": str(self.log_path), "started_at": time.time()}))

    def wait_ready(self, timeout: float = 180.0) -> str:
        """Block until the launched server serves the master realm; its base URL."""
        try:
            self._wait_ready(self._t0 + timeout)
        except BaseException:
            self.stop(keep=True)
            raise
        self.startup_seconds = time.monotonic() - self._t0
        return self.base_url

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None
        while True:
            code = self._proc.poll()
            if code is not None:
                raise KeycloakLocalError(f"Keycloak exited with code {code} during start-up; "
                                         f"from {self.log_path}:\n{_kl._tail(self.log_path)}")
            if _ready(self.base_url):
                return
            if time.monotonic() > deadline:
                raise KeycloakLocalError(f"Keycloak not ready at {self.base_url} in time; from "
                                         f"{self.log_path}:\n{_kl._tail(self.log_path)}")
            time.sleep(0.25)

    def stop(self, *, keep: bool = False, grace: float = 20.0) -> None:
        """SIGTERM the process group (kc.sh and java), SIGKILL after ``grace``."""
        pid = self._pid
        if pid is None:
            state = read_state(self.run_dir) or {}
            found = state.get("pid")
            pid = found if isinstance(found, int) else None
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if self._proc is not None and self._proc.poll() is not None:
                    break
                if self._proc is None and not _kl._pid_alive(pid):
                    break
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(10)
        self._pid = None
        self._proc = None
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / STATE_FILE).unlink()
        if not keep and (self.run_dir / OWNER_MARKER).exists():
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> LocalKeycloak:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# --- test realm kit: the admin-API calls tests and the benchmark make ---------


class AdminApiError(KeycloakLocalError):
    """An admin or token endpoint answered with an error."""

    def __init__(self, message: str, status: int, body: str) -> None:
        super().__init__(f"{message}: HTTP {status} {body[:300]}")
        self.status = status
        self.body = body


def http_json(method: str, url: str, *, token: str | None = None, json_body: object = None,
              form: dict[str, str] | None = None, headers: dict[str, str] | None = None,
              timeout: float = 30.0) -> tuple[int, object, dict[str, str]]:
    """One HTTP call with urllib; returns (status, parsed JSON or text, headers)."""
    data: bytes | None = None
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    if json_body is not None:
        data = json.dumps(json_body).encode()
        hdrs["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw, rh = int(resp.status), resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        status, raw, rh = int(exc.code), exc.read(), dict(exc.headers)
    text = raw.decode("utf-8", "replace")
    try:
        body: object = json.loads(text) if text else None
    except ValueError:
        body = text
    return status, body, rh


class RealmKit:
    """Creates a realm with events on, an app client, an enforcer service account, users.

    Everything goes through Keycloak's admin REST API as the bootstrap admin,
    the way an operator would set up the enforcer (docs/enforcement.md).
    """

    APP = "sessionwarden-demo-app"
    ENFORCER = "sessionwarden-enforcer"

    def __init__(self, base_url: str, realm: str, *, admin: str = ADMIN_USER,
                 password: str = ADMIN_PASSWORD) -> None:
        self.base_url = base_url.rstrip("/")
        self.realm = realm
        self._admin = (admin, password)
        self.enforcer_secret = f"secret-{realm}"

    def admin_token(self) -> str:
        status, body, _ = http_json("POST", f"{self.base_url}/realms/master/protocol/"
                                    "openid-connect/token", form={
                                        "grant_type": "password", "client_id": "admin-cli",
                                        "username": self._admin[0],
                                        "password": self._admin[1]})
        if status != 200 or not isinstance(body, dict):
            raise AdminApiError("admin token", status, str(body))
        return str(body["access_token"])

    def _call(self, method: str, path: str, token: str, body: object = None,
              ok: tuple[int, ...] = (200, 201, 204)) -> tuple[object, dict[str, str]]:
        status, parsed, headers = http_json(method, f"{self.base_url}{path}", token=token,
                                            json_body=body)
        if status not in ok:
            raise AdminApiError(f"{method} {path}", status, str(parsed))
        return parsed, headers

    def create(self, users: Sequence[str] = ("alice",)) -> RealmKit:
        """The realm (events kept 1 h), both clients, the roles, and the users."""
        t = self.admin_token()
        r = self.realm
        self._call("POST", "/admin/realms", t, {
            "realm": r, "enabled": True, "sslRequired": "none", "eventsEnabled": True,
            "eventsExpiration": 3600, "adminEventsEnabled": True,
            "enabledEventTypes": ["LOGIN", "REFRESH_TOKEN", "LOGOUT", "CODE_TO_TOKEN"]})
        self._call("POST", f"/admin/realms/{r}/clients", t, {
            "clientId": self.APP, "publicClient": True, "directAccessGrantsEnabled": True,
            "standardFlowEnabled": False})
        _, headers = self._call("POST", f"/admin/realms/{r}/clients", t, {
            "clientId": self.ENFORCER, "publicClient": False, "serviceAccountsEnabled": True,
            "standardFlowEnabled": False, "directAccessGrantsEnabled": False,
            "secret": self.enforcer_secret})
        client_uuid = headers.get("Location", headers.get("location", "")).rsplit("/", 1)[1]
        account, _ = self._call("GET", f"/admin/realms/{r}/clients/{client_uuid}/"
                                "service-account-user", t)
        found, _ = self._call("GET", f"/admin/realms/{r}/clients?clientId=realm-management", t)
        assert isinstance(found, list) and isinstance(account, dict)
        rm = found[0]["id"]
        # The minimum: manage-users (revoke sessions, list a user's sessions)
        # and view-events (the ingest poller).
        roles = [self._call("GET", f"/admin/realms/{r}/clients/{rm}/roles/{name}", t)[0]
                 for name in ("manage-users", "view-events")]
        self._call("POST", f"/admin/realms/{r}/users/{account['id']}/role-mappings/clients/{rm}",
                   t, roles)
        for user in users:
            self.add_user(user, token=t)
        return self

    def add_user(self, user: str, *, token: str | None = None) -> None:
        self._call("POST", f"/admin/realms/{self.realm}/users", token or self.admin_token(), {
            "username": user, "enabled": True, "email": f"{user}@example.org",
            "firstName": user, "lastName": "Test", "emailVerified": True,
            "credentials": [{"type": "password", "value": f"pw-{user}", "temporary": False}]})

    def login(self, user: str, ip: str) -> dict[str, object]:
        """Password grant from `ip` (X-Forwarded-For): a real user session."""
        status, body, _ = http_json(
            "POST", f"{self.base_url}/realms/{self.realm}/protocol/openid-connect/token",
            form={"grant_type": "password", "client_id": self.APP, "username": user,
                  "password": f"pw-{user}", "scope": "openid"},
            headers={"X-Forwarded-For": ip})
        if status != 200 or not isinstance(body, dict):
            raise AdminApiError(f"login of {user}", status, str(body))
        return body

    def refresh(self, refresh_token: str, ip: str) -> tuple[int, dict[str, object]]:
        """Refresh-token grant from `ip`; returns (status, body)."""
        status, body, _ = http_json(
            "POST", f"{self.base_url}/realms/{self.realm}/protocol/openid-connect/token",
            form={"grant_type": "refresh_token", "client_id": self.APP,
                  "refresh_token": refresh_token},
            headers={"X-Forwarded-For": ip})
        return status, body if isinstance(body, dict) else {"raw": body}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keycloak-local", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fetch", help="download and build the distribution once")
    p.add_argument("--version", default=DEFAULT_VERSION)
    p = sub.add_parser("start", help="start a server, print its base URL")
    p.add_argument("--version", default=DEFAULT_VERSION)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    p.add_argument("--timeout", type=float, default=180.0)
    for name in ("stop", "status"):
        p = sub.add_parser(name)
        p.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    p = sub.add_parser("realm", help="create a demo realm (events on, enforcer service "
                                     "account, a user) on a running server")
    p.add_argument("--url", required=True, help="Keycloak base URL")
    p.add_argument("--realm", default="acme")
    p.add_argument("--user", action="append", default=None, help="user to create (repeatable)")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch(args.version))
        elif args.command == "start":
            kc = LocalKeycloak(args.dir, version=args.version, port=args.port)
            kc.start(timeout=args.timeout)
            _log(f"Keycloak {args.version} ready at {kc.base_url} in "
                 f"{kc.startup_seconds:.1f}s (admin/admin, log {kc.log_path})")
            print(kc.base_url)
        elif args.command == "realm":
            kit = RealmKit(args.url, args.realm).create(users=args.user or ["alice"])
            _log(f"realm {kit.realm}: public client {kit.APP} (password grant), confidential "
                 f"client {kit.ENFORCER} (service account: manage-users, view-events), users "
                 f"{', '.join(args.user or ['alice'])} with password pw-<name>")
            print(kit.enforcer_secret)
        elif args.command == "stop":
            LocalKeycloak(args.dir).stop()
        else:
            state = read_state(Path(args.dir).resolve())
            url = state.get("base_url") if state else None
            if not isinstance(url, str) or not _ready(url):
                print("not running")
                return 1
            print(f"running {url}")
    except KeycloakLocalError as exc:
        _log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
