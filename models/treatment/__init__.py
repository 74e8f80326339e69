"""Treatment scoring and plan optimization (pure functions, no I/O).

Scores the care given or proposed for one patient against the guidelines that apply to their state,
and suggests the smallest set of changes that raises the score most. Rules, weights and grading are
documented in ``docs/treatment.md``; each rule cites its source.

- ``guidelines``: the sources, weights, deadlines and Vigil's conventions where a guideline gives no number
- ``timeline``: a plan's items as minutes after time zero; ``patient``: what the patient's state implies
- ``rules``: the eight guideline items and the score; ``optimizer``: the greedy suggestions
- ``scoring``: the entry points (``score_plan`` for ``vigil plan score``, ``score_patient_care`` for the stream)

Time is minutes after *time zero* (sepsis recognition, or the NEWS2 observation set that triggered).
Two modes share every rule:
- **plan** (``as_of_min=None``): the plan is judged as complete up to its horizon; nothing is pending.
- **streaming** (``as_of_min`` = now): care so far; an item not yet done whose deadline is still
  ahead is ``pending`` and left out of the score, so a patient recognized five minutes ago is not
  scored as failing the one-hour bundle.
"""

from vigil.models.treatment.guidelines import SOURCES, WEIGHTS
from vigil.models.treatment.optimizer import apply_suggestion, suggest_changes
from vigil.models.treatment.patient import required_observation_interval_min
from vigil.models.treatment.rules import evaluate_plan, score_value
from vigil.models.treatment.scoring import score_patient_care, score_plan

__all__ = [
    "WEIGHTS",
    "SOURCES",
    "evaluate_plan",
    "score_value",
    "score_plan",
    "suggest_changes",
    "apply_suggestion",
    "score_patient_care",
    "required_observation_interval_min",
]
