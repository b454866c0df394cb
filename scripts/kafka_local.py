#!/usr/bin/env python3
"""Run a real single-node Apache Kafka (KRaft) broker without Docker.

Why: integration tests and developers need a genuine broker (transactions,
consumer groups, compacted changelogs) and this environment has no Docker,
only Java + Maven.  The broker jars come from Maven Central, are cached per
version outside the repo, and a broker is started from them in a few seconds.

Stdlib only, so it runs with a plain ``python3`` and is importable from the
pytest plugin (``tests/kafka_plugin.py``).

CLI::

    scripts/kafka-local fetch            # resolve + cache the broker classpath
    scripts/kafka-local start [--port N] [--dir DIR]   # prints 127.0.0.1:PORT
    scripts/kafka-local status [--dir DIR]
    scripts/kafka-local stop [--dir DIR] [--keep]

Python::

    with LocalKafka(tmp_dir) as kafka:
        bootstrap = kafka.bootstrap

    # extra (secured) listeners beside PLAINTEXT, SCRAM users created at format time
    tls = Listener("MTLS", "SSL", {"ssl.client.auth": "required"})
    with LocalKafka(tmp_dir, listeners=[tls], extra_config=ssl_props,
                    scram_users=[ScramUser("alice", "pw")]) as kafka:
        mtls_bootstrap = kafka.address("MTLS")
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

# 4.1.x: newest line that aiokafka 0.14 is verified against here (produce,
# consumer groups, transactions, admin); 4.0.x also works.
DEFAULT_VERSION = os.environ.get("SESSIONWARDEN_KAFKA_VERSION", "4.1.1")
SCALA_VERSION = "2.13"
# Kafka 4.x ships log4j-core 2.x + slf4j-api 1.7 but no SLF4J binding in its
# POM; without the binding the broker logs nothing useful.
LOG4J_VERSION = os.environ.get("SESSIONWARDEN_LOG4J_VERSION", "2.24.3")
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO_ROOT / ".kafka-local"
STATE_FILE = "state.json"
# Written into every run dir we create; we only ever delete dirs carrying it.
OWNER_MARKER = ".kafka-local-run-dir"
BROKER_LOG = "broker.log"
CLUSTER_ID = "c2Vzc2lvbndhcmRlbi1rYQ"  # fixed: the formatted template is reused


class KafkaLocalError(RuntimeError):
    """Raised when the local broker cannot be fetched, started or stopped."""


class _EarlyExit(KafkaLocalError):
    """The JVM exited before the broker became ready."""


def _log(msg: str) -> None:
    """Progress goes to stderr so stdout stays machine-readable (bootstrap)."""
    print(f"kafka-local: {msg}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    """Cache outside the repo so every work tree / CI run shares the jars."""
    env = os.environ.get("SESSIONWARDEN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sessionwarden"


def kafka_home(version: str = DEFAULT_VERSION) -> Path:
    """Per-version cache dir; holds ``lib/`` and the formatted-storage template."""
    return cache_root() / f"kafka-{version}"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise fetch/format across processes (e.g. parallel test sessions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 30) -> str:
    """First ERROR lines plus the last lines of a log.

    Why: a failing broker logs its cause (e.g. a port bind error) and then
    dozens of shutdown lines; the tail alone would hide the cause.
    """
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    errors = [ln for ln in text if "] ERROR " in ln or "] FATAL " in ln][:8]
    tail = text[-lines:]
    head = [ln for ln in errors if ln not in tail]
    return "\n".join([*head, *(["..."] if head else []), *tail])


_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.sessionwarden</groupId>
  <artifactId>kafka-local-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def fetch(version: str = DEFAULT_VERSION, *, quiet: bool = False) -> Path:
    """Resolve the broker's runtime classpath with Maven into the cache.

    Idempotent: a ``.complete`` marker is written only after the jars are in
    place, so an interrupted download is redone, never half-used.
    """
    home = kafka_home(version)
    lib = home / "lib"
    marker = home / ".complete"
    if marker.is_file() and lib.is_dir():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaLocalError("Maven ('mvn') is not on PATH; it is needed to fetch Kafka")
    with _file_lock(home / ".lock"):
        if marker.is_file() and lib.is_dir():
            return lib
        t0 = time.monotonic()
        if not quiet:
            _log(f"fetching kafka_{SCALA_VERSION}:{version} with Maven into {lib}")
        with tempfile.TemporaryDirectory(dir=home, prefix="fetch-") as tmp_s:
            tmp = Path(tmp_s)
            (tmp / "pom.xml").write_text(
                _POM.format(scala=SCALA_VERSION, version=version, log4j=LOG4J_VERSION)
            )
            out = tmp / "lib"
            cmd = [
                mvn, "-q", "-B", f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                "-DincludeScope=runtime", f"-DoutputDirectory={out}",
            ]  # fmt: skip
            res = subprocess.run(
                cmd, check=False, cwd=tmp, stdin=subprocess.DEVNULL, capture_output=True, text=True
            )
            main_jar = out / f"kafka_{SCALA_VERSION}-{version}.jar"
            if res.returncode != 0 or not main_jar.is_file():
                output = (res.stdout + res.stderr).strip().splitlines()[-30:]
                raise KafkaLocalError(
                    f"mvn failed to resolve Kafka {version} (exit {res.returncode}):\n"
                    + "\n".join(output)
                )
            if lib.exists():
                shutil.rmtree(lib)
            os.replace(out, lib)
        jars = sorted(p.name for p in lib.glob("*.jar"))
        marker.write_text(json.dumps({"version": version, "jars": jars}, indent=1))
        if not quiet:
            _log(f"fetched {len(jars)} jars in {time.monotonic() - t0:.1f}s")
    return lib


def java_executable() -> str:
    """Prefer $JAVA_HOME (Kafka 4 needs Java 17+), else ``java`` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise KafkaLocalError("no 'java' on PATH and JAVA_HOME unset; Kafka needs Java 17+")
    return java


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all held open while choosing)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def server_properties(
    port: int, controller_port: int, data_dir: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Broker config tuned for one fast, small, single-node test cluster."""
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        # Single node: every internal topic must live with one replica.
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Few internal partitions: the first group join / transaction creates
        # these topics, and 50 partitions each costs seconds on 2 cores.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        # Tests join groups constantly; don't wait 3 s for more members.
        "group.initial.rebalance.delay.ms": "0",
        # Faust tests use session timeouts of ~2 s; the default floor is 6 s.
        "group.min.session.timeout.ms": "500",
        # Broker unfences after a heartbeat: shorter interval -> faster start.
        "broker.heartbeat.interval.ms": "200",
        "broker.session.timeout.ms": "3000",
        # Small footprint for a 2-core box and a 512 MiB heap.
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "log.cleaner.threads": "1",
        "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
        "log.segment.bytes": str(16 * 1024 * 1024),
        "log.index.size.max.bytes": str(1024 * 1024),
        "offsets.topic.segment.bytes": str(16 * 1024 * 1024),
        "transaction.state.log.segment.bytes": str(16 * 1024 * 1024),
        "log.retention.check.interval.ms": "60000",
    }
    if extra:
        props.update(extra)
    return props


def _write_properties(path: Path, props: Mapping[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))


@dataclass(frozen=True)
class Listener:
    """An extra client listener beside PLAINTEXT, e.g. ``Listener("MTLS", "SSL")``.

    Why: secured-client tests need TLS/SASL listeners, while the broker's own
    traffic (inter-broker, controller, readiness probe) stays on PLAINTEXT.
    ``config`` holds listener-scoped settings, written as
    ``listener.name.<name>.<key>`` (e.g. ``ssl.client.auth``,
    ``sasl.enabled.mechanisms``, ``scram-sha-512.sasl.jaas.config``).
    """

    name: str
    protocol: str  # SSL | SASL_SSL | SASL_PLAINTEXT | PLAINTEXT
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScramUser:
    """A SCRAM credential written into the metadata log when storage is formatted.

    The password must not contain ``,``, ``]`` or ``"`` (kafka-storage syntax).
    """

    name: str
    password: str
    mechanism: str = "SCRAM-SHA-512"

    def storage_argument(self) -> str:
        """The ``--add-scram`` value of ``kafka-storage format``."""
        if any(c in self.password + self.name for c in ',]"'):
            raise KafkaLocalError("SCRAM user names and passwords cannot contain , ] or \"")
        return f"{self.mechanism}=[name={self.name},password={self.password}]"


def listener_properties(
    port: int, controller_port: int, listeners: Sequence[Listener], ports: Sequence[int]
) -> dict[str, str]:
    """``listeners``/``advertised.listeners``/protocol map with the extra listeners added."""
    names = [listener.name.upper() for listener in listeners]
    if len(set(names)) != len(names) or {"PLAINTEXT", "CONTROLLER"} & set(names):
        raise KafkaLocalError(f"listener names must be unique, not PLAINTEXT/CONTROLLER: {names}")
    extra = [f"{n}://127.0.0.1:{p}" for n, p in zip(names, ports, strict=True)]
    protocols = [f"{n}:{lst.protocol.upper()}" for n, lst in zip(names, listeners, strict=True)]
    props = {
        "listeners": ",".join(
            [f"PLAINTEXT://127.0.0.1:{port}", f"CONTROLLER://127.0.0.1:{controller_port}", *extra]
        ),
        "advertised.listeners": ",".join([f"PLAINTEXT://127.0.0.1:{port}", *extra]),
        "listener.security.protocol.map": ",".join(
            ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT", *protocols]
        ),
    }
    for name, listener in zip(names, listeners, strict=True):
        for key, value in listener.config.items():
            props[f"listener.name.{name.lower()}.{key}"] = value
    return props


_LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN" shutdownHook="disable">
  <Appenders>
    <Console name="out" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c{1})%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="out"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
    <Logger name="kafka.log.LogCleaner" level="WARN"/>
  </Loggers>
</Configuration>
"""


