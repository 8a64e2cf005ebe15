"""Two training runs side by side (one core each) against one at a time (both cores): which empties a queue sooner.

  nice -n 10 python -m experiments.benchmarks.queue_parallelism --data path/to/cifar10-jpeg.tar.xz

Each trial trains `--config` for `--steps` iterations twice: once as two processes at the same time, each
pinned to one core (``taskset``; XLA sizes its thread pool from the affinity mask), and once as two
processes one after the other, each with every core. Throughput is the trainer's own ``train_images_per_sec``
(compilation and evaluation excluded); the wall time of each arrangement is printed too. The printed ratio
is images/s of the pair, summed, over the mean images/s of a run alone: above 1, the queue should run two at a
time. The arrangements alternate (``--trials`` of each), since this machine's speed drifts.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from experiments import cli
from experiments.benchmarks import child


def _command(config: str, workdir: pathlib.Path, data: str, steps: int) -> list[str]:
  return [sys.executable, "-m", "experiments.train", "--config", config, "--workdir", str(workdir), "--data", data,
          "--set", f"train.num_steps={steps}", "--set", f"train.eval_every={steps}",
          "--set", f"train.checkpoint_every={steps}", "--set", "train.progress=false"]


def _run(commands: list[list[str]], cores: list[str | None]) -> tuple[float, list[float]]:
  """Starts every command at once (pinned to its cores where given); returns the wall time and each run's images/s."""
  t0 = time.perf_counter()
  procs = [subprocess.Popen((["taskset", "-c", c] if c else []) + cmd, stdout=subprocess.PIPE, text=True)
           for cmd, c in zip(commands, cores)]
  outs = [p.communicate()[0] for p in procs]
  wall = time.perf_counter() - t0
  for p in procs:
    if p.returncode:
      raise SystemExit(f"a training run failed (exit {p.returncode})")
  return wall, [child.last_json_line(out)["train_images_per_sec"] for out in outs]


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data", required=True, help="dataset spec (an image-folder archive or cifar10)")
  parser.add_argument("--config", default="table1_fixed")
  parser.add_argument("--steps", type=int, default=600)
  parser.add_argument("--trials", type=int, default=1, help="alternations of the two arrangements")
  args = parser.parse_args(argv)
  cores = os.sched_getaffinity(0)
  if len(cores) < 2:
    raise SystemExit("needs at least two cores")
  first, second = sorted(cores)[:2]
  with tempfile.TemporaryDirectory() as tmp:
    root = pathlib.Path(tmp)
    for trial in range(args.trials):
      rows = {}
      for arrangement in ("side by side", "one at a time"):
        dirs = [root / f"{trial}-{arrangement.replace(' ', '_')}-{k}" for k in range(2)]
        cmds = [_command(args.config, d, args.data, args.steps) for d in dirs]
        if arrangement == "side by side":
          wall, speeds = _run(cmds, [str(first), str(second)])
        else:
          wall, speeds = 0.0, []
          for cmd in cmds:
            w, s = _run([cmd], [None])
            wall, speeds = wall + w, speeds + s
        rows[arrangement] = (wall, speeds)
        print(f"trial {trial}: {arrangement:13s} wall {wall:6.1f} s, images/s per run "
              f"{', '.join(f'{s:.0f}' for s in speeds)}", flush=True)
      pair, alone = rows["side by side"][1], rows["one at a time"][1]
      print(f"trial {trial}: throughput side by side / one at a time = {sum(pair) / (sum(alone) / 2):.2f}x; "
            f"wall one at a time / side by side = {rows['one at a time'][0] / rows['side by side'][0]:.2f}x",
            flush=True)


if __name__ == "__main__":
  cli.run(main)
