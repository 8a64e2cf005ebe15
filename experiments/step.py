"""The pure training step the trainer, the range test and the benchmarks share.

* `TrainState`: everything a step reads and writes (model, optimizer, normalisation, PRNG key).
* `train_step(state, batch, lr)`: one optimizer step on a batch of uint8 images (augmentation and
  normalisation inside). Under `jax.pmap` (``state.axis_name="batch"``) gradients, metrics and BatchNorm
  statistics are averaged across devices with `lax.pmean`.
* `eval_logits(state, images)`: the model in inference mode.
* `set_learning_rate(opt_state, lr)`: the learning rate of an `optax.inject_hyperparams` state.

`experiments.setup.create_train_state` builds the state from a config.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax import lax

from experiments import augment
from experiments import models


class TrainState(struct.PyTreeNode):
  """Everything a training step reads and writes.

  Attributes:
    step: number of steps taken (int32 scalar).
    params: the model's parameters.
    batch_stats: BatchNorm running statistics (an empty dict for models without BatchNorm).
    opt_state: the optimizer's state; the learning rate is an injected hyperparameter in it.
    rng: PRNG key; each step folds in the step number (and the device index under pmap).
    mean, std: normalisation constants (per channel, or Caffe's mean image with std 1).
    apply_fn: the Flax module's apply.
    tx: the optimizer, built with `optax.inject_hyperparams` so that `train_step` can set its learning rate.
    augment: whether the step applies the random crop and flip.
    pad: padding of the random crop.
    axis_name: the pmap axis to average over, or None for a single-device step.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array
  mean: jax.Array
  std: jax.Array
  apply_fn: Callable[..., Any] = struct.field(pytree_node=False)
  tx: optax.GradientTransformation = struct.field(pytree_node=False)
  augment: bool = struct.field(pytree_node=False, default=False)
  pad: int = struct.field(pytree_node=False, default=4)
  axis_name: str | None = struct.field(pytree_node=False, default=None)

  def checkpoint_items(self) -> dict[str, Any]:
    """The arrays a checkpoint holds, as host numpy arrays (everything but the constants and static fields).

    Host arrays are written once, by the primary process, on any number of hosts; the PRNG key is stored
    as its raw key data.
    """
    items = {"step": self.step, "params": self.params, "batch_stats": self.batch_stats,
             "opt_state": self.opt_state, "rng": jax.random.key_data(self.rng)}
    return jax.tree.map(np.asarray, jax.device_get(items))

  def replace_checkpoint_items(self, items: Mapping[str, Any]) -> TrainState:
    """This state with the arrays of `items` (as returned by `checkpoint_items`) put back."""
    items = dict(items)
    rng = jax.random.wrap_key_data(jnp.asarray(items.pop("rng")), impl=jax.random.key_impl(self.rng))
    return self.replace(rng=rng, **items)


def set_learning_rate(opt_state: Any, lr: jax.Array) -> Any:
  """An `optax.inject_hyperparams` state with its ``learning_rate`` set to `lr` (in the state's dtype)."""
  hyperparams = dict(opt_state.hyperparams)
  hyperparams["learning_rate"] = jnp.asarray(lr, dtype=jnp.asarray(hyperparams["learning_rate"]).dtype)
  return opt_state._replace(hyperparams=hyperparams)


def _augment(state: TrainState, images: jax.Array, key: jax.Array) -> jax.Array:
  """The random crop and flip, one key per example from its position in the global batch: the augmentation
  of a global batch is the same whether it runs on one device or is split across several."""
  offset = lax.axis_index(state.axis_name) * images.shape[0] if state.axis_name is not None else 0
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(offset + jnp.arange(images.shape[0]))
  return jax.vmap(lambda k, im: augment.random_crop_flip(k, im[None], pad=state.pad)[0])(keys, images)


def train_step(state: TrainState, batch: Mapping[str, jax.Array], lr: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on a batch of uint8 images; pure, so it can be jitted, pmapped or scanned.

  Args:
    state: the `TrainState` (its `axis_name` says whether to average across a pmap axis).
    batch: ``{"image": uint8 [B, H, W, 3], "label": int32 [B]}`` (this device's share under pmap).
    lr: the learning rate of this step (a scalar; the trainer passes ``schedule(state.step)``).

  Returns:
    ``(new_state, metrics)`` with metrics ``loss`` (`experiments.models.softmax_loss`: with GoogLeNet's
    auxiliary classifiers, weighted as in Caffe), ``accuracy`` (of the main classifier on this batch before the
    update; both averaged over devices), ``lr`` and ``grad_norm`` (of the averaged gradient).

  Examples:
    >>> state, metrics = jax.jit(train_step)(state, batch, 0.01)  # doctest: +SKIP
  """
  images = batch["image"]
  key = jax.random.fold_in(state.rng, state.step)
  aug_key, dropout_key, depth_key = jax.random.split(key, 3)
  if state.axis_name is not None:
    # Dropout masks differ per device; stochastic-depth decisions stay shared by the whole global batch.
    dropout_key = jax.random.fold_in(dropout_key, lax.axis_index(state.axis_name))
  if state.augment:
    images = _augment(state, images, aug_key)
  x = augment.normalize(images, state.mean, state.std)
  labels = batch["label"]
  has_bn = bool(jax.tree.leaves(state.batch_stats))

  def loss_fn(params):
    variables = {"params": params}
    rngs = {"dropout": dropout_key, "stochastic_depth": depth_key}
    if has_bn:
      variables["batch_stats"] = state.batch_stats
      output, new_vars = state.apply_fn(variables, x, train=True, mutable=["batch_stats"], rngs=rngs)
      new_stats = new_vars["batch_stats"]
    else:
      output = state.apply_fn(variables, x, train=True, rngs=rngs)
      new_stats = state.batch_stats
    loss, logits = models.softmax_loss(output, labels)  # GoogLeNet's output adds its auxiliary classifiers
    return loss, (logits, new_stats)

  (loss, (logits, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == labels)
  if state.axis_name is not None:
    grads, loss, accuracy = lax.pmean((grads, loss, accuracy), state.axis_name)
  opt_state = set_learning_rate(state.opt_state, lr)
  updates, opt_state = state.tx.update(grads, opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {"loss": loss, "accuracy": accuracy, "lr": jnp.asarray(lr, jnp.float32),
             "grad_norm": optax.tree.norm(grads)}
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=new_stats, opt_state=opt_state)
  return new_state, metrics


def eval_logits(state: TrainState, images_uint8: jax.Array) -> jax.Array:
  """Logits of the model in inference mode (BatchNorm running statistics), float32."""
  variables = {"params": state.params}
  if jax.tree.leaves(state.batch_stats):
    variables["batch_stats"] = state.batch_stats
  x = augment.normalize(images_uint8, state.mean, state.std)
  return state.apply_fn(variables, x, train=False).astype(jnp.float32)
