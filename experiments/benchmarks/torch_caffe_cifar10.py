"""PyTorch half of the port check: Caffe's cifar10_full net and SGD solver, written from Caffe's definitions.

Run by `experiments.benchmarks.port_check` with a Python that has torch (its own venv; torch is not a
dependency of the project), or by hand:

  /path/to/torchenv/bin/python experiments/benchmarks/torch_caffe_cifar10.py --data DATA.npz \
      --workdir runs/port_check/pytorch_fixed/seed0 --policy fixed --seed 0

It is written from Caffe's files, not from the Flax code, so that a mistake in either side shows up as a
difference between them:

* ``examples/cifar10/cifar10_full_train_test.prototxt``: conv1 (32 5x5, pad 2, gaussian std 1e-4) -> pool1
  MAX 3/2 -> relu1 -> norm1 LRN WITHIN_CHANNEL (local_size 3, alpha 5e-5, beta 0.75) -> conv2 (32 5x5,
  pad 2, std 0.01) -> relu2 -> pool2 AVE 3/2 -> norm2 LRN -> conv3 (64 5x5, pad 2, std 0.01) -> relu3 ->
  pool3 AVE 3/2 -> ip1 (10, std 0.01) -> SoftmaxWithLoss. Biases start at 0. Parameter multipliers
  (``param { lr_mult decay_mult }``, default 1 each): conv1 and conv2 weights 1/1, biases 2/1; conv3
  declares none (1/1 for both); ip1 weights 1/250, bias 2/0. The data layer subtracts the training set's
  mean image (``compute_image_mean``) and does not scale or mirror.
* Caffe's pooling layer: output size ``ceil((H + 2 pad - k) / s) + 1``, and an AVE window divides by its
  extent clipped to ``H + pad`` (here the input: pad is 0). ``ceil_mode=True`` in PyTorch gives both.
* Caffe's LRN layer, WITHIN_CHANNEL: ``x * (1 + alpha * avg)^-beta`` with ``avg`` an AVE pool of ``x^2``
  over ``local_size x local_size`` with pad ``(local_size - 1) / 2``; each window of that pool lies inside
  the padded input, so it always divides by ``local_size^2``.
* ``cifar10_full_solver.prototxt`` and Caffe's ``SGDSolver``: momentum 0.9, weight_decay 0.004 (L2),
  ``diff += weight_decay * decay_mult * w``; ``v = momentum * v + lr * lr_mult * diff``; ``w -= v``.
  ``lr_policy: fixed`` at 0.001, or the paper's triangular2 in the paper's own form (Section 3.1:
  ``cycle = floor(1 + it / (2 step)); x = |it / step - 2 cycle + 1|; lr = base + (max - base) *
  max(0, 1 - x) / 2^(cycle - 1)``), evaluated in float64 at Caffe's iteration number (0 at the first update).

Differences from Caffe, on purpose and the same as the JAX trainer: the training set is reshuffled every
epoch (Caffe reads its LMDB in a fixed order), and the test accuracy is measured on all test images.

Writes ``metrics.jsonl`` in the JAX trainer's format (rows ``{"step", "split": "train"|"test", ...}``),
``summary.json`` at the end, and a checkpoint at every evaluation, from which a killed run resumes.
"""

import argparse
import json
import math
import os
import pathlib
import platform
import time

import numpy as np
import torch
from torch.nn import functional as F

MOMENTUM = 0.9
WEIGHT_DECAY = 0.004
# name: (shape, gaussian std of the weights, (lr_mult, decay_mult) of weights, of biases)
LAYERS = {
    "conv1": ((32, 3, 5, 5), 0.0001, (1, 1), (2, 1)),
    "conv2": ((32, 32, 5, 5), 0.01, (1, 1), (2, 1)),
    "conv3": ((64, 32, 5, 5), 0.01, (1, 1), (1, 1)),
    "ip1": ((10, 64 * 4 * 4), 0.01, (1, 250), (2, 0)),
}


def init_params(seed):
  """Caffe's fillers: gaussian weights with the prototxt's std, constant-0 biases."""
  gen = torch.Generator().manual_seed(seed)
  params = {}
  for name, (shape, std, _, _) in LAYERS.items():
    params[name + ".w"] = (torch.randn(shape, generator=gen) * std).requires_grad_()
    params[name + ".b"] = torch.zeros(shape[0], requires_grad=True)
  return params


