"""Is the port faithful? The JAX trainer against an independent PyTorch implementation of Caffe's cifar10_full.

  python -m experiments.benchmarks.port_check --data path/to/cifar10-jpeg.tar.xz \
      --torch-python ../torchenv/bin/python --seeds 0,1,2

trains Caffe's cifar10_full with Caffe's SGD solver in both frameworks, ``fixed`` 0.001 and ``triangular2``
0.001-0.006 with step size 2,000, for 10,000 iterations on the whole training set, testing on all test
images every 1,000 iterations; seed by seed, each seed's four runs one after the other. The JAX side is
`experiments.train` (configs ``table1_fixed`` without its step-downs, which come after 60,000 iterations,
and ``table1_triangular2``); the PyTorch side is ``torch_caffe_cifar10.py``, written from Caffe's prototxt
and solver rather than from the Flax code, run by the Python given as ``--torch-python`` (torch is not a
dependency of this project).

Finished runs are kept in ``experiments/reports/port_check/runs/<framework>_<policy>/seed<k>/`` (summary,
metrics and config: small files to commit) and count as finished on the next call, on any machine; an
unfinished run resumes from its work directory's checkpoint. After every run the report
``experiments/reports/port_check.md`` is rewritten from what has finished (``--report-only`` only writes it),
with the curves beside each other (``port_check/curves.png``, ``port_check/curves.csv``) and the issue's
measures: fixed averaged over the evaluations at 8,000-10,000 iterations and all seeds; triangular2 at the
ends of its cycles (4,000 and 8,000, where the rate is back at 0.001); and, at every evaluation, the gap
between the frameworks' seed means against the spread of the seeds.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
from typing import Sequence

import numpy as np

from experiments import cli
from experiments import configs as config_lib
from experiments import data as data_lib
from experiments import report
from experiments import reproduce
from experiments import rundir
from experiments import setup

NAME = "port_check"
FRAMEWORKS = ("jax", "pytorch")
POLICIES = ("fixed", "triangular2")
TORCH_SCRIPT = pathlib.Path(__file__).with_name("torch_caffe_cifar10.py")
# The measures: fixed over its last evaluations, triangular2 at its cycle ends.
WINDOWS = {"fixed": (8000, 9000, 10000), "triangular2": (4000, 8000)}


def jax_config(policy: str, seed: int, data: str, steps: int, eval_every: int) -> config_lib.Config:
  """The JAX run: the Table 1 config of `policy`, `steps` long, no step-downs (they start at 60,000)."""
  return config_lib.override(config_lib.get_config(f"table1_{policy}"), {
      "name": f"jax_{policy}", "data.dataset": data, "train.seed": seed, "train.num_steps": str(steps),
      "train.eval_every": str(eval_every), "train.checkpoint_every": str(eval_every), "schedule.drop_at": (),
      "train.progress": False})


def torch_args(policy: str, seed: int, steps: int, eval_every: int) -> dict[str, str]:
  """The PyTorch run's flags (the same policy, bounds and step size as `jax_config`)."""
  sched = config_lib.get_config(f"table1_{policy}").schedule
  return {"--policy": policy, "--seed": str(seed), "--steps": str(steps), "--eval-every": str(eval_every),
          "--base-lr": repr(sched.base_lr), "--max-lr": repr(sched.max_lr),
          "--step-size": str(config_lib.resolve_duration(sched.step_size, steps_per_epoch=500))}


def _torch_finished(directory: pathlib.Path, args: dict[str, str]) -> bool:
  """Whether `directory` holds a finished PyTorch run made with `args` (a different one raises)."""
  if not (directory / rundir.SUMMARY).exists():
    return False
  saved = json.loads((directory / "config.json").read_text())
  differ = {k: (saved.get(k.lstrip("-").replace("-", "_")), v) for k, v in args.items()
            if str(saved.get(k.lstrip("-").replace("-", "_"))) != v}
  if differ:
    raise ValueError(f"{directory} holds a PyTorch run with other settings ({differ}); delete it or use "
                     "another --workdir")
  return True


