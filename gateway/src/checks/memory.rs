//! The memory all request bodies in flight may hold together (`MAX_BODY_MEMORY_BYTES`), and
//! the same kind of budget for upstream and tool answers (`MAX_ANSWER_MEMORY_BYTES`).
//!
//! `MAX_BODY_BYTES` bounds one body and `MAX_IN_FLIGHT` the number of requests, but their
//! product (32 MiB × 256 = 8 GiB raw, more once parsed) is no bound a host can live with. Each
//! body therefore holds a share of one process-wide byte budget from its first byte until the
//! request ends: its raw bytes while they arrive, then the estimated size of the tree its known
//! fields parse into (see `lazy::Cost`), settled *before* that tree is built.
//!
//! While a body arrives it holds [`READ_FACTOR`] × its bytes: room for its raw bytes, the
//! upstream request serialised from it, and a tree as large as itself. A body whose parsed cost
//! fits that (every body whose unknown fields are most of it, or whose text is in strings) can
//! therefore not be refused after it was read because others took the budget meanwhile; only
//! tree-heavy bodies need more at the parse, and may then be refused.

/// What a body holds per byte while it is read (see the module header).
pub(crate) const READ_FACTOR: usize = 3;

/// What an upstream answer holds per byte while it is read: its raw bytes and the copy the
/// caller is sent (the alias swapped in). Parsing it into a tree takes that tree's cost more,
/// before it is built. The answer's share is given back only once the caller's copy was
/// written ([`MemoryHold::into_bytes`]), so a caller that reads slowly keeps paying for it.
pub(crate) const ANSWER_READ_FACTOR: usize = 2;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug)]
pub struct MemoryBudget {
    used: AtomicUsize,
    max: usize,
}

impl MemoryBudget {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(MemoryBudget {
            used: AtomicUsize::new(0),
            max,
        })
    }

    /// Bytes held by bodies in flight now (for tests and `/metrics`-style probes).
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// An empty hold; grown as the body arrives and is parsed.
    pub fn hold(self: &Arc<Self>) -> MemoryHold {
        MemoryHold {
            budget: Some(self.clone()),
            bytes: 0,
        }
    }

    fn try_take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= self.max)
            })
            .is_ok()
    }
}

/// Why a hold could not grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This one body alone would need more than the whole budget: it can never fit.
    TooLarge,
    /// Other bodies hold the budget now; it may fit later.
    Busy,
}

/// One body's share of the budget, given back when it is dropped (the request ended).
#[derive(Debug)]
pub struct MemoryHold {
    budget: Option<Arc<MemoryBudget>>,
    bytes: usize,
}

impl MemoryHold {
    /// A hold on no budget (bodies built inside the gateway, tests).
    pub fn none() -> Self {
        MemoryHold {
            budget: None,
            bytes: 0,
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The size of the budget this hold is on (`usize::MAX` for none).
    pub fn budget_max(&self) -> usize {
        self.budget.as_ref().map_or(usize::MAX, |b| b.max)
    }

    /// Grows or shrinks the hold to exactly `n` bytes (shrinking always succeeds).
    pub fn resize(&mut self, n: usize) -> Result<(), Refused> {
        if n >= self.bytes {
            return self.grow(n - self.bytes);
        }
        if let Some(b) = &self.budget {
            b.used.fetch_sub(self.bytes - n, Ordering::AcqRel);
        }
        self.bytes = n;
        Ok(())
    }

    /// Moves `other`'s share into this hold (both on the same budget); `other` ends empty.
    pub fn absorb(&mut self, other: &mut MemoryHold) {
        let same = match (&self.budget, &other.budget) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same {
            self.bytes += other.bytes;
            other.bytes = 0;
        }
    }

    /// `data` as `Bytes` that carry this hold: it is given back when the last copy of them is
    /// dropped, i.e. once hyper has written them to the caller, not when the handler returns.
    pub fn into_bytes(self, data: Vec<u8>) -> bytes::Bytes {
        // Only what stays alive is held from here on: the bytes themselves.
        self.attach(bytes::Bytes::from(data))
    }

    /// `data` carrying this hold (the shares of what was parsed to make it: an SSE frame) until
    /// its last copy is dropped, shrunk to `data`'s size: the trees and texts it was made from
    /// are gone by now. Nothing is copied.
    pub fn attach(mut self, data: bytes::Bytes) -> bytes::Bytes {
        let _ = self.resize(data.len().min(self.bytes));
        if self.bytes == 0 {
            return data;
        }
        bytes::Bytes::from_owner(Held { data, _hold: self })
    }

    /// Takes `n` more bytes, or says why not (then the hold is unchanged).
    pub fn grow(&mut self, n: usize) -> Result<(), Refused> {
        let Some(b) = &self.budget else {
            return Ok(());
        };
        if self.bytes.saturating_add(n) > b.max {
            return Err(Refused::TooLarge);
        }
        if !b.try_take(n) {
            return Err(Refused::Busy);
        }
        self.bytes += n;
        Ok(())
    }
}

/// Bytes that keep their memory share until they are dropped.
struct Held {
    data: bytes::Bytes,
    _hold: MemoryHold,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for MemoryHold {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.used.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_share_one_budget_and_give_it_back() {
        let b = MemoryBudget::new(100);
        let mut a = b.hold();
        assert_eq!(a.grow(60), Ok(()));
        let mut c = b.hold();
        assert_eq!(c.grow(50), Err(Refused::Busy));
        assert_eq!(c.grow(101), Err(Refused::TooLarge));
        assert_eq!(c.grow(40), Ok(()));
        assert_eq!(b.used(), 100);
        drop(a);
        assert_eq!(b.used(), 40);
        assert_eq!(c.grow(60), Ok(()));
        assert_eq!(
            c.grow(1),
            Err(Refused::TooLarge),
            "one hold past the whole budget"
        );
        assert_eq!(c.resize(10), Ok(()));
        assert_eq!(b.used(), 10);
        drop(c);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn bytes_keep_their_share_until_the_last_copy_is_dropped() {
        let b = MemoryBudget::new(1000);
        let mut h = b.hold();
        assert_eq!(h.grow(600), Ok(()));
        let bytes = h.into_bytes(vec![7u8; 100]);
        assert_eq!(b.used(), 100, "shrunk to what stays alive");
        let copy = bytes.clone();
        drop(bytes);
        assert_eq!(b.used(), 100, "a copy is still being written");
        assert_eq!(&copy[..3], &[7, 7, 7]);
        drop(copy);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn absorb_moves_a_share_between_holds_of_one_budget() {
        let b = MemoryBudget::new(1000);
        let (mut x, mut y) = (b.hold(), b.hold());
        assert_eq!(x.grow(10), Ok(()));
        assert_eq!(y.grow(20), Ok(()));
        x.absorb(&mut y);
        assert_eq!((x.bytes(), y.bytes(), b.used()), (30, 0, 30));
        drop(y);
        assert_eq!(b.used(), 30);
        drop(x);
        assert_eq!(b.used(), 0);
        let other = MemoryBudget::new(1000);
        let (mut p, mut q) = (b.hold(), other.hold());
        assert_eq!(q.grow(5), Ok(()));
        p.absorb(&mut q);
        assert_eq!(
            (p.bytes(), q.bytes()),
            (0, 5),
            "another budget's share stays put"
        );
    }
}
