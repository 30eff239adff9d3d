//! Replayed messages: the signatures of the signed messages a node has taken, kept while a copy
//! could still pass the age check ([`MAX_AGE_MS`]), so a captured message published again within
//! its window is dropped like a forged one. Every signed message carries a random message id,
//! so two honest messages never share a signature. A broker's own redelivery (the `redelivered`
//! flag, which only the broker sets: a request whose reply could not be published) is let
//! through, as it is the at-least-once delivery the transport relies on.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use super::seal::MAX_AGE_MS;

/// One signature: its HMAC-SHA256 tag.
pub type Tag = [u8; 32];

/// The signatures taken in the last [`MAX_AGE_MS`] (and the time they were signed).
#[derive(Debug, Default)]
pub struct SeenMessages {
    inner: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    tags: HashSet<Tag>,
    /// In the order taken, with their signing times, to forget them once too old to pass.
    order: VecDeque<(u64, Tag)>,
}

impl SeenMessages {
    /// Records `tag`, signed at `signed_at_ms`; false when it was already recorded (a replay).
    pub fn first_time(&self, tag: Tag, signed_at_ms: u64, now_ms: u64) -> bool {
        let mut seen = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(&(at, old)) = seen.order.front() {
            // A copy of this one would now be refused as too old anyway.
            if at.saturating_add(MAX_AGE_MS) >= now_ms {
                break;
            }
            seen.order.pop_front();
            seen.tags.remove(&old);
        }
        if !seen.tags.insert(tag) {
            return false;
        }
        seen.order.push_back((signed_at_ms, tag));
        true
    }

    /// How many signatures are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).tags.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_taken_once_and_forgotten_when_too_old_to_pass() {
        let seen = SeenMessages::default();
        let now = 10 * MAX_AGE_MS;
        assert!(seen.first_time([1; 32], now, now));
        assert!(!seen.first_time([1; 32], now, now + 1));
        assert!(seen.first_time([2; 32], now + 1, now + 1));
        assert_eq!(seen.len(), 2);
        // Past the window of the first two, a third message makes room.
        assert!(seen.first_time([3; 32], now + MAX_AGE_MS + 2, now + MAX_AGE_MS + 2));
        assert_eq!(seen.len(), 1);
    }
}
