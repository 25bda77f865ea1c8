//! Journals: append-only, hash-chained streams of JSON entries addressed by
//! (deployment, stream).
//!
//! Each entry's `hash` covers the previous entry's hash, its own sequence number, event and
//! commit times, idempotency key and body checksum; the stream's head stores the last hash, and
//! an anchor (`base_seq`, `base_hash`) stands in for entries removed by truncation. A range read
//! re-computes every link, so a modified, deleted or reordered entry is an `Integrity` error
//! naming the stream and sequence number. The rules live here; backends only store rows.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::state::{ser_checksum, verify_object};
use crate::{Checksum, Error, Name, Result, StreamAddr, Target, Tier};

/// One append to a journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Append {
    /// The journal appended to.
    pub stream: StreamAddr,
    /// When the event happened, as the caller saw it (stored at microsecond precision).
    pub event_time: DateTime<Utc>,
    /// Idempotency key: appending it again with the same body returns the stored entry.
    pub key: Option<Name>,
    /// The entry: a JSON object.
    pub value: Map<String, Value>,
    /// For optimistic appends: the sequence number the caller expects to be last (0: empty).
    pub expect: Option<u64>,
    /// With a key: fail with `AlreadyExists` if the key is stored (whatever its bytes)
    /// instead of returning the stored entry, so a batch can rely on every append being new.
    pub require_new: bool,
}

impl Append {
    /// An append with no key and no expectation.
    pub fn new(stream: StreamAddr, event_time: DateTime<Utc>, value: Map<String, Value>) -> Self {
        Self {
            stream,
            event_time,
            key: None,
            value,
            expect: None,
            require_new: false,
        }
    }

    /// An append of a typed value that serializes to a JSON object.
    ///
    /// # Errors
    /// `InvalidInput` if it is not an object, holds a NaN or infinite number, or serde fails.
    pub fn typed<T: Serialize>(
        stream: StreamAddr,
        event_time: DateTime<Utc>,
        value: &T,
    ) -> Result<Self> {
        crate::finite::check(value)?;
        match serde_json::to_value(value) {
            Ok(Value::Object(map)) => Ok(Self::new(stream, event_time, map)),
            Ok(_) => Err(Error::invalid("entry", "must serialize to a JSON object")),
            Err(e) => Err(Error::invalid("entry", e.to_string())),
        }
    }

    /// Sets the idempotency key.
    pub fn with_key(mut self, key: Name) -> Self {
        self.key = Some(key);
        self
    }

    /// Requires the key to be new: a stored key fails the append (and its batch) with
    /// `AlreadyExists` naming the stored entry's sequence number, rather than replaying it.
    pub fn new_only(mut self) -> Self {
        self.require_new = true;
        self
    }

    /// Makes the append optimistic: it fails with `Conflict` unless `last_seq` is the stream's
    /// last sequence number (0 for an empty stream).
    pub fn expecting(mut self, last_seq: u64) -> Self {
        self.expect = Some(last_seq);
        self
    }
}

/// One verified journal entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct JournalEntry {
    /// The journal.
    pub stream: StreamAddr,
    /// Position in the stream: 1, 2, 3 … with no gaps.
    pub seq: u64,
    /// When the event happened (caller-given).
    pub event_time: DateTime<Utc>,
    /// When it was committed; never decreases along the stream.
    pub commit_time: DateTime<Utc>,
    /// Its idempotency key, if it has one.
    pub key: Option<Name>,
    /// The entry.
    pub value: Map<String, Value>,
    /// SHA-256 of the canonical JSON of `value`.
    #[serde(serialize_with = "ser_checksum")]
    pub checksum: Checksum,
    /// The chain hash of the entry before it.
    #[serde(serialize_with = "ser_checksum")]
    pub prev_hash: Checksum,
    /// This entry's chain hash.
    #[serde(serialize_with = "ser_checksum")]
    pub hash: Checksum,
    /// Which tier served it.
    pub loaded_from: Tier,
}

impl JournalEntry {
    /// Decodes the entry into a typed value.
    ///
    /// # Errors
    /// `InvalidInput` (field `entry`) if the value does not match `T`, or holds decimal text
    /// that a `Decimal` field of `T` could only hold rounded.
    pub fn to_typed<T: DeserializeOwned + Serialize>(&self) -> Result<T> {
        crate::exact::from_map(&self.value).map_err(|e| {
            Error::invalid(
                "entry",
                format!(
                    "{} #{} does not match the requested type: {e}",
                    self.stream, self.seq
                ),
            )
        })
    }
}

/// What an append in a committed batch produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Appended {
    /// The stored entry (for a replayed idempotency key: the one stored earlier).
    pub entry: JournalEntry,
    /// False when the key was already in the stream with the same body: nothing was written.
    pub fresh: bool,
}

