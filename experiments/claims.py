"""The paper's claims checked against finished runs: for each experiment that has them (`CLAIMS`), each claim
as a line of prose with its verdict ("held", "did not hold", "not shown") and why, for `experiments.report`.

Runs pair up by seed (a seed gives every policy the same initial weights and batch order); the paper's numbers
come from `experiments.configs.paper_results` alone.
"""

from __future__ import annotations

import numpy as np
from scipy import stats  # a dependency of jax

from experiments.configs import paper_results
from experiments.results import ConfigSummary
from experiments.results import mean_std


def percent(mean_and_std: tuple[float, float]) -> str:
  """A fraction as percent, ``mean ± std``; the mean alone where there is no spread (one run: NaN std)."""
  mean, std = mean_and_std
  return f"{100 * mean:.1f}" if np.isnan(std) else f"{100 * mean:.1f} ± {100 * std:.1f}"


def _quoted(config: str, *, iterations: bool = True) -> str:
  """The paper's result for a config as prose, e.g. ``82.2% at 42,000``, from paper_results."""
  r = paper_results.get(config)
  text = f"{r.accuracy:.1f}%"
  return text + (f" at {r.iterations:,}" if iterations else "")


def _paired_verdict(a: ConfigSummary, b: ConfigSummary, *, b_best: bool = False, training: bool = False
                    ) -> tuple[str, str]:
  """Whether ``a``'s final accuracy is above ``b``'s final (or, with `b_best`, best) accuracy, judged over their
  common seeds, and why, as prose. With `training`, the final training accuracies (runs that recorded one).

  A seed gives every policy the same initial weights and batch order, so the runs pair up by seed: the
  verdict is "held" or "did not hold" when the 95% interval of the mean same-seed difference (Student's t,
  seeds - 1 degrees of freedom) excludes 0, "not shown" when it includes 0; with one common seed, the sign.
  """
  ours = (lambda r: r.train_accuracy) if training else (lambda r: r.final)
  theirs = (lambda r: r.best) if b_best and not training else ours
  others = {r.seed: theirs(r) for r in b.runs if theirs(r) is not None}
  diffs = [100 * (ours(r) - others[r.seed]) for r in a.runs if r.seed in others and ours(r) is not None]
  if not diffs:
    return "not shown", "no common seed has both runs"
  d = float(np.mean(diffs))
  if len(diffs) < 2:
    return ("held" if d > 0 else "did not hold",
            f"difference {d:+.1f} points on {len(diffs)} common seed: no seed spread to judge it by")
  half = float(stats.t.ppf(0.975, len(diffs) - 1) * np.std(diffs, ddof=1) / np.sqrt(len(diffs)))
  detail = (f"same-seed differences {', '.join(f'{x:+.1f}' for x in diffs)} points, mean {d:+.1f}; its 95% "
            f"interval over the seeds, ±{half:.1f}, {'excludes' if abs(d) > half else 'includes'} 0")
  if abs(d) > half:
    return "held" if d > 0 else "did not hold", detail
  return "not shown", (f"{detail}, so {len(diffs)} seeds do not resolve it; the mean is "
                       f"{'for' if d > 0 else 'against'} the claim")


def _fixed_reaching(fixed: ConfigSummary, tri: ConfigSummary) -> str:
  """The claim the other way round: where each same-seed fixed run first reached triangular2's final accuracy."""
  fixed_by_seed = {r.seed: r for r in fixed.runs}
  firsts = []
  for run in tri.runs:
    if run.seed in fixed_by_seed:
      f = fixed_by_seed[run.seed]
      firsts.append(next((f"{s:,}" for s, a in zip(f.steps, f.accuracies) if a >= run.final), "never"))
  if not firsts:
    return ""
  many = len(firsts) > 1
  return (f"; the other way round, the same-seed fixed run{'s' if many else ''} first reached triangular2's final "
          f"accuracy at iteration{'s' if many else ''} {', '.join(firsts)}")


def _reaches_fixed(fixed: ConfigSummary, tri: ConfigSummary, claim: str) -> str:
  """The headline claim, `claim` in bold, judged for the triangular2 runs `tri` against the same-seed fixed runs."""
  fixed_seeds = {r.seed for r in fixed.runs}
  paired = [x for x, r in zip(tri.reached, tri.runs) if r.seed in fixed_seeds]  # runs with a same-seed fixed run
  reached = [x for x in paired if x is not None]
  at_end = [x for x in tri.reference_at_end if x is not None]
  fixed_len = max(r.total_steps for r in fixed.runs)
  tri_len = max(r.total_steps for r in tri.runs)
  held = bool(paired) and len(reached) == len(paired) and max(reached) < fixed_len
  return (
      f"- **{claim}** (paper: {_quoted('table1_triangular2', iterations=False)} at "
      f"{paper_results.get('table1_triangular2').iterations:,} vs {_quoted('table1_fixed')}): "
      f"{'held' if held else 'did not hold'} here. triangular2 reached the same-seed fixed run's "
      f"final accuracy in {len(reached)} of {len(paired)} seed{'s' if len(paired) != 1 else ''}"
      + (f", at iterations {', '.join(f'{x:,}' for x in reached)} (fixed: {fixed_len:,})" if reached else "")
      + f"; final accuracy {percent(tri.final)}% after {tri_len:,} iterations vs fixed {percent(fixed.final)}% after "
      f"{fixed_len:,}"
      + (f"; at the same iteration ({tri_len:,}) the fixed run{'s' if len(at_end) > 1 else ''} stood at "
         f"{percent(mean_std(at_end))}%" if at_end else "")
      + _fixed_reaching(fixed, tri) + ".")


