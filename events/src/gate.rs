//! Whether this process may deliver events right now. A single node always may; a node of a
//! high-availability group only while it leads (its lease not past its end by the local
//! clock), so a leader resumed after a pause stops delivering at once, before its controller
//! has stepped down and stopped the service.

use std::sync::Arc;

/// A check run before every delivery attempt (cheap: an atomic load or two).
#[derive(Clone, Default)]
pub struct Gate(Option<Arc<dyn Fn() -> bool + Send + Sync>>);

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Gate(checked)"
        } else {
            "Gate(open)"
        })
    }
}

impl Gate {
    /// Always open (a single node).
    pub fn open() -> Gate {
        Gate(None)
    }

    /// Open while `check` returns true.
    pub fn checked(check: impl Fn() -> bool + Send + Sync + 'static) -> Gate {
        Gate(Some(Arc::new(check)))
    }

    /// Whether delivery may happen now.
    pub fn is_open(&self) -> bool {
        self.0.as_ref().is_none_or(|f| f())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_checked_gate_follows_its_check() {
        assert!(Gate::open().is_open());
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let gate = Gate::checked(move || f.load(Ordering::Relaxed));
        assert!(!gate.is_open());
        flag.store(true, Ordering::Relaxed);
        assert!(gate.is_open());
    }
}
