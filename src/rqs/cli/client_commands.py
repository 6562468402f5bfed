"""Commands that talk to a running server over HTTP: ingest, poll, stats, demo."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Any, TypeVar

import click
import msgspec

from rqs.client import Client, ClientError, Consumers, Event, RetentionGap, Stats

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_URL = "http://127.0.0.1:8080"
EXIT_RETENTION_GAP = 3
READ_CHUNK = 1 << 20
# Keeps one request far below the server's body cap even when events are large.
MAX_BATCH_BYTES = 16 << 20

_raw = msgspec.json.Decoder(msgspec.Raw)
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_encoder = msgspec.json.Encoder()


def server_options(fn: F) -> F:
    """``--url`` and ``--token``, each mirrored by an environment variable."""
    fn = click.option("--token", envvar="RQS_TOKEN", default=None, metavar="ID.SECRET",
                      help="API key token, <key id>.<secret> (env: RQS_TOKEN)")(fn)
    fn = click.option("--url", envvar="RQS_URL", default=DEFAULT_URL, show_default=True,
                      help="Server base URL (env: RQS_URL)")(fn)
    return fn


def client_errors(fn: F) -> F:
    """Turn client failures into one clear line and an exit code instead of a traceback."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RetentionGap as exc:
            oldest = exc.oldest_index
            hint = ("nothing is retained now" if oldest is None else
                    f"the oldest retained index is {oldest}; resume with --after {oldest - 1} "
                    "(the events in between are gone)")
            click.echo(f"error: retention has removed the events asked for; {hint}", err=True)
            sys.exit(EXIT_RETENTION_GAP)
        except ClientError as exc:
            message = exc.message
            if exc.status in (401, 403):
                message += "\nhint: pass a key's token with --token or RQS_TOKEN (id.secret)"
            elif exc.status is None:
                message += "\nhint: is `rqs serve` running there? set --url or RQS_URL"
            raise click.ClickException(message) from None
        # A closed pipe (`rqs poll | head`) is left to click, which exits quietly.

    return wrapped  # type: ignore[return-value]


def open_client(url: str, token: str | None) -> Client:
    return Client(url, token=token or None, timeout=120.0)