def run_all(*, data: str, torch_python: str | None, seeds: Sequence[int], policies: Sequence[str],
            frameworks: Sequence[str], steps: int, eval_every: int, workdir: pathlib.Path,
            report_dir: pathlib.Path | None) -> None:
  """Runs every unfinished (seed, policy, framework), seed-major, rewriting the report after each."""
  dataset = npz = None
  for seed in seeds:
    for policy in policies:
      for framework in frameworks:
        name = f"{framework}_{policy}"
        directory = rundir.run_dir(workdir, name, seed)
        kept = reproduce.results_dir(report_dir, NAME, name, seed)
        print(f"port check: {name} seed {seed} -> {directory}", file=sys.stderr, flush=True)
        if framework == "jax":
          config = jax_config(policy, seed, data, steps, eval_every)
          if reproduce.finished_dir(config, directory, kept) is None and dataset is None:
            dataset = setup.load_data(config)[0]
          reproduce.run_one(config, directory, dataset=dataset, archive=kept)
        else:
          args = torch_args(policy, seed, steps, eval_every)
          if not _torch_finished(kept, args):
            if not _torch_finished(directory, args):
              if torch_python is None:
                raise ValueError("the PyTorch runs need --torch-python (a Python that has torch)")
              npz = npz or _export_npz(data, workdir)
              cmd = [torch_python, str(TORCH_SCRIPT), "--data", str(npz), "--workdir", str(directory)]
              subprocess.run(cmd + [x for kv in args.items() for x in kv], check=True)
            reproduce.archive_results(directory, kept)
        write_report(report_dir=report_dir, seeds=seeds, steps=steps, eval_every=eval_every)


def _export_npz(data: str, workdir: pathlib.Path) -> pathlib.Path:
  """The dataset as the uint8 arrays the PyTorch script reads (decoded by the project's own loader)."""
  path = workdir / "data.npz"
  if not path.exists():
    ds = data_lib.load(data)
    workdir.mkdir(parents=True, exist_ok=True)
    with rundir.atomic_path(path) as tmp:
      np.savez(tmp, train_images=ds.train_images, train_labels=ds.train_labels, test_images=ds.test_images,
               test_labels=ds.test_labels)
  return path


def load_curves(report_dir: pathlib.Path | None, seeds: Sequence[int]) -> dict[str, dict[int, dict[int, float]]]:
  """``{"<framework>_<policy>": {seed: {step: test accuracy}}}`` of the finished runs."""
  out: dict[str, dict[int, dict[int, float]]] = {}
  for framework in FRAMEWORKS:
    for policy in POLICIES:
      for seed in seeds:
        directory = reproduce.results_dir(report_dir, NAME, f"{framework}_{policy}", seed)
        if (directory / rundir.SUMMARY).exists():
          test = rundir.read_metrics(directory)["test"]
          out.setdefault(f"{framework}_{policy}", {})[seed] = {int(r["step"]): float(r["accuracy"]) for r in test}
  return out


def compare(curves: dict[str, dict[int, dict[int, float]]], policy: str) -> dict[str, object] | None:
  """The issue's measures for `policy`, over the seeds both frameworks finished (None: none yet).

  Returns:
    ``window``: mean accuracy of each framework over the `WINDOWS` evaluations (``steps``: those the runs
    have, else their last) and the common seeds, and their difference (JAX - PyTorch); ``per_step``: at every evaluation, each framework's seed mean, the gap,
    and the seed spread (the larger of the two frameworks' max - min over seeds); ``seeds``.
  """
  jax_runs, torch_runs = curves.get(f"jax_{policy}", {}), curves.get(f"pytorch_{policy}", {})
  seeds = sorted(set(jax_runs) & set(torch_runs))
  if not seeds:
    return None
  common = sorted(set.intersection(*(set(r[s]) for r in (jax_runs, torch_runs) for s in seeds)))
  at = [t for t in WINDOWS[policy] if t in common]
  if not at:  # a run shorter than the 10,000 iterations (a smoke run): its last evaluation
    at = common[-1:]
  window = {fw: float(np.mean([runs[s][t] for s in seeds for t in at]))
            for fw, runs in (("jax", jax_runs), ("pytorch", torch_runs))}
  window["steps"] = at
  per_step = []
  for t in common:
    a = np.array([jax_runs[s][t] for s in seeds])
    b = np.array([torch_runs[s][t] for s in seeds])
    spread = max(np.ptp(a), np.ptp(b)) if len(seeds) > 1 else float("nan")
    per_step.append({"step": t, "jax": float(a.mean()), "pytorch": float(b.mean()),
                     "gap": float(a.mean() - b.mean()), "spread": float(spread)})
  return {"seeds": seeds, "window": {**window, "difference": window["jax"] - window["pytorch"]},
          "per_step": per_step}


