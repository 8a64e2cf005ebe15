"""PyTorch CPU half of train_speed.py: Caffe's cifar10_full, one SGD step per batch, images/s as JSON.

Run by train_speed.py with a Python that has torch (a separate venv; torch is not a dependency):

  /tmp/torchenv/bin/python experiments/benchmarks/torch_cifar10_full.py --batch 100 --steps 30

The network matches experiments.models' cifar10_full: conv 5x5x32 (pad 2) -> max-pool 3/2 (ceil) ->
ReLU -> within-channel LRN (3x3, alpha 5e-5, beta 0.75) -> conv 5x5x32 -> ReLU -> avg-pool 3/2 (ceil) ->
LRN -> conv 5x5x64 -> ReLU -> avg-pool 3/2 (ceil) -> fully connected 10. The timed step includes the
uint8 -> float conversion and mean subtraction, like the JAX step.
"""

import argparse
import json
import time

import torch
from torch import nn
import torch.nn.functional as F


class WithinChannelLRN(nn.Module):
  """Caffe's WITHIN_CHANNEL LRN: x / (1 + alpha * mean of x^2 over a size x size window)^beta."""

  def __init__(self, size=3, alpha=5e-5, beta=0.75):
    super().__init__()
    self.size, self.alpha, self.beta = size, alpha, beta

  def forward(self, x):
    mean_sq = F.avg_pool2d(x * x, self.size, stride=1, padding=self.size // 2, count_include_pad=True)
    return x / (1 + self.alpha * mean_sq) ** self.beta


class Cifar10Full(nn.Module):
  def __init__(self, num_classes=10):
    super().__init__()
    self.conv1 = nn.Conv2d(3, 32, 5, padding=2)
    self.conv2 = nn.Conv2d(32, 32, 5, padding=2)
    self.conv3 = nn.Conv2d(32, 64, 5, padding=2)
    self.ip1 = nn.Linear(64 * 4 * 4, num_classes)
    self.lrn = WithinChannelLRN()

  def forward(self, x):
    x = self.lrn(F.relu(F.max_pool2d(self.conv1(x), 3, 2, ceil_mode=True)))
    x = self.lrn(F.avg_pool2d(F.relu(self.conv2(x)), 3, 2, ceil_mode=True))
    x = F.avg_pool2d(F.relu(self.conv3(x)), 3, 2, ceil_mode=True)
    return self.ip1(x.flatten(1))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=100)
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
  parser.add_argument("--channels-last", action="store_true")
  args = parser.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  model = Cifar10Full()
  memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
  model = model.to(memory_format=memory_format)
  opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=0.004)
  images = torch.randint(0, 256, (args.batch, 3, 32, 32), dtype=torch.uint8)
  labels = torch.randint(0, 10, (args.batch,))
  mean = images.float().mean(0)

  def step():
    x = (images.float() - mean).contiguous(memory_format=memory_format)
    loss = F.cross_entropy(model(x), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss

  for _ in range(args.warmup):
    step()
  times = []
  for _ in range(args.steps):
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
  times.sort()
  median = times[len(times) // 2]
  print(json.dumps({"framework": "torch", "version": torch.__version__, "threads": torch.get_num_threads(),
                    "model": "cifar10_full", "batch": args.batch, "steps": args.steps,
                    "ms_per_step_median": 1e3 * median, "images_per_sec": args.batch / median,
                    "images_per_sec_mean": args.batch * len(times) / sum(times)}))


if __name__ == "__main__":
  main()
