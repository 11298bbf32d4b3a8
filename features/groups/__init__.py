"""Feature groups: one module per group, each declaring its catalog entries and computing its columns.

A group module has ``NAME``, ``TASKS`` (the task kinds it applies to), ``catalog(fs) -> list[FeatureInfo]``
and ``compute(ctx, out)``, which adds one array per catalog entry to ``out`` for the points of ``ctx``
(``features.groups.context.Context``). Groups run in the order of ``GROUPS``; a later group may read what an
earlier one computed (the clinical scores read the index stay, labs and comorbidities). A new group is a new
module here, added to ``GROUPS``.
"""

from umrisk.features.groups import (
    clinical_scores,
    comorbidity,
    demographics,
    index_stay,
    labs,
    medications,
    utilization,
)

GROUPS = (demographics, utilization, index_stay, labs, comorbidity, medications, clinical_scores)
