"""The Apache Kafka the real-cluster harness runs: its pinned version and the jars fetched with Maven.

`ensure_kafka` fetches ``org.apache.kafka:kafka_2.13`` and ``kafka-tools`` (the pom.xml shipped
beside this module) with their runtime dependencies into
``${KAFKASIM_CACHE:-~/.cache/kafkasim}/kafka-<version>/libs``, once: a second call finds the
``.complete`` mark and does nothing. The simulator never needs any of it (no Java on the path is fine).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Callable

__all__ = ["KAFKA_VERSION", "MODEL_VERSION", "RealSetupError", "cache_dir", "kafka_home", "libs_dir", "is_ready",
           "ensure_kafka", "java", "classpath", "admin_source", "missing_tools"]

KAFKA_VERSION = "4.0.1"
"""The Apache Kafka release the harness fetches and runs (pom.xml pins the same)."""
MODEL_VERSION = "4.0"
"""The scenario `cluster.kafka.version` that release is (sim/scenario/versions.py)."""


class RealSetupError(RuntimeError):
    """Java, Maven or the Kafka jars are missing or could not be fetched (one line)."""


def cache_dir() -> Path:
    """Where fetched Kafka releases live: $KAFKASIM_CACHE, else ~/.cache/kafkasim (never in the repository)."""
    return Path(os.environ.get("KAFKASIM_CACHE") or Path.home() / ".cache" / "kafkasim")


def kafka_home() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}"


def libs_dir() -> Path:
    return kafka_home() / "libs"


def classpath() -> str:
    """The java -cp value: every jar of the fetched release."""
    return str(libs_dir() / "*")


def is_ready() -> bool:
    """The jars were fetched completely (the .complete mark is written last)."""
    return (kafka_home() / ".complete").is_file() and any(libs_dir().glob("kafka_2.13-*.jar"))


def java() -> str | None:
    """The java executable (Java 17 or later runs single-file sources), or None."""
    return shutil.which("java")


def missing_tools() -> list[str]:
    """Executables the real cluster needs and this machine lacks: java always, mvn only to fetch."""
    need = ["java"] + ([] if is_ready() else ["mvn"])
    return [t for t in need if shutil.which(t) is None]


def admin_source() -> Path:
    """KafkasimAdmin.java, the harness's Admin client (create topics, poll leaders and ISRs, read the logs)."""
    return Path(str(resources.files("sim.real").joinpath("KafkasimAdmin.java")))


def ensure_kafka(progress: Callable[[str], None] = lambda s: None) -> Path:
    """Fetch Kafka's jars with Maven unless already there; returns the libs directory.

    Idempotent: a complete cache is left untouched (nothing runs). Raises RealSetupError.
    """
    if is_ready():
        if java() is None:
            raise RealSetupError("the real cluster needs java on the PATH (Java 17+): install it (e.g. apt-get "
                                 "install openjdk-17-jdk-headless)")
        progress(f"Apache Kafka {KAFKA_VERSION} is ready in {libs_dir()}")
        return libs_dir()
    missing = missing_tools()
    if missing:
        raise RealSetupError(f"the real cluster needs {' and '.join(missing)} on the PATH (Java 17+ and Maven): "
                             f"install them (e.g. apt-get install openjdk-17-jdk-headless maven)")
    home = kafka_home()
    home.mkdir(parents=True, exist_ok=True)
    progress(f"fetching Apache Kafka {KAFKA_VERSION} (kafka_2.13, kafka-tools) with Maven into {libs_dir()} ...")
    with tempfile.TemporaryDirectory(prefix="kafkasim-pom-") as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_bytes(resources.files("sim.real").joinpath("pom.xml").read_bytes())
        partial = home / ".libs-partial"
        shutil.rmtree(partial, ignore_errors=True)
        cmd = ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", "-DincludeScope=runtime",
               f"-DoutputDirectory={partial}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln] or ["(no output)"]
            raise RealSetupError(f"mvn could not fetch Apache Kafka {KAFKA_VERSION}: {lines[0].strip()[:300]}")
        shutil.rmtree(libs_dir(), ignore_errors=True)
        os.rename(partial, libs_dir())
    n = len(list(libs_dir().glob("*.jar")))
    (home / ".complete").write_text(f"{KAFKA_VERSION}\n{n} jars\n")
    progress(f"fetched {n} jars into {libs_dir()}")
    return libs_dir()
