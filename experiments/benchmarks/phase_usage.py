"""CPU time, kernel share and page faults of the workflow's range test and of the trainer's test evaluation.

  python -m experiments.benchmarks.kept_buffers --phases --data path/to/cifar10-jpeg.tar.xz

`experiments.benchmarks.kept_buffers` runs this module in a fresh process with kept buffers and one without
(`experiments.hostmem`); it prints one JSON line. Each phase is measured with ``getrusage`` of this process (all
its threads) around it, after the data is loaded:

* ``range_test``: `experiments.workflow.run_range_test` on the workflow's data and network (the whole
  compiled sweep, its compilation included, as a user runs it);
* ``evaluation``: `--evals` evaluations of the whole test set through the trainer's feeder
  (`experiments.feed.DeviceFeeder.evaluate`), after one untimed evaluation that compiles the program.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import tempfile
import time

import jax

from experiments import cli
from experiments import configs
from experiments import feed
from experiments import hostmem
from experiments import parallel
from experiments import setup
from experiments import train
from experiments import workflow
from experiments.benchmarks import child


@contextlib.contextmanager
def measured(into: dict, name: str):
  """Puts `experiments.benchmarks.child.usage_between` of the block, and its ``"wall_s"``, into ``into[name]``."""
  before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
  yield
  into[name] = {**child.usage_between(before, resource.getrusage(resource.RUSAGE_SELF)),
                "wall_s": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data", required=True, help="dataset spec (an image-folder archive or cifar10)")
  parser.add_argument("--range-steps", type=int, default=495, help="range test steps (default: the workflow's "
                      "one epoch of 49,500 images; 0: no range test)")
  parser.add_argument("--evals", type=int, default=10, help="timed evaluations of the 10,000 test images")
  args = parser.parse_args(argv)
  config = configs.override(configs.get_config("workflow"), {
      "data.dataset": args.data, "data.test_size": None, "train.progress": False, "train.num_devices": 1})
  train_ds, val = setup.load_data(config)
  phases: dict[str, dict] = {}
  if args.range_steps:
    with measured(phases, "range_test"):
      workflow.run_range_test(config, train_ds, val, num_steps=args.range_steps)

  with tempfile.TemporaryDirectory() as tmp:
    data = feed.open_data(config, tmp, dataset=train_ds)
  devices = parallel.run_devices(1)
  plan = train.plan_run(config, num_train=data.num_train, num_global_devices=1)
  schedule = setup.build_schedule(config.schedule, steps_per_epoch=plan.steps_per_epoch, total_steps=plan.total_steps)
  state = setup.create_train_state(config, num_classes=data.num_classes, mean=data.mean, std=data.std,
                                   image_shape=data.image_shape, axis_name=parallel.AXIS)
  feeder = data.feeder(config, plan, schedule, devices, state=state)
  state_r = parallel.replicate(state, devices)
  feeder.evaluate(state_r)
  with measured(phases, "evaluation"):
    for _ in range(args.evals):
      feeder.evaluate(state_r)
  out = {"phases": phases, "range_steps": args.range_steps, "evals": args.evals, "test_images": data.num_test,
         "backend": jax.default_backend(), "peak_rss_mib": hostmem.peak_rss_mib()}
  print(json.dumps(out))
  return out


if __name__ == "__main__":
  cli.run(main)