/// A journal entry exactly as a backend stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The journal.
    pub stream: StreamAddr,
    /// Sequence number.
    pub seq: u64,
    /// Event time, µs since the Unix epoch.
    pub event_us: i64,
    /// Commit time, µs since the Unix epoch.
    pub commit_us: i64,
    /// Idempotency key.
    pub key: Option<String>,
    /// Canonical JSON bytes.
    pub body: Vec<u8>,
    /// SHA-256 of `body` (hex).
    pub checksum: String,
    /// Chain hash of the previous entry (hex).
    pub prev_hash: String,
    /// This entry's chain hash (hex).
    pub hash: String,
}

impl StoredEntry {
    /// Verifies the body checksum and the entry's own chain hash (not its link to neighbours:
    /// see [`Resolved::finish`]) and decodes it.
    ///
    /// # Errors
    /// `Integrity` naming the stream and sequence number.
    pub fn verify(self, tier: Tier) -> Result<JournalEntry> {
        let fail = |e: String, a: String| integrity(&self.stream, self.seq, tier, e, a);
        let (value, checksum) =
            verify_object(&self.body, &self.checksum).map_err(|(e, a)| fail(e, a))?;
        let prev = Checksum::from_hex(&self.prev_hash).ok_or_else(|| {
            fail(
                format!("unreadable previous hash {:?}", self.prev_hash),
                String::new(),
            )
        })?;
        let key = match &self.key {
            Some(k) => Some(Name::key(k).map_err(|e| fail("a valid key".into(), e.to_string()))?),
            None => None,
        };
        let computed = chain_hash(
            &prev,
            self.seq,
            self.event_us,
            self.commit_us,
            self.key.as_deref(),
            &checksum,
        );
        if Checksum::from_hex(&self.hash) != Some(computed) {
            return Err(fail(format!("chain hash {}", self.hash), computed.to_hex()));
        }
        let (Some(event_time), Some(commit_time)) = (
            DateTime::from_timestamp_micros(self.event_us),
            DateTime::from_timestamp_micros(self.commit_us),
        ) else {
            return Err(fail(checksum.to_hex(), "timestamp out of range".into()));
        };
        Ok(JournalEntry {
            stream: self.stream,
            seq: self.seq,
            event_time,
            commit_time,
            key,
            value,
            checksum,
            prev_hash: prev,
            hash: computed,
            loaded_from: tier,
        })
    }
}

/// An `Integrity` error for entry `seq` of `stream`.
pub fn integrity(
    stream: &StreamAddr,
    seq: u64,
    tier: Tier,
    expected: String,
    actual: String,
) -> Error {
    Error::Integrity {
        deployment_id: stream.deployment_id.clone(),
        target: Target::journal(stream),
        tier,
        version: seq,
        expected,
        actual,
    }
}

/// The hash an empty stream's chain starts from: it binds the chain to its address, so
/// entries copied into another stream do not verify there.
pub fn genesis_hash(stream: &StreamAddr) -> Checksum {
    let mut h = Sha256::new();
    h.update(b"tierstate-journal-genesis\0");
    h.update(stream.deployment_id.as_str().as_bytes());
    h.update([0]);
    h.update(stream.stream.as_str().as_bytes());
    Checksum(h.finalize().into())
}

/// The chain hash of one entry.
pub fn chain_hash(
    prev: &Checksum,
    seq: u64,
    event_us: i64,
    commit_us: i64,
    key: Option<&str>,
    checksum: &Checksum,
) -> Checksum {
    let mut h = Sha256::new();
    h.update(b"tierstate-journal-v1\0");
    h.update(prev.0);
    h.update(seq.to_be_bytes());
    h.update(event_us.to_be_bytes());
    h.update(commit_us.to_be_bytes());
    match key {
        Some(k) => {
            h.update([1]);
            h.update((k.len() as u64).to_be_bytes());
            h.update(k.as_bytes());
        }
        None => h.update([0]),
    }
    h.update(checksum.0);
    Checksum(h.finalize().into())
}

/// A stream's head: where its chain ends and where its retained part begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalHead {
    /// The last sequence number (`base_seq` when no entry is retained).
    pub last_seq: u64,
    /// The last entry's chain hash (`base_hash` when no entry is retained).
    pub last_hash: Checksum,
    /// The last entry's commit time (µs); appends never commit earlier.
    pub last_commit_us: i64,
    /// Entries up to this sequence number were truncated (0: none).
    pub base_seq: u64,
    /// The chain hash of entry `base_seq` (the genesis hash when it is 0): the anchor the first
    /// retained entry links to.
    pub base_hash: Checksum,
}

impl JournalHead {
    /// The head of a stream nothing was ever appended to.
    pub fn empty(stream: &StreamAddr) -> Self {
        let g = genesis_hash(stream);
        Self {
            last_seq: 0,
            last_hash: g,
            last_commit_us: i64::MIN,
            base_seq: 0,
            base_hash: g,
        }
    }

    /// Number of retained entries.
    pub fn count(&self) -> u64 {
        self.last_seq - self.base_seq
    }

