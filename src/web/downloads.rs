//! Bundles made in the browser wait here for their download: in memory only, for the user who
//! made them, for ten minutes, fetched once; at most a bounded number at a time. A page shows
//! the one-time password and links here, so the password never travels with the file.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use rand::RngCore as _;

/// How long a download waits.
const TTL_MINUTES: i64 = 10;
/// Most downloads waiting at once (each a few tens of kilobytes).
const MAX: usize = 200;

/// A file waiting.
#[derive(Debug, Clone)]
pub struct Download {
    /// Who may fetch it.
    pub user: String,
    /// Its file name.
    pub name: String,
    /// Its media type.
    pub media_type: &'static str,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Until when.
    pub expires: DateTime<Utc>,
}

/// The waiting downloads.
#[derive(Debug, Default)]
pub struct Downloads {
    inner: Mutex<HashMap<String, Download>>,
}

impl Downloads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Download>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps a file for `user`; the token of its link. Past the cap the oldest goes.
    pub fn put(
        &self,
        user: &str,
        name: String,
        media_type: &'static str,
        bytes: Vec<u8>,
        now: DateTime<Utc>,
    ) -> String {
        let mut raw = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let mut inner = self.lock();
        inner.retain(|_, d| d.expires > now);
        while inner.len() >= MAX {
            let oldest = inner
                .iter()
                .min_by_key(|(_, d)| d.expires)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => inner.remove(&k),
                None => break,
            };
        }
        inner.insert(
            token.clone(),
            Download {
                user: user.to_string(),
                name,
                media_type,
                bytes,
                expires: now + Duration::minutes(TTL_MINUTES),
            },
        );
        token
    }

    /// The file of `token` for `user`, once; `None` when unknown, expired, someone else's
    /// (then it stays for its owner) or fetched already.
    pub fn take(&self, token: &str, user: &str, now: DateTime<Utc>) -> Option<Download> {
        let mut inner = self.lock();
        let d = inner.get(token)?;
        if d.expires <= now {
            inner.remove(token);
            return None;
        }
        if d.user != user {
            return None;
        }
        inner.remove(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_for_its_user_within_ten_minutes() {
        let d = Downloads::default();
        let t0: DateTime<Utc> = "2026-12-02T09:00:00Z".parse().unwrap();
        let a = d.put("anna", "a.zip".into(), "application/zip", vec![1], t0);
        assert!(d.take(&a, "bert", t0).is_none());
        assert_eq!(d.take(&a, "anna", t0).unwrap().bytes, vec![1]);
        assert!(d.take(&a, "anna", t0).is_none());
        let b = d.put("anna", "b.zip".into(), "application/zip", vec![2], t0);
        assert!(d.take(&b, "anna", t0 + Duration::minutes(10)).is_none());
        for i in 0..(MAX + 5) {
            d.put("x", format!("{i}"), "application/zip", vec![], t0);
        }
        assert_eq!(d.lock().len(), MAX);
    }
}
