"""Discriminative learning rates: each group of parameters gets its own schedule, or its own multiple of one.

Fine-tuning a pretrained network, fastai trains the early layers at a fraction of the head's rate
(``lr_max=slice(lr / 100, lr)`` spreads the rates geometrically over the layer groups; Howard & Ruder 2018
divide by 2.6 per layer). Here that is one optax transformation built on ``optax.multi_transform``: every
update it evaluates each group's rate at the step, builds the group's optimizer with that number and
keeps the numbers in its state, where they can be logged::

  optimizer = clr_optax.discriminative(
      optax.adam, param_labels, learning_rate=clr_optax.one_cycle(1e-3, total_steps),
      multipliers={"body": 0.01, "neck": 0.1, "head": 1.0})
  state = optimizer.init(params)
  ...
  state.learning_rates["body"]  # the rate the latest update used (at init: the first update's)
"""

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.extend import core as jax_core

from clr_optax import _checks

Rate = optax.Schedule | float | jax.Array


class DiscriminativeState(NamedTuple):
  """The state of :func:`discriminative`.

  Attributes:
    count: updates made so far (the step at which the rates are evaluated next).
    learning_rates: group label -> the learning rate the latest update used (after ``init``: the rate the
      first update will use). Inside ``optax.chain`` read it with
      ``optax.tree_utils.tree_get(state, "learning_rates")``.
    inner_state: the state of the ``optax.multi_transform`` of the groups' optimizers.
  """
  count: jax.Array
  learning_rates: dict[str, jax.Array]
  inner_state: optax.OptState


def _check_rate(name: str, rate: Any) -> None:
  if not callable(rate):
    _checks.check_nonnegative(name, rate)