def _plot(curves, path: pathlib.Path) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
  for ax, policy in zip(axes, POLICIES):
    for framework, color in zip(FRAMEWORKS, ("tab:blue", "tab:orange")):
      runs = curves.get(f"{framework}_{policy}", {})
      for i, (seed, run) in enumerate(sorted(runs.items())):
        steps = sorted(run)
        ax.plot(steps, [100 * run[t] for t in steps], color=color, alpha=0.8, lw=1,
                ls=("-", "--", ":", "-.")[i % 4], label=f"{'JAX' if framework == 'jax' else 'PyTorch'} seed {seed}")
    for t in WINDOWS[policy]:
      ax.axvline(t, color="grey", lw=0.5, alpha=0.5)
    ax.set_title(f"{policy} ({'0.001' if policy == 'fixed' else '0.001-0.006, step size 2,000'})")
    ax.set_xlabel("iteration")
    ax.grid(alpha=0.3)
    if any(not line.get_label().startswith("_") for line in ax.get_lines()):
      ax.legend(fontsize=8)
    else:  # no finished run of this policy yet
      ax.text(0.5, 0.5, "no finished run yet", transform=ax.transAxes, ha="center", color="grey")
  axes[0].set_ylabel("test accuracy (%)")
  fig.suptitle("cifar10_full with Caffe's solver: JAX (this project) vs PyTorch (written from Caffe's definitions)")
  fig.tight_layout()
  with rundir.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=110)
  plt.close(fig)


def _per_step_lines(verdicts) -> list[str]:
  """The report's section on every evaluation: each framework's seed mean, the gap and the seeds' spread."""
  lines = ["", "## Every evaluation: the gap between the frameworks' seed means against the seeds' spread", "",
           "The spread at an evaluation is the larger of the two frameworks' (max - min) over their seeds; the "
           "issue's second target is that no evaluation's gap exceeds it.", ""]
  for policy, c, over in verdicts:
    lines += [f"**{policy}** (seeds {', '.join(map(str, c['seeds']))}): "
              + ("a spread needs two seeds of each framework." if len(c["seeds"]) < 2 else
                 f"{len(over)} of {len(c['per_step'])} evaluations have a gap above the spread"
                 + (" (iterations " + ", ".join(f"{p['step']:,}" for p in over) + ")." if over else ".")), "",
              "| iteration | JAX % | PyTorch % | gap (points) | seed spread (points) |", "|---|---|---|---|---|"]
    lines += [f"| {p['step']:,} | {100 * p['jax']:.2f} | {100 * p['pytorch']:.2f} | {100 * p['gap']:+.2f} | "
              + ("-" if p["spread"] != p["spread"] else f"{100 * p['spread']:.2f}") + " |" for p in c["per_step"]]
    lines.append("")
  return lines


