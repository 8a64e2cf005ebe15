"""One prepared accelerator benchmark: every figure the README's GPU columns need, within a time budget.

  python -m experiments.benchmarks.accelerator --data path/to/cifar10-jpeg.tar.xz --out DIR --budget-s 480
  python -m experiments.benchmarks.accelerator --smoke --out DIR     # the same code on the CPU, tiny sizes

Sections, cheapest first; each runs the repo's own benchmark or trainer as a subprocess whose limit is the
budget left, and writes its whole output to ``DIR/<section>.log``:

1. ``schedule``: `schedule_overhead` (triangular2 against a constant LR, median step-time ratio);
2. ``range_test``: `range_test_speed` (the sweep against a per-step Python loop and against plain steps,
   MLP and convnet, 100 and 1,000 steps; K = 8 seeds in one sweep against one seed's sweep);
3. ``throughput``: `train_speed` (the trainer's step: cifar10_full batch 100, ResNet-56 batch 128); then
   ``trainer_<model>_<n>``: the whole trainer (`experiments.train`, its own images/s: the first call,
   evaluation and checkpoints excluded) on the same two networks with one step per compiled call and with
   `STEPS_PER_CALL` (``train.steps_per_call``);
4. ``table1``: the full-length Table 1 rows (triangular2 25,000 iterations, fixed 70,000, exp_range
   42,000, decay 25,000, exp 70,000; test accuracy every 1,000): triangular2 with `experiments.train`, then
   ``table1_together``, all its rows as one vmapped program (``experiments.reproduce table1 --vmap-runs on``,
   `experiments.multirun`), then the other four apart, as many as the budget allows, each stopped when the
   budget runs out (its metrics so far are kept).

After every section ``DIR/results.json`` and ``DIR/summary.md`` (each measure beside the issue's target) are
rewritten, so a time-out or a kill loses only the section that was running. Nothing is installed and
nothing is downloaded: the data comes from ``--data`` (an image-folder archive travels with the working
tree), and only public JAX APIs are used, so a newer JAX on the accelerator machine runs it unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time
from typing import Any, Sequence

import numpy as np

from experiments import cli
from experiments import rundir
from experiments.configs import tables

# Every row of Table 1's experiment (the policies and their labelled ablations), in its order.
TABLE1_ROWS = tables.get_experiment("table1").configs
# The targets on one H100/H200-class GPU.
TARGETS = {
    "schedule_ratio": "<= 1.01",
    "range_test_mlp": ">= 10x faster than the per-step loop",
    "range_test_convnet": ">= 2x faster than the per-step loop",
    "range_test_seeds": "K = 8 seeds in <= 1.5x one seed's time",
    "table1_triangular2": "25,000 iterations in < 60 s, compilation excluded",
    "table1_all": "all rows in < 5 minutes",
}
SMOKE_SIZES = ("train.batch_size=20", "train.eval_batch_size=100", "data.train_size=200", "data.test_size=100")
SMOKE_TRAIN = ("train.num_steps=6", "train.eval_every=3", "train.checkpoint_every=6", "train.log_every=3",
               *SMOKE_SIZES)
# The trainer's throughput with several steps per compiled call (against one); the smoke run uses 3.
STEPS_PER_CALL = 100
# The networks of the trainer's throughput: model -> (config, steps timed).
TRAINER_RUNS = {"cifar10_full": ("table1_triangular2", 1000), "resnet56": ("table4_resnet:clr", 500)}


class Budget:
  """Seconds left of the whole run."""

  def __init__(self, seconds: float):
    self.end = time.monotonic() + seconds

  def left(self) -> float:
    return max(0.0, self.end - time.monotonic())


def run_section(name: str, cmd: Sequence[str], *, out: pathlib.Path, limit_s: float,
                env: dict[str, str] | None = None) -> dict[str, Any]:
  """Runs `cmd` with a time limit, its output to ``out/<name>.log``; returns status, seconds and return code."""
  if limit_s < 1:
    return {"status": "skipped: the budget was spent", "seconds": 0.0}
  t0 = time.monotonic()
  with open(out / f"{name}.log", "w") as log:
    log.write("$ " + " ".join(cmd) + "\n")
    log.flush()
    try:
      rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=limit_s).returncode
      status = "ok" if rc == 0 else f"failed (exit {rc}; see {name}.log)"
    except subprocess.TimeoutExpired:
      rc, status = None, f"stopped at the budget ({limit_s:.0f} s)"
  return {"status": status, "seconds": time.monotonic() - t0, "returncode": rc}


def _read_json(path: pathlib.Path) -> Any:
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def _run_row(workdir: pathlib.Path) -> dict[str, Any]:
  """A trainer run's figures from its metrics.jsonl (finished or stopped)."""
  # The trainer's own reader drops the last line if the stop cut it short.
  split = rundir.read_metrics(workdir) if (workdir / rundir.METRICS_JSONL).exists() else {}
  train_rows, test_rows = split.get("train", []), split.get("test", [])
  rates = [r["images_per_sec"] for r in train_rows if r.get("images_per_sec")]
  config = _read_json(workdir / rundir.CONFIG) or {}
  out: dict[str, Any] = {"steps_done": train_rows[-1]["step"] if train_rows else 0,
                         "batch_size": config.get("train", {}).get("batch_size")}
  if rates:
    out["images_per_sec"] = rates[-1]
    out["training_s"] = out["steps_done"] * out["batch_size"] / rates[-1]
  if test_rows:
    out["final_test_accuracy"] = test_rows[-1]["accuracy"]
    out["test_curve"] = [(r["step"], r["accuracy"]) for r in test_rows]
  return out


