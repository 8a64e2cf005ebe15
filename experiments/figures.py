"""Figures for the README: every schedule's curve.

  python -m experiments.figures --out experiments/reports/figures
"""

import argparse
import pathlib

import matplotlib.pyplot as plt
import optax

import clr_optax
from experiments import cli


def _panels() -> list[tuple[str, dict, int, bool]]:
  """Each panel's (title, label -> schedule, steps shown, log scale), row by row."""
  step, gamma = 2000, 0.99994
  total = 95 * 98  # ResNet-56, batch 512: 95 epochs of 98 steps
  return [
      ("triangular and triangular2 (section 3.1)", {
          "triangular(0.001, 0.006, 2000)": clr_optax.triangular(0.001, 0.006, step),
          "triangular2(0.001, 0.006, 2000)": clr_optax.triangular2(0.001, 0.006, step),
      }, 24_000, False),
      ("exp_range, gamma = 0.99994, and Caffe's exp (Fig. 10)", {
          "exp_range: Keras/PyTorch form": clr_optax.exp_range(0.001, 0.006, step, gamma),
          "exp_range(scale_bounds=True): the paper's wording": clr_optax.exp_range(
              0.001, 0.006, step, gamma, scale_bounds=True),
          "exponential (Caffe exp)": clr_optax.exponential(0.001, gamma),
      }, 24_000, False),
      ("Baselines of Table 1 (log scale)", {
          "fixed 0.001, /10 at 60k and 65k (optax.piecewise_constant_schedule)": (
              optax.piecewise_constant_schedule(0.001, {60_000: 0.1, 65_000: 0.1})),
          "decay(0.001, 0.006, 2000)": clr_optax.decay(0.001, 0.006, step),
          "exponential(0.001, 0.99994)": clr_optax.exponential(0.001, gamma),
      }, 70_000, True),
      ("Window shapes (section 3.1) and an asymmetric cycle",
       {f"cyclical(window={w!r})": clr_optax.cyclical(0.001, 0.006, step, window=w) for w in clr_optax.WINDOWS}
       | {"triangular, step_size_down=1000": clr_optax.triangular(0.001, 0.006, 3000, step_size_down=1000)},
       8_000, False),
      ("One-cycle (Smith 2018), 95 epochs", {
          "one_cycle (PyTorch defaults, cos)": clr_optax.one_cycle(0.8, total),
          "one_cycle recipe: 0.08-0.8, linear, annihilation": clr_optax.one_cycle(
              0.8, total, pct_start=41 / 95, div_factor=10, final_div_factor=10, anneal="linear", three_phase=True),
          "staircase(one_cycle defaults, steps_per_stair=5 * 98)": clr_optax.staircase(
              clr_optax.one_cycle(0.8, total), 5 * 98),
      }, total, False),
      ("Momentum, cycling opposite to the learning rate", {
          "cyclical_momentum(0.8, 0.9, 2000)": clr_optax.cyclical_momentum(0.8, 0.9, step),
          "one_cycle_momentum(8000)": clr_optax.one_cycle_momentum(8_000),
      }, 8_000, False),
      ("SGDR, cosine with warm restarts (Loshchilov & Hutter 2017)", {
          "sgdr(0.1, t_0=3000)": clr_optax.sgdr(0.1, 3000),
          "sgdr(0.1, t_0=1000, t_mult=2)": clr_optax.sgdr(0.1, 1000, t_mult=2),
          "... min_lr=0.01, cycle_decay=0.6": clr_optax.sgdr(0.1, 1000, t_mult=2, min_lr=0.01, cycle_decay=0.6),
      }, 15_000, False),
      ("Warmup-stable-decay (Hägele et al. 2024), cyclic (WSD-S)",
       {f"wsd(0.1, 10000, warmup=500, decay=2000, shape={s!r})": clr_optax.wsd(
           0.1, 10_000, warmup=500, decay=2000, shape=s) for s in clr_optax.WSD_SHAPES}
       | {"cyclic_wsd(0.1, 4000, warmup=500, decay=800, shape='1-sqrt')": clr_optax.cyclic_wsd(
           0.1, 4000, warmup=500, decay=800, shape="1-sqrt")},
       12_000, False),
  ]


def schedules_figure():
  """Eight panels: the paper's cyclical policies, exp_range's two readings, the baselines, the window
  shapes, one-cycle (and a staircase of it), cyclical momentum, SGDR, and warmup-stable-decay."""
  fig, axes = plt.subplots(4, 2, figsize=(12, 13.5), layout="constrained")
  for ax, (title, curves, steps, log_y) in zip(axes.flat, _panels()):
    clr_optax.plot_schedules(curves, steps, ax=ax, log_y=log_y, title=title)
  for ax in axes.flat:
    ax.set_ylabel("learning rate")
  axes[2, 1].set_ylabel("momentum")
  axes[3, 1].legend(fontsize="small", loc="lower left")
  return fig


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("experiments/reports/figures"))
  args = parser.parse_args()
  args.out.mkdir(parents=True, exist_ok=True)
  path = args.out / "schedules.png"
  schedules_figure().savefig(path, dpi=110)
  print(f"wrote {path}")


if __name__ == "__main__":
  cli.run(main)