def discriminative(
    optimizer: Callable[[Any], optax.GradientTransformation],
    param_labels: Any,
    learning_rates: Mapping[str, Rate] | None = None,
    *,
    learning_rate: Rate | None = None,
    multipliers: Mapping[str, Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""An optimizer whose parameter groups have their own learning rates: their own schedules, or multiples.

  Parameter :math:`p` in group :math:`g` is updated by ``optimizer(\eta_{g,t})`` at step :math:`t`, with

  .. math::

    \eta_{g,t} = \mathrm{learning\_rates}[g](t) \quad\text{or}\quad
    \eta_{g,t} = \mathrm{multipliers}[g] \cdot \mathrm{learning\_rate}(t)

  (a number stands for a constant schedule). The groups' optimizer states are separate (each group's
  moments, for Adam), as in ``optax.multi_transform``, on which this is built. ``optimizer`` is called anew
  with each update's rates, so that they are plain numbers the state can report
  (``state.learning_rates``), and so that ``learning_rate`` may itself be a number that changes between
  calls: ``clr_optax.range_test(optimizer=lambda lr: discriminative(..., learning_rate=lr,
  multipliers=...))`` sweeps the common factor while every group keeps its ratio.

  For fastai's ``slice(lr / 100, lr)`` over groups ordered from the input to the output, the multipliers
  are geometric: ``dict(zip(names, np.geomspace(0.01, 1.0, len(names))))``.

  Args:
    optimizer: a factory ``learning_rate -> optax.GradientTransformation`` (``optax.sgd``, ``optax.adam``,
      ``functools.partial(optax.sgd, momentum=0.9)``) whose state does not depend on the rate's value, as
      for optax's optimizers. Not one built with ``optax.inject_hyperparams``: that keeps the rate it was
      initialised with in its state, and ``init`` refuses any optimizer whose state depends on the rate.
      (Give other schedules, such as a cyclical momentum, to the factory:
      ``lambda lr: optax.inject_hyperparams(optax.sgd)(learning_rate=lr, ...)`` does not qualify, but
      ``lambda lr: optax.chain(optax.inject_hyperparams(optax.trace)(decay=momentum), optax.scale(-lr))``
      does.)
    param_labels: the group label of every parameter: a pytree of strings with the structure of the
      parameters, or a function ``params -> that pytree`` (as for ``optax.multi_transform``). A nested dict
      is matched to the parameters by their keys, and a label stands for the whole subtree under it: the
      dict a Flax NNX ``State`` prints as (``{"body": "body", "head": {"kernel": "head", "bias": "head"}}``)
      labels ``nnx.state(model, nnx.Param)``.
    learning_rates: group label -> ``optax.Schedule`` or number: each group its own rate.
    learning_rate: the common ``optax.Schedule`` or number, with ``multipliers``.
    multipliers: group label -> the number (``>= 0``) its learning rate is ``learning_rate`` times.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is a `DiscriminativeState`.

  Raises:
    ValueError: unless exactly one of ``learning_rates`` and ``learning_rate`` with ``multipliers`` is
      given, for a negative or non-finite rate or multiplier, and (at ``init``) for labels whose structure
      is not that of the params (or a prefix of it), a parameter label without a rate or a rate no parameter
      is labelled with, a rate that is not a scalar, or an ``optimizer`` whose state holds its rate.
    TypeError: for an ``optimizer`` that is not callable, ``learning_rates`` or ``multipliers`` that are not
      mappings, or a non-numeric rate.

  Examples:
    >>> import jax.numpy as jnp, optax, clr_optax
    >>> params = {"body": jnp.ones(2), "head": jnp.ones(2)}
    >>> optimizer = clr_optax.discriminative(
    ...     optax.sgd, {"body": "body", "head": "head"},
    ...     learning_rate=clr_optax.triangular(0.1, 1.0, 10), multipliers={"body": 0.01, "head": 1.0})
    >>> state = optimizer.init(params)
    >>> grads = {"body": jnp.ones(2), "head": jnp.ones(2)}
    >>> for _ in range(6):
    ...   updates, state = optimizer.update(grads, state)
    >>> {k: round(float(v), 6) for k, v in state.learning_rates.items()}  # step 5: 0.1 + 0.9 * 5 / 10
    {'body': 0.0055, 'head': 0.55}
    >>> [round(float(u), 6) for u in updates["body"]]
    [-0.0055, -0.0055]

  References:
    Howard & Ruder, `Universal Language Model Fine-tuning for Text Classification
    <https://arxiv.org/abs/1801.06146>`_, 2018; fastai's ``Learner.fit_one_cycle(lr_max=slice(...))``.
  """
  if not callable(optimizer):
    raise TypeError(f"optimizer must be a factory learning_rate -> GradientTransformation, got {optimizer=}")
  if (learning_rates is None) == (multipliers is None) or (multipliers is None) != (learning_rate is None):
    raise ValueError("give either learning_rates (a rate per group) or learning_rate with multipliers, got "
                     f"{learning_rates=}, {learning_rate=}, {multipliers=}")
  for name, mapping in (("learning_rates", learning_rates), ("multipliers", multipliers)):
    if mapping is not None and not isinstance(mapping, Mapping):
      raise TypeError(f"{name} must be a mapping group label -> number (a dict), got {name}={mapping!r}")
  # label -> (the argument that sets its rate, that rate or schedule, its factor)
  if multipliers is not None:
    _check_rate("learning_rate", learning_rate)
    for label, factor in multipliers.items():
      _checks.check_nonnegative(f"multipliers[{label!r}]", factor)
    rates = {label: ("learning_rate", learning_rate, factor) for label, factor in multipliers.items()}
  else:
    for label, rate in learning_rates.items():
      _check_rate(f"learning_rates[{label!r}]", rate)
    rates = {label: (f"learning_rates[{label!r}]", rate, 1.0) for label, rate in learning_rates.items()}
  if not rates:
    raise ValueError(f"at least one group needs a learning rate, got {learning_rates=}, {multipliers=}")
  if isinstance(param_labels, Mapping):
    param_labels = functools.partial(_labels_like, param_labels)

  def rates_at(count: jax.Array) -> dict[str, jax.Array]:
    values = {}
    for label, (name, rate, factor) in rates.items():
      v = _value(rate, count)
      if not hasattr(v, "dtype"):  # a schedule's Python value; an array is not read (no host sync per update)
        _checks.real(name, v)
      if jnp.shape(v) != ():
        raise ValueError(f"{name} must be a number or a schedule of scalars, got a rate of shape {jnp.shape(v)} "
                         f"for group {label!r}")
      v = factor * v
      values[label] = jnp.asarray(v, _checks.float_dtype(v))  # not weakly typed
    return values

  def transform(lrs: Mapping[str, jax.Array]) -> optax.GradientTransformationExtraArgs:
    groups = {label: optimizer(lr) for label, lr in lrs.items()}
    for label, built in groups.items():
      if not isinstance(built, optax.GradientTransformation):
        raise TypeError(f"optimizer must be a factory learning_rate -> GradientTransformation, but {optimizer=} "
                        f"returned {built!r} for group {label!r}")
    return optax.multi_transform(groups, param_labels)

  def init(params: Any) -> DiscriminativeState:
    labels_tree = param_labels(params) if callable(param_labels) else param_labels
    try:
      jax.tree.map(lambda *_: None, labels_tree, params)
    except ValueError as e:
      raise ValueError("param_labels must have the structure of the params (or of a prefix of it), or be a "
                       f"function params -> such a tree: {e}") from None
    labels = set(jax.tree.leaves(labels_tree))
    if labels != set(rates):
      raise ValueError(f"every parameter label needs a learning rate and every rate a parameter: labels without "
                       f"a rate {sorted(labels - set(rates))}, rates without parameters {sorted(set(rates) - labels)}")
    count = jnp.zeros([], jnp.int32)
    lrs = rates_at(count)
    if _depends_on_first(lambda lr, p: transform(lr).init(p), lrs, params):
      raise ValueError(
          f"optimizer's state holds the learning rate it was built with ({optimizer=}; optax.inject_hyperparams "
          "keeps it there): the updates would go on using the first rate while the state reports each update's. "
          "Pass the plain factory (optax.sgd, optax.adam) and give other schedules to it as the docstring shows")
    return DiscriminativeState(count, lrs, transform(lrs).init(params))

  def update(updates: Any, state: DiscriminativeState, params: Any = None, **extra_args: Any):
    lrs = rates_at(state.count)
    updates, inner_state = transform(lrs).update(updates, state.inner_state, params, **extra_args)
    return updates, DiscriminativeState(optax.safe_increment(state.count), lrs, inner_state)

  return optax.GradientTransformationExtraArgs(init, update)


def _labels_like(labels: Mapping[str, Any], params: Any) -> Any:
  """``labels``, a nested dict of labels, as a tree of the structure of ``params``.

  Each parameter's label is found by following its key path through ``labels`` down to a label (anything
  but a dict, list or tuple), so a label may stand for a whole subtree, and a container keyed like a dict (a
  Flax NNX ``State``, of ``Variable`` objects or of plain arrays) matches the nested dict its printout shows.
  """
  paths, treedef = jax.tree_util.tree_flatten_with_path(params)
  found, used = [], set()
  for path, _ in paths:
    label = labels
    for depth, entry in enumerate(path):
      if not isinstance(label, (Mapping, list, tuple)):
        break
      key = getattr(entry, "key", getattr(entry, "idx", getattr(entry, "name", None)))
      used.add(tuple(getattr(e, "key", getattr(e, "idx", getattr(e, "name", None))) for e in path[:depth + 1]))
      try:
        label = label[key]
      except (KeyError, IndexError, TypeError):
        raise ValueError(f"param_labels has no label for the parameter at {jax.tree_util.keystr(path[:depth + 1])}"
                         ": give a nested dict with the parameters' keys (as printing them shows) whose leaves are "
                         "labels") from None
    if isinstance(label, (Mapping, list, tuple)):
      raise ValueError(f"param_labels must hold one label for the parameter at {jax.tree_util.keystr(path)}, "
                       f"got {label!r}")
    found.append(label)
  unused = [keys for keys in _key_paths(labels) if keys not in used]
  if unused:  # a label for no parameter: a misspelt or stale key
    raise ValueError(f"param_labels has labels for keys the params do not have: "
                     f"{', '.join(''.join(f'[{k!r}]' for k in keys) for keys in unused)}")
  return jax.tree.unflatten(treedef, found)


def _key_paths(labels: Any, prefix: tuple = ()) -> list[tuple]:
  """The key paths of every entry of a nested dict (or list) of labels, outermost first."""
  if isinstance(labels, Mapping):
    items = labels.items()
  elif isinstance(labels, (list, tuple)):
    items = enumerate(labels)
  else:
    return []
  out = []
  for key, value in items:
    out.append(prefix + (key,))
    out += _key_paths(value, prefix + (key,))
  return out


def _value(rate: Rate, count: jax.Array) -> jax.Array:
  return rate(count) if callable(rate) else rate


def _depends_on_first(fn: Callable[..., Any], first: Any, *rest: Any) -> bool:
  """Whether any output of ``fn(first, *rest)`` is computed from ``first``: a data-flow walk of its jaxpr
  (an equation with a nested jaxpr counts as using all of its inputs). Works on traced values too."""
  jaxpr = jax.make_jaxpr(fn)(first, *rest).jaxpr
  tainted = set(jaxpr.invars[:len(jax.tree.leaves(first))])
  for eqn in jaxpr.eqns:
    if any(isinstance(v, jax_core.Var) and v in tainted for v in eqn.invars):
      tainted.update(eqn.outvars)
  return any(isinstance(v, jax_core.Var) and v in tainted for v in jaxpr.outvars)


__all__ = ["DiscriminativeState", "discriminative"]