def _smoke_data(directory: pathlib.Path) -> pathlib.Path:
  """A tiny image-folder dataset (10 classes, 20 + 10 PNGs each) for --smoke."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  for split, n in (("train", 20), ("test", 10)):
    for c in range(10):
      folder = directory / split / f"class{c}"
      folder.mkdir(parents=True, exist_ok=True)
      for i in range(n):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
  return directory


def _python(module: str, *args: str) -> list[str]:
  return [sys.executable, "-m", module, *args]


def plan(*, data: str, out: pathlib.Path, smoke: bool) -> list[tuple[str, list[str]]]:
  """The sections' commands, in order."""
  bench = "experiments.benchmarks."
  if smoke:
    sections = [
        ("schedule", _python(bench + "schedule_overhead", "--quick", "--batch-size", "8", "--json",
                             str(out / "schedule.json"))),
        ("range_test", _python(bench + "range_test_speed", "--models", "mlp", "--steps", "10,30", "--repeats", "1",
                               "--seeds", "2", "--examples", "500", "--json", str(out / "range_test.json"))),
        ("throughput", _python(bench + "train_speed", "--quick", "--steps", "2", "--warmup", "1", "--models",
                               "cifar10_full:8", "--torch-python", "", "--json", str(out / "throughput.json"))),
    ]
    trainer, rows, extra = {"cifar10_full": ("table1_triangular2", 6)}, ("table1_triangular2",), list(SMOKE_TRAIN)
    together = ["--shrink", "5000", *(a for kv in ("train.eval_every=3", "train.checkpoint_every=6", *SMOKE_SIZES)
                                       for a in ("--set", kv))]
    n_steps = 3
  else:
    sections = [
        ("schedule", _python(bench + "schedule_overhead", "--json", str(out / "schedule.json"))),
        ("range_test", _python(bench + "range_test_speed", "--json", str(out / "range_test.json"))),
        ("throughput", _python(bench + "train_speed", "--models", "cifar10_full:100,resnet56:128", "--torch-python",
                               "", "--json", str(out / "throughput.json"))),
    ]
    trainer, rows, extra, together, n_steps = TRAINER_RUNS, TABLE1_ROWS, [], [], STEPS_PER_CALL
  for model, (config, steps) in trainer.items():
    for n in (1, n_steps):
      name = f"trainer_{model}_{n}"
      sections.append((name, _python("experiments.train", "--config", config, "--workdir", str(out / "trainer" / name),
                                     "--data", data, "--set", "train.progress=false", *extra,
                                     f"train.num_steps={steps}", f"train.eval_every={steps}",
                                     f"train.checkpoint_every={steps}", f"train.steps_per_call={n}")))

  def apart(row):
    return (row, _python("experiments.train", "--config", row, "--workdir", str(out / "table1" / row.replace(":", "_")),
                         "--data", data, "--set", "train.progress=false", *extra))

  sections.append(apart(rows[0]))
  sections.append(("table1_together", _python(
      "experiments.reproduce", "table1", "--seeds", "0", "--workdir", str(out / "table1_together"), "--data", data,
      "--vmap-runs", "on", "--no-report", "--report-dir", str(out / "table1_together" / "reports"),
      *together, "--set", "train.progress=false")))
  return sections + [apart(row) for row in rows[1:]]


def collect(out: pathlib.Path, status: dict[str, dict[str, Any]]) -> dict[str, Any]:
  """Every section's figures, read from the files it wrote."""
  results: dict[str, Any] = {"status": status}
  for name in ("schedule", "range_test", "throughput"):
    results[name] = _read_json(out / f"{name}.json")
  results["trainer"] = {name: _run_row(out / "trainer" / name) for name in status if name.startswith("trainer_")}
  results["table1"] = {row: _run_row(out / "table1" / row.replace(":", "_")) for row in TABLE1_ROWS if row in status}
  if "table1_together" in status:
    results["table1_together"] = {row: _run_row(rundir.run_dir(out / "table1_together", row, 0))
                                  for row in TABLE1_ROWS}
  return results


def _fmt(value, spec=".3f", suffix="") -> str:
  return "-" if value is None else f"{value:{spec}}{suffix}"


