"""clr_optax's schedules against values recorded from PyTorch's CyclicLR, OneCycleLR and
CosineAnnealingWarmRestarts.

The reference is ``torch_reference/torch_schedules.json``, written by ``torch_reference/record.py`` with
torch 2.13 (torch is needed only to re-record). Entry ``i`` is the value PyTorch's optimizer uses for step
``t = i`` (or ``t = steps[i]``), counting from 0 as optax passes the step to a schedule.

Each case is rebuilt with the clr_optax call a PyTorch user would translate it to, then evaluated

* under ``jax.jit(jax.vmap(schedule))`` over all recorded steps, and
* at a few single integer steps (the first, the last, the extremes and the steps around them), eagerly
  and under ``jax.jit``,

in float32 (the default) and in float64 (``jax.enable_x64``). Tolerances: float32 agrees to a relative
1e-6, or 1e-6 of the schedule's peak in absolute terms, which only matters where a cosine anneal
approaches its end and float32's ``1 + cos`` loses digits; float64 to 1e-12 likewise, except from step
2**24 on, where PyTorch's own float64 formula (``1 + t / total_size - cycle``) is the less exact side
(1.2e-10 relative at t = 2**31 - 4001): there 1e-9.
"""

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import clr_optax

REFERENCE = json.loads((pathlib.Path(__file__).parent / "torch_reference" / "torch_schedules.json").read_text())
CASES = REFERENCE["cases"]
TOLERANCE = {"float32": 1e-6, "float64": 1e-12}
LARGE_STEP, LARGE_STEP_FLOAT64_TOLERANCE = 2**24, 1e-9

# The names a recorded scale_fn formula may use, as jnp functions (record.py uses math's).
FORMULA_NAMES = {"exp": jnp.exp, "cos": jnp.cos, "pi": math.pi}


def scale_fn_from_formula(formula: str):
  code = compile(formula, "<scale_fn>", "eval")
  return lambda x: eval(code, {"__builtins__": {}}, {**FORMULA_NAMES, "x": x})


def cyclic_lr_schedules(kwargs: dict):
  """The clr_optax schedules for ``CyclicLR(**kwargs)``: (learning rate, momentum or None)."""
  base_lr, max_lr = kwargs["base_lr"], kwargs["max_lr"]
  step_size, step_size_down = kwargs["step_size_up"], kwargs.get("step_size_down")
  mode = kwargs.get("mode", "triangular")
  if "scale_fn" in kwargs:  # CyclicLR ignores mode when given a scale_fn
    scale_fn = scale_fn_from_formula(kwargs["scale_fn"])
    scale_mode = kwargs.get("scale_mode", "cycle")
    lr = clr_optax.cyclical(
        base_lr, max_lr, step_size, step_size_down=step_size_down, scale_fn=scale_fn, scale_mode=scale_mode)
  elif mode == "triangular":
    scale_fn, scale_mode = None, "cycle"
    lr = clr_optax.triangular(base_lr, max_lr, step_size, step_size_down=step_size_down)
  elif mode == "triangular2":
    scale_fn, scale_mode = (lambda cycle: jnp.exp2(1.0 - cycle)), "cycle"
    lr = clr_optax.triangular2(base_lr, max_lr, step_size, step_size_down=step_size_down)
  elif mode == "exp_range":
    # gamma**t with log(gamma) taken in float64 on the host: float32(0.9995)**760 alone is 4e-5 off.
    log_gamma = math.log(kwargs["gamma"])
    scale_fn, scale_mode = (lambda t: jnp.exp(t * log_gamma)), "iterations"
    lr = clr_optax.exp_range(base_lr, max_lr, step_size, kwargs["gamma"], step_size_down=step_size_down)
  else:
    raise ValueError(f"unknown CyclicLR mode in the reference, got {mode=}")
  if not kwargs["cycle_momentum"]:
    return lr, None
  momentum = clr_optax.cyclical_momentum(
      kwargs["base_momentum"], kwargs["max_momentum"], step_size, step_size_down=step_size_down,
      scale_fn=scale_fn, scale_mode=scale_mode)
  return lr, momentum


def one_cycle_lr_schedules(kwargs: dict):
  """The clr_optax schedules for ``OneCycleLR(**kwargs)``; unrecorded arguments keep both sides' defaults."""
  common = {"anneal": kwargs["anneal_strategy"]} if "anneal_strategy" in kwargs else {}
  common.update({k: kwargs[k] for k in ("pct_start", "three_phase") if k in kwargs})
  lr = clr_optax.one_cycle(
      kwargs["max_lr"], kwargs["total_steps"], **common,
      **{k: kwargs[k] for k in ("div_factor", "final_div_factor") if k in kwargs})
  momentum = clr_optax.one_cycle_momentum(
      kwargs["total_steps"], **common,
      **{k: kwargs[k] for k in ("base_momentum", "max_momentum") if k in kwargs})
  return lr, momentum


