//! JSON lines on stdout: the default sink, and what `make run` shows.

use std::io::Write;
use std::time::Duration;

use super::{OutMessage, PublishError, Sink, SinkStats};

#[derive(Default)]
pub struct StdoutSink {
    stats: SinkStats,
}

impl Sink for StdoutSink {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn send(&mut self, msg: OutMessage) -> Result<(), PublishError> {
        let mut out = std::io::stdout().lock();
        let result = out
            .write_all(&msg.body)
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush());
        match result {
            Ok(()) => {
                self.stats.published += 1;
                Ok(())
            }
            Err(e) => {
                self.stats.failed += 1;
                Err(e.into())
            }
        }
    }

    fn flush(&mut self, _timeout: Duration) -> usize {
        let _ = std::io::stdout().flush();
        0
    }

    fn stats(&self) -> SinkStats {
        self.stats
    }
}