def summary_markdown(results: dict[str, Any], *, header: str) -> str:
  """The measures beside the targets, one table; "-" where a section has not produced a figure."""
  lines = [header, "", "| measure | ours | target |", "|---|---|---|"]
  sched = results.get("schedule") or {}
  lines.append(f"| schedule overhead: triangular2 / constant step time | {_fmt(sched.get('ratio'))} | "
               f"{TARGETS['schedule_ratio']} |")
  models = (results.get("range_test") or {}).get("models", {})
  for name, key in (("mlp", "range_test_mlp"), ("convnet", "range_test_convnet")):
    for length in models.get(name, {}).get("lengths", []):
      lines.append(f"| range test {name}, {length['steps']:,} steps: loop / sweep, end to end (steady) | "
                   f"{length['loop_over_sweep_end_to_end']:.2f}x ({length['loop_over_sweep_steady']:.2f}x) | "
                   f"{TARGETS[key]} |")
    seeds = models.get(name, {}).get("seeds")
    if seeds:
      lines.append(f"| range test {name}: K = {seeds['k']} seeds together / one seed (steady) | "
                   f"{seeds['together_over_one_steady']:.2f}x | {TARGETS['range_test_seeds']} |")
  for run in (results.get("throughput") or {}).get("runs", []):
    lines.append(f"| trainer step {run['model']}, batch {run['batch']}: images/s | {run['images_per_sec']:,.0f} | - |")
  trainer = results.get("trainer", {})
  for name, r in trainer.items():
    model, n = name.removeprefix("trainer_").rsplit("_", 1)
    one = trainer.get(f"trainer_{model}_1", {}).get("images_per_sec")
    gain = f" ({r['images_per_sec'] / one:.2f}x one)" if n != "1" and one and r.get("images_per_sec") else ""
    lines.append(f"| trainer {model}, batch {r.get('batch_size')}, {n} step{'s' if n != '1' else ''} per call: "
                 f"images/s | {_fmt(r.get('images_per_sec'), ',.0f')}{gain} | - |")
  total = 0.0
  for row, r in results.get("table1", {}).items():
    steps, seconds = r.get("steps_done", 0), r.get("training_s")
    total += seconds or 0.0
    target = TARGETS["table1_triangular2"] if row == "table1_triangular2" else "-"
    lines.append(f"| `{row}`: {steps:,} iterations, training seconds (compilation and evaluation excluded); "
                 f"final test accuracy | {_fmt(seconds, '.1f', ' s')}; {_fmt(r.get('final_test_accuracy'), '.4f')} | "
                 f"{target} |")
  if results.get("table1"):
    lines.append(f"| Table 1 rows above, each trained apart: training seconds summed | {total:.1f} s | "
                 f"{TARGETS['table1_all']} |")
  together = results.get("table1_together")
  if together:
    # Every run of the program logs the program's throughput; its training time is its longest run's.
    seconds = max((r.get("training_s") or 0.0 for r in together.values()), default=0.0)
    finals = ", ".join(f"{row.removeprefix('table1_')} {_fmt(r.get('final_test_accuracy'), '.4f')} "
                       f"({r.get('steps_done', 0):,} it.)" for row, r in together.items())
    lines.append(f"| Table 1, all rows as one vmapped program: training seconds; final test accuracies | "
                 f"{seconds:.1f} s; {finals} | {TARGETS['table1_all']} |")
  lines += ["", "Sections: " + "; ".join(f"{k} {v['status']} ({v['seconds']:.0f} s)"
                                          for k, v in results["status"].items()), ""]
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(prog="python -m experiments.benchmarks.accelerator",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("--data", help="CIFAR-10: an image-folder archive/directory, or a tfds name")
  parser.add_argument("--out", required=True, type=pathlib.Path, help="where results and logs go")
  parser.add_argument("--budget-s", type=float, default=480.0, help="seconds for everything (default 480)")
  parser.add_argument("--smoke", action="store_true", help="tiny sizes, on any backend, in a few minutes")
  args = parser.parse_args(argv)
  out = args.out
  out.mkdir(parents=True, exist_ok=True)
  budget = Budget(args.budget_s)
  env = dict(os.environ)
  data = args.data
  if args.smoke:
    data = data or str(_smoke_data(out / "smoke_data"))
    env.setdefault("CLR_OPTAX_CACHE", str(out / "cache"))
  elif not data:
    parser.error("--data is required (unless --smoke)")

  import jax  # pylint: disable=g-import-not-at-top
  header = (f"# Accelerator benchmark{' (smoke run: tiny sizes, numbers meaningless)' if args.smoke else ''}\n\n"
            f"Device: {jax.devices()[0].device_kind} ({jax.default_backend()}, {jax.device_count()} devices); "
            f"JAX {jax.__version__}; host {platform.machine()}, {os.cpu_count()} CPUs; budget {args.budget_s:.0f} s; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")
  status: dict[str, dict[str, Any]] = {}
  results: dict[str, Any] = {}
  for name, cmd in plan(data=data, out=out, smoke=args.smoke):
    print(f"[accelerator] {name}: {budget.left():.0f} s left", file=sys.stderr, flush=True)
    status[name] = run_section(name, cmd, out=out, limit_s=budget.left(), env=env)
    results = collect(out, status)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "summary.md").write_text(summary_markdown(results, header=header))
  print((out / "summary.md").read_text())
  return results


if __name__ == "__main__":
  cli.run(main)
