"""``sandboxctl events``: list events, and with ``--watch`` follow new ones as they happen.

The list is the table of ``sandboxctl get events``. With ``--watch`` the command then follows the
server's event stream (``GET /api/v1/events?follow=true``), printing each new event as a row,
until Ctrl-C. After a dropped connection it reconnects with ``Last-Event-ID`` set to the last
event printed, so no event is lost or printed twice. Failed attempts back off exponentially, and
after ``MAX_RECONNECT_ATTEMPTS`` consecutive failures the command gives up with an error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from agentic_sandbox.cli.argtypes import positive_int
from agentic_sandbox.cli.client import ApiError, CliError
from agentic_sandbox.cli.output import COLUMN_GAP, dump_json, dump_yaml, render_table
from agentic_sandbox.cli.tables import EVENT_HEADERS, event_row

EVENTS_PATH = "/api/v1/events"
LAST_EVENT_ID_HEADER = "Last-Event-ID"
DEFAULT_NAMESPACE = "default"
OUTPUT_FORMATS = ("json", "yaml", "name")
# The server sends a keep-alive comment every 15 s, so three missed ones mean a dead connection.
READ_TIMEOUT_SECONDS = 45.0
CONNECT_TIMEOUT_SECONDS = 10.0
# Reconnect delays double from the base up to the cap: 0.5, 1, 2, 4, 8, 10, 10, 10 seconds.
RECONNECT_BASE_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 10.0
MAX_RECONNECT_ATTEMPTS = 8
# Minimum widths of AGE, TYPE, EVENT, REASON and OBJECT, so that streamed rows line up.
WATCH_COLUMN_WIDTHS = (5, 7, 22, 14, 22)


class StreamInterrupted(Exception):
    """The event stream failed in a way that a reconnect may fix."""


@dataclass(frozen=True)
class EventQuery:
    """The filters of an events request: a ``namespace/name`` key and an event type."""

    instance: str | None = None
    type: str | None = None

    def params(self) -> dict[str, str]:
        params = {"instance": self.instance, "type": self.type}
        return {key: value for key, value in params.items() if value is not None}


def _api_error(response: httpx.Response, token_hint: str) -> ApiError:
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = {"detail": f"HTTP {response.status_code}: {response.text.strip()[:200]}"}
    details = [
        f"{error.get('field')}: {error.get('message')}"
        for error in problem.get("errors") or []
        if isinstance(error, dict)
    ]
    if response.status_code == 401 and token_hint:
        details.append(token_hint)
    return ApiError(response.status_code, problem, details=details)


def parse_frames(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """Parse server-sent event lines into frames of ``{field: value}``; comments are dropped."""
    frame: dict[str, str] = {}
    for line in lines:
        if not line:
            if frame:
                yield frame
            frame = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        # The SSE format joins repeated data lines with line breaks.
        frame[name] = f"{frame[name]}\n{value}" if name == "data" and name in frame else value


class EventClient:
    """Lists and streams events from the API at ``server`` with a bearer ``token``."""

    def __init__(self, server: str, token: str | None, *, token_hint: str = "") -> None:
        self.server = server.rstrip("/")
        self._token_hint = token_hint
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        timeout = httpx.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def list(
        self, query: EventQuery, *, since: int | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {**query.params(), "since": since, "limit": limit}
        params = {key: value for key, value in params.items() if value is not None}
        try:
            response = self._http.get(EVENTS_PATH, params=params)
        except httpx.TransportError as error:
            raise CliError(
                f"cannot list events from the server at {self.server}: {error}"
            ) from error
        if not response.is_success:
            raise _api_error(response, self._token_hint)
        document = response.json()
        if not isinstance(document, dict):
            raise CliError(
                f"the server at {self.server} returned an event list that is not an object"
            )
        return document

    def stream(
        self, query: EventQuery, *, after: int, on_connect: Callable[[], None] = lambda: None
    ) -> Iterator[dict[str, Any]]:
        """Yield the events after id ``after`` as the server streams them.

        ``on_connect`` is called once the server has accepted the stream. Raises
        StreamInterrupted on a transport failure, a server error or the end of the stream, and
        ApiError when the server rejects the request.
        """
        params = {**query.params(), "follow": "true"}
        headers = {LAST_EVENT_ID_HEADER: str(after), "Accept": "text/event-stream"}
        try:
            with self._http.stream("GET", EVENTS_PATH, params=params, headers=headers) as response:
                if response.status_code >= 500:
                    raise StreamInterrupted(f"the server responded {response.status_code}")
                if not response.is_success:
                    response.read()
                    raise _api_error(response, self._token_hint)
                on_connect()
                for frame in parse_frames(response.iter_lines()):
                    if "data" in frame:
                        yield _frame_event(frame)
        except httpx.TransportError as error:
            raise StreamInterrupted(str(error) or type(error).__name__) from error
        raise StreamInterrupted("the server ended the event stream")


def _frame_event(frame: dict[str, str]) -> dict[str, Any]:
    try:
        event = json.loads(frame["data"])
    except ValueError as error:
        raise StreamInterrupted(f"an event frame contains invalid JSON: {error}") from error
    if not isinstance(event, dict):
        raise StreamInterrupted("an event frame contains JSON that is not an object")
    return event


class EventPrinter:
    """Prints events as table rows, JSON lines, YAML documents or ``event/<id>`` names.

    A watched table fixes its column widths when its header is printed, so that the rows
    printed later line up with it. A longer cell shifts only the rest of its own row.
    """

    def __init__(self, output: str | None) -> None:
        self.output = output
        self._widths: list[int] = []

    def print_list(self, document: dict[str, Any]) -> None:
        """Print one listed page as ``sandboxctl get events`` does."""
        events = _items(document)
        if self.output == "json":
            print(dump_json(document))
        elif self.output == "yaml":
            print(dump_yaml(document), end="")
        elif not events:
            print("No events found.", file=sys.stderr)
        elif self.output == "name":
            for event in events:
                self._print_one(event)
        else:
            now = datetime.now(UTC)
            print(render_table(EVENT_HEADERS, [event_row(event, now=now) for event in events]))

    def start_watch(self, document: dict[str, Any]) -> None:
        """Print the listed page that a watch starts from, then leave the table open."""
        events = _items(document)
        if self.output is not None:
            for event in events:
                self._print_one(event)
            return

        now = datetime.now(UTC)
        rows = [event_row(event, now=now) for event in events]
        widths = [
            max(len(header), minimum)
            for header, minimum in zip(EVENT_HEADERS, WATCH_COLUMN_WIDTHS, strict=False)
        ]
        for row in rows:
            widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=False)]
        self._widths = widths
        for row in [list(EVENT_HEADERS), *rows]:
            self._print_row(row)

    def _print_row(self, row: Sequence[str]) -> None:
        # Every column but the last (MESSAGE) is padded to its width; a longer cell keeps the gap.
        cells = [
            cell.ljust(width) + " " * COLUMN_GAP
            for cell, width in zip(row, self._widths, strict=False)
        ]
        print(("".join(cells) + row[-1]).rstrip(), flush=True)

    def print_event(self, event: dict[str, Any]) -> None:
        """Print an event that arrived on the stream."""
        self._print_one(event)

    def _print_one(self, event: dict[str, Any]) -> None:
        if self.output == "json":
            print(json.dumps(event, ensure_ascii=False), flush=True)
        elif self.output == "yaml":
            print("---\n" + dump_yaml(event), end="", flush=True)
        elif self.output == "name":
            print(f"event/{event.get('id')}", flush=True)
        else:
            self._print_row(event_row(event, now=datetime.now(UTC)))


def _items(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [event for event in document.get("items") or [] if isinstance(event, dict)]


def _event_id(event: dict[str, Any]) -> int | None:
    value = event.get("id")
    return value if isinstance(value, int) else None


def reconnect_delay(attempt: int) -> float:
    """Return the seconds to wait before reconnect ``attempt`` (1 for the first)."""
    return float(min(RECONNECT_MAX_SECONDS, RECONNECT_BASE_SECONDS * 2 ** (attempt - 1)))


def follow(
    client: EventClient,
    query: EventQuery,
    *,
    after: int,
    on_event: Callable[[dict[str, Any]], None],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Pass each event after id ``after`` to ``on_event``, reconnecting after failures.

    Runs until interrupted (KeyboardInterrupt). Raises CliError after MAX_RECONNECT_ATTEMPTS
    consecutive failed attempts, and ApiError when the server rejects the request.
    """
    failures = 0

    def connected() -> None:
        nonlocal failures
        failures = 0

    while True:
        try:
            for event in client.stream(query, after=after, on_connect=connected):
                after = _event_id(event) or after
                on_event(event)
        except StreamInterrupted as error:
            failures += 1
            if failures > MAX_RECONNECT_ATTEMPTS:
                raise CliError(
                    f"lost the event stream from {client.server} after {MAX_RECONNECT_ATTEMPTS} "
                    f"reconnect attempts: {error}",
                    details=[f"run the command again to resume; the last event shown is {after}"],
                ) from error
            delay = reconnect_delay(failures)
            print(
                f"event stream interrupted ({error}); reconnecting in {delay:g}s "
                f"(attempt {failures} of {MAX_RECONNECT_ATTEMPTS})",
                file=sys.stderr,
                flush=True,
            )
            sleep(delay)


