"""Finding the JDK: Kafka 4.x needs Java >= 17 and Cassandra 5.0 runs on 11 or 17, so: 17."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from mdgw.localinfra.errors import LocalInfraError
from mdgw.localinfra.settings import LocalInfraSettings

REQUIRED_MAJOR = 17
_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def find_java(settings: LocalInfraSettings) -> Path:
    """The java executable to use, checked to be Java 17; a clear error otherwise."""
    if settings.java_home is not None:
        candidate = settings.java_home / "bin" / "java"
        if not candidate.is_file():
            raise LocalInfraError(
                f"no Java found: {candidate} does not exist (JAVA_HOME={settings.java_home}); "
                "install OpenJDK 17 or point JAVA_HOME at one"
            )
        java = candidate
    else:
        on_path = shutil.which("java")
        if on_path is None:
            raise LocalInfraError("no Java found: install OpenJDK 17 or set JAVA_HOME")
        java = Path(on_path)
    major = java_major_version(java)
    if major != REQUIRED_MAJOR:
        raise LocalInfraError(
            f"{java} is Java {major}; Kafka 4 and Cassandra 5.0 here need Java {REQUIRED_MAJOR} "
            "(set JAVA_HOME to a JDK 17)"
        )
    return java


def java_major_version(java: Path) -> int:
    try:
        result = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LocalInfraError(f"cannot run {java} -version: {exc}") from exc
    match = _VERSION.search(result.stderr + result.stdout)
    if match is None:
        raise LocalInfraError(f"cannot tell the Java version of {java}: {result.stderr.strip()}")
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_x"
    return int(match.group(2) or 0) if major == 1 else major
