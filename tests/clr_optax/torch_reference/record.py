"""Records PyTorch's CyclicLR, OneCycleLR and CosineAnnealingWarmRestarts values as a reference for clr_optax's
tests.

Run it with any Python that has torch (it needs nothing else; the tests only read its JSON output):

  python tests/clr_optax/torch_reference/record.py

It writes ``torch_schedules.json`` next to this file (atomically). Commit that file.

Convention. Step ``t`` counts from 0, as optax passes it to a schedule: ``lr[t]`` (and ``momentum[t]``)
is the value the optimizer uses for its ``t``-th update, read from the optimizer's param group *before*
``scheduler.step()`` advances to ``t + 1``. A PyTorch scheduler already steps once in its constructor
(``LRScheduler._initial_step``), so its ``last_epoch`` is ``t`` when the value is read, and ``lr[0]`` is
``get_lr()`` at ``last_epoch == 0``.

OneCycleLR is recorded for ``t = 0 .. total_steps - 1``, the steps of a training run: ``get_lr`` raises
beyond ``total_steps`` and at ``total_steps`` extrapolates its last phase past ``pct = 1``.

Cases with an explicit ``steps`` list (large step numbers) are read by setting ``last_epoch = t - 1`` and
calling ``scheduler.step()`` once, which evaluates torch's own ``CyclicLR.get_lr`` at ``last_epoch == t``.

CosineAnnealingWarmRestarts keeps its position in the cycle (``T_cur``, ``T_i``) in the scheduler, so there
the state ``step()`` would have reached at ``t - 1`` is set too, computed by counting cycles in Python
integers, before the one ``scheduler.step()`` (which does the restart, if any, itself); the state it reaches
is asserted to be that of ``t``. Its ``step(epoch)`` form is not used: it takes a float logarithm and misses
restarts (with ``T_0=10, T_mult=3`` at epochs 1210, 295240, 7971610, ...).

A custom ``scale_fn`` is stored as a formula string in ``x``; this script and the test both evaluate it
with the same names (``exp``, ``cos``, ``pi``), here with ``math`` and there with ``jax.numpy``.
"""

import json
import math
import os
import pathlib
import tempfile

import torch

OUTPUT = pathlib.Path(__file__).with_name("torch_schedules.json")

# The paper's CIFAR-10 bounds (Smith 2017, Section 4.1.1).
BASE_LR, MAX_LR = 0.001, 0.006
MOMENTUM = {"cycle_momentum": True, "base_momentum": 0.8, "max_momentum": 0.9}
NO_MOMENTUM = {"cycle_momentum": False}

CYCLIC_CASES = [
  # name, CyclicLR kwargs (the scale_fn entry is a formula string), number of steps or explicit steps
  ("triangular", dict(step_size_up=20, mode="triangular", **NO_MOMENTUM), 130),
  ("triangular_asym", dict(step_size_up=15, step_size_down=25, mode="triangular", **NO_MOMENTUM), 130),
  ("triangular_momentum", dict(step_size_up=20, step_size_down=30, mode="triangular", **MOMENTUM), 160),
  ("triangular2", dict(step_size_up=10, mode="triangular2", **NO_MOMENTUM), 130),
  ("triangular2_asym_momentum", dict(step_size_up=7, step_size_down=13, mode="triangular2", **MOMENTUM), 130),
  ("exp_range_0.99", dict(step_size_up=20, mode="exp_range", gamma=0.99, **NO_MOMENTUM), 130),
  ("exp_range_0.9995_asym_momentum",
   dict(step_size_up=100, step_size_down=150, mode="exp_range", gamma=0.9995, **MOMENTUM), 760),
  ("custom_cycle",
   dict(step_size_up=10, step_size_down=15, scale_fn="1/(1+0.5*(x-1))", scale_mode="cycle", **NO_MOMENTUM), 130),
  ("custom_cycle_momentum",
   dict(step_size_up=10, scale_fn="1/(1+0.5*(x-1))", scale_mode="cycle", **MOMENTUM), 90),
  ("custom_iterations",
   dict(step_size_up=12, step_size_down=8, scale_fn="1/(1+x/50)", scale_mode="iterations", **NO_MOMENTUM), 130),
  ("custom_iterations_momentum",
   dict(step_size_up=10, scale_fn="0.5*(1+cos(pi*x/200))", scale_mode="iterations", **MOMENTUM), 200),
  # Large steps: the library reduces t modulo the cycle in integers; torch computes in float64.
  ("triangular_large_steps", dict(step_size_up=2000, step_size_down=3000, mode="triangular", **MOMENTUM),
   [0, 1, 1999, 2000, 2001, 4999, 5000, 2**24 - 1, 2**24, 2**24 + 1, 10**8, 10**8 + 1, 10**8 + 2500,
    10**9 + 1234, 2**31 - 4001, 2**31 - 2, 2**31 - 1]),
  # Cycles 12 (t = 66..71; amplitude / 2**11) and 1000 (t = 5994..5999; torch's 2.0 ** (cycle - 1)
  # overflows from cycle 1025 on, so it cannot be asked further).
  ("triangular2_late_cycles", dict(step_size_up=3, mode="triangular2", **NO_MOMENTUM),
   [65, 66, 67, 68, 69, 70, 71, 72, 5994, 5995, 5996, 5997, 5998, 5999, 6000]),
]