def multipliers():
  """(lr_mult, decay_mult) of every parameter blob."""
  out = {}
  for name, (_, _, w_mults, b_mults) in LAYERS.items():
    out[name + ".w"], out[name + ".b"] = w_mults, b_mults
  return out


def lrn_within_channel(x, local_size=3, alpha=5e-5, beta=0.75):
  avg = F.avg_pool2d(x * x, local_size, stride=1, padding=(local_size - 1) // 2, count_include_pad=True)
  return x * (1.0 + alpha * avg) ** (-beta)


def forward(p, x):
  """The prototxt's layers in order (pool1 comes before relu1 there)."""
  x = F.conv2d(x, p["conv1.w"], p["conv1.b"], padding=2)
  x = F.max_pool2d(x, 3, 2, ceil_mode=True)
  x = lrn_within_channel(F.relu(x))
  x = F.relu(F.conv2d(x, p["conv2.w"], p["conv2.b"], padding=2))
  x = lrn_within_channel(F.avg_pool2d(x, 3, 2, ceil_mode=True))
  x = F.relu(F.conv2d(x, p["conv3.w"], p["conv3.b"], padding=2))
  x = F.avg_pool2d(x, 3, 2, ceil_mode=True)
  return F.linear(x.flatten(1), p["ip1.w"], p["ip1.b"])


def learning_rate(policy, it, base_lr, max_lr, step_size):
  """The solver's rate at iteration `it` (float64, the paper's Section 3.1 formula for triangular2)."""
  if policy == "fixed":
    return base_lr
  cycle = math.floor(1 + it / (2 * step_size))
  x = abs(it / step_size - 2 * cycle + 1)
  return base_lr + (max_lr - base_lr) * max(0.0, 1 - x) / 2 ** (cycle - 1)


def evaluate(p, images, labels, batch=1000):
  correct, loss = 0, 0.0
  with torch.no_grad():
    for i in range(0, len(labels), batch):
      logits = forward(p, images[i:i + batch])
      loss += float(F.cross_entropy(logits, labels[i:i + batch], reduction="sum"))
      correct += int((logits.argmax(1) == labels[i:i + batch]).sum())
  return {"loss": loss / len(labels), "accuracy": correct / len(labels)}


def load_data(path):
  """uint8 NHWC arrays -> mean-image-subtracted float32 NCHW tensors, as Caffe's data layer feeds them."""
  with np.load(path) as f:
    train_x, train_y, test_x, test_y = (f[k] for k in ("train_images", "train_labels", "test_images", "test_labels"))
  mean = train_x.astype(np.float64).mean(axis=0)  # compute_image_mean: the mean of each pixel and channel
  prep = lambda a: torch.from_numpy(np.ascontiguousarray((a - mean).astype(np.float32).transpose(0, 3, 1, 2)))
  return prep(train_x), torch.from_numpy(train_y.astype(np.int64)), prep(test_x), torch.from_numpy(test_y.astype(np.int64))


def write_json(path, obj):
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(obj, indent=2))
  os.replace(tmp, path)


def resume(workdir, params, velocity):
  """Loads the checkpoint (if any) and drops the metrics logged after it; returns the step to start at."""
  ckpt = workdir / "checkpoint.pt"
  if not ckpt.exists():
    (workdir / "metrics.jsonl").unlink(missing_ok=True)
    return 0
  state = torch.load(ckpt)
  with torch.no_grad():
    for k in params:
      params[k].copy_(state["params"][k])
      velocity[k].copy_(state["velocity"][k])
  step = state["step"]
  metrics = workdir / "metrics.jsonl"
  if metrics.exists():
    rows = []
    for line in metrics.read_text().splitlines():
      try:
        row = json.loads(line)
      except json.JSONDecodeError:  # a line torn by a kill
        continue
      if row["step"] <= step:
        rows.append(line)
    metrics.write_text("".join(r + "\n" for r in rows))
  return step