# Table 1's triangular2 row is Table 2's staged run (paper lines 164-173); the plain-bounds run is an ablation.
_TRI2, _TRI2_PLAIN = "table2_staged", "table1_triangular2"
_ABLATION = "the §4.1.1 bounds alone, without Table 2's stages"


def _claims_table1(by: dict[str, ConfigSummary], shrink: float) -> list[str]:
  """The paper's Table 1 claims, each checked against our numbers (the paper's from paper_results): on Table 2's
  staged triangular2 run, with the plain-bounds run and the Keras exp_range as labelled ablations."""
  out = []
  fixed, tri, plain = by.get("table1_fixed"), by.get(_TRI2), by.get(_TRI2_PLAIN)
  if fixed and tri:
    out.append(_reaches_fixed(fixed, tri, "triangular2 (Table 2's stages) reaches the fixed policy's final "
                                          "accuracy in fewer iterations"))
  if fixed and plain:
    out.append(_reaches_fixed(fixed, plain, f"Ablation, {_ABLATION}: triangular2 reaches the fixed policy's final "
                                            "accuracy in fewer iterations"))
  exp = by.get("table1_exp")
  for name, label in (("table1_exp_range", "exp_range"),
                      ("table1_exp_range:keras", "Ablation, exp_range with the Keras formula")):
    expr = by.get(name)
    if exp and expr:
      verdict, why = _paired_verdict(expr, exp, b_best=True)
      out.append(
          f"- **{label} ends above exp's best** (paper: {_quoted('table1_exp_range')} vs exp's best "
          f"{_quoted('table1_exp', iterations=False)}, line 182): {verdict} here: {label.split(', ')[-1]} "
          f"{percent(expr.final)}% vs exp's best {percent(exp.best)}% ({why}).")
  decay = by.get("table1_decay")
  for name, claim in ((_TRI2, "decay ends below triangular2 (Table 2's stages)"),
                      (_TRI2_PLAIN, f"Ablation, {_ABLATION}: decay ends below triangular2")):
    t = by.get(name)
    if decay and t:
      verdict, why = _paired_verdict(t, decay)
      out.append(
          f"- **{claim}** (paper: {_quoted('table1_decay', iterations=False)} vs "
          f"{_quoted('table1_triangular2', iterations=False)}, both 25,000 iterations): "
          f"{verdict} here: decay {percent(decay.final)}% vs triangular2 {percent(t.final)}% ({why}).")
  return out


def _claims_imagenet(net: str):
  """Table 1's ImageNet claim for `net` ("alexnet", "googlenet"): triangular2 ends above the fixed policy after
  as many iterations."""

  def claims(by: dict[str, ConfigSummary], shrink: float) -> list[str]:
    fixed, tri = by.get(f"table1_{net}_fixed"), by.get(f"table1_{net}_triangular2")
    if not (fixed and tri):
      return []
    paper = {n: paper_results.get(f"table1_{net}_{n}") for n in ("fixed", "triangular2")}
    d = tri.final[0] - fixed.final[0]
    return [f"- **triangular2 ends above fixed after as many iterations** (paper: "
            f"{paper['triangular2'].imagenet_accuracy:.1f}% vs {paper['fixed'].imagenet_accuracy:.1f}% at "
            f"{paper['fixed'].iterations:,}): {'held' if d > 0 else 'did not hold'} here: triangular2 "
            f"{percent(tri.final)}% vs fixed {percent(fixed.final)}% (difference {100 * d:+.1f} points)."]

  return claims


def _claims_fig6(by: dict[str, ConfigSummary], shrink: float) -> list[str]:
  """Figure 6's claim (line 184): CLR ends above the fixed rate in *training* accuracy, with the same iterations."""
  fixed, clr = by.get("fig6_bn_sigmoid:fixed"), by.get("fig6_bn_sigmoid:clr")
  if not (fixed and clr and fixed.final_train and clr.final_train):
    return []
  verdict, why = _paired_verdict(clr, fixed, training=True)
  return [f"- **CLR ends above the fixed rate in training accuracy** (paper: "
          f"{_quoted('fig6_bn_sigmoid:clr', iterations=False)} vs {_quoted('fig6_bn_sigmoid:fixed', iterations=False)}"
          f", line 184): {verdict} here: CLR {percent(clr.final_train)}% vs fixed {percent(fixed.final_train)}% "
          f"training accuracy ({why}); test accuracy {percent(clr.final)}% vs {percent(fixed.final)}%."]


CLAIMS = {"table1": _claims_table1, "table1_full": _claims_table1, "table1_alexnet": _claims_imagenet("alexnet"),
          "table1_googlenet": _claims_imagenet("googlenet"), "fig6": _claims_fig6}
