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