def main():
  # One training loop from flags to summary, in the order of Caffe's Solver::Step (batch, forward, backward,
  # regularise, update, test, snapshot), so that it reads against Caffe's own code; hence its length.
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data", required=True, help=".npz with train_images/labels, test_images/labels (uint8 NHWC)")
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--policy", choices=("fixed", "triangular2"), required=True)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--steps", type=int, default=10000)
  parser.add_argument("--eval-every", type=int, default=1000)
  parser.add_argument("--log-every", type=int, default=100)
  parser.add_argument("--batch", type=int, default=100)
  parser.add_argument("--base-lr", type=float, default=0.001)
  parser.add_argument("--max-lr", type=float, default=0.006)
  parser.add_argument("--step-size", type=int, default=2000)
  parser.add_argument("--threads", type=int, default=2)
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  workdir = pathlib.Path(args.workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if (workdir / "summary.json").exists():
    print(f"{workdir} is finished", flush=True)
    return
  write_json(workdir / "config.json", {"framework": "pytorch", **vars(args), "data": os.path.basename(args.data)})

  train_x, train_y, test_x, test_y = load_data(args.data)
  params = init_params(args.seed)
  velocity = {k: torch.zeros_like(v) for k, v in params.items()}
  mults = multipliers()
  start = resume(workdir, params, velocity)
  steps_per_epoch = len(train_y) // args.batch
  metrics = open(workdir / "metrics.jsonl", "a")

  def log(row):
    metrics.write(json.dumps(row) + "\n")
    metrics.flush()

  t_start = time.perf_counter()
  train_time, train_images, perm, perm_epoch, final = 0.0, 0, None, -1, None
  for it in range(start, args.steps):
    t0 = time.perf_counter()
    epoch = it // steps_per_epoch
    if epoch != perm_epoch:
      perm = torch.from_numpy(np.random.default_rng([args.seed, epoch]).permutation(len(train_y)))
      perm_epoch = epoch
    idx = perm[(it % steps_per_epoch) * args.batch:(it % steps_per_epoch + 1) * args.batch]
    logits = forward(params, train_x[idx])
    loss = F.cross_entropy(logits, train_y[idx])  # SoftmaxWithLoss, normalised by the batch
    grads = torch.autograd.grad(loss, list(params.values()))
    lr = learning_rate(args.policy, it, args.base_lr, args.max_lr, args.step_size)
    with torch.no_grad():
      for (k, w), g in zip(params.items(), grads):
        lr_mult, decay_mult = mults[k]
        diff = g + (WEIGHT_DECAY * decay_mult) * w          # Solver::Regularize (L2)
        velocity[k].mul_(MOMENTUM).add_(diff, alpha=lr * lr_mult)  # SGDSolver::ComputeUpdateValue
        w.sub_(velocity[k])                                  # Blob::Update
    if it > start:  # the first step of a segment warms up
      train_time += time.perf_counter() - t0
      train_images += args.batch
    done = it + 1
    if done % args.log_every == 0:
      log({"step": done, "epoch": done / steps_per_epoch, "split": "train", "loss": float(loss.detach()), "lr": lr,
           "accuracy": float((logits.argmax(1) == train_y[idx]).float().mean()),
           "images_per_sec": train_images / max(train_time, 1e-9), "wall_time": time.perf_counter() - t_start})
    if done % args.eval_every == 0 or done == args.steps:
      final = evaluate(params, test_x, test_y)
      log({"step": done, "epoch": done / steps_per_epoch, "split": "test", **final,
           "wall_time": time.perf_counter() - t_start})
      print(f"step {done}: test accuracy {final['accuracy']:.4f}", flush=True)
      tmp = workdir / "checkpoint.pt.tmp"
      torch.save({"step": done, "params": {k: v.detach() for k, v in params.items()}, "velocity": velocity}, tmp)
      os.replace(tmp, workdir / "checkpoint.pt")
  metrics.close()
  final = final or evaluate(params, test_x, test_y)  # None when resumed from the last step's checkpoint
  write_json(workdir / "summary.json", {
      "config": f"pytorch_{args.policy}", "framework": "pytorch", "torch": torch.__version__,
      "steps": args.steps, "test_accuracy": final["accuracy"], "test_loss": final["loss"],
      "train_images_per_sec": train_images / max(train_time, 1e-9), "wall_time": time.perf_counter() - t_start,
      "threads": torch.get_num_threads(), "machine": platform.machine()})


if __name__ == "__main__":
  main()
