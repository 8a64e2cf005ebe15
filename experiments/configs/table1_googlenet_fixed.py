"""Table 1, GoogLeNet "fixed": the paper's GoogLeNet baseline, a best-guess rate of 0.01.

  python -m experiments.train --config table1_googlenet_fixed --workdir /tmp/t1_googlenet_fixed --data imagenet2012

Paper: 63.0% top-1 validation accuracy after 420,000 iterations at batch 128 (Table 1, line 131 of the paper's
text). §4.2.2: no solver file was available for a baseline (line 293), and base_lr was set to a best guess of 0.01
(line 302). Figure 12's text mentions "training stages" (line 308) but not where they changed the rate, so the rate
stays at 0.01 here: our reading. `SOURCES` says where each setting comes from.
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib
from experiments.configs import paper_results
from experiments.configs.provenance import Assumed
from experiments.configs.provenance import Paper

SOURCES = {
    **_imagenet.GOOGLENET_SOURCES,
    "schedule.name": Assumed("no solver file (line 293) and no stage points (line 308): a fixed rate throughout"),
    "schedule.base_lr": Paper(0.01, "§4.2.2", 302, "best guess value of 0.01"),
    "train.num_steps": Paper("420000", "Table 1", 131, "420,000"),
}


def get_config() -> config_lib.Config:
  return _imagenet.googlenet({
      "name": "table1_googlenet_fixed",
      "paper": paper_results.quote("table1_googlenet_fixed", "GoogLeNet fixed"),
      "schedule.name": "fixed",
      "schedule.base_lr": 0.01,
      "train.num_steps": "420000",
  })
