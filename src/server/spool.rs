//! The accounting spool (issue 11): while the registry database cannot take accounting, each
//! update is appended to a local journal and made durable (fsync) before its
//! Accounting-Response goes out; a replayer applies the journal to the store, in order, once
//! the store takes writes again. The framing, the decoding and the resume point are pure
//! ([`frame`], [`next_frame`], [`scan`], [`ReplayCursor`], [`resume_at`]) and tested here; the
//! files, the writer thread and the replay loop sit on top of them.
//!
//! On disk, in `node.state_dir` (created 0700; files 0600):
//! - `accounting.spool`: a 16-byte header (`PWSPOOL1` and the journal's random generation),
//!   then records, each `length (u32 LE) | CRC-32C of length and payload (u32 LE) | payload`
//!   (an [`Entry`] as JSON). Appended only. A record whose write or fsync did not complete was
//!   never acknowledged, so an incomplete or unreadable tail is cut off when the journal is
//!   opened.
//! - `accounting.spool.done`: how far the replay got (generation, byte offset, CRC), replaced
//!   atomically (temporary file, fsync, rename, fsync of the directory). It lags the store by
//!   at most one batch: re-applying a record is harmless, because the store's accounting
//!   writes are idempotent (`ActivityStore::record_accounting`, `close_sessions`).
//!
//! Order: while the journal holds records not yet applied, new accounting joins them there,
//! behind them. Once every record is applied, both files are removed and accounting goes
//! straight to the store again. The bound: past `node.spool_max_mib` an update is not
//! acknowledged (counted in `spool_full`, a warning at most every 10 s); the access point keeps
//! it and retransmits, so nothing acknowledged is lost.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use crate::activity::AccountingUpdate;
use crate::registry::{Store, StoreError};
use crate::sync::lock;

use super::stats::Stats;

/// The journal's file name in the state directory.
pub const JOURNAL: &str = "accounting.spool";
/// The replay cursor's file name in the state directory.
pub const CURSOR: &str = "accounting.spool.done";
/// The journal's header: magic and generation.
pub const HEADER_LEN: u64 = 16;
/// The largest payload a record may carry (an update is well under 4 KiB).
pub const MAX_RECORD: usize = 64 * 1024;
/// The longest one store write may take before the update is spooled instead: an outage must
/// not hold the request backlog.
pub const STORE_WITHIN: Duration = Duration::from_secs(2);

const MAGIC: &[u8; 8] = b"PWSPOOL1";
const FRAME_HEAD: usize = 8;
const CURSOR_LEN: usize = 20;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
/// Appends made durable by one fsync, at most.
const GROUP_MAX: usize = 1_024;
/// Bytes of journal read per replay step (more than the largest record).
const READ_CHUNK: usize = 1 << 20;
/// Records applied between two writes of the cursor: what a crash may make the replay do twice.
const CURSOR_EVERY: u64 = 256;
/// How often the replayer looks at the journal while it waits for the store.
const REPLAY_EVERY: Duration = Duration::from_secs(1);
const WARN_FULL_EVERY: Duration = Duration::from_secs(10);

/// One accounting write, as it waits in the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "kebab-case")]
pub enum Entry {
    /// Start, Interim-Update or Stop of one session.
    Session(Box<AccountingUpdate>),
    /// Accounting-On/Off: the access point's sessions last heard of before `at` end.
    NasRestart {
        /// Client name.
        nas: String,
        /// The access point within the client.
        nas_key: String,
        /// When the request came in.
        at: DateTime<Utc>,
        /// Terminate cause recorded.
        cause: String,
    },
}

impl Entry {
    /// The record's payload.
    pub fn encode(&self) -> Result<Vec<u8>, SpoolError> {
        serde_json::to_vec(self).map_err(SpoolError::Encode)
    }

    /// A record's payload read back.
    pub fn decode(payload: &[u8]) -> Result<Entry, SpoolError> {
        serde_json::from_slice(payload).map_err(SpoolError::Encode)
    }
}

/// Why the spool could not take or give back a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// The journal reached `node.spool_max_mib`.
    #[error("the accounting spool is full ({max} bytes)")]
    Full {
        /// The bound in bytes.
        max: u64,
    },
    /// One record over [`MAX_RECORD`].
    #[error("an accounting record of {0} bytes is over the spool's record limit")]
    TooLarge(usize),
    /// A file could not be read or written.
    #[error("accounting spool {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A file in the state directory by the journal's name that is no journal of ours.
    #[error("{0} is not an accounting spool (move it away)")]
    Foreign(PathBuf),
    /// A record that is not an [`Entry`].
    #[error("accounting record: {0}")]
    Encode(serde_json::Error),
    /// The writer thread is gone.
    #[error("the accounting spool's writer has stopped")]
    Stopped,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---- the pure part: framing, scanning, the cursor ----

/// The journal header for `generation`.
pub fn header(generation: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&generation.to_le_bytes());
    h
}

