"""PyTorch CPU half of train_speed.py: one SGD step per batch of Caffe's cifar10_full or ResNet-20, as JSON.

Run by train_speed.py with a Python that has torch (a separate venv; torch is not a dependency):

  ../torchenv/bin/python experiments/benchmarks/torch_speed.py --model cifar10_full --batch 100 --steps 300

* ``cifar10_full`` matches experiments.models' network: conv 5x5x32 (pad 2) -> max-pool 3/2 (ceil) -> ReLU
  -> within-channel LRN (3x3, alpha 5e-5, beta 0.75) -> conv 5x5x32 -> ReLU -> avg-pool 3/2 (ceil) -> LRN
  -> conv 5x5x64 -> ReLU -> avg-pool 3/2 (ceil) -> fully connected 10; SGD momentum 0.9, weight decay 0.004.
* ``resnet20`` is He et al.'s CIFAR ResNet-20 as experiments.models.resnet builds it: a 3x3 conv of 16,
  three stages of three basic blocks (16, 32, 64 filters; conv-BN-ReLU-conv-BN, the first block of stages 2
  and 3 strided), option-A shortcuts (subsampling and zero-padded channels), global average pooling, a
  dense layer; SGD momentum 0.9, weight decay 1e-4.

The timed step includes the uint8 -> float conversion and normalisation, like the JAX step. After
``--warmup`` untimed steps, ``--steps`` steps are timed one by one; the JSON has the median step and the
medians of five consecutive windows of them, so a reader can see whether the speed had settled.
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


class BasicBlock(nn.Module):
  def __init__(self, cin, cout, stride):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.stride, self.extra = stride, cout - cin

  def forward(self, x):
    y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
    shortcut = x[:, :, ::self.stride, ::self.stride]
    if self.extra:  # option A: the new channels are zeros
      shortcut = F.pad(shortcut, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
    return F.relu(shortcut + y)


class ResNet20(nn.Module):
  def __init__(self, num_classes=10, blocks=3):
    super().__init__()
    self.conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
    self.bn = nn.BatchNorm2d(16)
    layers, cin = [], 16
    for stage, cout in enumerate((16, 32, 64)):
      for block in range(blocks):
        layers.append(BasicBlock(cin, cout, 2 if stage and not block else 1))
        cin = cout
    self.blocks = nn.Sequential(*layers)
    self.fc = nn.Linear(64, num_classes)
    for m in self.modules():
      if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

  def forward(self, x):
    x = self.blocks(F.relu(self.bn(self.conv(x))))
    return self.fc(x.mean((2, 3)))


MODELS = {"cifar10_full": (Cifar10Full, 0.004), "resnet20": (ResNet20, 1e-4)}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", choices=sorted(MODELS), default="cifar10_full")
  parser.add_argument("--batch", type=int, default=100)
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--warmup", type=int, default=200)
  parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
  parser.add_argument("--channels-last", action="store_true")
  args = parser.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  build, weight_decay = MODELS[args.model]
  memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
  model = build().to(memory_format=memory_format).train()
  opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=weight_decay)
  images = torch.randint(0, 256, (args.batch, 3, 32, 32), dtype=torch.uint8)
  labels = torch.randint(0, 10, (args.batch,))
  mean = images.float().mean(0)

  def step():
    x = ((images.float() - mean) / 64.0).contiguous(memory_format=memory_format)
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
  median = sorted(times)[len(times) // 2]
  size = max(len(times) // 5, 1)
  windows = [sorted(w)[len(w) // 2] for w in (times[i:i + size] for i in range(0, size * 5, size)) if w]
  print(json.dumps({"framework": "torch", "version": torch.__version__, "threads": torch.get_num_threads(),
                    "model": args.model, "batch": args.batch, "warmup": args.warmup, "steps": args.steps,
                    "ms_per_step_median": 1e3 * median, "images_per_sec": args.batch / median,
                    "images_per_sec_windows": [args.batch / w for w in windows],
                    "images_per_sec_mean": args.batch * len(times) / sum(times)}))


if __name__ == "__main__":
  main()