ONE_CYCLE_CASES = [
  # name, OneCycleLR kwargs (momentum is always cycled, with torch's defaults 0.85-0.95 unless given)
  ("cos_defaults", dict(max_lr=0.1, total_steps=100)),
  ("linear_95_0.3", dict(max_lr=0.1, total_steps=95, pct_start=0.3, anneal_strategy="linear")),
  ("cos_95_0.3_three_phase", dict(max_lr=0.1, total_steps=95, pct_start=0.3, three_phase=True)),
  ("linear_95_0.3_three_phase",
   dict(max_lr=0.1, total_steps=95, pct_start=0.3, anneal_strategy="linear", three_phase=True)),
  ("cos_1000_0.25", dict(max_lr=1.0, total_steps=1000, pct_start=0.25, div_factor=10.0)),
  ("linear_1000_0.25_three_phase",
   dict(max_lr=1.0, total_steps=1000, pct_start=0.25, anneal_strategy="linear", three_phase=True,
        base_momentum=0.8, max_momentum=0.9)),
  ("cos_37_0.4", dict(max_lr=0.5, total_steps=37, pct_start=0.4, final_div_factor=100.0)),
  ("linear_10_0.45_three_phase",
   dict(max_lr=0.5, total_steps=10, pct_start=0.45, anneal_strategy="linear", three_phase=True)),
]
# The published one-cycle recipe (Smith & Topin 2017, ResNet-56 on CIFAR-10): 41 epochs 0.08 -> 0.8,
# 41 epochs back to 0.08, 13 epochs annihilating to 0.008, with k iterations per epoch.
for k in (1, 2, 4):
  ONE_CYCLE_CASES.append((f"recipe_k{k}", dict(
    max_lr=0.8, total_steps=95 * k, pct_start=41 / 95, div_factor=10.0, final_div_factor=10.0,
    anneal_strategy="linear", three_phase=True)))