def write_report(*, report_dir: pathlib.Path | None, seeds: Sequence[int], steps: int,
                 eval_every: int) -> pathlib.Path:
  """Writes ``port_check.md`` and ``port_check/{curves.png,curves.csv}`` from the finished runs."""
  root = pathlib.Path(report_dir) if report_dir else reproduce.REPORTS
  curves = load_curves(report_dir, seeds)
  out_dir = root / NAME
  out_dir.mkdir(parents=True, exist_ok=True)
  rows = ["framework,policy,seed,step,test_accuracy"]
  for key, runs in sorted(curves.items()):
    framework, policy = key.split("_", 1)
    rows += [f"{framework},{policy},{s},{t},{a:.4f}" for s, run in sorted(runs.items()) for t, a in sorted(run.items())]
  rundir.write_text(out_dir / "curves.csv", "\n".join(rows) + "\n")
  if curves:
    _plot(curves, out_dir / "curves.png")

  lines = ["# Port check: the JAX trainer against PyTorch, Caffe's cifar10_full and solver", "",
           f"{steps:,} iterations, batch 100, the whole training set, test accuracy on all test images every "
           f"{eval_every:,} iterations. Made by `python -m experiments.benchmarks.port_check` (its docstring "
           "says how each side is built); the PyTorch side is written from Caffe's prototxt and solver, not "
           "from the Flax code.", ""]
  finished = {k: sorted(v) for k, v in curves.items()}
  wanted = [f"{fw}_{p}" for p in POLICIES for fw in FRAMEWORKS]
  missing = [f"`{k}` seed {s}" for k in wanted for s in seeds if s not in finished.get(k, [])]
  if missing:
    lines += [f"**Incomplete**: not finished yet: {', '.join(missing)}.", ""]
  lines += ["| policy | measure | seeds | JAX % | PyTorch % | JAX - PyTorch (points) | target |",
            "|---|---|---|---|---|---|---|"]
  verdicts = []
  for policy in POLICIES:
    c = compare(curves, policy)
    measure = ("mean of the evaluations at 8,000, 9,000, 10,000" if policy == "fixed"
               else "mean at the cycle ends 4,000 and 8,000 (LR back at 0.001)")
    if c is not None and c["window"]["steps"] != list(WINDOWS[policy]):
      measure = "mean at iteration " + ", ".join(f"{t:,}" for t in c["window"]["steps"])
    if c is None:
      lines.append(f"| {policy} | {measure} | none yet | | | | within 1 point |")
      continue
    w = c["window"]
    ok = abs(w["difference"]) <= 0.01
    lines.append(f"| {policy} | {measure} | {', '.join(map(str, c['seeds']))} | {100 * w['jax']:.2f} | "
                 f"{100 * w['pytorch']:.2f} | {100 * w['difference']:+.2f} | {'met' if ok else 'missed'} |")
    over = [p for p in c["per_step"] if p["spread"] == p["spread"] and abs(p["gap"]) > p["spread"]]
    verdicts.append((policy, c, over))
  lines += _per_step_lines(verdicts)
  lines += ["![test accuracy of both frameworks](port_check/curves.png)", "",
            "Every evaluation: [port_check/curves.csv](port_check/curves.csv); each run's metrics, config and "
            "summary: `port_check/runs/`.", ""]
  speeds = _speeds(report_dir, seeds)
  hw = report.hardware_description()
  lines += ["## Where it ran", "",
            f"- **Hardware this report was written on** (runs kept from earlier sessions may have run on another "
            f"machine of the kind): {hw['cpu']}, {hw['cores']} cores, CPU only; JAX {hw['jax']}."]
  if speeds:
    lines.append("- **Training throughput** (images/s, compilation and evaluation excluded, one run at a time "
                 "on a shared machine): " + "; ".join(f"{k} {v}" for k, v in speeds.items()) + ".")
  lines += ["- **Data**: CIFAR-10 as JPEG re-encodings (`cifar10-jpeg.tar.xz`), decoded once by "
            "`experiments.data`; both frameworks read the same uint8 arrays.", ""]
  path = root / f"{NAME}.md"
  rundir.write_text(path, "\n".join(lines))
  return path


def _speeds(report_dir, seeds) -> dict[str, str]:
  out = {}
  for framework in FRAMEWORKS:
    rates = []
    for policy in POLICIES:
      for seed in seeds:
        f = reproduce.results_dir(report_dir, NAME, f"{framework}_{policy}", seed) / rundir.SUMMARY
        if f.exists():
          rate = json.loads(f.read_text()).get("train_images_per_sec")
          rates += [rate] if rate else []
    if rates:
      out["JAX" if framework == "jax" else "PyTorch"] = f"{min(rates):.0f}-{max(rates):.0f}"
  return out


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(prog="python -m experiments.benchmarks.port_check",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("--data", help="CIFAR-10: an image-folder archive/directory or a tfds name")
  parser.add_argument("--torch-python", help="a Python interpreter that has torch (for the PyTorch runs)")
  parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
  parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated: fixed,triangular2")
  parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated: jax,pytorch")
  parser.add_argument("--steps", type=int, default=10000)
  parser.add_argument("--eval-every", type=int, default=1000)
  parser.add_argument("--workdir", default="workdirs/port_check", type=pathlib.Path)
  parser.add_argument("--report-dir", type=pathlib.Path, help="default experiments/reports")
  parser.add_argument("--report-only", action="store_true", help="write the report of the finished runs")
  args = parser.parse_args(argv)
  seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
  policies = [p for p in args.policies.split(",") if p]
  frameworks = [f for f in args.frameworks.split(",") if f]
  for what, given, allowed in (("--policies", policies, POLICIES), ("--frameworks", frameworks, FRAMEWORKS)):
    if not given or set(given) - set(allowed):
      parser.error(f"{what} takes a comma-separated subset of {','.join(allowed)}, got {given}")
  if args.report_only:
    path = write_report(report_dir=args.report_dir, seeds=seeds, steps=args.steps, eval_every=args.eval_every)
    print(f"report: {path}", file=sys.stderr)
    return
  if not args.data:
    parser.error("--data is required (unless --report-only)")
  run_all(data=args.data, torch_python=args.torch_python, seeds=seeds, policies=policies, frameworks=frameworks,
          steps=args.steps, eval_every=args.eval_every, workdir=args.workdir, report_dir=args.report_dir)


if __name__ == "__main__":
  cli.run(main)
