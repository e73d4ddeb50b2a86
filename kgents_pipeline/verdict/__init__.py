"""The launch-readiness verdict: rules (`rules/`, a module per family), the inputs they judge
(`inputs`, `checklist`), the pure `evaluate`, and the use cases that read the history, evaluate
and record (`usecase`). Reports render it (`report`, `run_summary`).

numpy is imported where something is judged, not here: the code location imports the rules'
declarations when it loads (for the asset checks they decide), and must stay cheap to load.
"""

from kgents_pipeline.verdict.evaluate import evaluate
from kgents_pipeline.verdict.inputs import HistorySnapshot, parse_now
from kgents_pipeline.verdict.model import (
    EXIT_CODES,
    Reason,
    Rule,
    State,
    Verdict,
    VerdictPolicy,
)
from kgents_pipeline.verdict.rules import NON_WAIVABLE, NON_WAIVABLE_WHY, RULE_IDS, RULES

__all__ = [
    "EXIT_CODES",
    "NON_WAIVABLE",
    "NON_WAIVABLE_WHY",
    "RULES",
    "RULE_IDS",
    "HistorySnapshot",
    "Reason",
    "Rule",
    "State",
    "Verdict",
    "VerdictPolicy",
    "evaluate",
    "parse_now",
]
