"""Kept buffers: glibc told to keep large freed blocks, so a training step does not fault its memory in anew.

XLA:CPU frees and allocates the same tens of megabytes of buffers at every step. With glibc's defaults a
block above the mmap threshold goes back to the kernel when it is freed, and the next step page-faults it in
again: a sixth of the trainer's CPU time went to the kernel (measurements in
``experiments/benchmarks/README.md``). `keep_freed_buffers` raises glibc's mmap and trim thresholds and its
top pad, and keeps every thread on the main arena (``mallopt``): a thread's own arena is made of heaps of at
most 64 MiB, so a larger block allocated by one of XLA's threads (an evaluation batch's activations) is
mapped and unmapped whatever the thresholds say. Freed blocks then stay in the process and are reused. It
changes where memory comes from, not what is computed: results are bitwise the same.

Every command line in ``experiments/`` calls it first (`experiments.cli.run`). ``CLR_KEEP_BUFFERS=0`` turns it off; off Linux/glibc
it does nothing. The library (`clr_optax`) sets no process settings: a program of your own gets the same
by exporting `ENV_SETTINGS` before Python starts, e.g.

  MALLOC_MMAP_THRESHOLD_=2147483647 MALLOC_TRIM_THRESHOLD_=2147483647 MALLOC_TOP_PAD_=1073741824 \
  MALLOC_ARENA_MAX=1 python train.py
"""

from __future__ import annotations

import ctypes
import os
import sys

SWITCH = "CLR_KEEP_BUFFERS"
# glibc's mallopt parameters (malloc.h) and the values set: thresholds at the largest int mallopt takes,
# 1 GiB of headroom added to each heap extension (address space, not resident memory), and one arena (the main
# one, which has no heap size limit). Each as (mallopt parameter, the environment variable glibc reads for it
# at start-up, value).
_SETTINGS = ((-3, "MALLOC_MMAP_THRESHOLD_", 2**31 - 1),  # M_MMAP_THRESHOLD
             (-1, "MALLOC_TRIM_THRESHOLD_", 2**31 - 1),  # M_TRIM_THRESHOLD
             (-2, "MALLOC_TOP_PAD_", 2**30),             # M_TOP_PAD
             (-8, "MALLOC_ARENA_MAX", 1))                # M_ARENA_MAX
# The same settings as environment variables (for processes started with them).
ENV_SETTINGS = {name: str(value) for _, name, value in _SETTINGS}


def keep_freed_buffers() -> bool:
  """Sets glibc's malloc to keep freed blocks in this process; returns whether it did.

  A no-op returning False when ``$CLR_KEEP_BUFFERS`` is ``0``, off Linux, or where the C library is not glibc.
  """
  if os.environ.get(SWITCH, "1") == "0" or not sys.platform.startswith("linux"):
    return False
  libc = ctypes.CDLL(None)
  if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: their mallopt is not glibc's
    return False
  return all(libc.mallopt(param, value) == 1 for param, _, value in _SETTINGS)


def subprocess_env(keep: bool, env: dict[str, str] | None = None) -> dict[str, str]:
  """`env` (default: this process's) for a child process with kept buffers on or off, whatever it runs."""
  env = dict(os.environ if env is None else env)
  for name in ENV_SETTINGS:
    env.pop(name, None)
  if keep:
    env.update(ENV_SETTINGS)
  env[SWITCH] = "1" if keep else "0"
  return env


def peak_rss_mib() -> float | None:
  """This process's peak resident memory in MiB (None where the platform does not say)."""
  try:
    import resource  # pylint: disable=import-outside-toplevel  (POSIX only)
  except ImportError:
    return None
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux
