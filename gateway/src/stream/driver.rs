//! Which machinery drives the stream's QUIC connections (`--stream-driver`).

/// The stream server's QUIC driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StreamDriver {
    /// quinn: an endpoint driver task plus one task per connection and one per session; the
    /// one that spreads over several stream threads.
    Quinn,
    /// One loop drives `quinn-proto` directly — every connection in one table, one timer
    /// structure, batched UDP receives, no task per connection — on one thread (the default
    /// for one stream thread; ADR 0046).
    #[default]
    Proto,
}

impl StreamDriver {
    /// The driver for `threads` stream threads: `chosen` when given, else the loop on one
    /// thread and quinn on more. The loop with more than one thread is refused (it would run
    /// on one): the one place that rule lives, used by `serve` and by `StreamThread::bind`.
    pub fn for_threads(
        chosen: Option<StreamDriver>,
        threads: usize,
    ) -> Result<StreamDriver, super::StreamError> {
        match (chosen, threads) {
            (Some(StreamDriver::Proto), threads) if threads > 1 => {
                Err(super::StreamError::Config(format!(
                    "the proto stream driver runs on one thread, not {threads}: use one stream \
                     thread or the quinn driver"
                )))
            }
            (Some(driver), _) => Ok(driver),
            (None, 0 | 1) => Ok(StreamDriver::Proto),
            (None, _) => Ok(StreamDriver::Quinn),
        }
    }

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamDriver::Quinn => "quinn",
            StreamDriver::Proto => "proto",
        }
    }
}

impl std::fmt::Display for StreamDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::StreamDriver;

    #[test]
    fn the_loop_is_the_default_on_one_thread_and_quinn_on_more() {
        assert_eq!(
            StreamDriver::for_threads(None, 1).ok(),
            Some(StreamDriver::Proto)
        );
        assert_eq!(
            StreamDriver::for_threads(None, 4).ok(),
            Some(StreamDriver::Quinn)
        );
        assert_eq!(
            StreamDriver::for_threads(Some(StreamDriver::Quinn), 1).ok(),
            Some(StreamDriver::Quinn)
        );
        assert_eq!(
            StreamDriver::for_threads(Some(StreamDriver::Quinn), 4).ok(),
            Some(StreamDriver::Quinn)
        );
        assert_eq!(
            StreamDriver::for_threads(Some(StreamDriver::Proto), 1).ok(),
            Some(StreamDriver::Proto)
        );
        let refused = StreamDriver::for_threads(Some(StreamDriver::Proto), 2);
        assert!(
            matches!(&refused, Err(e) if e.to_string().contains("one thread, not 2")),
            "{refused:?}"
        );
    }
}
