"""Status conditions: set one, keeping lastTransitionTime unless the status really changed."""

from __future__ import annotations

from datetime import datetime

from agentic_sandbox.crds.instance import ConditionType
from agentic_sandbox.crds.meta import Condition

# Condition types this controller writes. Other types (for example SourceSynced, written by the
# directory source) are carried over untouched.
OWNED_TYPES = frozenset(
    {
        ConditionType.READY,
        ConditionType.RUNTIME_READY,
        ConditionType.AGENT_CONNECTED,
        ConditionType.RECONCILING,
        ConditionType.STALLED,
    }
)


def set_condition(
    conditions: list[Condition],
    *,
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Return ``conditions`` with ``type_`` set; the transition time moves only on a change."""
    previous = next((c for c in conditions if c.type == type_), None)
    changed = previous is None or previous.status != status
    transition = now if changed or previous is None else previous.last_transition_time
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    result = [c for c in conditions if c.type != type_]
    result.append(updated)
    return result


def sort_conditions(conditions: list[Condition]) -> list[Condition]:
    """Order owned conditions first in a fixed order, then the others by type."""
    order = [t.value for t in ConditionType]

    def rank(condition: Condition) -> tuple[int, str]:
        if condition.type in order:
            return (order.index(condition.type), condition.type)
        return (len(order), condition.type)

    return sorted(conditions, key=rank)
