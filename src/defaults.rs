//! Named defaults, in one place. The CLI (`default_value_t`), the twin (fields left unset),
//! the docs and the tests all read these; a number written twice is a number that drifts.

use std::time::Duration;

/// The bundled model `make run`, `detect` and `bench` use when none is given.
pub const MODEL_DIR: &str = "models/ssdlite-person";
/// The bundled model's name, which the twin's `model.name` resolves under `models/`.
pub const MODEL_NAME: &str = "ssdlite-person";
/// Intra-op threads per engine.
pub const THREADS: usize = 1;

/// Messages kept while the broker or EdgeHub is unreachable (count bound).
pub const QUEUE_MESSAGES: usize = 10_000;
/// Bytes kept while the broker or EdgeHub is unreachable (byte bound), in MiB.
pub const QUEUE_MB: u64 = 64;
/// EdgeHub's (and IoT Hub's) largest message.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Frames waiting for the engine; live sources keep only the newest.
pub const FRAME_QUEUE: usize = 2;
/// Messages waiting for the sink thread.
pub const MESSAGE_QUEUE: usize = 1024;
/// How long shutdown waits for queued messages to be delivered.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// Prometheus text, on the port IoT Edge's metrics-collector scrapes.
pub const METRICS_ADDR: &str = "0.0.0.0:9600";
/// Plain-MQTT topic for `--mqtt`.
pub const MQTT_TOPIC: &str = "edgelens/detections";
/// Keep-alive for plain MQTT and for EdgeHub.
pub const MQTT_KEEP_ALIVE: Duration = Duration::from_secs(30);
pub const EDGEHUB_KEEP_ALIVE: Duration = Duration::from_secs(60);
/// SAS token lifetime (the Azure SDKs' default); renewed at 80%.
pub const SAS_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Workload API request deadline.
pub const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Reconnect backoff: starts here, doubles, stops growing at the max.
pub const BACKOFF_START: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A live source silent this long is rebuilt.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A failed source restart in module mode is tried again after this long.
pub const SOURCE_RETRY: Duration = Duration::from_secs(5);