    /// Rebuilds a head from stored columns.
    ///
    /// # Errors
    /// `Integrity` (at sequence `last_seq`) if a hash is unreadable or the numbers are
    /// impossible.
    pub fn from_stored(
        stream: &StreamAddr,
        last_seq: i64,
        last_hash: &str,
        last_commit_us: i64,
        base_seq: i64,
        base_hash: &str,
    ) -> Result<Self> {
        let seq = u64::try_from(last_seq).unwrap_or(0);
        let bad = |what: String| {
            integrity(
                stream,
                seq,
                Tier::Warm,
                "a readable journal head".into(),
                what,
            )
        };
        let (Ok(last), Ok(base)) = (u64::try_from(last_seq), u64::try_from(base_seq)) else {
            return Err(bad(format!("sequence numbers {last_seq}/{base_seq}")));
        };
        if base > last {
            return Err(bad(format!("anchor {base} after last entry {last}")));
        }
        let (Some(last_hash), Some(base_hash)) =
            (Checksum::from_hex(last_hash), Checksum::from_hex(base_hash))
        else {
            return Err(bad("unreadable head hash".into()));
        };
        Ok(Self {
            last_seq: last,
            last_hash,
            last_commit_us,
            base_seq: base,
            base_hash,
        })
    }
}

/// Summary of a journal, from its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalInfo {
    /// The first retained sequence number (`last_seq + 1` when none is retained).
    pub first_seq: u64,
    /// The last sequence number ever assigned (0: never appended to).
    pub last_seq: u64,
    /// Retained entries.
    pub count: u64,
}

impl From<JournalHead> for JournalInfo {
    fn from(h: JournalHead) -> Self {
        Self {
            first_seq: h.base_seq + 1,
            last_seq: h.last_seq,
            count: h.count(),
        }
    }
}

/// A read of a journal. Every query carries its own limit; a page's `next` is the query that
/// continues it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalQuery {
    /// Entries with `from <= seq <= to`, ascending or descending, at most `limit`.
    Range {
        /// Lowest sequence number wanted.
        from: u64,
        /// Highest sequence number wanted (`u64::MAX`: up to the end).
        to: u64,
        /// Newest first.
        descending: bool,
        /// Most entries returned.
        limit: usize,
    },
    /// Entries whose event time is in `[from, to)`, in (event time, seq) order, at most
    /// `limit` (the scan cap: the page says `truncated` when more match). Uses an index.
    Window {
        /// Start of the window (inclusive).
        from: DateTime<Utc>,
        /// End of the window (exclusive).
        to: DateTime<Utc>,
        /// Cursor: continue after this (event time µs, seq).
        after: Option<(i64, u64)>,
        /// Most entries returned.
        limit: usize,
    },
    /// Entries whose event time is in `[from, to)`, newest first by (event time, seq), at most
    /// `limit` (the page says `truncated` when more match). Uses the same index as `Window`.
    WindowNewestFirst {
        /// Start of the window (inclusive).
        from: DateTime<Utc>,
        /// End of the window (exclusive).
        to: DateTime<Utc>,
        /// Cursor: continue with entries strictly before this (event time µs, seq).
        before: Option<(i64, u64)>,
        /// Most entries returned.
        limit: usize,
    },
    /// The entry with the latest event time at or before the given time (ties: highest seq).
    AtOrBefore(DateTime<Utc>),
    /// The first retained entry.
    First,
    /// The last entry.
    Last,
    /// The entry holding an idempotency key.
    ByKey(Name),
    /// Entries from `from` on, ascending, at most `limit`, for a verifier: a damaged or
    /// missing entry does not fail the read but is listed in [`JournalPage::damage`], and the
    /// walk goes on past it.
    Audit {
        /// Lowest sequence number wanted.
        from: u64,
        /// Most entries examined.
        limit: usize,
    },
}

/// Pages of at most this many entries count as point reads ([`JournalQuery::is_point`]).
pub const POINT_LIMIT: usize = 16;

impl JournalQuery {
    /// True if the read touches a handful of rows (one entry, or a page of at most
    /// [`POINT_LIMIT`]): an embedded backend runs it on the calling task, since the hop to a
    /// blocking thread costs more than the read.
    pub fn is_point(&self) -> bool {
        match self {
            Self::AtOrBefore(_) | Self::First | Self::Last | Self::ByKey(_) => true,
            Self::Range { limit, .. }
            | Self::Window { limit, .. }
            | Self::WindowNewestFirst { limit, .. }
            | Self::Audit { limit, .. } => *limit <= POINT_LIMIT,
        }
    }

    /// Entries from `from` on, ascending, at most `limit`.
    pub fn from_seq(from: u64, limit: usize) -> Self {
        Self::Range {
            from,
            to: u64::MAX,
            descending: false,
            limit,
        }
    }

    /// The newest `limit` entries, newest first.
    pub fn newest(limit: usize) -> Self {
        Self::Range {
            from: 0,
            to: u64::MAX,
            descending: true,
            limit,
        }
    }

    /// Entries with event time in `[from, to)`, at most `limit`.
    pub fn window(from: DateTime<Utc>, to: DateTime<Utc>, limit: usize) -> Self {
        Self::Window {
            from,
            to,
            after: None,
            limit,
        }
    }
}

impl JournalQuery {
    /// Entries with event time in `[from, to)`, newest first, at most `limit`.
    pub fn window_newest_first(from: DateTime<Utc>, to: DateTime<Utc>, limit: usize) -> Self {
        Self::WindowNewestFirst {
            from,
            to,
            before: None,
            limit,
        }
    }
}

/// One page of a journal read.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalPage {
    /// The entries, verified, in the query's order.
    pub entries: Vec<JournalEntry>,
    /// The query that reads the next page, if there is more.
    pub next: Option<JournalQuery>,
    /// For a window query: more entries matched than the limit allowed.
    pub truncated: bool,
    /// For an [`JournalQuery::Audit`] read: the damaged or missing entries it stepped over.
    pub damage: Vec<Damage>,
}

/// A damaged or missing journal entry found by an [`JournalQuery::Audit`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Its sequence number.
    pub seq: u64,
    /// What is wrong, as the read would have reported it.
    pub what: String,
}

impl JournalPage {
    /// A page with nothing in it.
    pub fn empty() -> Self {
        Self {
            entries: Vec::new(),
            next: None,
            damage: Vec::new(),
            truncated: false,
        }
    }
}

/// What a backend must read to answer a query, decided from the stream's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// Nothing: the answer is empty.
    Nothing,
    /// Entries `lo..=hi` by sequence number, ascending.
    Seq {
        /// Lowest.
        lo: u64,
        /// Highest.
        hi: u64,
    },
    /// Entries with `from_us <= event < to_us` after the cursor, in (event, seq) order, at most
    /// `limit`.
    Window {
        /// Start µs.
        from_us: i64,
        /// End µs (exclusive).
        to_us: i64,
        /// Cursor (event µs, seq).
        after: Option<(i64, u64)>,
        /// Most rows.
        limit: usize,
    },
    /// Entries with `from_us <= event` and `(event, seq) < before`, in descending (event, seq)
    /// order, at most `limit`.
    WindowDesc {
        /// Start µs (inclusive).
        from_us: i64,
        /// Exclusive upper bound (event µs, seq): the window's end or the cursor, whichever
        /// is earlier.
        before: (i64, i64),
        /// Most rows.
        limit: usize,
    },
    /// The latest entry by (event, seq) with event at or before `at_us`.
    AtOrBefore {
        /// Time µs.
        at_us: i64,
    },
    /// The entry with this idempotency key.
    Key(Name),
}

impl Fetch {
    /// For a window: the one exclusive lower bound `(event µs, seq)` of the rows to read —
    /// the window's start or the cursor, whichever is later. Backends seek an index to it
    /// with a single row comparison: given two lower bounds, PostgreSQL starts its index scan
    /// at the row comparison and walks every earlier entry of the stream.
    pub fn window_start(from_us: i64, after: Option<(i64, u64)>) -> (i64, i64) {
        // Sequence numbers start at 1, so `> (from, 0)` is `event >= from`.
        let start = (from_us, 0i64);
        match after {
            Some((e, q)) => start.max((e, i64::try_from(q).unwrap_or(i64::MAX))),
            None => start,
        }
    }
}

impl Fetch {
    /// For a newest-first window: the one exclusive upper bound `(event µs, seq)` — the
    /// window's end or the cursor, whichever is earlier.
    pub fn window_end(to_us: i64, before: Option<(i64, u64)>) -> (i64, i64) {
        // Sequence numbers start at 1, so `< (to, 0)` is `event < to`.
        let end = (to_us, 0i64);
        match before {
            Some((e, q)) => end.min((e, i64::try_from(q).unwrap_or(i64::MAX))),
            None => end,
        }
    }
}

/// A query resolved against a head: what to fetch, and how to finish it.
#[derive(Debug, Clone)]
pub struct Resolved {
    query: JournalQuery,
    head: JournalHead,
    /// What the backend fetches.
    pub fetch: Fetch,
    /// For sequence reads: the entries the caller asked for (the fetch may start one earlier,
    /// to check the first one's link).
    want: Option<(u64, u64)>,
}

