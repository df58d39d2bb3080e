//! The one poison-tolerant lock helper. A panic caught while a guard was held (the listener
//! turns a bug into one dropped packet) must not take every later request down with it.
//!
//! The rule that goes with it: a guard lives for one statement. Never put `lock(..)` in a
//! `match`, `if let` or `while let` scrutinee whose arms may lock again or call out (TLS, SQL,
//! a socket): the guard lives until the end of the whole block. Take what you need, let the
//! guard drop, then act (clippy's `significant_drop_in_scrutinee` is denied crate-wide).

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking over the data of a poisoned lock.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
