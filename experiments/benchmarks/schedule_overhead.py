"""What a cyclical schedule costs inside a compiled train step: step-time ratio and added HLO ops.

A jitted SGD-with-momentum step on the paper's Caffe ``cifar10_full`` network (batch 100) with a constant
learning rate, against the same step with ``clr_optax.triangular2``. Steps alternate between the two in
short blocks so that machine noise hits both alike; the ratio is of median step times. Both are compiled
with the trainer's XLA options (`experiments.parallel.compiler_options`).

  python -m experiments.benchmarks.schedule_overhead            # about a minute on 2 CPU cores
  python -m experiments.benchmarks.schedule_overhead --quick
"""

import argparse
import functools
import json
import pathlib
import re
import statistics
import time

import jax
import optax

import clr_optax
from experiments import cli
from experiments import parallel
from experiments.models import create_model


def _make_step(model, optimizer):
  def loss_fn(params, images, labels):
    logits = model.apply({"params": params}, images, train=True)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  @functools.partial(jax.jit, compiler_options=parallel.compiler_options(jax.local_devices()))
  def step(params, opt_state, images, labels):
    grads = jax.grad(loss_fn)(params, images, labels)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  return step


def _hlo_op_counts(step, *args) -> tuple[int, int]:
  """(all instructions, instructions of the entry computation) in the optimized HLO module.

  Entry instructions are what runs one after another per step (fusions count once), so they stand for
  the kernels launched; all instructions include those inside fusions.
  """
  text = step.lower(*args).compile().as_text()
  instruction = re.compile(r"\s*(ROOT\s+)?%[\w.\-]+ = ")
  total = entry = 0
  in_entry = False
  for line in text.splitlines():
    if line.startswith("ENTRY "):
      in_entry = True
    elif line.startswith("}"):
      in_entry = False
    elif instruction.match(line):
      total += 1
      entry += in_entry
  return total, entry


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true", help="fewer timed steps")
  parser.add_argument("--batch-size", type=int, default=100)
  parser.add_argument("--json", help="also write the results to this file")
  args = parser.parse_args(argv)
  blocks, per_block = (6, 5) if args.quick else (20, 10)

  model = create_model("cifar10_full")
  key = jax.random.key(0)
  images = jax.random.normal(key, (args.batch_size, 32, 32, 3))
  labels = jax.random.randint(key, (args.batch_size,), 0, 10)
  params = model.init(key, images[:1], train=False)["params"]

  variants = {
      "constant": optax.sgd(learning_rate=0.001, momentum=0.9),
      "triangular2": optax.sgd(learning_rate=clr_optax.triangular2(0.001, 0.006, step_size=2000), momentum=0.9),
  }
  steps, states, times, ops = {}, {}, {name: [] for name in variants}, {}
  for name, optimizer in variants.items():
    steps[name] = _make_step(model, optimizer)
    states[name] = (params, optimizer.init(params))
    ops[name] = _hlo_op_counts(steps[name], *states[name], images, labels)
    for _ in range(3):  # compile and warm up
      states[name] = steps[name](*states[name], images, labels)
    jax.block_until_ready(states[name])

  for _ in range(blocks):
    for name in variants:
      for _ in range(per_block):
        start = time.perf_counter()
        states[name] = jax.block_until_ready(steps[name](*states[name], images, labels))
        times[name].append(time.perf_counter() - start)

  median = {name: statistics.median(t) for name, t in times.items()}
  print(f"devices: {jax.devices()}  jax {jax.__version__}  optax {optax.__version__}")
  print(f"cifar10_full, batch {args.batch_size}, {blocks * per_block} timed steps per variant (alternating blocks)")
  for name in variants:
    total, entry = ops[name]
    print(f"  {name:12s} median step {median[name] * 1e3:8.2f} ms   HLO instructions {total} ({entry} in the entry computation)")
  print(f"step-time ratio triangular2 / constant: {median['triangular2'] / median['constant']:.3f}  (target <= 1.01)")
  added = [a - b for a, b in zip(ops["triangular2"], ops["constant"])]
  print(f"HLO instructions added by the schedule: {added[0]} ({added[1]} in the entry computation)")
  results = {"device": jax.devices()[0].device_kind, "jax": jax.__version__, "batch": args.batch_size,
             "timed_steps": blocks * per_block, "median_ms": {k: v * 1e3 for k, v in median.items()},
             "ratio": median["triangular2"] / median["constant"], "hlo_instructions": ops}
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(results, indent=2))
  return results


if __name__ == "__main__":
  cli.run(main)