impl JournalQuery {
    /// Decides what to fetch given the stream's head (`None`: the stream is empty).
    ///
    /// # Errors
    /// `InvalidInput` for a zero limit or an empty window.
    pub fn resolve(self, head: Option<JournalHead>, stream: &StreamAddr) -> Result<Resolved> {
        let head = head.unwrap_or_else(|| JournalHead::empty(stream));
        let first = head.base_seq + 1;
        let last = head.last_seq;
        let (fetch, want) = match &self {
            Self::Range { limit: 0, .. }
            | Self::Window { limit: 0, .. }
            | Self::WindowNewestFirst { limit: 0, .. } => {
                return Err(Error::invalid("limit", "must be at least 1"));
            }
            Self::Range {
                from,
                to,
                descending,
                limit,
            } => {
                let lo_bound = (*from).max(first);
                let hi_bound = (*to).min(last);
                if lo_bound > hi_bound {
                    (Fetch::Nothing, None)
                } else {
                    let span = (*limit as u64).saturating_sub(1);
                    let (lo, hi) = if *descending {
                        (hi_bound.saturating_sub(span).max(lo_bound), hi_bound)
                    } else {
                        (lo_bound, lo_bound.saturating_add(span).min(hi_bound))
                    };
                    (seq_fetch(lo, hi, head.base_seq), Some((lo, hi)))
                }
            }
            Self::First if first <= last => {
                (seq_fetch(first, first, head.base_seq), Some((first, first)))
            }
            Self::Last if first <= last => {
                (seq_fetch(last, last, head.base_seq), Some((last, last)))
            }
            Self::First | Self::Last => (Fetch::Nothing, None),
            Self::Window {
                from,
                to,
                after,
                limit,
            } => {
                if from >= to {
                    return Err(Error::invalid("window", format!("[{from}, {to}) is empty")));
                }
                (
                    Fetch::Window {
                        from_us: from.timestamp_micros(),
                        to_us: to.timestamp_micros(),
                        after: *after,
                        limit: limit.saturating_add(1),
                    },
                    None,
                )
            }
            Self::WindowNewestFirst {
                from,
                to,
                before,
                limit,
            } => {
                if from >= to {
                    return Err(Error::invalid("window", format!("[{from}, {to}) is empty")));
                }
                (
                    Fetch::WindowDesc {
                        from_us: from.timestamp_micros(),
                        before: Fetch::window_end(to.timestamp_micros(), *before),
                        limit: limit.saturating_add(1),
                    },
                    None,
                )
            }
            Self::Audit { limit: 0, .. } => {
                return Err(Error::invalid("limit", "must be at least 1"));
            }
            Self::Audit { from, limit } => {
                let lo = (*from).max(first);
                if lo > last {
                    (Fetch::Nothing, None)
                } else {
                    let hi = lo.saturating_add(*limit as u64 - 1).min(last);
                    (seq_fetch(lo, hi, head.base_seq), Some((lo, hi)))
                }
            }
            Self::AtOrBefore(t) => (
                Fetch::AtOrBefore {
                    at_us: t.timestamp_micros(),
                },
                None,
            ),
            Self::ByKey(k) => (Fetch::Key(k.clone()), None),
        };
        Ok(Resolved {
            query: self,
            head,
            fetch,
            want,
        })
    }
}

/// The sequence fetch for `lo..=hi`, starting one earlier when that entry is retained, so the
/// first wanted entry's link is checked too.
fn seq_fetch(lo: u64, hi: u64, base: u64) -> Fetch {
    Fetch::Seq {
        lo: if lo - 1 > base { lo - 1 } else { lo },
        hi,
    }
}

impl Resolved {
    /// For reads by time or key: the entries the backend must fetch besides `rows`, so that
    /// every returned entry's links to both neighbours are checked (each row's predecessor and
    /// successor that are not themselves among the rows). A deleted entry is then found by
    /// every read that returns a neighbour of it, not only by sequence reads. Empty for
    /// sequence reads.
    pub fn links(&self, rows: &[StoredEntry]) -> Vec<u64> {
        if self.want.is_some() {
            return Vec::new();
        }
        let have: std::collections::BTreeSet<u64> = rows.iter().map(|r| r.seq).collect();
        let mut need: Vec<u64> = rows
            .iter()
            .flat_map(|r| [r.seq.saturating_sub(1), r.seq.saturating_add(1)])
            .filter(|n| *n > self.head.base_seq && *n <= self.head.last_seq && !have.contains(n))
            .collect();
        need.sort_unstable();
        need.dedup();
        need
    }