SGDR_CASES = [
  # name, CosineAnnealingWarmRestarts kwargs plus the optimizer's initial lr (the peak), number of steps or
  # explicit steps
  ("t0_10", dict(lr=0.1, T_0=10), 130),
  ("t0_10_eta_min", dict(lr=0.006, T_0=10, eta_min=0.001), 130),
  ("t0_1_mult_2", dict(lr=0.1, T_0=1, T_mult=2), 130),
  ("t0_5_mult_2", dict(lr=0.1, T_0=5, T_mult=2), 160),
  ("t0_3_mult_3_eta_min", dict(lr=0.006, T_0=3, T_mult=3, eta_min=0.001), 130),
  ("t0_7_mult_4_eta_min", dict(lr=1.0, T_0=7, T_mult=4, eta_min=0.01), 150),
  # Large steps: restarts, the steps around them and the end of the int32 range.
  ("t0_3000_large_steps", dict(lr=0.1, T_0=3000, eta_min=0.001),
   [0, 1, 2999, 3000, 3001, 2**24 - 1, 2**24, 2**24 + 1, 10**8 - 1, 10**8, 10**8 + 1, 2**31 - 2648,
    2**31 - 2647, 2**31 - 2, 2**31 - 1]),
  # Restarts at 2000 * (2**n - 1); the last one below 2**31 is n = 20, at 2,097,150,000.
  ("t0_2000_mult_2_large_steps", dict(lr=0.006, T_0=2000, T_mult=2, eta_min=0.001),
   [0, 1999, 2000, 2001, 5999, 6000, 8_189_999, 8_190_000, 8_190_001, 10**8 + 1, 2_097_149_999,
    2_097_150_000, 2_097_150_001, 2**31 - 2, 2**31 - 1]),
  # Restarts at 2**n - 1: 2**31 - 1 is one, and 2**31 - 2 the last step of a cycle of 2**30.
  ("t0_1_mult_2_large_steps", dict(lr=0.1, T_0=1, T_mult=2),
   [0, 1, 2, 3, 2**24 - 2, 2**24 - 1, 2**24, 2**30 - 2, 2**30 - 1, 2**30, 2**31 - 3, 2**31 - 2, 2**31 - 1]),
  # Restarts at 5 * (3**n - 1), where step(epoch) would miss them (n = 5, 10, 13); from 1,937,102,440 on
  # the cycle is 10 * 3**18 = 3,874,204,890 steps long, more than an int32 holds.
  ("t0_10_mult_3_large_steps", dict(lr=0.1, T_0=10, T_mult=3, eta_min=0.0001),
   [0, 1209, 1210, 1211, 295_239, 295_240, 295_241, 7_971_609, 7_971_610, 7_971_611, 1_937_102_439,
    1_937_102_440, 1_937_102_441, 2**31 - 1]),
]

FORMULA_NAMES = {"exp": math.exp, "cos": math.cos, "pi": math.pi}


def scale_fn_from_formula(formula: str):
  """The Python function of ``x`` that a formula string names."""
  code = compile(formula, "<scale_fn>", "eval")
  return lambda x: eval(code, {"__builtins__": {}}, {**FORMULA_NAMES, "x": x})


def make_optimizer(lr: float = 0.0) -> torch.optim.SGD:
  """SGD on one dummy parameter; momentum is in its defaults so schedulers may cycle it."""
  return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


def train_step(optimizer: torch.optim.SGD) -> None:
  """One optimizer update with a zero gradient, so the scheduler sees the normal step order."""
  for group in optimizer.param_groups:
    for p in group["params"]:
      p.grad = torch.zeros_like(p)
  optimizer.step()


def read(optimizer: torch.optim.SGD, cycle_momentum: bool) -> tuple[float, float | None]:
  group = optimizer.param_groups[0]
  return float(group["lr"]), float(group["momentum"]) if cycle_momentum else None


def record_consecutive(optimizer, scheduler, num_steps: int, cycle_momentum: bool) -> dict:
  lrs, momenta = [], []
  for _ in range(num_steps):
    lr, momentum = read(optimizer, cycle_momentum)  # the values for step t = scheduler.last_epoch
    lrs.append(lr)
    momenta.append(momentum)
    train_step(optimizer)
    scheduler.step()
  return {"lr": lrs, "momentum": momenta} if cycle_momentum else {"lr": lrs}


def record_at(optimizer, scheduler, steps: list[int], cycle_momentum: bool, state_at=None) -> dict:
  """The values at explicit steps. ``state_at(t)``, where given, is the scheduler's state besides
  ``last_epoch`` after ``t`` consecutive steps (a dict of attributes): it is set for ``t - 1`` before the
  step and checked for ``t`` after it."""
  lrs, momenta = [], []
  for t in steps:
    train_step(optimizer)
    scheduler.last_epoch = t - 1
    if state_at is not None and t >= 1:
      for attribute, value in state_at(t - 1).items():
        setattr(scheduler, attribute, value)
    scheduler.step()
    assert scheduler.last_epoch == t
    if state_at is not None:
      assert all(getattr(scheduler, a) == v for a, v in state_at(t).items()), (t, state_at(t))
    lr, momentum = read(optimizer, cycle_momentum)
    lrs.append(lr)
    momenta.append(momentum)
  return {"lr": lrs, "momentum": momenta} if cycle_momentum else {"lr": lrs}