def sgdr_schedules(kwargs: dict):
  """The clr_optax schedule for ``CosineAnnealingWarmRestarts(**kwargs)`` on an optimizer with ``lr``."""
  lr = clr_optax.sgdr(kwargs["lr"], kwargs["T_0"], t_mult=kwargs.get("T_mult", 1), min_lr=kwargs.get("eta_min", 0.0))
  return lr, None


def schedules_for(case: dict):
  if case["scheduler"] == "CyclicLR":
    return cyclic_lr_schedules(case["kwargs"])
  if case["scheduler"] == "CosineAnnealingWarmRestarts":
    return sgdr_schedules(case["kwargs"])
  return one_cycle_lr_schedules(case["kwargs"])


def recorded_steps(case: dict) -> np.ndarray:
  return np.asarray(case["steps"]) if "steps" in case else np.arange(case["num_steps"])


def single_step_indices(expected: np.ndarray) -> list[int]:
  """Indices worth checking one at a time: both ends, the extremes and their neighbours."""
  n = len(expected)
  picks = {0, n - 1}
  for i in (int(np.argmax(expected)), int(np.argmin(expected))):
    picks.update({i - 1, i, i + 1})
  return sorted(i for i in picks if 0 <= i < n)


def assert_matches(got, expected: np.ndarray, steps: np.ndarray, dtype: str, what: str):
  got = np.asarray(got, dtype=np.float64)
  tol = np.full(len(steps), TOLERANCE[dtype])
  if dtype == "float64":
    tol[steps >= LARGE_STEP] = LARGE_STEP_FLOAT64_TOLERANCE
  atol = tol * np.max(np.abs(expected))
  bad = ~np.isclose(got, expected, rtol=tol, atol=atol)
  if bad.any():
    rows = "\n".join(
        f"  t={steps[i]}: expected {expected[i]!r}, got {got[i]!r}, rel. error {abs(got[i] / expected[i] - 1):.2e}"
        for i in np.flatnonzero(bad)[:10])
    pytest.fail(f"{what} ({dtype}) differs from PyTorch at {bad.sum()} of {len(got)} steps, "
                f"tolerance rtol={tol.max()}, atol={atol.max():.1e}:\n{rows}")


SERIES = ["lr", "momentum"]


def cases_with_series():
  return [pytest.param(case, series, id=f"{case['name']}-{series}")
          for case in CASES for series in SERIES if series in case]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case, series", cases_with_series())
def test_every_step_matches_pytorch(case, series, dtype):
  steps = recorded_steps(case)
  expected = np.asarray(case[series], dtype=np.float64)
  with jax.enable_x64(dtype == "float64"):
    schedule = schedules_for(case)[SERIES.index(series)]
    got = jax.jit(jax.vmap(schedule))(jnp.asarray(steps))
    assert got.dtype == jnp.dtype(dtype)
    assert_matches(got, expected, steps, dtype, f"{case['name']} {series} (jit of vmap)")


@pytest.mark.parametrize("case, series", cases_with_series())
def test_single_int_steps_match_pytorch(case, series):
  steps = recorded_steps(case)
  expected = np.asarray(case[series], dtype=np.float64)
  schedule = schedules_for(case)[SERIES.index(series)]
  jitted = jax.jit(schedule)
  picks = single_step_indices(expected)
  eager = [schedule(int(steps[i])) for i in picks]
  compiled = [jitted(int(steps[i])) for i in picks]
  assert all(jnp.shape(v) == () for v in eager + compiled)
  assert_matches(eager, expected[picks], steps[picks], "float32", f"{case['name']} {series} (eager, int step)")
  assert_matches(compiled, expected[picks], steps[picks], "float32", f"{case['name']} {series} (jit, int step)")


def test_reference_covers_the_cases_the_library_promises():
  """The JSON was recorded by record.py and still holds the cases these tests are meant to check."""
  assert REFERENCE["torch_version"].startswith("2.")
  modes = {c["kwargs"].get("mode") for c in CASES if c["scheduler"] == "CyclicLR" and "scale_fn" not in c["kwargs"]}
  assert modes == {"triangular", "triangular2", "exp_range"}
  scale_modes = {c["kwargs"]["scale_mode"] for c in CASES if "scale_fn" in c["kwargs"]}
  assert scale_modes == {"cycle", "iterations"}
  one_cycle = [c["kwargs"] for c in CASES if c["scheduler"] == "OneCycleLR"]
  assert {(k.get("anneal_strategy", "cos"), k.get("three_phase", False)) for k in one_cycle} == {
      ("cos", False), ("cos", True), ("linear", False), ("linear", True)}
  sgdr = [c for c in CASES if c["scheduler"] == "CosineAnnealingWarmRestarts"]
  assert {c["kwargs"].get("T_mult", 1) for c in sgdr} >= {1, 2, 3, 4}
  assert any("eta_min" in c["kwargs"] for c in sgdr)
  assert {c["kwargs"].get("T_mult", 1) for c in sgdr if "steps" in c and max(c["steps"]) == 2**31 - 1} >= {1, 2, 3}
  for case in CASES:
    assert len(case["lr"]) == len(recorded_steps(case))
    assert "momentum" not in case or len(case["momentum"]) == len(case["lr"])