    /// Verifies what the backend fetched (`rows`, and for reads by time or key the entries
    /// [`Resolved::links`] asked for in `linked`) and builds the page.
    ///
    /// # Errors
    /// `Integrity` naming the stream and sequence number of the first entry that is damaged,
    /// missing, out of order or does not link to its neighbour or the head (an
    /// [`JournalQuery::Audit`] read lists them in the page instead).
    pub fn finish(
        self,
        stream: &StreamAddr,
        rows: Vec<StoredEntry>,
        linked: Vec<StoredEntry>,
        tier: Tier,
    ) -> Result<JournalPage> {
        let Some((lo, hi)) = self.want else {
            return self.finish_unordered(stream, rows, linked, tier);
        };
        if matches!(self.query, JournalQuery::Audit { .. }) {
            return Ok(self.finish_audit(stream, rows, (lo, hi), tier));
        }
        let fetched_lo = match self.fetch {
            Fetch::Seq { lo, .. } => lo,
            _ => lo,
        };
        let head = self.head;
        let mut prev = if fetched_lo == lo {
            Some(head.base_hash)
        } else {
            None
        };
        let mut expect = fetched_lo;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if row.seq != expect {
                let missing = expect.min(row.seq);
                return Err(integrity(
                    stream,
                    missing,
                    tier,
                    format!("entry {expect}"),
                    format!("entry {} (an entry is missing or out of order)", row.seq),
                ));
            }
            let entry = row.verify(tier)?;
            if let Some(p) = prev
                && entry.prev_hash != p
            {
                return Err(integrity(
                    stream,
                    entry.seq,
                    tier,
                    format!("link to previous hash {}", p.to_hex()),
                    entry.prev_hash.to_hex(),
                ));
            }
            prev = Some(entry.hash);
            expect += 1;
            if entry.seq >= lo {
                out.push(entry);
            }
        }
        if expect != hi + 1 {
            return Err(integrity(
                stream,
                expect,
                tier,
                format!("entry {expect}"),
                "missing".into(),
            ));
        }
        if hi == head.last_seq && prev != Some(head.last_hash) {
            return Err(integrity(
                stream,
                hi,
                tier,
                format!("head hash {}", head.last_hash.to_hex()),
                prev.map(|p| p.to_hex()).unwrap_or_default(),
            ));
        }
        let next = match self.query {
            JournalQuery::Range {
                from,
                to,
                descending,
                limit,
            } => {
                if descending {
                    let floor = from.max(head.base_seq + 1);
                    (lo > floor).then(|| JournalQuery::Range {
                        from,
                        to: lo - 1,
                        descending,
                        limit,
                    })
                } else {
                    (hi < to.min(head.last_seq)).then(|| JournalQuery::Range {
                        from: hi + 1,
                        to,
                        descending,
                        limit,
                    })
                }
            }
            _ => None,
        };
        if matches!(
            self.query,
            JournalQuery::Range {
                descending: true,
                ..
            }
        ) {
            out.reverse();
        }
        Ok(JournalPage {
            entries: out,
            next,
            truncated: false,
            damage: Vec::new(),
        })
    }

    /// Walks `lo..=hi` entry by entry, keeping what verifies and listing what does not.
    fn finish_audit(
        self,
        stream: &StreamAddr,
        rows: Vec<StoredEntry>,
        (lo, hi): (u64, u64),
        tier: Tier,
    ) -> JournalPage {
        let head = self.head;
        let fetched_lo = match self.fetch {
            Fetch::Seq { lo, .. } => lo,
            _ => lo,
        };
        // The hash the next entry must link to; `None` when it cannot be known (the entry
        // before is missing or damaged: that one is reported, not its neighbour).
        let mut prev = (fetched_lo == lo).then_some(head.base_hash);
        let mut rows = rows.into_iter().peekable();
        let mut out = Vec::new();
        let mut damage = Vec::new();
        let found = |seq: u64, expected: String, actual: String| Damage {
            seq,
            what: integrity(stream, seq, tier, expected, actual).to_string(),
        };
        for seq in fetched_lo..=hi {
            while rows.peek().is_some_and(|r| r.seq < seq) {
                rows.next(); // a duplicate or out-of-order row: its own seq is walked too
            }
            let row = rows.next_if(|r| r.seq == seq);
            let Some(row) = row else {
                if seq >= lo {
                    damage.push(found(seq, format!("entry {seq}"), "missing".into()));
                }
                prev = None;
                continue;
            };
            match row.verify(tier) {
                Ok(entry) => {
                    if let Some(p) = prev
                        && entry.prev_hash != p
                        && seq >= lo
                    {
                        damage.push(found(
                            seq,
                            format!("link to previous hash {}", p.to_hex()),
                            entry.prev_hash.to_hex(),
                        ));
                    }
                    prev = Some(entry.hash);
                    if seq >= lo {
                        out.push(entry);
                    }
                }
                Err(e) => {
                    if seq >= lo {
                        damage.push(Damage {
                            seq,
                            what: e.to_string(),
                        });
                    }
                    prev = None;
                }
            }
        }
        if hi == head.last_seq
            && let Some(p) = prev
            && p != head.last_hash
        {
            damage.push(found(
                hi,
                format!("head hash {}", head.last_hash.to_hex()),
                p.to_hex(),
            ));
        }
        let next = match self.query {
            JournalQuery::Audit { limit, .. } if hi < head.last_seq => Some(JournalQuery::Audit {
                from: hi + 1,
                limit,
            }),
            _ => None,
        };
        JournalPage {
            entries: out,
            next,
            truncated: false,
            damage,
        }
    }

    fn finish_unordered(
        self,
        stream: &StreamAddr,
        rows: Vec<StoredEntry>,
        linked: Vec<StoredEntry>,
        tier: Tier,
    ) -> Result<JournalPage> {
        // The stored chain hashes of every fetched entry: each returned entry must link to its
        // predecessor's, and its successor (or the head) to it — a row deleted from the
        // middle or the end of a stream breaks one of these.
        let mut stored: std::collections::BTreeMap<u64, (&str, &str)> =
            std::collections::BTreeMap::new();
        for r in rows.iter().chain(linked.iter()) {
            stored.insert(r.seq, (r.prev_hash.as_str(), r.hash.as_str()));
        }
        let missing = |seq: u64, next_to: u64| {
            integrity(
                stream,
                seq,
                tier,
                format!("entry {seq}"),
                format!("missing (entry {next_to} has no neighbour there)"),
            )
        };
        let mut links = Vec::with_capacity(rows.len());
        for r in &rows {
            if r.seq <= self.head.base_seq || r.seq > self.head.last_seq {
                links.push((None, None)); // refused below, naming the entry
                continue;
            }
            let p = r.seq - 1;
            let expected = if p <= self.head.base_seq {
                Some(self.head.base_hash)
            } else {
                match stored.get(&p) {
                    Some((_, h)) => Checksum::from_hex(h),
                    None => return Err(missing(p, r.seq)),
                }
            };
            // What must link back to this entry: its successor's stored link, or the head.
            let back = if r.seq == self.head.last_seq {
                Some(self.head.last_hash)
            } else {
                match stored.get(&(r.seq + 1)) {
                    Some((prev, _)) => Checksum::from_hex(prev),
                    None => return Err(missing(r.seq + 1, r.seq)),
                }
            };
            links.push((expected, back));
        }
        let mut out = Vec::with_capacity(rows.len());
        for (row, (expected, back)) in rows.into_iter().zip(links) {
            if row.seq <= self.head.base_seq || row.seq > self.head.last_seq {
                return Err(integrity(
                    stream,
                    row.seq,
                    tier,
                    format!(
                        "an entry in {}..={}",
                        self.head.base_seq + 1,
                        self.head.last_seq
                    ),
                    format!("entry {}", row.seq),
                ));
            }
            let entry = row.verify(tier)?;
            if expected != Some(entry.prev_hash) {
                return Err(integrity(
                    stream,
                    entry.seq,
                    tier,
                    format!(
                        "link to previous hash {}",
                        expected.map(|h| h.to_hex()).unwrap_or_default()
                    ),
                    entry.prev_hash.to_hex(),
                ));
            }
            if back != Some(entry.hash) {
                let (what, seq) = if entry.seq == self.head.last_seq {
                    ("head hash", entry.seq)
                } else {
                    ("link from the next entry", entry.seq + 1)
                };
                return Err(integrity(
                    stream,
                    seq,
                    tier,
                    format!("{what} {}", entry.hash.to_hex()),
                    back.map(|h| h.to_hex()).unwrap_or_default(),
                ));
            }
            out.push(entry);
        }
        let capped = |mut out: Vec<JournalEntry>,
                      limit: usize,
                      next: &dyn Fn((i64, u64)) -> JournalQuery| {
            let truncated = out.len() > limit;
            out.truncate(limit);
            let next = truncated
                .then(|| {
                    out.last()
                        .map(|e| next((e.event_time.timestamp_micros(), e.seq)))
                })
                .flatten();
            Ok(JournalPage {
                entries: out,
                next,
                truncated,
                damage: Vec::new(),
            })
        };
        match self.query {
            JournalQuery::Window {
                from, to, limit, ..
            } => capped(out, limit, &|c| JournalQuery::Window {
                from,
                to,
                after: Some(c),
                limit,
            }),
            JournalQuery::WindowNewestFirst {
                from, to, limit, ..
            } => capped(out, limit, &|c| JournalQuery::WindowNewestFirst {
                from,
                to,
                before: Some(c),
                limit,
            }),
            _ => Ok(JournalPage {
                entries: out,
                next: None,
                truncated: false,
                damage: Vec::new(),
            }),
        }
    }
}

