"""Resolving each server's jars from Maven Central once, cached by the pom's hash."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from mdgw.localinfra.errors import LocalInfraError
from mdgw.localinfra.layout import RESOURCES, ServerPaths

_STAMP = ".pom-sha256"


def ensure_jars(paths: ServerPaths) -> bool:
    """Make ``paths.lib`` hold the server's runtime classpath; True when it had to resolve."""
    pom_text = (RESOURCES / paths.name / "pom.xml").read_bytes()
    digest = hashlib.sha256(pom_text).hexdigest()
    stamp = paths.lib / _STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return False
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalInfraError("Maven (mvn) not found: it resolves the Kafka and Cassandra jars")
    if paths.lib.exists():
        shutil.rmtree(paths.lib)
    paths.lib.mkdir(parents=True)
    pom = paths.lib / "pom.xml"
    pom.write_bytes(pom_text)
    command = [
        mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
        f"-DoutputDirectory={paths.lib}", "-DincludeScope=runtime",
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LocalInfraError(f"resolving {paths.name} jars took over 15 minutes") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise LocalInfraError(f"resolving {paths.name} jars with Maven failed:\n{tail}")
    stamp.write_text(digest + "\n")
    return True


def find_jar(lib: Path, prefix: str) -> Path:
    matches = sorted(lib.glob(f"{prefix}*.jar"))
    if not matches:
        raise LocalInfraError(f"no {prefix}*.jar in {lib}: delete {lib} and run `mdgw infra up`")
    return matches[0]