def _query(args: argparse.Namespace) -> EventQuery:
    instance = args.instance
    if instance and "/" not in instance:
        instance = f"{args.namespace or DEFAULT_NAMESPACE}/{instance}"
    return EventQuery(instance=instance, type=args.type)


def _newest_id(client: EventClient) -> int:
    newest = _items(client.list(EventQuery(), limit=1))
    if not newest:
        return 0
    return _event_id(newest[-1]) or 0


def _watch(
    client: EventClient, query: EventQuery, printer: EventPrinter, args: argparse.Namespace
) -> None:
    # The stream starts from the newest id read before listing, so an event appended while
    # the page is listed is streamed, and the ids on the page are skipped so none shows twice.
    after = args.since if args.since is not None else _newest_id(client)
    document = client.list(query, since=args.since, limit=args.limit)
    printer.start_watch(document)
    listed = {_event_id(event) for event in _items(document)}

    def print_new(event: dict[str, Any]) -> None:
        if _event_id(event) not in listed:
            printer.print_event(event)

    follow(client, query, after=after, on_event=print_new)


def run_events(args: argparse.Namespace, *, server: str, token: str | None, token_hint: str) -> int:
    """Run ``sandboxctl events``. With ``--watch`` it runs until interrupted or an error."""
    query = _query(args)
    printer = EventPrinter(args.output)
    client = EventClient(server, token, token_hint=token_hint)
    try:
        if args.watch:
            _watch(client, query, printer, args)
        else:
            printer.print_list(client.list(query, since=args.since, limit=args.limit))
        return 0
    finally:
        client.close()


