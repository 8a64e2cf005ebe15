"""Every setting a paper row's config takes from the paper is where the config says, and the report is current.

The paper's text is read from ``$CLR_PAPER_DIR`` (.ci/run sets it to ../shared/paper): the citations are checked
against the document itself, never against the configs' own copies of it.
"""

import pathlib
import re

import pytest

from experiments import configs
from experiments import fidelity
from experiments.configs import paper_results
from experiments.configs import provenance

REPO = pathlib.Path(__file__).resolve().parents[2]
ROWS = sorted({name for _, names in fidelity.sections() for name in names})
needs_paper = pytest.mark.skipif(provenance.paper_dir() is None, reason=f"${provenance.PAPER_DIR_ENV} is not set")


def _lines(doc: str) -> list[str]:
  return (provenance.paper_dir() / doc).read_text().splitlines()


def _cited(doc: str, first: int, last: int | None) -> str:
  """Lines `first` to `last` (1-based) of `doc`, as one string."""
  return "\n".join(_lines(doc)[first - 1:(last or first)])


def _citations():
  for name in ROWS:
    for field, source in provenance.sources(name).items():
      if isinstance(source, provenance.Paper):
        yield name, field, source.doc, source.line, source.last_line, source.text
      elif isinstance(source, provenance.ByReference):
        yield name, field, provenance.PAPER, source.line, None, source.text


@needs_paper
@pytest.mark.parametrize("name,field,doc,line,last,text", list(_citations()))
def test_every_cited_line_holds_the_words_cited(name, field, doc, line, last, text):
  assert text in _cited(doc, line, last), f"{name} {field}: {text!r} is not on line(s) {line}-{last or line} of {doc}"


def test_a_paper_value_is_the_configs_unless_it_says_why_and_every_row_covers_its_settings():
  for name in ROWS:
    config = configs.get_config(name)
    sources = provenance.sources(name)
    missing = [f for f in provenance.required_fields(config) if f not in sources]
    assert not missing, f"{name}: no source for {missing}"
    for field, source in sources.items():
      assert provenance.status(config, field, source) != "differs", (name, field, source)


def test_status_names_a_silent_departure_and_an_assumption():
  config = configs.get_config("table1_decay")
  assert provenance.status(config, "schedule.max_lr", provenance.Paper(0.006, "§4.1.1", 180, "0.006")) == "differs"
  assert provenance.status(config, "schedule.max_lr", provenance.Paper(0.006, "§4.1.1", 180, "0.006",
                                                                      departs="why")) == "departs: why"
  assert provenance.status(config, "schedule.max_lr", provenance.Assumed("ours")) == "assumed: ours"


@needs_paper
def test_a_citation_of_the_wrong_line_is_caught():
  # Table 2's max_lr column is on lines 167-169; line 164 holds §4.1.1's 0.006, not 0.00005.
  assert "0.00005" in _cited(provenance.PAPER, 167, 169)
  assert "0.00005" not in _cited(provenance.PAPER, 164, None)


def _printed(value: float) -> str:
  return f"{value:.1f}"


@needs_paper
@pytest.mark.parametrize("name", sorted(n for n, r in paper_results.PAPER_RESULTS.items() if r.line))
def test_every_paper_number_is_on_the_line_it_cites(name):
  r = paper_results.PAPER_RESULTS[name]
  line = _lines(provenance.PAPER)[r.line - 1]
  for value in (r.accuracy, r.cifar100_accuracy, r.imagenet_accuracy):
    if value is not None:
      assert re.search(rf"(?<![\d.]){re.escape(_printed(value))}(?![\d])", line), (name, value, line)
  if r.iterations:
    assert f"{r.iterations:,}" in line, (name, r.iterations, line)


def test_every_paper_row_of_the_configs_has_its_number_with_a_line():
  unlined = [n for n, r in paper_results.PAPER_RESULTS.items() if r.verified and r.line is None]
  assert not unlined


def test_the_committed_fidelity_report_is_current():
  committed = (REPO / "experiments" / "reports" / "fidelity.md").read_text()
  assert committed == fidelity.render(), "run: python -m experiments.reproduce --fidelity"


def test_reproduce_fidelity_writes_the_report(tmp_path):
  from experiments import reproduce  # pylint: disable=g-import-not-at-top
  reproduce.main(["--fidelity", "--report-dir", str(tmp_path)])
  assert (tmp_path / "fidelity.md").read_text() == fidelity.render()
