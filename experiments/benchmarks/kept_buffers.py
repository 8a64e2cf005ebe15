"""Kept buffers (`experiments.hostmem`) against glibc's defaults: kernel time, page faults, peak memory, speed.

  nice -n 10 python -m experiments.benchmarks.kept_buffers --data path/to/cifar10-jpeg.tar.xz

Trains each `--models` entry (a config, or ``config:model:batch``) for `--steps` iterations with evaluations, as
the trainer runs it, in a fresh process with kept buffers and one with ``CLR_KEEP_BUFFERS=0``, alternating,
`--pairs` times. From the children's resource usage (``getrusage(RUSAGE_CHILDREN)``, the whole process: loading,
compilation, training, evaluation) it prints user and kernel CPU seconds, the kernel's share, minor page faults
and peak resident memory; from the trainer's summary its training images/s (compilation and evaluation
excluded). The ratio printed is kept/default images/s per pair.

With ``--phases`` it measures instead the workflow's range test (`--steps` steps) and the trainer's test
evaluation, each phase on its own (`experiments.benchmarks.phase_usage`), with and without kept buffers.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile

from experiments import cli
from experiments import hostmem
from experiments.benchmarks import child

DEFAULT_MODELS = "table1_fixed:cifar10_full:100,table1_fixed:resnet20:128"


def run_trainer(config: str, model: str, batch: int, steps: int, data: str, keep: bool, workdir: str) -> dict:
  """One training run in a fresh process; its resource usage and the trainer's summary."""
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  summary = child.run_json(
      [sys.executable, "-m", "experiments.train", "--config", config, "--workdir", workdir, "--data", data,
       "--set", f"model.name={model}", f"train.batch_size={batch}", f"train.num_steps={steps}",
       f"train.eval_every={max(1, steps // 3)}", f"train.checkpoint_every={steps}", "train.progress=false",
       "train.num_devices=1"], env=hostmem.subprocess_env(keep))
  usage = child.usage_between(before, resource.getrusage(resource.RUSAGE_CHILDREN))
  return {"keep": keep, **usage, "peak_rss_mib": summary["peak_rss_mib"],
          "images_per_sec": summary["train_images_per_sec"]}


def run_phases(data: str, steps: int, keep: bool) -> dict:
  """`experiments.benchmarks.phase_usage` in a fresh process: the range test's and the evaluation's usage."""
  return child.run_json([sys.executable, "-m", "experiments.benchmarks.phase_usage", "--data", data,
                         "--range-steps", str(steps)], env=hostmem.subprocess_env(keep))


def _phases(args) -> dict:
  rows = []
  for pair in range(args.pairs):
    for keep in (False, True):
      r = {"keep": keep, **run_phases(args.data, args.steps, keep)}
      rows.append(r)
      for name, u in r["phases"].items():
        print(f"{name:10s} pair {pair + 1}, {'kept buffers' if keep else 'glibc default'}: {u['wall_s']:6.1f} s wall; "
              f"{child.describe_usage(u)}", flush=True)
  return {"phases": rows}


def main(argv: list[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data", required=True, help="dataset spec (an image-folder archive or cifar10)")
  parser.add_argument("--models", default=DEFAULT_MODELS, metavar="CONFIG:MODEL:BATCH,...")
  parser.add_argument("--steps", type=int, default=None,
                      help="training iterations per run (default 600); with --phases, range test steps (default 495)")
  parser.add_argument("--phases", action="store_true", help="the range test and the evaluation instead of training")
  parser.add_argument("--pairs", type=int, default=2)
  parser.add_argument("--json", help="also write the results to this file")
  args = parser.parse_args(argv)
  if args.steps is None:
    args.steps = 495 if args.phases else 600
  results = _phases(args) if args.phases else _trainer_runs(args)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=2)
  return results


def _trainer_runs(args) -> dict:
  results = {}
  for spec in args.models.split(","):
    config, model, batch = spec.split(":")
    rows = []
    for pair in range(args.pairs):
      for keep in (False, True):
        with tempfile.TemporaryDirectory() as workdir:
          r = run_trainer(config, model, int(batch), args.steps, args.data, keep, workdir)
        rows.append(r)
        print(f"{model} batch {batch}, pair {pair + 1}, {'kept buffers' if keep else 'glibc default'}: "
              f"{r['images_per_sec']:6.0f} images/s; {child.describe_usage(r)}; peak RSS {r['peak_rss_mib']:,.0f} MiB",
              flush=True)
      ratio = rows[-1]["images_per_sec"] / rows[-2]["images_per_sec"]
      print(f"{model} pair {pair + 1}: kept/default images/s {ratio:.2f}x", flush=True)
    results[model] = rows
  return results


if __name__ == "__main__":
  cli.run(main)
