"""Shared helpers: paths, statistics, process memory, machine and version facts."""

from __future__ import annotations

import importlib.util
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
"""Everything generated (inputs, replay outputs, broker, worker state) lives here (gitignored)."""
PY = sys.executable
BIN = Path(PY).parent
KAFKA_LOCAL = REPO / "scripts" / "kafka_local.py"


def log(msg: str) -> None:
    """Progress on stderr, so a long run shows where it is."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def rnd(value: float, digits: int = 3) -> float:
    """Round for the JSON file: figures carry no false precision."""
    return round(float(value), digits)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def sessionwarden_cmd() -> list[str]:
    """The real CLI: the venv's console script, else `python -m worker`."""
    script = BIN / "sessionwarden"
    return [str(script)] if script.exists() else [PY, "-m", "worker"]


def rss_bytes(pid: int) -> int:
    """Resident set size of a process from /proc (no psutil needed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def dir_size(path: Path) -> int:
    """Bytes of all regular files below path (what the state store occupies on disk)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:  # RocksDB may delete a file while we walk
                continue
    return total


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def load_kafka_local() -> ModuleType:
    """Import scripts/kafka_local.py by path (scripts/ is not a package)."""
    name = "sessionwarden_kafka_local"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, KAFKA_LOCAL)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {KAFKA_LOCAL}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM and load: what a reader needs to weigh the figures."""
    load = os.getloadavg()
    return {"cpu_model": _cpu_model(), "cores": os.cpu_count() or 0,
            "ram_gib": rnd(_ram_bytes() / 2**30, 1), "os": platform.platform(),
            "loadavg_at_start": [rnd(x, 2) for x in load]}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def java_version() -> str | None:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (out.stderr or out.stdout).splitlines()
    return first[0].strip() if first else None


def versions(kafka_broker: str | None) -> dict[str, Any]:
    """Library and broker versions the figures were measured with."""
    return {"python": platform.python_version(),
            "python_build": " ".join(platform.python_build()),
            "sessionwarden": _version("sessionwarden"),
            "orjson": _version("orjson"), "faust-streaming": _version("faust-streaming"),
            "aiokafka": _version("aiokafka"), "rocksdict": _version("rocksdict"),
            "ua-parser": _version("ua-parser"), "kafka_broker": kafka_broker,
            "java": java_version()}


def write_atomically(path: Path, data: bytes) -> None:
    """Write path whole or not at all (a temporary sibling, then a rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data + b"\n")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