/// The generation of a journal header; `None` if `buf` does not start with one.
pub fn read_header(buf: &[u8]) -> Option<u64> {
    let h = buf.get(..HEADER_LEN as usize)?;
    if &h[..8] != MAGIC {
        return None;
    }
    h[8..].try_into().ok().map(u64::from_le_bytes)
}

fn checksum(len: &[u8], payload: &[u8]) -> u32 {
    let mut d = CRC.digest();
    d.update(len);
    d.update(payload);
    d.finalize()
}

/// One record: length, checksum, payload.
pub fn frame(payload: &[u8]) -> Result<Vec<u8>, SpoolError> {
    if payload.len() > MAX_RECORD {
        return Err(SpoolError::TooLarge(payload.len()));
    }
    // fits: at most MAX_RECORD
    let len = (payload.len() as u32).to_le_bytes();
    let mut out = Vec::with_capacity(FRAME_HEAD + payload.len());
    out.extend_from_slice(&len);
    out.extend_from_slice(&checksum(&len, payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// What the bytes at the start of a buffer hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A whole record of `len` bytes (frame included).
    Record {
        /// The payload.
        payload: &'a [u8],
        /// Bytes the record takes.
        len: usize,
    },
    /// The buffer ends inside a record (or is empty): read on, or at the end of the file, a
    /// torn tail.
    Incomplete,
    /// An impossible length or a checksum that does not match.
    Bad,
}

/// Reads the record at the start of `buf`.
pub fn next_frame(buf: &[u8]) -> Next<'_> {
    let Some(head) = buf.get(..FRAME_HEAD) else {
        return Next::Incomplete;
    };
    let (len_bytes, sum) = head.split_at(4);
    let mut len = [0u8; 4];
    len.copy_from_slice(len_bytes);
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_RECORD {
        return Next::Bad;
    }
    let Some(payload) = buf.get(FRAME_HEAD..FRAME_HEAD + n) else {
        return Next::Incomplete;
    };
    let mut want = [0u8; 4];
    want.copy_from_slice(sum);
    if checksum(&len, payload) != u32::from_le_bytes(want) {
        return Next::Bad;
    }
    Next::Record {
        payload,
        len: FRAME_HEAD + n,
    }
}

/// What [`scan`] found after the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Where the last whole record ends: what was acknowledged.
    pub end: u64,
    /// Whole records.
    pub records: u64,
    /// Bytes after `end` (a torn or unreadable tail).
    pub tail: u64,
    /// Whether `mark` (if given) is where a record starts or the last one ends.
    pub mark_on_boundary: bool,
    /// Whole records at or after `mark`.
    pub records_after_mark: u64,
}

/// Walks the records of a journal body that starts at file offset `from`, until its end or
/// the first record that is incomplete or does not check: that and everything after it is the
/// tail. Only a read error fails.
pub fn scan(r: &mut impl Read, from: u64, mark: Option<u64>) -> io::Result<Scanned> {
    let mut s = Scanned {
        end: from,
        records: 0,
        tail: 0,
        mark_on_boundary: mark == Some(from),
        records_after_mark: 0,
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut eof = false;
    let mut bad = false;
    loop {
        let mut at = 0;
        while !bad {
            match next_frame(&buf[at..]) {
                Next::Record { len, .. } => {
                    if mark.is_some_and(|m| m <= s.end) {
                        s.records_after_mark += 1;
                    }
                    at += len;
                    s.end += len as u64;
                    s.records += 1;
                    if mark == Some(s.end) {
                        s.mark_on_boundary = true;
                    }
                }
                Next::Incomplete => break,
                Next::Bad => bad = true,
            }
        }
        buf.drain(..at);
        if bad || eof {
            break;
        }
        let n = r.read(&mut chunk)?;
        eof = n == 0;
        buf.extend_from_slice(&chunk[..n]);
    }
    // the rest of the reader counts as tail too
    s.tail = buf.len() as u64 + io::copy(r, &mut io::sink())?;
    Ok(s)
}

/// How far the replay got in one journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayCursor {
    /// The journal's generation.
    pub generation: u64,
    /// Where the first record not yet applied starts.
    pub offset: u64,
}

impl ReplayCursor {
    /// The cursor file's contents.
    pub fn encode(&self) -> [u8; CURSOR_LEN] {
        let mut out = [0u8; CURSOR_LEN];
        out[..8].copy_from_slice(&self.generation.to_le_bytes());
        out[8..16].copy_from_slice(&self.offset.to_le_bytes());
        let sum = CRC.checksum(&out[..16]);
        out[16..].copy_from_slice(&sum.to_le_bytes());
        out
    }

    /// A cursor file's contents read back; `None` if they do not check.
    pub fn decode(buf: &[u8]) -> Option<ReplayCursor> {
        if buf.len() != CURSOR_LEN {
            return None;
        }
        let sum = u32::from_le_bytes(buf.get(16..20)?.try_into().ok()?);
        if CRC.checksum(&buf[..16]) != sum {
            return None;
        }
        let long = |r: std::ops::Range<usize>| -> Option<u64> {
            Some(u64::from_le_bytes(buf.get(r)?.try_into().ok()?))
        };
        Some(ReplayCursor {
            generation: long(0..8)?,
            offset: long(8..16)?,
        })
    }
}

