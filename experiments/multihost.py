"""Runs the trainer as several processes on this machine: a multi-host run in miniature (CPU, gloo).

  python -m experiments.multihost --num-processes 2 --devices-per-process 2 -- \\
      --config table1_triangular2 --workdir /tmp/multihost --data <dataset> train.num_steps=50

Starts `--num-processes` copies of ``python -m experiments.train --multihost ...`` with a coordinator on
a free localhost port, each process seeing `--devices-per-process` fake CPU devices. Every process calls
`jax.distributed.initialize()`, loads the data, and feeds only its own devices' slices of each global
batch (the pmap axis spans all processes' devices); gradients and BatchNorm statistics are averaged
across processes by the same `lax.pmean`. Process 0 writes metrics and checkpoints. On a real cluster,
run ``python -m experiments.train --multihost ...`` once per host instead (TPU pods and SLURM need no
coordinator flags).

All processes are killed if any fails or the run exceeds `--timeout` seconds (cross-process collectives
that never meet would otherwise hang forever).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from typing import Sequence

from experiments import cli


def free_port() -> int:
  """A TCP port that was free a moment ago on localhost."""
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def run(train_args: Sequence[str], *, num_processes: int = 2, devices_per_process: int = 2,
        timeout: float = 600.0) -> list[str]:
  """Runs the trainer in `num_processes` local processes; returns each process's combined output.

  Raises:
    RuntimeError: a process failed (its output is in the message), or the run timed out.
  """
  port = free_port()
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_per_process}",
         "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
  procs = []
  for pid in range(num_processes):
    cmd = [sys.executable, "-m", "experiments.train", "--multihost", "--coordinator", f"localhost:{port}",
           "--num-processes", str(num_processes), "--process-id", str(pid), *train_args]
    procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env))
  deadline = time.monotonic() + timeout
  try:
    while any(p.poll() is None for p in procs):
      failed = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
      if failed or time.monotonic() > deadline:
        break
      time.sleep(0.2)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  outputs = [p.communicate()[0] for p in procs]
  codes = [p.returncode for p in procs]
  if any(code != 0 for code in codes):
    why = f"timed out after {timeout:.0f} s" if time.monotonic() > deadline else f"exit codes {codes}"
    tails = "\n".join(f"--- process {i} (exit {c}):\n{out[-3000:]}" for i, (c, out) in enumerate(zip(codes, outputs)))
    raise RuntimeError(f"multi-process run failed: {why}\n{tails}")
  return outputs


def main(argv: Sequence[str] | None = None) -> None:
  """Command line: launcher flags, then ``--`` and the trainer's flags."""
  parser = argparse.ArgumentParser(prog="python -m experiments.multihost", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--num-processes", type=int, default=2)
  parser.add_argument("--devices-per-process", type=int, default=2)
  parser.add_argument("--timeout", type=float, default=600.0, help="seconds before all processes are killed")
  parser.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then the flags of experiments.train")
  args = parser.parse_args(argv)
  train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
  outputs = run(train_args, num_processes=args.num_processes, devices_per_process=args.devices_per_process,
                timeout=args.timeout)
  for i, out in enumerate(outputs):
    print(f"--- process {i}:\n{out.strip()}")


if __name__ == "__main__":
  cli.run(main)