class Progress:
    """A one-line progress display on stderr, drawn only on a terminal."""

    def __init__(self, total_bytes: int | None) -> None:
        self.total = total_bytes
        self.started = time.monotonic()
        self.shown = 0.0
        self.live = sys.stderr.isatty()

    def update(self, events: int, done_bytes: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not self.live or (not final and now - self.shown < 0.2):
            return
        self.shown = now
        rate = events / max(now - self.started, 1e-9)
        pct = f" {100 * done_bytes / self.total:5.1f}%" if self.total else ""
        click.echo(f"\r{pct} {events:,} events, {rate:,.0f}/s ", nl=final, err=True)


# --- ingest -------------------------------------------------------------------------------


class Batch(msgspec.Struct):
    body: bytes
    ndjson: bool
    lines: list[int]  # the file line (NDJSON) or array position (JSON) of each item
    consumed: int  # bytes of the input read so far


def _split_lines(first: bytes, stream: IO[bytes]) -> Iterator[tuple[int, bytes, int]]:
    """(line number, stripped line, bytes consumed) for every non-blank line, streaming."""
    pending = first
    consumed = 0
    line_no = 0
    while True:
        chunk = stream.read(READ_CHUNK)
        pending += chunk
        parts = pending.split(b"\n")
        pending = parts.pop() if chunk else b""
        for part in parts:
            line_no += 1
            consumed += len(part) + 1
            line = part.strip()
            if line:
                yield line_no, line, consumed
        if not chunk:
            return


def ndjson_batches(first: bytes, stream: IO[bytes], size: int) -> Iterator[Batch]:
    body: list[bytes] = []
    lines: list[int] = []
    nbytes = 0
    consumed = 0
    for line_no, line, consumed in _split_lines(first, stream):
        try:
            _raw.decode(line)
        except msgspec.DecodeError as exc:
            hint = " (NDJSON needs one JSON object per line)" if line_no == 1 else ""
            raise click.ClickException(f"line {line_no} is not valid JSON: {exc}{hint}") from None
        body.append(line)
        lines.append(line_no)
        nbytes += len(line) + 1
        if len(body) >= size or nbytes >= MAX_BATCH_BYTES:
            yield Batch(b"\n".join(body), True, lines, consumed)
            body, lines, nbytes = [], [], 0
    if body:
        yield Batch(b"\n".join(body), True, lines, consumed)


def array_batches(data: bytes, size: int) -> Iterator[Batch]:
    try:
        items = _raw_list.decode(data)
    except msgspec.DecodeError as exc:
        raise click.ClickException(f"the JSON array cannot be parsed: {exc}") from None
    start = 0
    while start < len(items):
        end = start + 1
        nbytes = len(items[start])
        while end < len(items) and end - start < size and nbytes < MAX_BATCH_BYTES:
            nbytes += len(items[end])
            end += 1
        # Each item's raw bytes are sent as they are in the file: no re-encoding.
        body = b"[" + b",".join(bytes(r) for r in items[start:end]) + b"]"
        yield Batch(body, False, list(range(start, end)), len(data) * end // len(items))
        start = end


def read_batches(stream: IO[bytes], size: int) -> Iterator[Batch]:
    """Detect the format from the first non-blank byte: ``[`` is a JSON array, else NDJSON."""
    head = b""
    while not head.strip():
        chunk = stream.read(READ_CHUNK)
        if not chunk:
            raise click.ClickException("the input is empty")
        head += chunk
    if head.lstrip()[:1] == b"[":
        return array_batches(head + stream.read(), size)
    return ndjson_batches(head, stream, size)


def _describe_rejection(exc: ClientError, batch: Batch) -> str:
    where = "line" if batch.ndjson else "array item (0-based)"
    problems = exc.body.get("problems") or []
    if not problems:
        return exc.message
    # The server numbers items within the batch; name them by their place in the input.
    out = [f"the server rejected a batch ({exc.body.get('problem_count', len(problems))} "
           "problem(s)); none of its events were stored:"]
    for p in problems[:10]:
        item = p.get("item")
        at = (f"{where} {batch.lines[item]}" if isinstance(item, int) and item < len(batch.lines)
              else "batch")
        field = f" {p['field']}:" if p.get("field") else ""
        out.append(f"  {at}:{field} {p.get('message')}")
    if len(problems) > 10:
        out.append(f"  ... and {exc.body.get('problem_count', len(problems)) - 10} more")
    return "\n".join(out)


def _size_of(stream: IO[bytes]) -> int | None:
    try:
        return os.fstat(stream.fileno()).st_size or None
    except (OSError, ValueError, AttributeError):  # pipes, in-memory streams
        return None


@click.command()
@click.argument("file", type=click.File("rb"))
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=5000, show_default=True,
              help="Events per request")
@click.option("--json", "as_json", is_flag=True, help="Print the totals as one JSON object")
@server_options
@client_errors
def ingest(file: IO[bytes], batch_size: int, as_json: bool, url: str, token: str | None) -> None:
    """Send events from FILE (a JSON array or NDJSON; - for stdin) to the server.

    Items are Responsys callback payloads or native envelopes {"type", "data", "id"?}.
    A failed batch stops the run; the batches before it stay stored.
    """
    totals = {"accepted": 0, "stored": 0, "duplicates": 0}
    first = last = None
    progress = Progress(_size_of(file))
    with open_client(url, token) as client:
        for batch in read_batches(file, batch_size):
            try:
                r = client.ingest(batch.body, ndjson=batch.ndjson)
            except ClientError as exc:
                if exc.status != 422:
                    raise
                progress.update(totals["accepted"], batch.consumed, final=True)
                earlier = (f"\n{totals['accepted']:,} events of earlier batches were accepted"
                           if totals["accepted"] else "")
                raise click.ClickException(_describe_rejection(exc, batch) + earlier) from None
            totals["accepted"] += r.accepted
            totals["stored"] += r.stored
            totals["duplicates"] += r.duplicates
            first = r.first_index if first is None else min(first, r.first_index or first)
            last = r.last_index if last is None else max(last, r.last_index or last)
            progress.update(totals["accepted"], batch.consumed)
    progress.update(totals["accepted"], progress.total or 0, final=True)
    elapsed = time.monotonic() - progress.started
    rate = totals["accepted"] / max(elapsed, 1e-9)
    if as_json:
        click.echo(_encoder.encode({**totals, "first_index": first, "last_index": last,
                                    "seconds": round(elapsed, 3), "events_per_second":
                                    round(rate)}).decode())
        return
    span = f"; indexes {first}..{last}" if first is not None else ""
    click.echo(f"accepted {totals['accepted']:,} events: {totals['stored']:,} stored, "
               f"{totals['duplicates']:,} duplicates{span}; {elapsed:.2f} s, {rate:,.0f} events/s")


# --- poll ---------------------------------------------------------------------------------


def _summary(event: Event) -> tuple[str, str]:
    """A campaign column and a short detail for the table view."""
    p = event.payload
    campaign = str(p.get("campaignName") or p.get("campaign_name") or p.get("campaignId")
                   or p.get("campaign_id") or "")
    details = []
    for key in ("riid", "recipient", "message", "inboundMessage", "failureReason"):
        if p.get(key):
            details.append(f"{key}={p[key]}")
    return campaign, " ".join(details)


class Printer:
    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.header_done = False

    @staticmethod
    def _write(data: bytes) -> None:
        # Straight to the byte stream: encoding pages of events as text would cost a copy.
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:
            sys.stdout.write(data.decode())
        else:
            buffer.write(data)
            buffer.flush()

    def events(self, events: list[Event]) -> None:
        if not events:
            return
        if self.fmt == "ndjson":
            self._write(_encoder.encode_lines(events))
        else:
            if not self.header_done:
                self.header_done = True
                self._write(self._row("INDEX", "RECEIVED", "TYPE", "CHANNEL", "CAMPAIGN",
                                      "DETAIL"))
            self._write(b"".join(self._row(str(e.index), e.received_at, e.type, e.channel,
                                           *_summary(e)) for e in events))

    @staticmethod
    def _row(index: str, received: str, type_: str, channel: str, campaign: str,
             detail: str) -> bytes:
        line = (f"{index:>8}  {received:<24}  {type_:<22}  {channel:<8}  {campaign[:24]:<24}  "
                f"{detail[:80]}").rstrip()
        return line.encode() + b"\n"


@click.command()
@click.option("--type", "types", multiple=True, help="Event type or poll group (repeatable; "
              "comma-separated works too)")
@click.option("--channel", "channels", multiple=True, help="Email, Sms, Mms, Push, WebPush")
@click.option("--campaign", default=None, help="Campaign id or name")
@click.option("--after", type=click.IntRange(min=0), default=None,
              help="Start after this index (default: the oldest retained; with --follow, "
              "the newest)")
@click.option("--since", default=None, help="Received at or after (ISO 8601 or Unix seconds)")
@click.option("--until", default=None, help="Received before (ISO 8601 or Unix seconds)")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Events per request (server default 10000)")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "json", "table"]), default=None,
              help="Default: table on a terminal, else ndjson")
