"""How many CPUs this process may really use (affinity and cgroup CPU quota)."""

from __future__ import annotations

import math
import os


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as file:
        return file.read(256)


def _cgroup_quota(base: str | os.PathLike[str]) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` or v1 ``cfs_quota_us`` below ``base``."""
    try:
        quota, period = _read(os.path.join(base, "cpu.max")).split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(_read(os.path.join(base, "cpu", "cpu.cfs_quota_us")))
        period_us = int(_read(os.path.join(base, "cpu", "cpu.cfs_period_us")))
    except (OSError, ValueError):
        return None
    if quota_us > 0 and period_us > 0:
        return quota_us / period_us
    return None


def usable_cpus(cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup") -> int:
    """At least 1: CPUs in the affinity mask, capped by the cgroup quota rounded up."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)