/// Where the replay of journal `generation` resumes: at the cursor if it belongs to this
/// journal and points at a record boundary, else from the first record (re-applying is
/// harmless; skipping is not).
pub fn resume_at(cursor: Option<ReplayCursor>, generation: u64, on_boundary: bool) -> u64 {
    match cursor {
        Some(c) if c.generation == generation && on_boundary && c.offset >= HEADER_LEN => c.offset,
        _ => HEADER_LEN,
    }
}

// ---- the files ----

/// What the request path and the replayer share about the journal.
#[derive(Debug)]
struct State {
    /// Records wait in the journal, or are on their way to it: new accounting goes there too,
    /// behind them.
    active: bool,
    /// The journal's generation (0: no journal).
    generation: u64,
    /// Where the durable records end (fsynced; the replayer reads below it).
    durable: u64,
    /// When the spool last warned that it is full.
    warned_full: Option<Instant>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    journal: PathBuf,
    cursor: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
}

enum Cmd {
    Append {
        frame: Vec<u8>,
        done: oneshot::Sender<Result<(), SpoolError>>,
    },
    /// Remove the journal if it is still `generation` and ends at `end` (all of it applied).
    Drain {
        generation: u64,
        end: u64,
        done: oneshot::Sender<bool>,
    },
}

/// The accounting spool: the journal's writer thread and what the replayer needs.
pub struct Spool {
    inner: Arc<Inner>,
    tx: mpsc::Sender<Cmd>,
    /// Where the replay resumes after a start (taken once by the replayer).
    resume: Mutex<Option<ReplayCursor>>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("journal", &self.inner.journal)
            .finish_non_exhaustive()
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn remove_if_there(path: &Path) -> Result<(), SpoolError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

impl Spool {
    /// Opens the spool in `dir`, bounded to `max_bytes`: an existing journal is checked (an
    /// incomplete tail cut off) and its replay resumes where the cursor says. Creates nothing:
    /// the directory and the journal are made on the first record. Blocking I/O.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            journal: dir.join(JOURNAL),
            cursor: dir.join(CURSOR),
            max_bytes: max_bytes.max(HEADER_LEN + (FRAME_HEAD + MAX_RECORD) as u64),
            state: Mutex::new(State {
                active: false,
                generation: 0,
                durable: 0,
                warned_full: None,
            }),
        });
        let mut writer = Writer {
            inner: inner.clone(),
            file: None,
            generation: 0,
            end: 0,
            broken: false,
        };
        let resume = writer.adopt()?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("acct-spool".into())
            .spawn(move || writer.run(rx))
            .map_err(io_err(dir))?;
        Ok(Spool {
            inner,
            tx,
            resume: Mutex::new(resume),
        })
    }

    /// Whether records wait in the journal: new accounting must go there, behind them.
    pub fn active(&self) -> bool {
        lock(&self.inner.state).active
    }

    /// Appends one record and returns once it is durable (several appends share one fsync).
    pub async fn append(&self, entry: &Entry) -> Result<(), SpoolError> {
        let frame = frame(&entry.encode()?)?;
        // from here on, later accounting queues behind this record
        lock(&self.inner.state).active = true;
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Cmd::Append { frame, done })
            .map_err(|_| SpoolError::Stopped)?;
        wait.await.map_err(|_| SpoolError::Stopped)?
    }

    /// Whether to warn that the spool is full now (at most every 10 s).
    pub fn warn_full(&self, now: Instant) -> bool {
        let mut s = lock(&self.inner.state);
        if s.warned_full
            .is_some_and(|t| now.duration_since(t) < WARN_FULL_EVERY)
        {
            return false;
        }
        s.warned_full = Some(now);
        true
    }

    /// The bound in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.inner.max_bytes
    }

    async fn drain(&self, generation: u64, end: u64) -> bool {
        let (done, wait) = oneshot::channel();
        if self
            .tx
            .send(Cmd::Drain {
                generation,
                end,
                done,
            })
            .is_err()
        {
            return false;
        }
        wait.await.unwrap_or(false)
    }

    fn snapshot(&self) -> (bool, u64, u64) {
        let s = lock(&self.inner.state);
        (s.active, s.generation, s.durable)
    }
}

/// The journal's only writer, on a thread of its own: appends arrive over a channel and those
/// waiting together are written and fsynced together.
struct Writer {
    inner: Arc<Inner>,
    file: Option<File>,
    generation: u64,
    end: u64,
    /// A failed write could not be cut back: appending after it would bury later records.
    broken: bool,
}