def add_events_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parent: argparse.ArgumentParser,
) -> None:
    events = subparsers.add_parser(
        "events",
        parents=[parent],
        help="list events, or watch them as they happen with --watch",
        description="List the controller's events as the table of 'sandboxctl get events'.\n"
        "With --watch, keep printing new events as they happen until Ctrl-C. A dropped\n"
        "connection is resumed after the last event shown, so none is lost or repeated.",
        epilog="examples:\n  sandboxctl events --watch\n"
        "  sandboxctl events --watch --instance web --type container.\n"
        "  sandboxctl events --watch -o json | jq .name",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    events.add_argument(
        "-w", "--watch", action="store_true", help="after the list, print new events until Ctrl-C"
    )
    events.add_argument(
        "--instance", metavar="NAME", help="only the events of this instance (NAME or NS/NAME)"
    )
    events.add_argument(
        "-n", "--namespace", metavar="NS", help="namespace of --instance (default: default)"
    )
    events.add_argument(
        "--type",
        metavar="TYPE",
        help="only events of this type: a name such as container.started, or a prefix ending "
        "in a dot such as container.",
    )
    events.add_argument(
        "--since", metavar="ID", type=_event_id_argument, help="only events after this id"
    )
    events.add_argument(
        "--limit",
        metavar="N",
        type=positive_int,
        help="list at most N events; without --since, the newest N (default 100)",
    )
    events.add_argument(
        "-o",
        "--output",
        choices=OUTPUT_FORMATS,
        metavar="FORMAT",
        help="output format: json, yaml or name (default: a table). With --watch, json prints "
        "one event per line and yaml one document per event",
    )
    events.set_defaults(command="events")


def _event_id_argument(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"event id {text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"event id {value} is below the minimum of 0")
    return value
