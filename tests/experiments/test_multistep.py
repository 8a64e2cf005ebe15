"""Several training steps per compiled call (``train.steps_per_call``): the calls' plan, equality with one
step per call, resume, and the default per backend."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import configs
from experiments import parallel
from experiments import rundir
from experiments import train
from tests.experiments.synthetic import crash_at_checkpoint
from tests.experiments.synthetic import initial_state
from tests.experiments.synthetic import small_config
from tests.experiments.synthetic import synthetic_dataset


@pytest.mark.parametrize("start, total, n, every, ends", [
    (0, 13, 4, (7,), ()), (0, 100, 8, (10, 25), ()), (3, 37, 5, (6, 9), (20,)), (0, 23, 1, (5,), ()),
    (12, 70, 100, (1000,), (25, 42)), (0, 1000, 100, (100, 1000, 5000), ()), (0, 17, 16, (), ())])
def test_plan_calls_covers_every_step_once_and_never_crosses_a_stop(start, total, n, every, ends):
  calls = list(train.plan_calls(start, total, n, every=every, ends=ends))
  firsts = [first for first, _ in calls]
  assert firsts[0] == start and sum(length for _, length in calls) == total - start
  assert all(a + length == b for (a, length), b in zip(calls, [*firsts[1:], total]))
  stops = {s for s in range(start + 1, total) if any(s % k == 0 for k in every) or s in ends}
  assert not any(first < s < first + length for first, length in calls for s in stops)
  lengths = {length for _, length in calls}
  assert lengths <= {n} | {1 << k for k in range(n.bit_length()) if 1 << k < n}
  # Where n divides the intervals, one program: every call is n long, but the last before an uneven stop.
  assert len(lengths) <= 1 + int(np.ceil(np.log2(n)))


def test_plan_calls_examples():
  assert list(train.plan_calls(0, 13, 4, every=(7,))) == [(0, 4), (4, 2), (6, 1), (7, 4), (11, 2)]
  assert list(train.plan_calls(0, 2000, 100, every=(1000, 5000))) == [(s, 100) for s in range(0, 2000, 100)]
  assert list(train.plan_calls(5, 5, 4)) == []
  with pytest.raises(ValueError, match="steps_per_call must be a positive integer, got steps_per_call=0"):
    list(train.plan_calls(0, 10, 0))


_RUN = {"train.num_devices": 2, "train.num_steps": "13", "train.eval_every": "7", "train.checkpoint_every": "7",
        "data.augment": True, "data.normalization": "channel"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """13 steps of a BatchNorm network with augmentation on 2 devices, 5 steps an epoch, evaluations and
  checkpoints at 7 and 13: with 1 step per call, and with 4 (calls of 4, 2, 1, 4 and 2 steps, the epoch
  boundaries at steps 5 and 10 inside calls)."""
  ds = synthetic_dataset(n_train=40)
  out = {"ds": ds}
  for n in (1, 4):
    config = small_config("fig6_bn_sigmoid:clr", **_RUN, **{"train.steps_per_call": n})
    workdir = tmp_path_factory.mktemp(f"steps{n}")
    out[n] = (config, workdir, train.train_and_evaluate(config, workdir, dataset=ds))
  return out


def _rows(workdir):
  return rundir.read_metrics(workdir)


def test_steps_per_call_give_the_metrics_and_parameters_of_single_steps(runs):
  """Tolerance: the scanned steps are the same computation in another XLA program (on XLA:CPU a loop body's
  convolutions take other kernels), so they round differently: measured here 2.4e-7 on losses (1e-7
  relative), 2e-7 relative on gradient norms, 7e-9 on parameters of magnitude up to 0.04 after 13 steps.
  The learning rate is the same integer-step formula and is compared exactly."""
  (_, one_dir, one), (_, four_dir, four) = runs[1], runs[4]
  assert one["steps_per_call"] == 1 and four["steps_per_call"] == 4
  a, b = _rows(one_dir), _rows(four_dir)
  assert [r["step"] for r in b["train"]] == list(range(1, 14))
  assert [r["step"] for r in a["test"]] == [r["step"] for r in b["test"]] == [7, 13]
  assert [r["lr"] for r in a["train"]] == [r["lr"] for r in b["train"]]
  for split, names in (("train", ("loss", "accuracy", "grad_norm", "epoch")), ("test", ("loss", "accuracy"))):
    for name in names:
      np.testing.assert_allclose([r[name] for r in b[split]], [r[name] for r in a[split]], rtol=1e-5,
                                 err_msg=f"{split} {name}")
  for tree in ("params", "batch_stats"):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7), getattr(four["state"], tree),
                 getattr(one["state"], tree))
  assert int(four["state"].step) == 13
  assert sorted(p.name for p in (four_dir / "checkpoints").iterdir()) == ["13", "7"]


def test_a_run_of_several_steps_per_call_resumes_to_the_uninterrupted_parameters_bitwise(runs, tmp_path):
  config, whole_dir, whole = runs[4]
  with crash_at_checkpoint(7):
    train.train_and_evaluate(config, tmp_path, dataset=runs["ds"])
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["7"]
  resumed = train.train_and_evaluate(config, tmp_path, dataset=runs["ds"], resume=True)
  for x, y in zip(jax.tree.leaves(resumed["state"].checkpoint_items()), jax.tree.leaves(whole["state"].checkpoint_items())):
    np.testing.assert_array_equal(x, y)
  logged = lambda d: [(r["step"], r["split"], r["loss"]) for r in rundir.read_rows(d / rundir.METRICS_JSONL)]  # noqa: E731
  assert logged(tmp_path) == logged(whole_dir)
  # Steps per call decide how the same training is split, not what is trained: a resume may change them.
  assert not rundir.run_differences(rundir.read_json(tmp_path / rundir.CONFIG),
                                    configs.override(config, {"train.steps_per_call": 1}))


class _MLP(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    return nn.Dense(10)(x.reshape(x.shape[0], -1))


def test_default_steps_per_call_keeps_convolutions_out_of_xla_cpu_loops():
  ds = synthetic_dataset()
  state = initial_state(small_config("table1_fixed"), ds)
  shape = ds.train_images.shape[1:]
  assert parallel.default_steps_per_call(state, shape, "cpu") == 1
  assert parallel.default_steps_per_call(state, shape, "gpu") == parallel.ACCELERATOR_STEPS_PER_CALL
  params = _MLP().init(jax.random.key(0), jnp.zeros((1, *shape)))["params"]
  mlp = state.replace(apply_fn=_MLP().apply, params=params)
  assert parallel.default_steps_per_call(mlp, shape, "cpu") == parallel.ACCELERATOR_STEPS_PER_CALL
