"""Benchmarks that measure a program in a fresh process read its result from the last line it prints (JSON).

A fresh process per measurement keeps process-wide settings (XLA flags, the allocator's) and one measurement's
warm caches out of the next. This module imports no JAX, so a launcher stays light.
"""

from __future__ import annotations

import json
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
