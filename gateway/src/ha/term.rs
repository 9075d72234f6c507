//! What a leader runs besides its engine, for the length of one term (one lease epoch): event
//! delivery and the waiting room (ADR 0027). The controller calls the node's [`TermHook`]
//! once the engine has caught up and before the node serves, and stops what it returned
//! ([`TermServices`]) right after the node stops serving. The HTTP API reaches them through
//! [`Slot`]s, filled for a term and emptied at its end.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use flashsale_engine::Engine;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Starts a term's services at `epoch` on the term's engine; an error refuses the term (the
/// node gives the lease back and stays a standby: serving without them would, e.g., let
/// buyers past the waiting room).
pub type TermHook =
    Arc<dyn Fn(u64, Engine) -> BoxFuture<anyhow::Result<TermServices>> + Send + Sync>;

/// What a term started: stopped once, at the step-down (or when the node stops).
pub struct TermServices {
    stop: Option<Box<dyn FnOnce() -> BoxFuture<()> + Send>>,
}

impl std::fmt::Debug for TermServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TermServices")
            .field("running", &self.stop.is_some())
            .finish()
    }
}

impl TermServices {
    /// Nothing to stop.
    pub fn none() -> TermServices {
        TermServices { stop: None }
    }

    /// Services stopped by `stop`.
    pub fn new(stop: impl FnOnce() -> BoxFuture<()> + Send + 'static) -> TermServices {
        TermServices {
            stop: Some(Box::new(stop)),
        }
    }

    /// Stops them (waits until they are stopped).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop().await;
        }
    }
}

/// A value present while this node leads (or always, on a single node), shared between the
/// HTTP API and the term that fills it. Clones share the slot.
#[derive(Debug)]
pub struct Slot<T> {
    current: Arc<RwLock<Option<T>>>,
}

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Slot {
            current: self.current.clone(),
        }
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            current: Arc::new(RwLock::new(None)),
        }
    }
}

impl<T: Clone> Slot<T> {
    /// An empty slot (a standby's).
    pub fn empty() -> Slot<T> {
        Slot::default()
    }

    /// A slot holding `value` for good (a single node).
    pub fn filled(value: T) -> Slot<T> {
        let slot = Slot::empty();
        slot.set(Some(value));
        slot
    }

    /// The value, if present.
    pub fn get(&self) -> Option<T> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Puts `value` (or none) in the slot; returns the previous one.
    pub fn set(&self, value: Option<T>) -> Option<T> {
        let mut g = match self.current.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        std::mem::replace(&mut *g, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_shared_by_its_clones() {
        let a: Slot<u32> = Slot::empty();
        let b = a.clone();
        assert_eq!(b.get(), None);
        assert_eq!(a.set(Some(7)), None);
        assert_eq!(b.get(), Some(7));
        assert_eq!(b.set(None), Some(7));
        assert_eq!(a.get(), None);
        assert_eq!(Slot::filled(3).get(), Some(3));
    }

    #[tokio::test]
    async fn services_are_stopped_once() {
        let stopped = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let s = stopped.clone();
        let services = TermServices::new(move || {
            Box::pin(async move {
                s.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
        });
        services.stop().await;
        TermServices::none().stop().await;
        assert_eq!(stopped.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
