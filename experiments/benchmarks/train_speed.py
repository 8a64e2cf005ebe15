"""Training throughput on this machine: JAX (experiments.step.train_step) vs PyTorch CPU.

  python -m experiments.benchmarks.train_speed --torch-python ../torchenv/bin/python
  python -m experiments.benchmarks.train_speed --quick            # a smoke run, noisy numbers

Measures images/s of one optimizer step (forward, backward, update; uint8 -> float normalisation
inside) for cifar10_full at batch 100 and ResNet-20 at batch 128, excluding compilation and blocking
until each step's results are ready. Each side first runs ``--warmup`` untimed steps (default 200:
PyTorch's CPU step keeps speeding up over its first ~200 steps, so a 30-step timing understates it), then
times ``--steps`` steps one by one; the median step is reported, with the medians of five consecutive
windows, which show whether the speed had settled. The PyTorch half (experiments/benchmarks/torch_speed.py:
the same networks, batches and SGD steps) runs as a subprocess with ``--torch-python`` (torch is not a
dependency of this project). Each side runs with glibc's default malloc settings and with kept buffers
(`experiments.hostmem`: the same environment variables on both sides); the four alternate, ``--repeats``
rounds per network (default 5), each measurement in a fresh process, so that load from other programs hits
all alike. Reported, as medians over the rounds: JAX/PyTorch with both default, JAX/PyTorch with both kept,
and each framework's kept/default.

Every JAX step is compiled as the trainer compiles it, with `experiments.parallel.compiler_options` (on
XLA:CPU: YNNPACK for dots only, convolutions on XLA's Eigen kernels).

`--variants` also times the cifar10_full step under other XLA flags and implementations
(`experiments.benchmarks.step_variants`), each in a fresh subprocess (XLA flags are read once per process), to
find where the time goes.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import pathlib
import re
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import augment
from experiments import cli
from experiments import configs
from experiments import hostmem
from experiments import parallel
from experiments import setup
from experiments import step as step_lib
from experiments.benchmarks import child
from experiments.benchmarks import step_variants
from experiments.models import caffe
from experiments.models import caffe_layers

TORCH_SCRIPT = pathlib.Path(__file__).with_name("torch_speed.py")

def _state_and_batch(model: str, batch: int):
  """A fresh training state of `model` (cifar10_full with Table 1's solver, else the ResNet config) and one
  random uint8 batch of `batch` CIFAR-sized images on the device."""
  if model == "cifar10_full":
    config = configs.get_config("table1_triangular2")
  else:
    config = configs.override(configs.get_config("table4_resnet:clr"), {"model.name": model})
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
  labels = rng.integers(0, 10, batch).astype(np.int32)
  mean, std = setup.normalization_constants(config, images)
  state = setup.create_train_state(config, num_classes=10, mean=mean, std=std)
  return state, {"image": jnp.asarray(images), "label": jnp.asarray(labels)}


def time_jax(model: str, batch: int, steps: int, warmup: int, variant: str = "default") -> dict:
  """Median images/s of the jitted train_step (or a part of it, per `variant`) for `model` at `batch`."""

  options = step_variants.patch_model(variant)
  state, data = _state_and_batch(model, batch)
  lr = jnp.float32(0.001)

  if variant.split("+")[-1] in ("fwd_only", "fwd_bwd"):

    def loss_fn(params, batch_stats):
      variables = {"params": params}
      kwargs = {}
      if jax.tree.leaves(batch_stats):
        variables["batch_stats"] = batch_stats
        kwargs["mutable"] = ["batch_stats"]
      out = state.apply_fn(variables, augment.normalize(data["image"], state.mean, state.std), train=True, **kwargs)
      logits = out[0] if kwargs else out
      return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(batch), data["label"]])

    fn = jax.jit(loss_fn if variant.endswith("fwd_only") else jax.grad(loss_fn), compiler_options=options)
    run = lambda: fn(state.params, state.batch_stats)
  else:
    step = jax.jit(step_lib.train_step, donate_argnums=0, compiler_options=options)
    holder = [state]

    def run():
      holder[0], metrics = step(holder[0], data, lr)
      return metrics

  t0 = time.perf_counter()
  jax.block_until_ready(run())
  compile_s = time.perf_counter() - t0
  for _ in range(warmup):
    jax.block_until_ready(run())
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    jax.block_until_ready(run())
    times.append(time.perf_counter() - t)
  median = float(np.median(times))
  windows = [float(np.median(w)) for w in np.array_split(np.asarray(times), min(5, len(times)))]
  return {"framework": "jax", "version": jax.__version__, "model": model, "batch": batch, "variant": variant,
          "xla_flags": os.environ.get("XLA_FLAGS", ""), "warmup": warmup, "steps": steps,
          "first_call_s": compile_s, "ms_per_step_median": 1e3 * median, "images_per_sec": batch / median,
          "images_per_sec_windows": [batch / w for w in windows]}


def breakdown(steps: int, batch: int = 100) -> dict[str, float]:
  """Median ms of the cifar10_full step with layer kinds replaced by cheap stand-ins of the same shape.

  The variants are compiled in one process and timed in alternation, so that load from other programs
  affects them alike: "no_lrn" (LRN -> identity), "no_maxpool" / "no_avgpool" (pooling -> strided
  subsampling), "convs_only" (all three). The differences attribute the step time to the layer kinds.
  """

  config = configs.get_config("table1_triangular2")
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
  data = {"image": jnp.asarray(images), "label": jnp.asarray(rng.integers(0, 10, batch).astype(np.int32))}
  mean, std = setup.normalization_constants(config, images)
  # Patched where the networks look them up and where the LRN looks up its average pool.
  names = ("caffe_max_pool", "caffe_avg_pool", "lrn_within_channel")
  originals = {(m, k): getattr(m, k) for m in (caffe, caffe_layers) for k in names}

  def subsample(x, kernel, stride, pad=0):
    out = caffe_layers.caffe_pool_output_size(x.shape[1], kernel, stride, pad)
    return x[:, ::stride, ::stride, :][:, :out, :out, :]

  identity = lambda x, *a, **k: x
  patches = {"default": {}, "no_lrn": {"lrn_within_channel": identity},
             "no_maxpool": {"caffe_max_pool": subsample}, "no_avgpool": {"caffe_avg_pool": subsample},
             "convs_only": {"lrn_within_channel": identity, "caffe_max_pool": subsample,
                            "caffe_avg_pool": subsample}}
  compiled = {}
  try:
    for name, patch in patches.items():
      for (module, key), value in originals.items():
        setattr(module, key, patch.get(key, value))
      state = setup.create_train_state(config, num_classes=10, mean=mean, std=std)
      fn = jax.jit(step_lib.train_step, compiler_options=parallel.compiler_options(jax.local_devices()))
      jax.block_until_ready(fn(state, data, 0.001))
      compiled[name] = (fn, state)
  finally:
    for (module, key), value in originals.items():
      setattr(module, key, value)
  times = {name: [] for name in compiled}
  for _ in range(steps):
    for name, (fn, state) in compiled.items():
      t = time.perf_counter()
      jax.block_until_ready(fn(state, data, 0.001))
      times[name].append(time.perf_counter() - t)
  return {name: 1e3 * float(np.median(v)) for name, v in times.items()}


def dispatch_paths(rounds: int, block: int = 20, num_images: int = 50_000) -> dict[str, float]:
  """Median ms per cifar10_full step (batch 100) along the trainer's path, piece by piece, in one process.

  Each path runs blocks of `block` steps dispatched back to back and waits at the end of each block, as
  the trainer does between log flushes; the paths alternate block by block, `rounds` times:

  * ``jit_batch``: ``jax.jit(train_step)`` on one fixed device batch (what `time_jax` times, without its
    wait after every step);
  * ``jit_gather``: the same with the trainer's in-step data path: the batch gathered (``jnp.take``) from
    `num_images` device-resident images through an epoch permutation, and the rate from the schedule;
  * ``pmap_gather``: the trainer's own program (`experiments.parallel.make_pmapped_train_step`) on one
    device.
  """
  config = configs.get_config("table1_triangular2")
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (num_images, 32, 32, 3), dtype=np.uint8)
  labels = rng.integers(0, 10, num_images).astype(np.int32)
  mean, std = setup.normalization_constants(config, images[:1000])
  state = setup.create_train_state(config, num_classes=10, mean=mean, std=std)
  spe = num_images // 100
  schedule = setup.build_schedule(config.schedule, steps_per_epoch=spe, total_steps=10 * spe)
  options = parallel.compiler_options(jax.local_devices())
  devices = jax.local_devices()[:1]
  perm = np.random.default_rng(1).permutation(num_images).astype(np.int32)
  d_images, d_labels, d_perm = jnp.asarray(images), jnp.asarray(labels), jnp.asarray(perm)
  batch = {"image": d_images[:100], "label": d_labels[:100]}

  def gathered(state, images, labels, perm):
    index = jax.lax.dynamic_slice_in_dim(perm, (state.step % spe) * 100, 100)
    return step_lib.train_step(state, {"image": jnp.take(images, index, axis=0),
                                       "label": jnp.take(labels, index, axis=0)}, schedule(state.step))

  fixed = jax.jit(step_lib.train_step, donate_argnums=0, compiler_options=options)
  gather = jax.jit(gathered, donate_argnums=0, compiler_options=options)
  pmapped = parallel.make_pmapped_train_step(schedule, global_batch=100, local_batch=100, steps_per_epoch=spe,
                                             devices=devices)
  replicated = parallel.replicate((d_images, d_labels, d_perm), devices)
  lr = jnp.float32(0.001)
  paths = {"jit_batch": [lambda s: fixed(s, batch, lr), jax.tree.map(jnp.copy, state)],
           "jit_gather": [lambda s: gather(s, d_images, d_labels, d_perm), jax.tree.map(jnp.copy, state)],
           "pmap_gather": [lambda s: pmapped(s, *replicated), parallel.replicate(state, devices)]}
  times = {name: [] for name in paths}
  for r in range(rounds + 1):  # round 0 compiles and warms up
    for name, path in paths.items():
      t = time.perf_counter()
      for _ in range(block):
        path[1], metrics = path[0](path[1])
      jax.block_until_ready(metrics)
      if r:
        times[name].append((time.perf_counter() - t) / block)
  return {name: 1e3 * float(np.median(v)) for name, v in times.items()}


def trace_step(model: str, batch: int, steps: int, top: int = 12) -> dict:
  """Where `model`'s jitted train_step spends its time, from a `jax.profiler` trace of `steps` steps.

  The trace times every thunk XLA's runtime executes; each is matched to its instruction in the compiled
  program, and the times are summed per kind (the instruction's name without its number, e.g.
  ``transpose_copy_fusion``) and listed for the `top` instructions with their shape and the JAX operation
  they came from. On XLA:CPU a convolution thunk only starts work on Eigen's threads and returns, so the
  convolutions' share is what the step takes beyond the summed thunks; the loop fusions are timed in full.

  Returns:
    ``{"step_ms", "thunks_ms", "by_kind": {kind: ms per step}, "top": [{"name", "ms", "shape", "op"}]}``.
  """
  state, data = _state_and_batch(model, batch)
  step = jax.jit(step_lib.train_step, donate_argnums=0, compiler_options=parallel.compiler_options(jax.local_devices()))
  lr = jnp.float32(0.001)
  instructions = {}
  for m in re.finditer(r"^\s+%(\S+) = (\S+) \w[\w-]*\((.*)$", step.lower(state, data, lr).compile().as_text(), re.M):
    op = re.search(r'op_name="([^"]*)"', m.group(3))
    instructions[m.group(1)] = (m.group(2), op.group(1) if op else "")
  for _ in range(3):
    state, metrics = step(state, data, lr)
    jax.block_until_ready(metrics)
  with tempfile.TemporaryDirectory() as log_dir:
    jax.profiler.start_trace(log_dir, create_perfetto_trace=True)
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = step(state, data, lr)
      jax.block_until_ready(metrics)
    step_s = (time.perf_counter() - start) / steps
    jax.profiler.stop_trace()
    (trace_file,) = pathlib.Path(log_dir).rglob("*.trace.json.gz")
    events = json.loads(gzip.decompress(trace_file.read_bytes()))["traceEvents"]
  per_instruction = collections.Counter()
  for event in events:
    if event.get("ph") == "X" and event.get("name") in instructions:
      per_instruction[event["name"]] += event["dur"] / 1e3 / steps  # microseconds -> ms per step
  by_kind = collections.Counter()
  for name, ms in per_instruction.items():
    by_kind[re.sub(r"\.\d+$", "", name)] += ms
  return {"model": model, "batch": batch, "steps": steps, "step_ms": 1e3 * step_s,
          "thunks_ms": sum(per_instruction.values()), "by_kind": dict(by_kind.most_common()),
          "top": [{"name": n, "ms": ms, "shape": instructions[n][0], "op": instructions[n][1]}
                  for n, ms in per_instruction.most_common(top)]}


def _variant_in_subprocess(variant: str, steps: int, warmup: int) -> dict:
  env = dict(os.environ)
  name, _, flags = variant.partition("xla:")
  name = name.removesuffix("+") or "default"
  if flags:
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flags).strip()
  cmd = [sys.executable, "-m", "experiments.benchmarks.train_speed", "--_one", f"cifar10_full,100,{name}",
         "--steps", str(steps), "--warmup", str(warmup)]
  result = child.run_json(cmd, env=env)
  result["variant"] = variant
  return result


def _jax_in_subprocess(model: str, batch: int, steps: int, warmup: int, keep: bool = True) -> dict:
  result = child.run_json([sys.executable, "-m", "experiments.benchmarks.train_speed", "--_one",
                             f"{model},{batch},default", "--steps", str(steps), "--warmup", str(warmup)],
                            env=hostmem.subprocess_env(keep))
  result["kept_buffers"] = keep
  return result


def _torch_in_subprocess(torch_python: str, model: str, batch: int, steps: int, warmup: int, keep: bool) -> dict:
  result = child.run_json([torch_python, str(TORCH_SCRIPT), "--model", model, "--batch", str(batch),
                             "--steps", str(steps), "--warmup", str(warmup)], env=hostmem.subprocess_env(keep))
  result["kept_buffers"] = keep
  return result


def _windows(r: dict) -> str:
  return "/".join(f"{w:.0f}" for w in r.get("images_per_sec_windows", []))


# What `compare_with_torch` reports: (name, numerator, denominator), each a (framework, kept buffers) measurement.
RATIOS = (("jax/torch, both default", ("jax", False), ("torch", False)),
          ("jax/torch, both kept", ("jax", True), ("torch", True)),
          ("jax kept/default", ("jax", True), ("jax", False)),
          ("torch kept/default", ("torch", True), ("torch", False)))


def compare_with_torch(torch_python: str, models: list[tuple[str, int]], *, steps: int, warmup: int,
                       repeats: int) -> dict:
  """JAX against PyTorch (`TORCH_SCRIPT`, run by `torch_python`), each with glibc's default allocator settings and
  with kept buffers (`experiments.hostmem`, the same environment on both sides), alternating, `repeats` rounds of
  the four per network.

  Returns:
    ``{"runs": [...], "ratios": {model: {ratio: [per round]}}, "median": {model: {ratio: median}}}``, the
    ratios being `RATIOS`.
  """
  out = {"runs": [], "ratios": {}, "median": {}}
  for model, batch in models:
    ratios = {name: [] for name, _, _ in RATIOS}
    for pair in range(repeats):
      speed = {}
      for keep in (False, True):
        j = _jax_in_subprocess(model, batch, steps, warmup, keep)
        t = _torch_in_subprocess(torch_python, model, batch, steps, warmup, keep)
        out["runs"] += [j, t]
        speed["jax", keep], speed["torch", keep] = j["images_per_sec"], t["images_per_sec"]
        print(f"round {pair + 1} {model:13s} batch {batch:3d}, {'kept buffers' if keep else 'default malloc'}: "
              f"jax {j['images_per_sec']:6.0f} images/s (windows {_windows(j)}), torch {t['images_per_sec']:6.0f} "
              f"(windows {_windows(t)}, {t['threads']} threads)", flush=True)
      for name, a, b in RATIOS:
        ratios[name].append(speed[a] / speed[b])
      print(f"round {pair + 1} {model}: " + ", ".join(f"{n} {r[-1]:.2f}x" for n, r in ratios.items()), flush=True)
    out["ratios"][model] = ratios
    out["median"][model] = {n: float(np.median(r)) for n, r in ratios.items()}
    print(f"{model}, batch {batch}, median of {repeats} alternating rounds: " +
          ", ".join(f"{n} {m:.2f}x" for n, m in out["median"][model].items()), flush=True)
  return out


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(prog="python -m experiments.benchmarks.train_speed", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true", help="few steps (a smoke run, noisy numbers)")
  parser.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 300; quick 5)")
  parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 200; quick 2)")
  parser.add_argument("--torch-python", default="../torchenv/bin/python",
                      help="a Python with torch for the comparison ('' to skip)")
  parser.add_argument("--repeats", type=int, default=None, help="JAX/PyTorch pairs per network (default 5; quick 1)")
  parser.add_argument("--variants", nargs="*", default=None,
                      help="cifar10_full variants to time (default with --profile: "
                           f"{' '.join(step_variants.DEFAULT_VARIANTS)})")
  parser.add_argument("--profile", action="store_true", help="also time the variants")
  parser.add_argument("--breakdown", action="store_true", help="attribute the cifar10_full step time to layer kinds")
  parser.add_argument("--dispatch", action="store_true",
                      help="time the trainer's data path and pmap against a plain jit (dispatch_paths)")
  parser.add_argument("--trace", action="store_true",
                      help="profile each of --models' steps with jax.profiler: time per kind of XLA instruction")
  parser.add_argument("--json", help="write all results to this file")
  parser.add_argument("--models", default="cifar10_full:100,resnet20:128", metavar="MODEL:BATCH,...",
                      help="the JAX measurements (default cifar10_full:100,resnet20:128)")
  parser.add_argument("--_one", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  steps = args.steps or (5 if args.quick else 300)
  warmup = args.warmup if args.warmup is not None else (2 if args.quick else 200)
  repeats = args.repeats or (1 if args.quick else 5)

  if args._one:
    model, batch, variant = args._one.split(",")
    print(json.dumps({**time_jax(model, int(batch), steps, warmup, variant), "peak_rss_mib": hostmem.peak_rss_mib()}))
    return {}

  results = {"machine": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}, "runs": []}
  models = [(m, int(b)) for m, b in (spec.split(":") for spec in args.models.split(","))]
  if args.torch_python and pathlib.Path(args.torch_python).exists():
    compared = compare_with_torch(args.torch_python, models, steps=steps, warmup=warmup, repeats=repeats)
    results["runs"] += compared["runs"]
    results["ratios"] = compared["median"]
    results["ratios_per_round"] = compared["ratios"]
  else:
    if args.torch_python:
      print(f"(no PyTorch comparison: {args.torch_python} not found; python3 -m venv ../torchenv && "
            "../torchenv/bin/pip install torch==2.13.0 numpy)")
    for model, batch in models:
      r = _jax_in_subprocess(model, batch, steps, warmup)
      results["runs"].append(r)
      print(f"jax   {model:13s} batch {batch:3d}: {r['images_per_sec']:8.0f} images/s "
            f"({r['ms_per_step_median']:.1f} ms/step; windows {_windows(r)}; first call {r['first_call_s']:.1f} s)",
            flush=True)
  variants = args.variants if args.variants is not None else (step_variants.DEFAULT_VARIANTS if args.profile else ())
  for variant in variants:
    r = _variant_in_subprocess(variant, steps, warmup)
    results["runs"].append(r)
    print(f"jax   cifar10_full variant {variant}: {r['images_per_sec']:8.0f} images/s "
          f"({r['ms_per_step_median']:.1f} ms/step)", flush=True)
  if args.dispatch:
    ms = dispatch_paths(max(steps // 20, 3))
    results["dispatch_ms"] = ms
    print("cifar10_full step along the trainer's path, median ms: " + ", ".join(f"{k} {v:.1f}" for k, v in ms.items()),
          flush=True)
  if args.breakdown:
    ms = breakdown(steps)
    results["breakdown_ms"] = ms
    print("cifar10_full step, median ms with layer kinds replaced: " +
          ", ".join(f"{k} {v:.1f}" for k, v in ms.items()), flush=True)
  if args.trace:
    results["traces"] = []
    for model, batch in models:
      t = trace_step(model, batch, min(steps, 20))
      results["traces"].append(t)
      print(f"{model} batch {batch}: {t['step_ms']:.1f} ms per traced step, {t['thunks_ms']:.1f} ms in timed thunks "
            "(convolutions return before their work ends on XLA:CPU); by kind, ms per step:", flush=True)
      for kind, ms in list(t["by_kind"].items())[:12]:
        print(f"  {ms:8.2f}  {100 * ms / t['thunks_ms']:5.1f}%  {kind}")
      print("  top instructions:")
      for row in t["top"]:
        print(f"  {row['ms']:8.2f}  {row['name']:30s} {row['shape']:30s} {row['op'][-70:]}")
  results["machine"]["load_avg_1m_end"] = os.getloadavg()[0]
  print(f"(load average {results['machine']['load_avg_1m']:.1f} -> {results['machine']['load_avg_1m_end']:.1f} "
        f"on {os.cpu_count()} CPUs: other work on this machine slows every number)")
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(results, indent=2))
  return results


if __name__ == "__main__":
  cli.run(main)
