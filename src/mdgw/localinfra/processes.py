"""Pid files and the server processes behind them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from mdgw.localinfra.errors import LocalInfraError
from mdgw.localinfra.layout import ServerPaths

_DETACHED: list[subprocess.Popen[bytes]] = []


def read_pid(paths: ServerPaths) -> int | None:
    try:
        return int(paths.pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def is_server_process(pid: int, main_class: str) -> bool:
    """True when ``pid`` is alive and is the JVM running ``main_class`` (not a reused pid)."""
    cmdline = _cmdline(pid)
    if cmdline is None:
        return False
    if main_class.encode() not in cmdline.split(b"\0"):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited


def _cmdline(pid: int) -> bytes | None:
    # Just after exec the kernel has closed the close-on-exec pipe Popen waits on but not yet
    # published the new argument area: the cmdline reads empty for a moment. Seen on the first
    # `infra up` of this launcher (Kafka reported dead while starting), so wait it out briefly.
    for _ in range(100):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if cmdline:
            return cmdline
        time.sleep(0.01)
    return b""  # a kernel thread or a zombie: not our server


def running_pid(paths: ServerPaths, main_class: str) -> int | None:
    pid = read_pid(paths)
    if pid is not None and is_server_process(pid, main_class):
        return pid
    return None


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def spawn(command: list[str], paths: ServerPaths) -> int:
    """Start a server detached from this terminal (it outlives the CLI); returns its pid."""
    paths.make_dirs()
    with paths.log.open("ab") as log:
        log.write(f"\n=== mdgw infra: starting {paths.name} at {time.ctime()}\n".encode())
        log.flush()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=paths.data.parent,
        )
    paths.pid.write_text(f"{process.pid}\n")
    # The server outlives this Popen on purpose; keeping a reference stops Popen.__del__
    # from warning that its child is "still running" when a long-lived caller drops it.
    _DETACHED.append(process)
    return process.pid


def reap(pid: int) -> str:
    """Collect an exited child of ours (no zombie left); says how it ended, when we can tell."""
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child (started by an earlier `mdgw infra up`)
        return "exit status unknown"
    if reaped == 0:
        return "still running"
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def stop(paths: ServerPaths, main_class: str, grace_s: float) -> bool:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL. True when a process was stopped."""
    pid = running_pid(paths, main_class)
    if pid is None:
        paths.pid.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        reap(pid)
        if not is_server_process(pid, main_class):
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
        for _ in range(50):
            reap(pid)
            if not is_server_process(pid, main_class):
                break
            time.sleep(0.1)
        else:
            raise LocalInfraError(f"{paths.name} (pid {pid}) survived SIGKILL")
    paths.pid.unlink(missing_ok=True)
    return True


def log_tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - 256 * 1024))
            text = log.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"(no log yet at {path})"
    return "\n".join(text.splitlines()[-lines:])