impl Writer {
    /// Takes over a journal left by an earlier run; returns where its replay resumes.
    fn adopt(&mut self) -> Result<Option<ReplayCursor>, SpoolError> {
        let inner = self.inner.clone();
        let path = &inner.journal;
        let mut file = match OpenOptions::new().read(true).append(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // a cursor without its journal: the journal was removed after a full replay
                remove_if_there(&inner.cursor)?;
                return Ok(None);
            }
            Err(e) => return Err(io_err(path)(e)),
        };
        let mut head = [0u8; HEADER_LEN as usize];
        let mut got = 0;
        while got < head.len() {
            match file.read(&mut head[got..]).map_err(io_err(path))? {
                0 => break,
                n => got += n,
            }
        }
        let Some(generation) = read_header(&head[..got]) else {
            let len = file.metadata().map_err(io_err(path))?.len();
            if len > HEADER_LEN {
                return Err(SpoolError::Foreign(path.clone()));
            }
            // the header is fsynced before the first record: a torn one held nothing
            drop(file);
            remove_if_there(path)?;
            remove_if_there(&inner.cursor)?;
            return Ok(None);
        };
        let cursor = std::fs::read(&inner.cursor)
            .ok()
            .and_then(|b| ReplayCursor::decode(&b));
        let mark = cursor
            .filter(|c| c.generation == generation)
            .map(|c| c.offset);
        let scanned =
            scan(&mut io::BufReader::new(&mut file), HEADER_LEN, mark).map_err(io_err(path))?;
        if scanned.tail > 0 {
            // a record whose write or fsync did not complete was never acknowledged
            tracing::warn!(
                journal = %path.display(),
                bytes = scanned.tail,
                "accounting spool: an incomplete record at the end (never acknowledged) cut off"
            );
            file.set_len(scanned.end)
                .and_then(|_| file.sync_data())
                .map_err(io_err(path))?;
        }
        let offset = resume_at(cursor, generation, scanned.mark_on_boundary);
        let waiting = if offset == HEADER_LEN {
            scanned.records
        } else {
            scanned.records_after_mark
        };
        tracing::info!(
            journal = %path.display(),
            records = waiting,
            "accounting spool: replaying what an earlier run kept"
        );
        self.file = Some(file);
        self.generation = generation;
        self.end = scanned.end;
        let mut s = lock(&inner.state);
        s.active = true;
        s.generation = generation;
        s.durable = scanned.end;
        drop(s);
        Ok(Some(ReplayCursor { generation, offset }))
    }

    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        while let Ok(first) = rx.recv() {
            let mut batch: Vec<u8> = Vec::new();
            let mut waiting = Vec::new();
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(cmd) = next.take() {
                match cmd {
                    Cmd::Append { frame, done } => {
                        let size = self.end.max(HEADER_LEN) + (batch.len() + frame.len()) as u64;
                        if size > self.inner.max_bytes {
                            let _ = done.send(Err(SpoolError::Full {
                                max: self.inner.max_bytes,
                            }));
                        } else {
                            batch.extend_from_slice(&frame);
                            waiting.push(done);
                        }
                    }
                    Cmd::Drain {
                        generation,
                        end,
                        done,
                    } => {
                        self.commit(&mut batch, &mut waiting);
                        let _ = done.send(self.drain(generation, end));
                    }
                }
                taken += 1;
                if taken < GROUP_MAX {
                    next = rx.try_recv().ok();
                }
            }
            self.commit(&mut batch, &mut waiting);
        }
    }

    /// Writes and fsyncs `batch`, then answers everyone waiting for it.
    fn commit(
        &mut self,
        batch: &mut Vec<u8>,
        waiting: &mut Vec<oneshot::Sender<Result<(), SpoolError>>>,
    ) {
        if waiting.is_empty() {
            return;
        }
        let written = self.write(batch);
        if let Err(e) = &written {
            tracing::error!(error = %e, "cannot write the accounting spool");
        }
        batch.clear();
        for w in waiting.drain(..) {
            let answer = match &written {
                Ok(()) => Ok(()),
                Err(e) => Err(SpoolError::Io {
                    path: self.inner.journal.clone(),
                    source: io::Error::new(e.kind(), e.to_string()),
                }),
            };
            let _ = w.send(answer);
        }
    }

    fn write(&mut self, batch: &[u8]) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(
                "an earlier failed write could not be cut back",
            ));
        }
        if self.file.is_none() {
            self.create()?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("no journal"));
        };
        match file.write_all(batch).and_then(|_| file.sync_data()) {
            Ok(()) => {
                self.end += batch.len() as u64;
                let mut s = lock(&self.inner.state);
                s.active = true;
                s.generation = self.generation;
                s.durable = self.end;
                Ok(())
            }
            Err(e) => {
                // cut what landed of this batch: the next record must follow the last good one
                if file
                    .set_len(self.end)
                    .and_then(|_| file.sync_data())
                    .is_err()
                {
                    self.broken = true;
                }
                Err(e)
            }
        }
    }

    /// A new, empty journal: header fsynced, then the directory entry.
    fn create(&mut self) -> io::Result<()> {
        let inner = &self.inner;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&inner.dir)?;
        let generation = loop {
            let g: u64 = rand::random();
            if g != 0 && g != self.generation {
                break g;
            }
        };
        // no journal is ours now: one by this name is a leftover of a removal that failed
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&inner.journal)?;
        file.write_all(&header(generation))?;
        file.sync_data()?;
        drop(file);
        File::open(&inner.dir)?.sync_all()?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&inner.journal)?;
        self.file = Some(file);
        self.generation = generation;
        self.end = HEADER_LEN;
        Ok(())
    }

    /// Removes the journal and its cursor once all of it is applied; `false` if records came
    /// in meanwhile (or a file could not be removed: the replay then simply goes round again).
    fn drain(&mut self, generation: u64, end: u64) -> bool {
        if generation != self.generation || end != self.end {
            return false;
        }
        self.file = None;
        let inner = self.inner.clone();
        // the journal first: a cursor without its journal is ignored, the reverse would replay
        // the whole journal again (harmless, but slow)
        let removed = remove_if_there(&inner.journal)
            .and_then(|_| remove_if_there(&inner.cursor))
            .and_then(|_| {
                if inner.dir.exists() {
                    sync_dir(&inner.dir)
                } else {
                    Ok(())
                }
            });
        if let Err(e) = removed {
            tracing::warn!(error = %e, "cannot remove the replayed accounting spool");
        }
        self.generation = 0;
        self.end = 0;
        self.broken = false;
        let mut s = lock(&inner.state);
        s.active = false;
        s.generation = 0;
        s.durable = 0;
        true
    }
}

