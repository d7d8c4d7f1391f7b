"""Recording user-facing events in the durable event log.

Events and status conditions come from the same reconcile code path with typed names and reasons.
A failure to record an event is logged and never fails the reconcile that produced it.
"""

from __future__ import annotations

import logging
from typing import Protocol

from agentic_sandbox.crds.event import Event, EventName, EventSeverity
from agentic_sandbox.crds.meta import Resource
from agentic_sandbox.errors import StoreError

logger = logging.getLogger(__name__)


class EventSink(Protocol):
    async def append(self, event: Event) -> Event: ...


class EventRecorder:
    def __init__(self, sink: EventSink) -> None:
        self._sink = sink
        self.recorded = 0
        self.failed = 0

    async def record(
        self,
        name: EventName | str,
        *,
        instance: Resource | None = None,
        reason: str = "",
        message: str = "",
        severity: EventSeverity = EventSeverity.NORMAL,
        source: str | None = None,
        details: dict[str, str] | None = None,
        instance_key: str | None = None,
        uid: str | None = None,
    ) -> None:
        """Append one event. ``instance_key`` and ``uid`` name an instance whose record is gone."""
        event = Event(
            name=str(name),
            severity=severity,
            reason=reason,
            message=message,
            instance=instance.key if instance is not None else instance_key,
            uid=instance.metadata.uid if instance is not None else uid,
            source=source,
            details=details or {},
        )
        try:
            await self._sink.append(event)
        except StoreError as error:
            self.failed += 1
            logger.warning("event not recorded event=%s error=%s", event.name, error)
            return
        self.recorded += 1
