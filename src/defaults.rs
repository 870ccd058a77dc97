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

// --- Scene: zones, lines, track events, counts (src/scene/) ---
/// Consecutive frames a track must be (or not be) in a zone before membership flips.
pub const ZONE_MIN_FRAMES: u32 = 3;
/// Counts messages go out at least this often (stream time), besides on change.
pub const COUNTS_EVERY_SECS: f32 = 60.0;
/// A track with no other news still gets an `update` this often (stream time).
pub const EVENT_HEARTBEAT_SECS: f32 = 60.0;
/// A track whose centre stays put this long becomes `stationary`.
pub const STATIONARY_SECS: f32 = 10.0;
/// "Stays put": the centre moves less than this fraction of the box's width and height.
/// Detector jitter is ~5% of the size per edge; 20% is well clear of it.
pub const STATIONARY_MOVE: f32 = 0.2;
/// A track absent this long without an `ended` notice is ended by the scene itself.
pub const TRACK_FORGET_SECS: f32 = 30.0;
/// At most this many zones and lines together, and points per polygon.
pub const SCENE_MAX_SHAPES: usize = 32;
pub const ZONE_MAX_POINTS: usize = 64;
/// Largest `--zones` file read.
pub const SCENE_FILE_MAX_BYTES: u64 = 1 << 20;