fn write_cursor(inner: &Inner, cursor: ReplayCursor) -> Result<(), SpoolError> {
    let tmp = inner.dir.join(format!("{CURSOR}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(&cursor.encode())
        .and_then(|_| f.sync_data())
        .map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &inner.cursor).map_err(io_err(&inner.cursor))?;
    sync_dir(&inner.dir)
}

fn read_chunk(path: &Path, from: u64, to: u64) -> Result<Vec<u8>, SpoolError> {
    let want = (to.saturating_sub(from) as usize).min(READ_CHUNK);
    let mut buf = vec![0u8; want];
    let mut f = File::open(path).map_err(io_err(path))?;
    f.seek(SeekFrom::Start(from)).map_err(io_err(path))?;
    f.read_exact(&mut buf).map_err(io_err(path))?;
    Ok(buf)
}

// ---- storing, and the replay ----

/// Applies one record to the store. An update without a device learns it from its MAC when
/// the registry knows one.
pub async fn apply(store: &dyn Store, entry: &mut Entry) -> Result<(), StoreError> {
    match entry {
        Entry::Session(u) => {
            if u.device_id.is_none() {
                if let Some(mac) = u.mac {
                    if let Some(device) = store.device_by_mac(mac).await? {
                        if let Some(owner) = store.owner(&device.owner).await? {
                            u.device_id = Some(device.id);
                            u.owner = Some(owner.username);
                        }
                    }
                }
            }
            store.record_accounting(u).await
        }
        Entry::NasRestart {
            nas,
            nas_key,
            at,
            cause,
        } => {
            let closed = store.close_sessions(nas, nas_key, *at, cause).await?;
            tracing::info!(nas = %nas, ap = %crate::text::Escaped(nas_key), closed, cause = %cause, "NAS restarted: its open sessions closed");
            Ok(())
        }
    }
}

/// Stores one accounting write, or spools it when the store cannot take it now (or records
/// already wait in the spool, or the node is `degraded`); `true` once it is stored or durable,
/// and may be acknowledged.
pub async fn store_or_spool(
    spool: &Spool,
    store: &dyn Store,
    stats: &Stats,
    mut entry: Entry,
    degraded: bool,
) -> bool {
    // a node that knows the database is away does not wait for it
    if !spool.active() && !degraded {
        match tokio::time::timeout(STORE_WITHIN, apply(store, &mut entry)).await {
            Ok(Ok(())) => return true,
            Ok(Err(e)) if !e.is_unavailable() => {
                tracing::error!(error = %e, "storing accounting failed; not answered");
                return false;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot store accounting now; spooling it"),
            Err(_) => tracing::warn!(
                "storing accounting took over {} s; spooling it",
                STORE_WITHIN.as_secs()
            ),
        }
    }
    match spool.append(&entry).await {
        Ok(()) => {
            Stats::inc(&stats.spooled);
            true
        }
        Err(SpoolError::Full { max }) => {
            Stats::inc(&stats.spool_full);
            if spool.warn_full(Instant::now()) {
                tracing::warn!(max_bytes = max, "the accounting spool is full: accounting is not answered (the access points retransmit it) until the database takes it again");
            }
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot spool accounting; not answered");
            false
        }
    }
}

/// What one replay step achieved.
enum Step {
    /// Records applied and more are durable: go on at once.
    Progress,
    /// Nothing to do, or the store failed: look again in a second.
    Wait,
    /// Asked to stop.
    Stop,
}

/// The replayer: applies the journal to the store in order, from where the last run stopped,
/// while records wait; stops at the first record the store cannot take and tries again every
/// second. Once all is applied, the journal is removed and accounting goes straight to the
/// store. Ends when `stop` turns true (the cursor is written first).
pub async fn replay(
    spool: Arc<Spool>,
    store: Arc<dyn Store>,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut at = lock(&spool.resume).take().unwrap_or(ReplayCursor {
        generation: 0,
        offset: 0,
    });
    loop {
        if *stop.borrow() {
            return;
        }
        match replay_step(&spool, &*store, &stats, &mut at, &mut stop).await {
            Step::Progress => continue,
            Step::Stop => return,
            Step::Wait => {}
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(REPLAY_EVERY) => {}
        }
    }
}

async fn replay_step(
    spool: &Arc<Spool>,
    store: &dyn Store,
    stats: &Stats,
    at: &mut ReplayCursor,
    stop: &mut watch::Receiver<bool>,
) -> Step {
    let (active, generation, durable) = spool.snapshot();
    if !active {
        return Step::Wait;
    }
    if generation != at.generation {
        // a new journal since the last drain
        *at = ReplayCursor {
            generation,
            offset: HEADER_LEN,
        };
    }
    if generation == 0 || at.offset >= durable {
        if spool.drain(generation, durable).await {
            if generation != 0 {
                tracing::info!(
                    "accounting spool replayed: accounting goes straight to the database again"
                );
            }
            *at = ReplayCursor {
                generation: 0,
                offset: 0,
            };
        }
        return Step::Wait;
    }
    let inner = spool.inner.clone();
    let from = at.offset;
    let chunk = match tokio::task::spawn_blocking(move || read_chunk(&inner.journal, from, durable))
        .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read the accounting spool");
            return Step::Wait;
        }
        Err(_) => return Step::Wait,
    };
    let mut pos = 0;
    let mut since_cursor = 0u64;
    let mut outcome = Step::Progress;
    while pos < chunk.len() {
        if *stop.borrow() {
            outcome = Step::Stop;
            break;
        }
        let (payload, len) = match next_frame(&chunk[pos..]) {
            Next::Record { payload, len } => (payload, len),
            Next::Incomplete => break,
            Next::Bad => {
                // fsynced and checked at open, unreadable now: keep it (and everything behind
                // it) rather than lose acknowledged accounting, and say so
                tracing::error!(
                    offset = at.offset,
                    "the accounting spool is unreadable here; replay stopped"
                );
                outcome = Step::Wait;
                break;
            }
        };
        let mut entry = match Entry::decode(payload) {
            Ok(e) => e,
            Err(e) => {
                Stats::inc(&stats.spool_rejected);
                tracing::error!(error = %e, offset = at.offset, "a spooled accounting record cannot be read; skipped");
                pos += len;
                at.offset += len as u64;
                continue;
            }
        };
        // a stop does not wait for the database: the record is applied again next time
        let applied = tokio::select! {
            a = tokio::time::timeout(STORE_WITHIN, apply(store, &mut entry)) => a,
            _ = stop.changed() => {
                outcome = Step::Stop;
                break;
            }
        };
        match applied {
            Ok(Ok(())) => Stats::inc(&stats.replayed),
            Ok(Err(e)) if !e.is_unavailable() => {
                Stats::inc(&stats.spool_rejected);
                tracing::error!(error = %e, record = ?entry, "the database refuses a spooled accounting record; skipped");
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "replaying the accounting spool: the database is not back yet");
                outcome = Step::Wait;
                break;
            }
            Err(_) => {
                outcome = Step::Wait;
                break;
            }
        }
        pos += len;
        at.offset += len as u64;
        since_cursor += 1;
        if since_cursor >= CURSOR_EVERY {
            save_cursor(spool, *at).await;
            since_cursor = 0;
        }
    }
    if since_cursor > 0 {
        save_cursor(spool, *at).await;
    }
    if pos == 0 && matches!(outcome, Step::Progress) {
        return Step::Wait;
    }
    outcome
}

