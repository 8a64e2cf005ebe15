"""What the records of `experiments.benchmarks.suggest_quality` say: the ground truth of the grid trainings,
every rule's reading of the kept sweeps, their verdicts and the Markdown table.

Reads records only (no training), so a table is re-rendered without the data or the networks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import clr_optax
from experiments.benchmarks import peer_rules

SWEEP_SEEDS = 100  # the K range tests use seeds 100, 101, ...: never the seeds 0-4 the thresholds were tuned on
GRID_SEEDS = 1000  # the grid's trainings use seeds 1000, 1001, ...
OURS = {"ours: default": "auto", "ours: accuracy": "accuracy", "ours: valley": "valley",
        "ours: steepest": "steepest"}
RULE_NAMES = (*OURS, *peer_rules.RULES)
KINDS = ("triangular", "fixed")
ACCURACY_TOLERANCE = 0.01  # the band: within 1 accuracy point of the best ...
LOSS_TOLERANCE = 0.05      # ... or within 5% of the lowest loss


def key(kind: str, rate: float, seed: int) -> str:
  """The name of one grid training in the records."""
  return f"{kind} {rate:.6g} seed{seed}"


def ground_truth(setup_settings: dict[str, Any], records: dict[str, dict[str, float]], target: str
                 ) -> dict[str, Any]:
  """Per schedule kind: the score per grid rate (mean over seeds), the best rate and its band."""
  grid = setup_settings["grid"]
  seeds = setup_settings["seeds"]
  out = {}
  for kind in KINDS:
    values = []
    for rate in grid:
      got = [records.get(key(kind, rate, GRID_SEEDS + s), {}).get(target, np.nan) for s in range(seeds)]
      values.append(float(np.mean(got)) if all(np.isfinite(got)) and got else float("nan"))
    v = np.asarray(values)
    if not np.isfinite(v).any():
      out[kind] = {"values": values, "best": None, "band": None}
      continue
    better = np.where(np.isfinite(v), v if target == "accuracy" else -v, -np.inf)
    b = int(np.argmax(better))
    ok = v >= v[b] - ACCURACY_TOLERANCE if target == "accuracy" else v <= v[b] * (1 + LOSS_TOLERANCE)
    ok &= np.isfinite(v)
    lo, hi = b, b
    while lo > 0 and ok[lo - 1]:
      lo -= 1
    while hi < len(v) - 1 and ok[hi + 1]:
      hi += 1
    # Widen by half a grid step where a grid point lies beyond (the true edge lies between the two points).
    low = grid[lo] * np.sqrt(grid[lo - 1] / grid[lo]) if lo > 0 else grid[lo]
    high = grid[hi] * np.sqrt(grid[hi + 1] / grid[hi]) if hi < len(v) - 1 else grid[hi]
    out[kind] = {"values": values, "best": grid[b], "best_score": float(v[b]), "band": [float(low), float(high)],
                 "band_grid": [grid[lo], grid[hi]], "at_edge": b in (0, len(v) - 1)}
  return out


def rule_values(result: clr_optax.RangeTestResult) -> dict[str, float]:
  """Every rule's ``max_lr`` (ours) or suggested rate (the peers') for one sweep; NaN where a rule found none."""
  out = {}
  for name, rule in OURS.items():
    try:
      out[name] = float(clr_optax.suggest_bounds(result, rule=rule).max_lr)
    except ValueError:
      out[name] = float("nan")
  out.update(peer_rules.suggestions(result))
  return out


def default_reading(result: clr_optax.RangeTestResult) -> str:
  """Why the default rule chose its ``max_lr`` (with the notes on what it could not read), or why it found none."""
  try:
    s = clr_optax.suggest_bounds(result)
  except ValueError as e:
    return f"no value: {e}"
  return s.max_reason + "".join(f"; note: {note}" for note in s.notes)


def judge(values: list[float], truth: dict[str, Any]) -> dict[str, Any]:
  """Ratios to the best triangular ``max_lr`` and whether each value lies in each band."""
  v = np.asarray(values, np.float64)
  out = {"values": [float(x) for x in v]}
  tri = truth["triangular"]
  if tri["best"] is not None:
    out["ratio"] = [float(x / tri["best"]) for x in v]
    out["within_2x"] = int(np.sum((v >= tri["best"] / 2) & (v <= tri["best"] * 2)))
  for kind in KINDS:
    band = truth[kind]["band"]
    if band is not None:
      out[f"in_{kind}"] = int(np.sum((v >= band[0]) & (v <= band[1])))
  return out


def evaluate_setup(name: str, settings: dict[str, Any], target: str, grid: dict[str, Any],
                   sweeps: dict[int, Any]) -> dict[str, Any]:
  truth = ground_truth(settings, grid, target)
  per_seed = {seed: rule_values(result) for seed, (result, _) in sweeps.items()}
  rules = {rule: judge([per_seed[s][rule] for s in per_seed], truth) for rule in RULE_NAMES}
  reasons = {seed: default_reading(result) for seed, (result, _) in sweeps.items()}
  return {"setup": name, "settings": settings, "target": target, "truth": truth, "sweep_seeds": list(per_seed),
          "default_reasons": reasons,
          "sweep_seconds": [round(seconds, 1) for _, seconds in sweeps.values()], "rules": rules,
          "grid_seconds": round(sum(r.get("seconds", 0.0) for r in grid.values()), 1)}


# ----------------------------------------------------------------------------------------------
# The table


def _fmt(x: float | None) -> str:
  return "-" if x is None or not np.isfinite(x) else f"{x:.3g}"


def markdown(reports: list[dict[str, Any]], header: dict[str, Any]) -> str:
  """The ground truth per setup, each rule's median ratio and in-band count, and the count of setups per rule."""
  first, last = header["first_seed"], header["first_seed"] + header["seeds"] - 1
  lines = [f"Tables rendered {header['date']} from the kept records, on {header['machine']} ({header['cpus']} CPUs, "
           f"jax {header['jax']}, {header['device']}); K = {header['seeds']} range tests per setup on seeds "
           f"{first}-{last}{' (--quick)' if header['quick'] else ''}.", "",
           "**Ground truth** (best rate; band within 1 accuracy point, or 5% loss, widened half a grid step):", "",
           "| setup | optimizer, sweep | score | best triangular max_lr (score) | band | best fixed rate (score) | "
           "band | grid |", "|---|---|---|---|---|---|---|---|"]
  for r in reports:
    s, t = r["settings"], r["truth"]
    cells = []
    for kind in KINDS:
      k = t[kind]
      if k["best"] is None:
        cells += ["none trained", "-"]
        continue
      edge = " (grid edge)" if k["at_edge"] else ""
      cells += [f"{_fmt(k['best'])}{edge} ({k['best_score']:.4g})", f"{_fmt(k['band'][0])}-{_fmt(k['band'][1])}"]
    sweep = s["sweep"]
    lines.append(f"| {r['setup']} | {s['optimizer']}, batch {sweep['batch_size']}, {sweep['mode']} "
                 f"{_fmt(sweep['min_lr'])}-{_fmt(sweep['max_lr'])} over {sweep['num_steps']} steps | {r['target']} | "
                 f"{' | '.join(cells)} | {_fmt(s['grid'][0])}-{_fmt(s['grid'][-1])}, {len(s['grid'])} rates x "
                 f"{s['grid_steps']} steps x {s['seeds']} seed(s) |")
  names = [r["setup"] for r in reports]
  lines += ["", "**Each rule's suggestion / best triangular max_lr** (median over the K sweeps, [min-max]); "
            "`T k/K`: k sweeps inside the triangular band, `F`: the fixed-rate band:", "",
            "| rule | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
  for rule in RULE_NAMES:
    cells = []
    for r in reports:
      e = r["rules"][rule]
      ratio = np.asarray(e.get("ratio", []), np.float64)
      ok = ratio[np.isfinite(ratio)]
      k = len(e["values"])
      if not ok.size:
        cells.append("no value")
        continue
      found = f", {ok.size}/{k} read" if ok.size < k else ""
      cells.append(f"{np.median(ok):.2f} [{ok.min():.2f}-{ok.max():.2f}] T {e.get('in_triangular', 0)}/{k} "
                   f"F {e.get('in_fixed', 0)}/{k}{found}")
    lines.append(f"| {rule} | " + " | ".join(cells) + " |")
  lines += ["", "**Count per rule** (a setup counts when the median suggestion of its K sweeps lies in the band; "
            "sweeps: all K of all setups):", "",
            "| rule | setups in triangular band | setups in fixed band | sweeps in triangular band | "
            "sweeps within 2x of the best |", "|---|---|---|---|---|"]
  for rule in RULE_NAMES:
    setups_t = setups_f = sweeps_t = within = total = 0
    for r in reports:
      e = r["rules"][rule]
      v = np.asarray(e["values"], np.float64)
      total += v.size
      sweeps_t += e.get("in_triangular", 0)
      within += e.get("within_2x", 0)
      med = np.median(v[np.isfinite(v)]) if np.isfinite(v).any() else np.nan
      for kind in KINDS:
        band = r["truth"][kind]["band"]
        if band is not None and band[0] <= med <= band[1]:
          if kind == "triangular":
            setups_t += 1
          else:
            setups_f += 1
    lines.append(f"| {rule} | {setups_t}/{len(reports)} | {setups_f}/{len(reports)} | {sweeps_t}/{total} | "
                 f"{within}/{total} |")
  unread = [(r["setup"], seed, why) for r in reports for seed, why in r["default_reasons"].items()
            if why.startswith("no value")]
  if unread:
    lines += ["", "**Sweeps the default rule could not read** (what `suggest()` raised):", ""]
    lines += [f"- {name}, seed {seed}: {why[len('no value: '):]}" for name, seed, why in unread]
  return "\n".join(lines) + "\n"
