"""Experiment configs, one module per row of the paper (see config_lib for the machinery).

`get_config(name)` builds a named config, `override(config, {"a.b": value})` changes fields,
`list_configs()` names them all. `tables` names the groups of configs the paper's tables compare and
`shrink` divides a config's iteration counts; `paper_results` holds the paper's numbers.
"""

from experiments.configs.config_lib import Config
from experiments.configs.config_lib import DataConfig
from experiments.configs.config_lib import FieldError
from experiments.configs.config_lib import ModelConfig
from experiments.configs.config_lib import OptimConfig
from experiments.configs.config_lib import ScheduleConfig
from experiments.configs.config_lib import TrainConfig
from experiments.configs.config_lib import WorkflowConfig
from experiments.configs.config_lib import config_args
from experiments.configs.config_lib import duration_fields
from experiments.configs.config_lib import flat_fields
from experiments.configs.config_lib import get_config
from experiments.configs.config_lib import list_configs
from experiments.configs.config_lib import override
from experiments.configs.config_lib import parse_overrides
from experiments.configs.config_lib import to_dict
from experiments.configs.duration import Duration
from experiments.configs.duration import resolve_duration

__all__ = [
    "Config", "DataConfig", "Duration", "FieldError", "ModelConfig", "OptimConfig", "ScheduleConfig", "TrainConfig",
    "WorkflowConfig", "config_args", "duration_fields", "flat_fields", "get_config", "list_configs", "override",
    "parse_overrides", "resolve_duration", "to_dict",
]
