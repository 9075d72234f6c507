//! Whether this process serves the stock stream: always alone, only while it leads in a
//! high-availability group (ADR 0033). A standby's hub is not fed by its engine copy, so it
//! refuses stream connections with [`ErrorCode::NotLeader`] and a message naming the leader,
//! and a session open on a leader that steps down is closed the same way.
//!
//! [`ErrorCode::NotLeader`]: flashsale_protocol::stream::ErrorCode::NotLeader

use std::sync::{Arc, OnceLock};

/// What the gate says about this process right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    /// Serve the stream.
    Yes,
    /// This node is a standby; the leader's URL when known.
    NotLeader {
        /// The leader's advertised URL (`None` while no node leads).
        leader_url: Option<String>,
    },
}

impl Serving {
    /// The refusal message sent with [`flashsale_protocol::stream::ErrorCode::NotLeader`].
    pub fn refusal(&self) -> Option<String> {
        match self {
            Serving::Yes => None,
            Serving::NotLeader {
                leader_url: Some(url),
            } => Some(format!(
                "this node is a standby: the stock stream is served by the leader, {url}"
            )),
            Serving::NotLeader { leader_url: None } => {
                Some("this node is a standby and no node leads yet: try again".into())
            }
        }
    }
}

/// The check a group node installs once it has joined.
type Check = Box<dyn Fn() -> Serving + Send + Sync>;

/// A settable check, shared by the stream server's sessions: serves until [`LeaderGate::set`]
/// installs a check (cheap to clone).
#[derive(Clone, Default)]
pub struct LeaderGate(Arc<OnceLock<Check>>);

impl std::fmt::Debug for LeaderGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderGate")
            .field("installed", &self.0.get().is_some())
            .finish()
    }
}

impl LeaderGate {
    /// Installs `check` (later calls are ignored: one process joins one group).
    pub fn set(&self, check: impl Fn() -> Serving + Send + Sync + 'static) {
        let _ = self.0.set(Box::new(check));
    }

    /// Whether to serve now.
    pub fn serving(&self) -> Serving {
        match self.0.get() {
            Some(check) => check(),
            None => Serving::Yes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_until_a_check_says_otherwise() {
        let gate = LeaderGate::default();
        assert_eq!(gate.serving(), Serving::Yes);
        let clone = gate.clone();
        clone.set(|| Serving::NotLeader {
            leader_url: Some("http://127.0.0.1:9".into()),
        });
        let refusal = gate.serving().refusal().unwrap_or_default();
        assert!(refusal.contains("http://127.0.0.1:9"), "{refusal}");
        assert_eq!(Serving::Yes.refusal(), None);
    }
}
