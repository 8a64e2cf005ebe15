"""Table 1, GoogLeNet "triangular2": CLR between 0.01 and 0.026.

  python -m experiments.train --config table1_googlenet_triangular2 --workdir /tmp/t1_googlenet_tri2 \
      --data imagenet2012

Paper: 64.4% top-1 validation accuracy after 420,000 iterations (Table 1, line 132 of the paper's text). §4.2.2:
stepsize 30,000 iterations (about 3 epochs at batch 128, line 304), base_lr 0.01 and max_lr 0.026 from the range
test of Fig. 11 (line 306). `SOURCES` says where each setting comes from.
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib
from experiments.configs import paper_results
from experiments.configs.provenance import Assumed
from experiments.configs.provenance import Paper

SOURCES = {
    **_imagenet.GOOGLENET_SOURCES,
    "schedule.name": Paper("triangular2", "Table 1", 132, "triangular2"),
    "schedule.base_lr": Paper(0.01, "§4.2.2", 306, "*base_lr* was set to 0.01"),
    "schedule.max_lr": Paper(0.026, "§4.2.2", 306, "*max_lr* was set to 0.026"),
    "schedule.step_size": Paper("30000", "§4.2.2", 304, "*stepsize* = 30000"),
    "schedule.drop_at": Assumed("none: Fig. 12's text mentions training stages (line 308) but not where the rate "
                                "changed"),
    "train.num_steps": Paper("420000", "Table 1", 132, "420,000"),
}


def get_config() -> config_lib.Config:
  return _imagenet.googlenet({
      "name": "table1_googlenet_triangular2",
      "paper": paper_results.quote("table1_googlenet_triangular2", "GoogLeNet triangular2"),
      "schedule.name": "triangular2",
      "schedule.base_lr": 0.01,
      "schedule.max_lr": 0.026,
      "schedule.step_size": "30000",
      "train.num_steps": "420000",
  })