@click.option("--all", "all_pages", is_flag=True, help="Follow next_index through every page")
@click.option("--follow", "-f", is_flag=True, help="Keep polling for new events (Ctrl-C stops)")
@click.option("--interval", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds between polls when idle (with --follow)")
@click.option("--max-events", type=click.IntRange(min=1), default=None,
              help="Stop after printing this many events")
@server_options
@client_errors
def poll(types: tuple[str, ...], channels: tuple[str, ...], campaign: str | None,
         after: int | None, since: str | None, until: str | None, limit: int | None,
         fmt: str | None, all_pages: bool, follow: bool, interval: float,
         max_events: int | None, url: str, token: str | None) -> None:
    """Read events from a running server.

    Exits 3 when retention has removed events after --after (the message names the oldest
    index still retained).
    """
    fmt = fmt or ("table" if sys.stdout.isatty() else "ndjson")
    if fmt == "json" and (follow or all_pages):
        raise click.UsageError("--format json prints one page; use ndjson or table with "
                               "--follow or --all")
    if follow and until:
        raise click.UsageError("--until cannot be combined with --follow")
    if max_events is not None and not follow and not all_pages:
        limit = min(limit or max_events, max_events)  # keeps the page's next_index exact
    printer = Printer(fmt)
    filters: dict[str, Any] = {"type": list(types) or None, "channel": list(channels) or None,
                               "campaign": campaign, "since": since, "until": until,
                               "limit": limit}
    with open_client(url, token) as client:
        if not (follow or all_pages):
            page = client.events(after, **filters)
            if fmt == "json":
                click.echo(msgspec.json.format(_encoder.encode(page), indent=2).decode())
            else:
                printer.events(page.events)
            if page.has_more:
                click.echo(f"more events match: continue with --after {page.next_after} "
                           "(or use --all)", err=True)
            return
        if follow and after is None:
            after = client.newest_index()
        left = max_events
        try:
            for page in client.pages(after, **filters, follow=follow, poll_interval=interval):
                printer.events(page.events[:left])
                if left is not None:
                    left -= len(page.events)
                    if left <= 0:
                        return
        except KeyboardInterrupt:
            pass  # Ctrl-C is how one stops --follow; not an error


# --- stats --------------------------------------------------------------------------------


def render_stats(s: Stats) -> str:
    span = "none" if s.oldest_index is None else f"{s.oldest_index}..{s.newest_index}"
    lines = [
        f"domain            {s.domain}",
        f"retained events   {s.retained:,} (ingested in total: {s.ingested:,})",
        f"indexes           {span} (newest {s.newest_index}; purged through "
        f"{s.purged_through})",
        f"retention         {s.retention_days:g} days: events received before "
        f"{s.retention_horizon} are removed",
        "",
        f"{'TYPE':<26}{'CHANNEL':<10}{'RETAINED':>12}{'INGESTED':>12}",
    ]
    for t in sorted(s.by_type, key=lambda t: (t.channel, t.type)):
        mark = "" if t.catalogued else "  (not in the catalog)"
        lines.append(f"{t.type:<26}{t.channel:<10}{t.retained:>12,}{t.ingested:>12,}{mark}")
    if not s.by_type:
        lines.append("(no events yet)")
    lines += ["", f"{'CHANNEL':<36}{'RETAINED':>12}{'INGESTED':>12}"]
    for channel, c in sorted(s.by_channel.items()):
        lines.append(f"{channel:<36}{c.get('retained', 0):>12,}{c.get('ingested', 0):>12,}")
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON")
@server_options
@client_errors
def stats(as_json: bool, url: str, token: str | None) -> None:
    """Event counts per type and channel, the index range and the retention horizon."""
    with open_client(url, token) as client:
        s = client.stats()
    click.echo(_pretty_json(s.raw) if as_json else render_stats(s))


def render_consumers(c: Consumers) -> str:
    lines = [f"domain {c.domain}, newest index {c.newest_index}", ""]
    if c.cursors:
        lines.append(f"{'CURSOR':<28}{'KEY':<22}{'POSITION':>10}{'LAG':>10}{'POLLED':>10}"
                     f"{'SKIPPED':>9}  LAST POLL")
        for cur in c.cursors:
            lines.append(f"{cur.cursor:<28}{cur.key_id:<22}{cur.position:>10,}{cur.lag:>10,}"
                         f"{cur.polled:>10,}{cur.skipped:>9,}  {cur.last_poll}")
    else:
        lines.append("(no server-managed cursors: nobody has called pollByType or poll)")
    lines.append("")
    if c.subscriptions:
        lines.append(f"{'SUBSCRIPTION':<24}{'CALLBACK':<20}{'STATE':<18}{'POSITION':>10}"
                     f"{'LAG':>10}  DELIVERING")
        for s in c.subscriptions:
            state = s.status if s.callback_status == "ACTIVE" else "callback DISABLED"
            p = s.pending
            doing = "-" if p is None else (
                f"{p.first_index}..{p.last_index}" + (
                    f", {p.attempts} failed, next {p.next_attempt_at}: {p.last_error}"
                    if p.attempts else ""))
            lines.append(f"{s.name:<24}{s.callback:<20}{state:<18}{s.position:>10,}"
                         f"{s.lag:>10,}  {doing}")
    else:
        lines.append("(no subscriptions)")
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON")
@server_options
@client_errors
def consumers(as_json: bool, url: str, token: str | None) -> None:
    """Server-managed cursors and push subscriptions: position, lag, delivery trouble."""
    with open_client(url, token) as client:
        found = client.consumers()
    click.echo(_pretty_json(found) if as_json else render_consumers(found))


def _pretty_json(value: object) -> str:
    return msgspec.json.format(_encoder.encode(value), indent=2).decode()


def register(group: click.Group) -> None:
    from rqs.cli.demo import demo

    for command in (ingest, poll, stats, consumers, demo):
        group.add_command(command)
