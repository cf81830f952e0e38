"""A job process's accounting, from the standard library only (the job launcher imports it)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

Usage = dict[str, float | None]


def process_usage() -> Usage:
    """This process so far: CPU seconds, peak resident memory in MB, seconds since it started
    (None where /proc cannot tell)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "age_seconds": _age_seconds(),
    }


def plus(launcher: Usage | None, job: Usage) -> Usage:
    """A forked job process's usage with its launcher's (the process Snakemake started) added:
    CPU and age sum, peak memory is the larger."""
    if launcher is None:
        return job

    def total(key: str) -> float | None:
        a, b = launcher[key], job[key]
        return None if a is None or b is None else round(a + b, 3)

    rss = [v for v in (launcher["max_rss_mb"], job["max_rss_mb"]) if v is not None]
    return {
        "cpu_seconds": total("cpu_seconds"),
        "max_rss_mb": max(rss) if rss else None,
        "age_seconds": total("age_seconds"),
    }


def _age_seconds() -> float | None:
    """Seconds since this process started, from Linux's /proc (None elsewhere)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return round(uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"), 2)
