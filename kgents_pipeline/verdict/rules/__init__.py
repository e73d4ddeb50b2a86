"""The verdict's rules, a module per family, each with one shape: `RULES` (the `Rule`s it
decides) and `judge(evidence, earlier) -> Findings` (one reason per rule).

A new rule goes into its family's module (or a new module listed in `FAMILIES`); everything
that reads rules (the verdict, waivers, the checklist's `resolved_by`, the asset checks of
`metrics_history`, the report) picks it up from here.
"""

from __future__ import annotations

from kgents_pipeline.verdict.model import Rule
from kgents_pipeline.verdict.rules import (
    archive,
    capacity,
    checklist,
    cluster,
    quantity,
    regression,
    rehearsal,
    slo,
    validity,
)

# Evaluation order. Waivers apply after every family but the last: the checklist judges the
# other rules' reasons as waived.
FAMILIES = (validity, slo, regression, quantity, cluster, capacity, rehearsal, archive, checklist)
JUDGED_AFTER_WAIVERS = (checklist,)

# Display order (reasons are listed in this order).
RULES: tuple[Rule, ...] = (
    *validity.RULES,
    *slo.RULES,
    *regression.RULES,
    *quantity.RULES,
    *cluster.RULES,
    *capacity.RULES,
    *checklist.RULES,
    *rehearsal.RULES,
    *archive.RULES,
)
RULE_IDS: tuple[str, ...] = tuple(r.id for r in RULES)
BY_ID = {r.id: r for r in RULES}
NON_WAIVABLE_WHY = {r.id: r.not_waivable for r in RULES if not r.waivable}
NON_WAIVABLE = frozenset(NON_WAIVABLE_WHY)
WAIVABLE = tuple(r.id for r in RULES if r.waivable)

assert len(set(RULE_IDS)) == len(RULE_IDS), "duplicate rule ids"
assert {r.id for f in FAMILIES for r in f.RULES} == set(RULE_IDS), "a family is not in RULES"
