"""Benchmarks that measure a program in a fresh process read its result from the last line it prints (JSON),
and its CPU time and page faults from ``getrusage``.

A fresh process per measurement keeps process-wide settings (XLA flags, the allocator's) and one measurement's
warm caches out of the next. This module imports no JAX, so a launcher stays light.
"""

from __future__ import annotations

import json
import resource
import subprocess
from typing import Any


def last_json_line(stdout: str) -> dict[str, Any]:
  """The JSON object on the last non-empty line of `stdout` (the trainer's summary, a child's result)."""
  return json.loads(stdout.strip().splitlines()[-1])


def run_json(cmd: list[str], env: dict[str, str] | None = None, timeout: float | None = None) -> dict[str, Any]:
  """Runs `cmd` and returns its `last_json_line`.

  Raises:
    RuntimeError: the command failed, with the end of its stderr.
  """
  out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
  if out.returncode:
    raise RuntimeError(f"{' '.join(cmd)} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
  return last_json_line(out.stdout)


def usage_between(before: resource.struct_rusage, after: resource.struct_rusage) -> dict[str, float]:
  """``{"user_s", "sys_s", "sys_share", "minor_faults"}`` between two ``resource.getrusage`` readings."""
  user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
  return {"user_s": user, "sys_s": system, "sys_share": system / (user + system),
          "minor_faults": after.ru_minflt - before.ru_minflt}


def describe_usage(u: dict[str, float]) -> str:
  """One line of `usage_between`'s figures, as the benchmarks print them."""
  return (f"CPU user {u['user_s']:6.1f} s, kernel {u['sys_s']:5.1f} s ({100 * u['sys_share']:4.1f}%); "
          f"minor faults {u['minor_faults'] / 1e6:5.2f} M")