async fn save_cursor(spool: &Arc<Spool>, at: ReplayCursor) {
    let inner = spool.inner.clone();
    match tokio::task::spawn_blocking(move || write_cursor(&inner, at)).await {
        Ok(Ok(())) => {}
        // the replay goes on; a crash would only apply more records a second time
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot save the accounting spool's replay cursor")
        }
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = header(7).to_vec();
        for p in payloads {
            out.extend(frame(p).expect("fits"));
        }
        out
    }

    fn scan_all(buf: &[u8], mark: Option<u64>) -> Scanned {
        assert_eq!(read_header(buf), Some(7));
        scan(&mut &buf[HEADER_LEN as usize..], HEADER_LEN, mark).expect("in memory")
    }

    #[test]
    fn frames_round_trip() {
        let f = frame(b"hello").expect("fits");
        assert_eq!(f.len(), FRAME_HEAD + 5);
        assert_eq!(
            next_frame(&f),
            Next::Record {
                payload: b"hello",
                len: f.len()
            }
        );
        let empty = frame(b"").expect("fits");
        assert_eq!(
            next_frame(&empty),
            Next::Record {
                payload: b"",
                len: FRAME_HEAD
            }
        );
        assert!(matches!(
            frame(&vec![0; MAX_RECORD + 1]),
            Err(SpoolError::TooLarge(_))
        ));
    }

    #[test]
    fn empty_input_and_empty_journal() {
        assert_eq!(next_frame(&[]), Next::Incomplete);
        let buf = journal(&[]);
        let s = scan_all(&buf, None);
        assert_eq!((s.end, s.records, s.tail), (HEADER_LEN, 0, 0));
        assert_eq!(read_header(&buf[..10]), None);
        assert_eq!(read_header(b"NOTASPOOLxxxxxxxx"), None);
    }

    #[test]
    fn torn_tail_is_cut_at_every_length() {
        let whole = journal(&[b"one", b"two", b"three"]);
        let two = journal(&[b"one", b"two"]).len() as u64;
        // every prefix that ends inside the third record keeps exactly two
        for cut in two as usize..whole.len() {
            let s = scan_all(&whole[..cut], None);
            assert_eq!(s.records, 2, "cut at {cut}");
            assert_eq!(s.end, two);
            assert_eq!(s.tail, cut as u64 - two);
        }
        let s = scan_all(&whole, None);
        assert_eq!((s.records, s.tail), (3, 0));
        assert_eq!(s.end, whole.len() as u64);
    }

    #[test]
    fn bad_checksum_or_length_ends_the_journal() {
        let mut buf = journal(&[b"one", b"two", b"three"]);
        let second = journal(&[b"one"]).len();
        // a flipped payload bit in the second record
        buf[second + FRAME_HEAD] ^= 1;
        assert_eq!(next_frame(&buf[second..]), Next::Bad);
        let s = scan_all(&buf, None);
        assert_eq!(s.records, 1);
        assert_eq!(s.end, second as u64);
        assert_eq!(s.tail, (buf.len() - second) as u64);
        // an impossible length
        let mut big = frame(b"x").expect("fits");
        big[..4].copy_from_slice(&(MAX_RECORD as u32 + 1).to_le_bytes());
        assert_eq!(next_frame(&big), Next::Bad);
        // a length that was torn to a smaller value does not check either
        let mut short = frame(b"abcdef").expect("fits");
        short[0] = 3;
        assert_eq!(next_frame(&short), Next::Bad);
    }

    #[test]
    fn scan_across_read_chunks() {
        let big = vec![b'x'; MAX_RECORD];
        let payloads: Vec<&[u8]> = (0..40).map(|_| big.as_slice()).collect();
        let buf = journal(&payloads);
        assert!(buf.len() > READ_CHUNK);
        let s = scan_all(&buf, None);
        assert_eq!((s.records, s.tail), (40, 0));
    }

    #[test]
    fn cursor_round_trip_and_resume() {
        let c = ReplayCursor {
            generation: 7,
            offset: 42,
        };
        assert_eq!(ReplayCursor::decode(&c.encode()), Some(c));
        let mut bad = c.encode();
        bad[9] ^= 1;
        assert_eq!(ReplayCursor::decode(&bad), None);
        assert_eq!(ReplayCursor::decode(&[]), None);
        assert_eq!(ReplayCursor::decode(&c.encode()[..19]), None);

        let buf = journal(&[b"one", b"two", b"three"]);
        let second = journal(&[b"one"]).len() as u64;
        let s = scan_all(&buf, Some(second));
        assert!(s.mark_on_boundary);
        assert_eq!(s.records_after_mark, 2);
        let at = ReplayCursor {
            generation: 7,
            offset: second,
        };
        assert_eq!(resume_at(Some(at), 7, s.mark_on_boundary), second);
        // another journal's cursor, no cursor, or one inside a record: from the start
        assert_eq!(resume_at(Some(at), 8, true), HEADER_LEN);
        assert_eq!(resume_at(None, 7, true), HEADER_LEN);
        let s = scan_all(&buf, Some(second + 1));
        assert!(!s.mark_on_boundary);
        assert_eq!(resume_at(Some(at), 7, s.mark_on_boundary), HEADER_LEN);
        // the end of the journal is a boundary: nothing left to apply
        let s = scan_all(&buf, Some(buf.len() as u64));
        assert!(s.mark_on_boundary);
        assert_eq!(s.records_after_mark, 0);
    }

    #[test]
    fn entries_round_trip() {
        let e = Entry::NasRestart {
            nas: "ap".into(),
            nas_key: "10.0.0.1".into(),
            at: Utc::now(),
            cause: "NAS-Reboot".into(),
        };
        assert_eq!(
            Entry::decode(&e.encode().expect("encodes")).expect("decodes"),
            e
        );
        assert!(Entry::decode(b"{}").is_err());
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn restart(n: u32) -> Entry {
        Entry::NasRestart {
            nas: "ap".into(),
            nas_key: format!("k{n}"),
            at: Utc::now(),
            cause: "NAS-Reboot".into(),
        }
    }

    #[test]
    fn journal_on_disk_survives_a_torn_tail_and_drains() {
        let dir = tempfile::tempdir().expect("temp");
        let state = dir.path().join("state");
        let rt = runtime();
        let spool = Spool::open(&state, 1 << 20).expect("open");
        assert!(!spool.active());
        assert!(
            !state.exists(),
            "nothing is created before the first record"
        );
        rt.block_on(async {
            for n in 0..3 {
                spool.append(&restart(n)).await.expect("append");
            }
        });
        assert!(spool.active());
        let journal = state.join(JOURNAL);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&journal), 0o600);
        drop(spool);
        // a crash in the middle of a fourth write
        let whole = std::fs::metadata(&journal).expect("meta").len();
        let mut torn = frame(&restart(3).encode().expect("enc")).expect("fits");
        torn.truncate(torn.len() / 2);
        let mut f = OpenOptions::new()
            .append(true)
            .open(&journal)
            .expect("open");
        f.write_all(&torn).expect("write");
        drop(f);
        // the replay got past the first record before the crash
        let bytes = std::fs::read(&journal).expect("read");
        let first = match next_frame(&bytes[HEADER_LEN as usize..]) {
            Next::Record { len, .. } => HEADER_LEN + len as u64,
            other => panic!("{other:?}"),
        };
        let generation = read_header(&bytes).expect("header");
        let inner = Inner {
            dir: state.clone(),
            journal: journal.clone(),
            cursor: state.join(CURSOR),
            max_bytes: 0,
            state: Mutex::new(State {
                active: false,
                generation: 0,
                durable: 0,
                warned_full: None,
            }),
        };
        write_cursor(
            &inner,
            ReplayCursor {
                generation,
                offset: first,
            },
        )
        .expect("cursor");

        let spool = Spool::open(&state, 1 << 20).expect("reopen");
        assert_eq!(std::fs::metadata(&journal).expect("meta").len(), whole);
        assert!(spool.active());
        let resume = (*lock(&spool.resume)).expect("resume");
        assert_eq!(resume.offset, first);
        // appends follow the last whole record
        rt.block_on(spool.append(&restart(4))).expect("append");
        let bytes = std::fs::read(&journal).expect("read");
        let s = scan_all_gen(&bytes);
        assert_eq!((s.records, s.tail), (4, 0));
        // all applied: the files go, and accounting goes straight to the store again
        let (_, g, durable) = spool.snapshot();
        assert!(!rt.block_on(spool.drain(g, durable - 1)));
        assert!(rt.block_on(spool.drain(g, durable)));
        assert!(!spool.active());
        assert!(!journal.exists());
        assert!(!state.join(CURSOR).exists());
        // the next outage starts a new journal of another generation
        rt.block_on(spool.append(&restart(5))).expect("append");
        let bytes = std::fs::read(&journal).expect("read");
        assert_ne!(read_header(&bytes), Some(generation));
    }

    fn scan_all_gen(buf: &[u8]) -> Scanned {
        assert!(read_header(buf).is_some());
        scan(&mut &buf[HEADER_LEN as usize..], HEADER_LEN, None).expect("in memory")
    }

    #[test]
    fn full_spool_refuses_and_keeps_what_it_has() {
        let dir = tempfile::tempdir().expect("temp");
        let rt = runtime();
        let big = "x".repeat(MAX_RECORD - 200);
        let entry = Entry::NasRestart {
            nas: big,
            nas_key: "k".into(),
            at: Utc::now(),
            cause: "NAS-Reboot".into(),
        };
        // the bound is raised to one record at least
        let spool = Spool::open(dir.path(), 1).expect("open");
        assert_eq!(
            spool.max_bytes(),
            HEADER_LEN + (FRAME_HEAD + MAX_RECORD) as u64
        );
        rt.block_on(spool.append(&entry)).expect("the first fits");
        assert!(matches!(
            rt.block_on(spool.append(&entry)),
            Err(SpoolError::Full { .. })
        ));
        let now = Instant::now();
        assert!(spool.warn_full(now));
        assert!(!spool.warn_full(now + Duration::from_secs(1)));
        assert!(spool.warn_full(now + Duration::from_secs(11)));
        let bytes = std::fs::read(dir.path().join(JOURNAL)).expect("read");
        assert_eq!(scan_all_gen(&bytes).records, 1);
    }

    #[test]
    fn a_foreign_file_is_not_taken_over() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::write(dir.path().join(JOURNAL), vec![b'z'; 100]).expect("write");
        assert!(matches!(
            Spool::open(dir.path(), 1 << 20),
            Err(SpoolError::Foreign(_))
        ));
        // a torn header held nothing: removed
        std::fs::write(dir.path().join(JOURNAL), b"PWSP").expect("write");
        let spool = Spool::open(dir.path(), 1 << 20).expect("open");
        assert!(!spool.active());
        assert!(!dir.path().join(JOURNAL).exists());
    }
}