def jvm_options(heap: str = "512m") -> list[str]:
    """JVM flags chosen for start-up latency over peak throughput."""
    return [
        f"-Xmx{heap}",
        "-Xms128m",
        "-Xss512k",
        # One GC thread set and C1-only JIT: a 2-core box starts much faster.
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
    ]


def cds_archive(version: str = DEFAULT_VERSION) -> Path | None:
    """Where the AppCDS archive for this JVM + classpath lives (None: disabled).

    Why: class loading dominates broker start-up; a dynamic class-data-sharing
    archive roughly halves it (about 3.0 s -> 1.5 s here).  The first broker
    dumps the archive when it exits cleanly; later ones map it.  Keyed by the
    java binary so a JDK change never reuses a foreign archive (a mismatched
    archive is merely ignored by the JVM anyway).
    """
    if os.environ.get("SESSIONWARDEN_KAFKA_CDS", "1").lower() in ("0", "false", "no", "off"):
        return None
    java = Path(java_executable()).resolve()
    st = java.stat()
    key = hashlib.sha1(f"{java}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return kafka_home(version) / f"cds-{key}.jsa"


def _promote_cds_dump(dump: Path, archive: Path) -> None:
    """Move a freshly dumped archive into the cache atomically."""
    if not dump.is_file() or dump.stat().st_size == 0 or archive.exists():
        return
    tmp = archive.with_name(f"{archive.name}.tmp-{os.getpid()}")
    try:
        shutil.copyfile(dump, tmp)
        os.replace(tmp, archive)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _formatted_template(version: str, lib: Path) -> Path:
    """Format KRaft storage once per version and reuse a copy per broker.

    Why: ``StorageTool format`` is a separate JVM launch (~1.5 s).  The
    formatted dir (meta.properties + bootstrap.checkpoint) does not depend on
    ports or paths, so copying it gives an identical fresh log dir for free.
    """
    home = kafka_home(version)
    template = home / "formatted"
    marker = template / ".complete"
    if marker.is_file():
        return template / "data"
    with _file_lock(home / ".lock"):
        if marker.is_file():
            return template / "data"
        with tempfile.TemporaryDirectory(dir=home, prefix="format-") as tmp_s:
            tmp = Path(tmp_s)
            props = tmp / "server.properties"
            _write_properties(props, server_properties(19092, 19093, tmp / "data"))
            cmd = [
                java_executable(), "-Xmx256m", "-XX:TieredStopAtLevel=1",
                "-Dlog4j2.level=WARN", "-cp", f"{lib}/*",
                "kafka.tools.StorageTool", "format", "-t", CLUSTER_ID, "-c", str(props),
            ]  # fmt: skip
            res = subprocess.run(
                cmd, check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True
            )
            if res.returncode != 0 or not (tmp / "data" / "meta.properties").is_file():
                raise KafkaLocalError(
                    f"kafka.tools.StorageTool format failed (exit {res.returncode}):\n"
                    + (res.stdout + res.stderr)[-3000:]
                )
            if template.exists():
                shutil.rmtree(template)
            template.mkdir(parents=True)
            os.replace(tmp / "data", template / "data")
        marker.write_text(CLUSTER_ID)
    return template / "data"


def _format_storage(
    lib: Path, props_path: Path, data_dir: Path, scram_users: Sequence[ScramUser]
) -> None:
    """``kafka-storage format`` of one broker's own dir, with SCRAM users added."""
    scram = [arg for user in scram_users for arg in ("--add-scram", user.storage_argument())]
    cmd = [
        java_executable(), "-Xmx256m", "-XX:TieredStopAtLevel=1",
        "-Dlog4j2.level=WARN", "-cp", f"{lib}/*",
        "kafka.tools.StorageTool", "format", "-t", CLUSTER_ID, "-c", str(props_path), *scram,
    ]  # fmt: skip
    res = subprocess.run(cmd, check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if res.returncode != 0 or not (data_dir / "meta.properties").is_file():
        output = (res.stdout + res.stderr)[-3000:]
        for user in scram_users:  # never echo a password into a test report
            output = output.replace(user.password, "***")
        raise KafkaLocalError(
            f"kafka.tools.StorageTool format failed (exit {res.returncode}):\n{output}"
        )


# --- minimal Kafka wire protocol (readiness probe) ---------------------------


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def _request(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> bytes:
    """Send a non-flexible (header v1) request; return the response body."""
    client_id = b"kafka-local-probe"
    msg = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    resp = _recv_exact(sock, size)
    (got_corr,) = struct.unpack_from(">i", resp, 0)
    if got_corr != corr:
        raise ConnectionError(f"correlation id mismatch: {got_corr} != {corr}")
    return resp[4:]


def probe(host: str, port: int, timeout: float = 2.0) -> bool:
    """True once the broker answers ApiVersions and a Metadata listing itself.

    A bare TCP accept is not enough: clients need a registered, unfenced
    broker in the metadata, which is exactly what Metadata reports.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            body = _request(sock, 18, 0, 1, b"")  # ApiVersions v0
            (err, count) = struct.unpack_from(">hi", body, 0)
            if err != 0:
                return False
            versions: dict[int, tuple[int, int]] = {}
            for i in range(count):
                key, lo, hi = struct.unpack_from(">hhh", body, 6 + 6 * i)
                versions[key] = (lo, hi)
            lo, hi = versions.get(3, (0, -1))  # Metadata
            version = max(lo, 4)
            if version > min(hi, 7):
                return True  # newer-only broker: ApiVersions answering is our best signal
            # topics=[] (none), allow_auto_topic_creation=false
            md = _request(sock, 3, version, 2, struct.pack(">ib", 0, 0))
            n_brokers: int = struct.unpack_from(">ii", md, 0)[1]
            return n_brokers >= 1
    except (OSError, struct.error, ConnectionError):
        return False


# --- broker process ----------------------------------------------------------


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A pre-exec hook making the kernel SIGTERM the broker if we die.

    Why: a crashed or killed test session must not leave a JVM behind.
    libc is resolved here, before fork, so the child only calls prctl().
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux/glibc: the broker just outlives us
    pr_set_pdeathsig = 1

    def hook() -> None:  # pragma: no cover - runs in the child
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return hook


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_our_broker(pid: int, run_dir: Path) -> bool:
    """Guard against PID reuse: the cmdline must name kafka.Kafka and our dir."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return _pid_alive(pid)  # no /proc: trust the state file
    return "kafka.Kafka" in cmdline and str(run_dir) in cmdline


def read_state(run_dir: Path) -> dict[str, object] | None:
    """The state file of a run dir, or None."""
    try:
        data = json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _state_pid(state: Mapping[str, object]) -> int | None:
    pid = state.get("pid")
    return pid if isinstance(pid, int) else None


class LocalKafka:
    """One single-node KRaft broker in ``run_dir``; a context manager.

    ``start()`` returns the bootstrap address once clients can use it;
    ``stop()`` shuts the broker down and (unless ``keep``) deletes the dir.
    """

    def __init__(
        self,
        run_dir: Path | str | None = None,
        *,
        version: str = DEFAULT_VERSION,
        port: int | None = None,
        heap: str = "512m",
        extra_config: Mapping[str, str] | None = None,
        die_with_parent: bool = False,
        listeners: Sequence[Listener] = (),
        scram_users: Sequence[ScramUser] = (),
        jvm_properties: Mapping[str, str] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir if run_dir is not None else DEFAULT_DIR).resolve()
        self.version = version
        self._requested_port = port
        self.port = port
        self.heap = heap
        self.extra_config = dict(extra_config or {})
        self.die_with_parent = die_with_parent
        self.listeners = tuple(listeners)
        self.scram_users = tuple(scram_users)
        self.jvm_properties = dict(jvm_properties or {})
        self.listener_ports: dict[str, int] = {}
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None

    @property
    def log_path(self) -> Path:
        return self.run_dir / BROKER_LOG

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise KafkaLocalError("broker not started")
        return f"127.0.0.1:{self.port}"

    def address(self, listener: str) -> str:
        """``127.0.0.1:PORT`` of an extra listener (after ``start()``)."""
        port = self.listener_ports.get(listener.upper())
        if port is None:
            raise KafkaLocalError(f"no started listener named {listener!r}")
        return f"127.0.0.1:{port}"

    def _prepare_dir(self) -> Path:
        state = read_state(self.run_dir)
        pid = _state_pid(state) if state else None
        if pid is not None and _pid_alive(pid) and _is_our_broker(pid, self.run_dir):
            raise KafkaLocalError(
                f"a broker (pid {pid}) already runs in {self.run_dir}; stop it first"
            )
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            if not (self.run_dir / OWNER_MARKER).exists():
                raise KafkaLocalError(
                    f"{self.run_dir} is not empty and not a kafka-local dir; refusing to use it"
                )
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / OWNER_MARKER).write_text("created by scripts/kafka_local.py\n")
        return self.run_dir / "data"

    def start(self, timeout: float = 60.0) -> str:
        """Start a fresh broker and block until it serves metadata."""
        lib = fetch(self.version)
        template = _formatted_template(self.version, lib)
        archive = cds_archive(self.version)
        try:
            return self._start_once(lib, template, archive, timeout)
        except _EarlyExit:
            # Only a JVM that died before Kafka logged anything is suspect.
            log = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
            if archive is None or not archive.is_file() or "] INFO " in log:
                raise
        # A damaged CDS archive crashes the JVM (SIGBUS) before main(): drop
        # it and retry once; that run dumps a fresh archive on clean exit.
        _log(f"broker died at start-up with CDS archive {archive}; retrying without it")
        with contextlib.suppress(OSError):
            archive.unlink()
        return self._start_once(lib, template, archive, timeout)

    def _start_once(self, lib: Path, template: Path, archive: Path | None, timeout: float) -> str:
        data_dir = self._prepare_dir()
        n_extra = len(self.listeners)
        if self._requested_port is None:
            self.port, controller_port, *extra_ports = _free_ports(2 + n_extra)
        else:
            self.port = self._requested_port
            controller_port, *extra_ports = [
                p for p in _free_ports(2 + n_extra) if p != self.port][: 1 + n_extra]
        self.listener_ports = {
            lst.name.upper(): p for lst, p in zip(self.listeners, extra_ports, strict=True)
        }
        props = server_properties(self.port, controller_port, data_dir, self.extra_config)
        if self.listeners:
            props.update(
                listener_properties(self.port, controller_port, self.listeners, extra_ports)
            )
        props_path = self.run_dir / "server.properties"
        _write_properties(props_path, props)
        if self.scram_users:
            # SCRAM credentials live in the metadata log: format this dir with them
            # (one extra JVM launch) instead of copying the shared template.
            _format_storage(lib, props_path, data_dir, self.scram_users)
        else:
            shutil.copytree(template, data_dir)
        log4j = self.run_dir / "log4j2.xml"
        log4j.write_text(_LOG4J2_XML)
        cds_opts: list[str] = []
        cds_dump: Path | None = None
        if archive is not None and archive.is_file():
            cds_opts = [f"-XX:SharedArchiveFile={archive}"]
        elif archive is not None:
            cds_dump = self.run_dir / "cds-dump.jsa"
            cds_opts = [f"-XX:ArchiveClassesAtExit={cds_dump}"]
        cmd = [
            java_executable(), *jvm_options(self.heap), *cds_opts,
            f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={self.run_dir}",
            *(f"-D{k}={v}" for k, v in self.jvm_properties.items()),
            "-cp", f"{lib}/*", "kafka.Kafka", str(props_path),
        ]  # fmt: skip
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log_fh:
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.run_dir,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Only prctl() runs pre-exec (resolved before fork).
                preexec_fn=_pdeathsig_preexec() if self.die_with_parent else None,  # noqa: PLW1509
            )
        self._pid = self._proc.pid
        state = {
            "pid": self._pid,
            "port": self.port,
            "controller_port": controller_port,
            "bootstrap": self.bootstrap,
            "listeners": {name: f"127.0.0.1:{p}" for name, p in self.listener_ports.items()},
            "dir": str(self.run_dir),
            "version": self.version,
            "log": str(self.log_path),
            "started_at": time.time(),
            "cds_dump": str(cds_dump) if cds_dump else None,
            "cds_archive": str(archive) if archive else None,
        }
        (self.run_dir / STATE_FILE).write_text(json.dumps(state, indent=1))
        try:
            self._wait_ready(t0 + timeout)
        except BaseException:
            self._terminate(grace=5.0)
            raise
        self.startup_seconds = time.monotonic() - t0
        return self.bootstrap

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None and self.port is not None
        while True:
            code = self._proc.poll()
            if code is not None:
                raise _EarlyExit(
                    f"Kafka broker exited with code {code} during start-up; "
                    f"from {self.log_path}:\n{_tail(self.log_path)}"
                )
            if probe("127.0.0.1", self.port, timeout=1.0):
                return
            if time.monotonic() > deadline:
                raise KafkaLocalError(
                    f"Kafka broker not ready on 127.0.0.1:{self.port} in time; "
                    f"from {self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.1)

    def _terminate(self, grace: float) -> bool:
        """SIGTERM (controlled shutdown), then SIGKILL after ``grace`` seconds.

        Returns True if the broker exited on SIGTERM (a clean shutdown).
        """
        pid = self._pid
        if pid is None:
            return False
        if self._proc is None and not (_pid_alive(pid) and _is_our_broker(pid, self.run_dir)):
            self._pid = None
            return False
        clean = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if self._proc is not None:
                if self._proc.poll() is not None:
                    break
            elif not _pid_alive(pid):
                break
            time.sleep(0.05)
        else:
            clean = False
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            if self._proc is not None:
                self._proc.wait(10)
        self._pid = None
        self._proc = None
        return clean

    def stop(self, *, keep: bool = False, grace: float = 20.0) -> None:
        """Stop the broker (found via our Popen or the state file)."""
        state = read_state(self.run_dir) or {}
        if self._pid is None:
            self._pid = _state_pid(state)
        clean = self._terminate(grace)
        dump, archive = state.get("cds_dump"), state.get("cds_archive")
        if clean and isinstance(dump, str) and isinstance(archive, str):
            _promote_cds_dump(Path(dump), Path(archive))
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / STATE_FILE).unlink()
        if not keep and (self.run_dir / OWNER_MARKER).exists():
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def is_running(self) -> bool:
        pid = self._pid
        if pid is None:
            state = read_state(self.run_dir)
            pid = _state_pid(state) if state else None
        return pid is not None and _pid_alive(pid) and _is_our_broker(pid, self.run_dir)

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- CLI ---------------------------------------------------------------------


def _cmd_fetch(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    lib = fetch(args.version)
    print(lib)
    _log(f"classpath ready in {time.monotonic() - t0:.2f}s")
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    fetch(args.version)  # outside the timed section: start time excludes fetch
    kafka = LocalKafka(args.dir, version=args.version, port=args.port)
    kafka.start(timeout=args.timeout)
    _log(
        f"Kafka {args.version} ready at {kafka.bootstrap} in {kafka.startup_seconds:.2f}s "
        f"(pid {kafka._pid}, dir {kafka.run_dir}, log {kafka.log_path})"
    )
    print(kafka.bootstrap)
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    kafka = LocalKafka(args.dir)
    if not kafka.is_running() and read_state(kafka.run_dir) is None:
        _log(f"no broker recorded in {kafka.run_dir}")
    t0 = time.monotonic()
    kafka.stop(keep=args.keep)
    _log(f"stopped in {time.monotonic() - t0:.2f}s")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    kafka = LocalKafka(args.dir)
    state = read_state(kafka.run_dir)
    if state is None or not kafka.is_running():
        print(f"not running ({kafka.run_dir})")
        return 1
    port = state.get("port")
    ready = isinstance(port, int) and probe("127.0.0.1", port)
    print(
        f"running pid={state.get('pid')} bootstrap={state.get('bootstrap')} "
        f"ready={'yes' if ready else 'no'} dir={kafka.run_dir}"
    )
    return 0 if ready else 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kafka-local", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--version", default=DEFAULT_VERSION, help="Kafka version")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", parents=[common], help="resolve and cache the broker classpath")
    p_start = sub.add_parser(
        "start", parents=[common], help="start a fresh broker, print its bootstrap"
    )
    p_start.add_argument("--port", type=int, default=None)
    p_start.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    p_start.add_argument("--timeout", type=float, default=90.0)
    p_stop = sub.add_parser("stop", help="stop the broker and delete its dir")
    p_stop.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    p_stop.add_argument("--keep", action="store_true", help="keep the run dir and logs")
    p_status = sub.add_parser("status", help="exit 0 if running and ready")
    p_status.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    handlers = {
        "fetch": _cmd_fetch,
        "start": _cmd_start,
        "stop": _cmd_stop,
        "status": _cmd_status,
    }
    try:
        return handlers[args.command](args)
    except KafkaLocalError as exc:
        _log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
