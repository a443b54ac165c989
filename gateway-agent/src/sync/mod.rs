//! Talking to the management server: the config stream (stream.rs), status reports
//! (status.rs) and the HTTP client they and usage reporting share (client.rs).

pub(crate) mod client;
pub(crate) mod status;
pub(crate) mod stream;

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with jitter, 100 ms doubling to 30 s.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(30);

    pub fn new() -> Backoff {
        Backoff { next: Self::MIN }
    }

    pub fn reset(&mut self) {
        self.next = Self::MIN;
    }

    /// The next delay: between half and all of the current step ("equal jitter"), so a
    /// fleet of agents does not reconnect in lockstep after a server restart.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        let half = step / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut backoff = Backoff::new();
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..20 {
            backoff.next_delay();
        }
        let capped = backoff.next_delay();
        assert!(capped >= Duration::from_secs(15) && capped <= Duration::from_secs(30));
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