/// Which entries [`crate::StateStore::truncate_journal`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncateBefore {
    /// Every entry with a sequence number below this one.
    Seq(u64),
    /// The longest run of entries from the start whose event times are all before this time.
    EventTime(DateTime<Utc>),
}

/// The head after truncating so that `first_kept` is the first retained entry. `anchor` is the
/// stored chain hash of entry `first_kept - 1` (unused when nothing or everything is removed).
///
/// # Errors
/// `Integrity` if the anchor entry's hash is unreadable.
pub fn truncated_head(
    stream: &StreamAddr,
    head: JournalHead,
    first_kept: u64,
    anchor: Option<&str>,
) -> Result<JournalHead> {
    let new_base = first_kept.saturating_sub(1).min(head.last_seq);
    if new_base <= head.base_seq {
        return Ok(head);
    }
    let base_hash = if new_base == head.last_seq {
        head.last_hash
    } else {
        let text = anchor.unwrap_or("");
        Checksum::from_hex(text).ok_or_else(|| {
            integrity(
                stream,
                new_base,
                Tier::Warm,
                "a readable chain hash".into(),
                format!("{text:?}"),
            )
        })?
    };
    Ok(JournalHead {
        base_seq: new_base,
        base_hash,
        ..head
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> StreamAddr {
        StreamAddr::new("d", "ledger").unwrap()
    }

    fn chain(n: u64) -> (JournalHead, Vec<StoredEntry>) {
        let s = addr();
        let mut head = JournalHead::empty(&s);
        let mut rows = Vec::new();
        for seq in 1..=n {
            let body = format!("{{\"n\":{seq}}}").into_bytes();
            let sum = Checksum::of(&body);
            let hash = chain_hash(
                &head.last_hash,
                seq,
                10 * seq as i64,
                100 + seq as i64,
                None,
                &sum,
            );
            rows.push(StoredEntry {
                stream: s.clone(),
                seq,
                event_us: 10 * seq as i64,
                commit_us: 100 + seq as i64,
                key: None,
                body,
                checksum: sum.to_hex(),
                prev_hash: head.last_hash.to_hex(),
                hash: hash.to_hex(),
            });
            head.last_seq = seq;
            head.last_hash = hash;
        }
        (head, rows)
    }

    fn read(head: JournalHead, rows: &[StoredEntry], q: JournalQuery) -> Result<JournalPage> {
        let r = q.resolve(Some(head), &addr())?;
        let picked = match r.fetch {
            Fetch::Seq { lo, hi } => rows
                .iter()
                .filter(|e| e.seq >= lo && e.seq <= hi)
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        r.finish(&addr(), picked, Vec::new(), Tier::Warm)
    }

    #[test]
    fn a_window_reads_from_its_start_or_its_cursor_whichever_is_later() {
        assert_eq!(Fetch::window_start(100, None), (100, 0));
        assert_eq!(Fetch::window_start(100, Some((150, 7))), (150, 7));
        assert_eq!(Fetch::window_start(100, Some((100, 3))), (100, 3));
        // A cursor before the window cannot widen it.
        assert_eq!(Fetch::window_start(100, Some((99, 9))), (100, 0));
        assert_eq!(
            Fetch::window_start(100, Some((100, u64::MAX))),
            (100, i64::MAX)
        );
    }

    #[test]
    fn ranges_page_both_ways() {
        let (head, rows) = chain(10);
        let p = read(head, &rows, JournalQuery::from_seq(1, 4)).unwrap();
        assert_eq!(
            p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(p.next, Some(JournalQuery::from_seq(5, 4)));
        let p = read(head, &rows, JournalQuery::newest(3)).unwrap();
        assert_eq!(
            p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [10, 9, 8]
        );
        let p = read(head, &rows, p.next.unwrap()).unwrap();
        assert_eq!(
            p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [7, 6, 5]
        );
    }

    #[test]
    fn every_kind_of_damage_names_its_entry() {
        let (head, rows) = chain(6);
        let mut body = rows.clone();
        body[2].body = b"{\"n\":99}".to_vec();
        let mut relinked = rows.clone();
        // Body, checksum and own hash rewritten consistently: only the link to entry 5 breaks.
        let sum = Checksum::of(b"{\"n\":99}");
        relinked[2].body = b"{\"n\":99}".to_vec();
        relinked[2].checksum = sum.to_hex();
        let prev = Checksum::from_hex(&relinked[2].prev_hash).unwrap();
        relinked[2].hash = chain_hash(&prev, 3, 30, 103, None, &sum).to_hex();
        let mut deleted = rows.clone();
        deleted.remove(3);
        let mut swapped = rows.clone();
        swapped.swap(1, 2);
        for (name, damaged, seq) in [
            ("body", body, 3),
            ("relinked", relinked, 4),
            ("deleted", deleted, 4),
            ("swapped", swapped, 2),
        ] {
            let err = read(head, &damaged, JournalQuery::from_seq(1, 100)).unwrap_err();
            match err {
                Error::Integrity {
                    version,
                    target: Target::Journal { .. },
                    ..
                } => assert_eq!(version, seq, "{name}"),
                other => panic!("{name}: {other}"),
            }
        }
        let mut last = rows.clone();
        last.pop();
        let err = read(head, &last, JournalQuery::Last).unwrap_err();
        assert!(matches!(err, Error::Integrity { version: 6, .. }), "{err}");
    }
}

/// How a corruption trial damages one stored journal entry (backends' test hooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryDamage {
    /// Flip bits of the body.
    Body(Flip),
    /// Flip bits of the stored checksum.
    Checksum(Flip),
    /// Flip bits of the stored chain hash.
    Hash(Flip),
    /// Delete the row.
    Delete,
}

impl EntryDamage {
    /// Applies the damage to the stored fields it names. Returns false for [`EntryDamage::Delete`],
    /// which the caller carries out by removing the row.
    pub fn apply(self, body: &mut [u8], checksum: &mut [u8], hash: &mut [u8]) -> bool {
        match self {
            Self::Body(f) => f.apply(body),
            Self::Checksum(f) => f.apply(checksum),
            Self::Hash(f) => f.apply(hash),
            Self::Delete => return false,
        }
        true
    }
}

/// Which bits of a stored field a bad disk page flips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flip {
    /// The lowest bit of the middle byte: always a detectable change in JSON and in hex text.
    Middle,
    /// `mask` XORed into byte `offset` (taken modulo the field's length).
    At {
        /// Byte position.
        offset: usize,
        /// Bits to flip (non-zero).
        mask: u8,
    },
}

impl Flip {
    /// Flips the bits in `bytes`; an empty field is left as it is.
    pub fn apply(self, bytes: &mut [u8]) {
        if bytes.is_empty() {
            return;
        }
        let (at, mask) = match self {
            Self::Middle => (bytes.len() / 2, 0x01),
            Self::At { offset, mask } => (offset % bytes.len(), mask),
        };
        bytes[at] ^= mask;
    }
}

/// Flips the lowest bit of the middle byte, the way a bad disk page would.
pub fn flip(bytes: &mut [u8]) {
    Flip::Middle.apply(bytes);
}