def cyclic_case(name: str, kwargs: dict, steps) -> dict:
  kwargs = dict(base_lr=BASE_LR, max_lr=MAX_LR, **kwargs)
  torch_kwargs = dict(kwargs)
  if "scale_fn" in kwargs:
    torch_kwargs["scale_fn"] = scale_fn_from_formula(kwargs["scale_fn"])
  optimizer = make_optimizer()
  scheduler = torch.optim.lr_scheduler.CyclicLR(optimizer, **torch_kwargs)
  case = {"name": name, "scheduler": "CyclicLR", "kwargs": kwargs}
  if isinstance(steps, int):
    case["num_steps"] = steps
    case.update(record_consecutive(optimizer, scheduler, steps, kwargs["cycle_momentum"]))
  else:
    case["steps"] = steps
    case.update(record_at(optimizer, scheduler, steps, kwargs["cycle_momentum"]))
  return case


def one_cycle_case(name: str, kwargs: dict) -> dict:
  optimizer = make_optimizer()
  scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, **kwargs)
  case = {"name": name, "scheduler": "OneCycleLR", "kwargs": kwargs, "num_steps": kwargs["total_steps"]}
  case.update(record_consecutive(optimizer, scheduler, kwargs["total_steps"], cycle_momentum=True))
  return case


def sgdr_state(t: int, t_0: int, t_mult: int) -> tuple[int, int]:
  """``(T_cur, T_i)`` of CosineAnnealingWarmRestarts after ``t`` calls of ``step()``, in Python integers."""
  if t_mult == 1:
    return t % t_0, t_0
  start, length = 0, t_0
  while t >= start + length:
    start, length = start + length, length * t_mult
  return t - start, length


def sgdr_case(name: str, kwargs: dict, steps) -> dict:
  torch_kwargs = {k: v for k, v in kwargs.items() if k != "lr"}
  t_0, t_mult = kwargs["T_0"], kwargs.get("T_mult", 1)
  optimizer = make_optimizer(kwargs["lr"])
  scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, **torch_kwargs)
  case = {"name": name, "scheduler": "CosineAnnealingWarmRestarts", "kwargs": kwargs}
  if isinstance(steps, int):
    case["num_steps"] = steps
    case.update(record_consecutive(optimizer, scheduler, steps, cycle_momentum=False))
    return case

  def state_at(t):
    t_cur, t_i = sgdr_state(t, t_0, t_mult)
    return {"T_cur": t_cur, "T_i": t_i}

  case["steps"] = steps
  case.update(record_at(optimizer, scheduler, steps, False, state_at))
  return case


def main() -> None:
  cases = ([cyclic_case(*c) for c in CYCLIC_CASES] + [one_cycle_case(*c) for c in ONE_CYCLE_CASES]
           + [sgdr_case(*c) for c in SGDR_CASES])
  data = {
    "torch_version": torch.__version__,
    "generated_by": "tests/clr_optax/torch_reference/record.py",
    "convention": (
      "lr[i] (momentum[i]) is the value the optimizer uses at step t = i (or t = steps[i]), t counting "
      "from 0 as optax passes it: read from param_groups[0] before scheduler.step(). OneCycleLR runs "
      "t = 0 .. total_steps - 1. A string scale_fn is a formula in x using exp, cos, pi. "
      "CosineAnnealingWarmRestarts kwargs hold the optimizer's initial lr (the peak) as lr."),
    "cases": cases,
  }
  text = json.dumps(data, separators=(",", ":"))
  # Write atomically: a crash leaves the previous file intact.
  fd, tmp = tempfile.mkstemp(dir=OUTPUT.parent, suffix=".tmp")
  with os.fdopen(fd, "w") as f:
    f.write(text + "\n")
  os.chmod(tmp, 0o644)  # mkstemp creates the file readable by its owner only
  os.replace(tmp, OUTPUT)
  print(f"wrote {len(cases)} cases ({len(text) / 1e3:.0f} kB) to {OUTPUT}")


if __name__ == "__main__":
  main()