/// Module mode: how often stats go to reported properties, in seconds.
pub const STATS_INTERVAL_SECS: u64 = 60;
/// Largest model download accepted, in MB.
pub const MAX_MODEL_MB: u64 = 512;
/// Unpacked bytes allowed per MB of download (a gzip bomb stops here).
pub const UNPACK_RATIO: u64 = 4;
/// Entries allowed in one model archive.
pub const UNPACK_MAX_ENTRIES: usize = 10_000;
/// Whole-download deadline for a model archive.
pub const MODEL_FETCH_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest MQTT packet the module reads (twin documents above MAX_DESIRED_BYTES are read,
/// then rejected with a reason).
pub const MAX_INCOMING_BYTES: usize = 2 * 1024 * 1024;
/// Largest desired-properties document the module accepts (IoT Hub caps desired at 32 KB).
pub const MAX_DESIRED_BYTES: usize = 64 * 1024;
/// The desired document the module mirrors (every patch merged in) may grow to this before
/// it is dropped and read again with a twin GET.
pub const DESIRED_MIRROR_MAX_BYTES: usize = 4 * MAX_DESIRED_BYTES;
/// Twin GET: first retry after this long, doubling up to BACKOFF_MAX.
pub const TWIN_GET_RETRY: Duration = Duration::from_secs(1);
/// A twin GET with no answer after this long is sent again.
pub const TWIN_GET_TIMEOUT: Duration = Duration::from_secs(10);
/// The source when neither the command line nor the twin names one.
pub const SOURCE: &str = "samples/vtest.mp4";
/// The EdgeHub output detections go to.
pub const OUTPUT_NAME: &str = "detections";

// --- Snapshots (src/snapshot/) ---
/// Where module mode writes snapshots (a bind mount shared with the blob module's host).
pub const SNAPSHOT_DIR: &str = "/data/snapshots";
/// Retention: at most this many snapshots (a snapshot and its crop count as one)...
pub const SNAPSHOT_MAX_FILES: usize = 5_000;
/// ...at most this many bytes, in MiB...
pub const SNAPSHOT_MAX_MB: u64 = 1024;
/// ...and none older than this. Snapshots still waiting for upload are never deleted.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// JPEG quality of written snapshots (1..=100).
pub const SNAPSHOT_JPEG_QUALITY: u8 = 85;
/// A track's snapshot is replaced only when the new one is this much better (relative),
/// so a slowly growing box does not rewrite (and re-upload) a JPEG every frame.
pub const SNAPSHOT_MIN_GAIN: f32 = 0.05;
/// A box within this many pixels of the frame border counts as cut off by it.
pub const SNAPSHOT_EDGE_MARGIN_PX: f32 = 2.0;
/// Quality factor for a box cut off by the frame border.
pub const SNAPSHOT_EDGE_PENALTY: f32 = 0.5;
/// Tracks whose best snapshot is remembered at once (tracks beyond it get none).
pub const SNAPSHOT_MAX_TRACKS: usize = 4_096;
/// Env var holding the Azure Storage connection string of the blob module.
pub const BLOB_CONNECTION_ENV: &str = "EDGELENS_BLOB_CONNECTION_STRING";
/// Uploads waiting on disk; beyond it snapshots stay local only.
pub const UPLOAD_QUEUE_MAX: usize = 2_000;
/// Upload retry backoff: starts here, doubles, stops growing at the max.
pub const UPLOAD_BACKOFF_START: Duration = Duration::from_millis(500);
pub const UPLOAD_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Deadline of one blob request.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The blob container when the twin names none (the deployment template uploads this one).
pub const SNAPSHOT_CONTAINER: &str = "edgelens-snapshots";
/// Snapshots waiting for the writer thread (picture + JPEG encode + upload queue); beyond it
/// a snapshot is dropped and counted, never a frame.
pub const SNAPSHOT_WRITE_QUEUE: usize = 8;
/// How often `Snapshotter` applies retention while writing.
pub const SNAPSHOT_RETENTION_EVERY: Duration = Duration::from_secs(60);

// --- Tracking (src/track/) -------------------------------------------------------------------
/// Tracker `--tracker` uses when none is named.
pub const TRACKER: &str = "bytetrack";
/// Hits before a track is confirmed (N). 3, not 2: on the sample video a third of the tracks
/// were 1-20 frame fragments, each a `new` + `end` pair (docs/tracking.md, message volume).
pub const TRACK_MIN_HITS: u32 = 3;
/// Frames a confirmed track is kept without a match (M), for `edgelens track` (which knows
/// no frame rate); the pipeline keeps tracks `TRACK_KEEP_SECS` whatever the rate.
pub const TRACK_MAX_MISSED: u32 = 30;
/// Seconds a confirmed track is kept without a match in the pipeline (turned into frames at
/// the stream's rate): Frigate's default (`max_disappeared` = 5 s), long enough for a person
/// to walk behind another and come back with their id.
pub const TRACK_KEEP_SECS: f32 = 5.0;
/// ByteTrack's thresholds: high/low score split, floor, and the score a new track needs.
pub const TRACK_HIGH_SCORE: f32 = 0.5;
pub const TRACK_LOW_SCORE: f32 = 0.1;
pub const TRACK_NEW_SCORE: f32 = 0.6;
/// Least IoU to match: first stage (and SORT/IoU), low-score stage, unconfirmed tracks.
/// 0.1: small, fast people at 10 fps overlap their prediction little; 0.2 split them.
pub const TRACK_MATCH_IOU: f32 = 0.1;
pub const TRACK_LOW_MATCH_IOU: f32 = 0.5;
pub const TRACK_UNCONFIRMED_MATCH_IOU: f32 = 0.3;

// --- MQTT room (src/mqtt) ---
/// QoS 1 publishes sent and not yet acknowledged, per connection.
pub const MQTT_MAX_INFLIGHT: usize = 16;
/// Control messages (twin GETs, method responses, coalesced reports) waiting, at most.
pub const CONTROL_QUEUE_MESSAGES: usize = 100;
/// EdgeHub's MQTT-over-TLS port.
pub const EDGEHUB_PORT: u16 = 8883;

// --- Scene: zones, lines, track events, counts (src/scene/) ---
/// Consecutive frames a track must be (or not be) in a zone before membership flips.
pub const ZONE_MIN_FRAMES: u32 = 3;
/// Counts messages go out at least this often (stream time), besides on change.
pub const COUNTS_EVERY_SECS: f32 = 60.0;
/// ...and on change at most this often: on a busy scene counts change about once a second
/// (DeepStream's nvdsanalytics and Frigate both report occupancy on an interval, not per frame).
pub const COUNTS_MIN_SECS: f32 = 5.0;
/// A track with no other news still gets an `update` this often (stream time).
pub const EVENT_HEARTBEAT_SECS: f32 = 60.0;
/// A track whose centre stays put this long becomes `stationary`.
pub const STATIONARY_SECS: f32 = 10.0;
/// "Stays put": the centre moves less than this fraction of the box's width and height.
/// Detector jitter is ~5% of the size per edge; 20% is well clear of it.
pub const STATIONARY_MOVE: f32 = 0.2;
/// Events of the same kind (type, label, zone) within this long share one message, under one
/// 4 KB metering chunk. On the sample clip's 59 events: 59 messages at 0 s, 40 at 1 s, 33 at
/// 2 s (frames mode: 789). An event waits at most this long; 0 sends each at once.
pub const EVENTS_BATCH_SECS: f32 = 2.0;
/// A line crossing needs the foot this far off the line on both sides, as a fraction of
/// the box's height: detector jitter is ~5% of the size per edge (`docs/tracking.md`), so a
/// person standing on the line does not count in, out, in, out.
pub const LINE_MARGIN: f32 = 0.15;
/// ...and at most this fraction of the frame (a big box near a line close to the frame's
/// edge could otherwise never get clear of it). A track that ends within the margin past
/// the line is not counted.
pub const LINE_MARGIN_MAX: f32 = 0.03;
/// A track absent this long without an `ended` notice is ended by the scene itself.
pub const TRACK_FORGET_SECS: f32 = 30.0;
/// At most this many zones and lines together, and points per polygon.
pub const SCENE_MAX_SHAPES: usize = 32;
pub const ZONE_MAX_POINTS: usize = 64;
/// Largest `--zones` file read.
pub const SCENE_FILE_MAX_BYTES: u64 = 1 << 20;

// --- Model fetch hardening (issue 9, items 4-6) ---
/// Total size of the model cache, in MB; least recently used entries go first, never the
/// running model.
pub const MODEL_CACHE_MB: u64 = 2048;
/// A download slower than this, averaged over `MODEL_FETCH_RATE_WINDOW`, is cut off.
pub const MODEL_FETCH_MIN_RATE: u64 = 10 * 1024;
pub const MODEL_FETCH_RATE_WINDOW: Duration = Duration::from_secs(30);
/// TCP+TLS connect deadline for a model download.
pub const MODEL_FETCH_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Unpacked bytes allowed per archive byte: real model archives compress about 1-3x,
/// a gzip bomb about 1000x. Archives under `UNPACK_FLOOR_MB` may always unpack to that much.
pub const UNPACK_MAX_COMPRESSION: u64 = 20;
pub const UNPACK_FLOOR_MB: u64 = 16;
/// Disk space left free for the rest of the device when unpacking a model, in MB.
pub const DISK_RESERVE_MB: u64 = 64;

// --- Several sources per module (issue 12, section 3) ---
/// Sources one pipeline (one module) runs at most.
pub const MAX_SOURCES: usize = 16;
/// The name the twin's single `source` goes by among `sources`.
pub const DEFAULT_SOURCE: &str = "default";
/// Longest source name (twin `sources` keys, `params.name`): it is in every message's
/// properties and in /metrics labels.
pub const MAX_SOURCE_NAME: usize = 64;
// --- Live view and zone editor (issue 13, src/ui/) ---
/// `--ui` with no address binds here: loopback only, a person opens it through SSH or a
/// port mapping they chose.
pub const UI_ADDR: &str = "127.0.0.1:9601";
/// Frames drawn and encoded per second at most, and only while someone watches.
pub const UI_FPS: f32 = 5.0;
/// The live picture's width at most (frames reach the inference stage at model size).
pub const UI_WIDTH: u32 = 640;
/// JPEG quality of the live picture: legible labels at ~30-60 KB per frame.
pub const UI_JPEG_QUALITY: u8 = 75;
/// Events kept for the page, newest first.
pub const UI_EVENTS: usize = 200;
/// Connections served at once; beyond it a connection gets a 503 and is closed.
pub const UI_MAX_CONNECTIONS: usize = 64;
/// Live streams at once (each holds a connection for as long as it is watched).
pub const UI_MAX_STREAMS: usize = 8;
// --- Memory and start-up (issue 9 soak, issue 12 §4) ---
/// `bench --start`: cold spawns of `edgelens run`, and messages read from each before it is
/// stopped (RSS is flat after the first few dozen frames).
pub const START_RUNS: usize = 5;
pub const START_MESSAGES: u64 = 200;
/// glibc malloc: blocks at least this big are mmapped (returned whole on free), never carved
/// from a heap; above one 300x300x3 f32 input (1 MB), below ORT's big arena chunks.
pub const MALLOC_MMAP_THRESHOLD: i32 = 4 << 20;
/// glibc malloc arenas (default 8 x cores): fewer arenas, less memory stranded in each.
pub const MALLOC_ARENA_MAX: i32 = 2;
/// ORT's memory pattern (pre-planned activation block per run shape): off saves ~5-9 MB of
/// peak RSS on ssdlite-person at no measurable fps cost (docs/memory.md).
pub const ORT_MEMORY_PATTERN: bool = false;
/// How often a background thread hands freed heap pages back (`malloc_trim`); a trim takes
/// about a millisecond.
pub const MEMORY_TRIM_INTERVAL: Duration = Duration::from_secs(30);
// --- Engine instances and layout tuning (issue 12 §1) ---
/// Wall time the tuner spends measuring layouts in the running pipeline, all layouts together
/// (model loads come on top).
pub const LAYOUT_TUNE_BUDGET: Duration = Duration::from_millis(1000);
/// Frames each instance runs on a new layout before it is timed (first runs are slow).
pub const LAYOUT_WARMUP_FRAMES_PER_INSTANCE: u32 = 2;
/// A layout must beat the one before it by this factor to be preferred (fewer instances
/// use less memory, so near-ties go to the earlier, smaller layout).
pub const LAYOUT_MIN_GAIN: f64 = 1.02;
// --- Per-source zones and lines (issue 11 §3 with issue 12 §3) ---
/// Zones and lines across the top-level set and every source's own set together: 32 per
/// set is the per-camera rule; this bounds what one module (16 sources) evaluates and echoes
/// in reported properties.
pub const SCENE_MAX_SHAPES_TOTAL: usize = 256;
// --- ORT sharing between sessions (issue 12 §1, §4; docs/memory.md) ---
/// One CPU arena for every ONNX Runtime session in the process, growing by what is asked
/// for, instead of one per session. Off: it saved only ~4 MB with 2 instances, and since it
/// never shrinks it keeps the high-water mark of every session the process ever ran (a
/// `bench` run peaked 20-30 MB higher; a model swap would keep the old model's arena).
/// `[backend.ort] shared_arena = true` in model.toml, or `EDGELENS_ORT_SHARING=on`, opts in.
pub const ORT_SHARED_ARENA: bool = false;
/// The shared arena grows by exactly what is asked for (ORT's kSameAsRequested = 1), not to
/// the next power of two (0).
pub const ORT_ARENA_EXTEND_STRATEGY: usize = 1;
/// The shared arena's first chunk (ORT's default is 1 MB).
pub const ORT_ARENA_INITIAL_CHUNK: usize = 1 << 20;
/// One copy of a model's optimized weights for all its ORT sessions instead of one each:
/// -12 MB per extra ssdlite-person session (2x1: 181 -> 168 MB; auto: 197-231 -> 162-170 MB).
/// Off: inference reading the weights in place ran 5-10% slower (docs/memory.md).
/// `[backend.ort] shared_weights = true` in model.toml, or `EDGELENS_ORT_SHARING=weights`,
/// opts in where memory matters more than that.
pub const ORT_SHARED_WEIGHTS: bool = false;
/// Threads of each libav decoder decodebin plugs (`avdec_*` `max-threads`; 0 = libav's
/// choice, one per core plus one). One: -6 MB peak RSS on the sample clip for the same decode
/// CPU; inference, not decode, fills the cores (docs/memory.md).
pub const DECODER_MAX_THREADS: i32 = 1;

// --- session 4: the tuner's reload after a failed relayout ---
/// First wait before loading the layout that served again, when a relayout could load
/// neither the next layout nor the old one (its sessions were already gone).
pub const LAYOUT_RELOAD_RETRY_MIN: Duration = Duration::from_secs(1);
/// The wait doubles after each failure up to this.
pub const LAYOUT_RELOAD_RETRY_MAX: Duration = Duration::from_secs(30);

// --- session 5 (fix-model): bounds on sizes a model manifest or a twin can ask for ---
/// Largest `[input] width` / `height` a model manifest may declare. Real detectors take
/// 300-1280 px; a bigger input would make every frame's tensor (and ssd-anchors' anchor
/// table) hundreds of MB, and 65535 x 65535 asked for 200 GB and aborted the process.
pub const MODEL_INPUT_MAX_SIDE: u32 = 4096;
/// Most anchors an ssd-anchors head may generate (16 bytes each: 8 MB). The bundled
/// ssdlite-person has 1917; anchors are counted with checked arithmetic before any is made.
pub const SSD_MAX_ANCHORS: usize = 500_000;
/// Largest nanodet `reg_max` (NanoDet uses 7, GFL 16): each box side is a distribution of
/// reg_max + 1 bins, allocated per frame.
pub const NANODET_MAX_REG_MAX: usize = 64;
/// Most classes a decoder may be told a head has (Objects365 has 365, LVIS 1203,
/// ImageNet-21k 21841): bounds the per-candidate work and keeps `4 + num_classes` small.
pub const DECODER_MAX_CLASSES: usize = 100_000;
/// Largest width / height a source preset's caps may ask of the source (`test` source
/// `width` / `height`): 8K; a 30000 x 30000 frame is 2.7 GB of RGB per buffer.
pub const SOURCE_MAX_SIDE: i32 = 8192;

// --- session 5 review fixes ---
/// The lowest `maxFps` / `--max-fps` accepted (one frame per 100 s): smaller values would
/// round to 0, which means "no limit".
pub const MIN_MAX_FPS: f64 = 0.01;
