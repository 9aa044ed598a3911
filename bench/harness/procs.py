"""Starting, watching and stopping the processes under test, and reading their CPU time and
memory from /proc (the cost a proxy adds is what we compare, so it is measured per process,
not for the whole machine, which also runs wrk and the mock)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Procs:
    """Every process the bench started, so one `stop_all` tears them down (by their own pid)."""

    logdir: Path
    running: dict[str, subprocess.Popen] = field(default_factory=dict)

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None,
              cwd: Path | None = None, announce: bool = False) -> subprocess.Popen:
        """Starts `args`; with `announce`, waits for its `listening on ADDR` line."""
        log = open(self.logdir / f"{name}.log", "wb")
        proc = subprocess.Popen(
            args, env=env, cwd=cwd, stderr=log,
            stdout=subprocess.PIPE if announce else log, text=announce or None,
        )
        self.running[name] = proc
        if announce:
            line = proc.stdout.readline() if proc.stdout else ""
            if "listening on" not in line:
                raise RuntimeError(f"{name} did not start (see {self.logdir}/{name}.log): {line!r}")
            proc.address = line.strip().rsplit(" ", 1)[-1]  # type: ignore[attr-defined]
        return proc

    def stop_all(self) -> None:
        for proc in self.running.values():
            if proc.poll() is None:
                proc.terminate()
        for name, proc in self.running.items():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.running.clear()


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 60,
              headers: dict[str, str] | None = None) -> None:
    """Waits until `url` answers below 500 (LiteLLM takes ~20 s to import itself)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as err:
            if err.code < 500:
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready at {url} after {timeout:.0f}s")


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (LiteLLM's workers are child processes)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _process_cpu_clock(pid: int) -> int:
    """The clock id of `pid`'s whole-process CPU time (what glibc's clock_getcpuclockid
    returns: MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) in the kernel's posix-cpu-timers)."""
    return ((~pid) << 3) | 2


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes and their descendants, in seconds. Read from each
    process's CPU-time clock (nanoseconds, all its threads), so that a few SSE streams'
    milliseconds are measurable; /proc/PID/stat's 10 ms ticks are the fallback."""
    total = 0.0
    for root in pids:
        for pid in descendants(root):
            try:
                total += time.clock_gettime_ns(_process_cpu_clock(pid)) / 1e9
                continue
            except OSError:
                pass
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (14, 15)
    return total


def rss_mib(pid: int) -> float:
    """Resident memory of `pid` and its descendants, MiB."""
    total_kib = 0
    for p in descendants(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024
