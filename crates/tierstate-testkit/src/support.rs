//! What the checks share: names, values and small writes every file of the suite uses.

pub(crate) use std::collections::BTreeSet;
pub(crate) use std::num::NonZeroU32;
pub(crate) use std::sync::Arc;
pub(crate) use std::time::Duration;

pub(crate) use chrono::{DateTime, TimeZone, Utc};
pub(crate) use serde::{Deserialize, Serialize};
pub(crate) use serde_json::{Map, Value, json};
pub(crate) use tierstate_core::journal::{EntryDamage, Flip};
pub(crate) use tierstate_core::{
    Append, Checksum, DeploymentId, DocAddr, DocWrite, Error, Fault, JournalQuery, JournalTail,
    KeyRange, MAX_SCHEMA_VERSION, MAX_STATE_BYTES, MAX_STATE_DEPTH, Name, PutMode, Retention,
    StateStore, StateWrite, StreamAddr, Target, Tier, TruncateBefore, WriteBatch, canonical_json,
};

pub(crate) use crate::Harness;

pub(crate) fn id(s: &str) -> DeploymentId {
    DeploymentId::new(s).expect("valid test id")
}

pub(crate) fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("test value is an object").clone()
}

pub(crate) const KEEP_ALL: Retention = Retention::KeepAll;

pub(crate) fn keep(n: u32) -> Retention {
    Retention::KeepLast(NonZeroU32::new(n).expect("n > 0"))
}

/// The retained versions of deployment `name`, newest first.
pub(crate) async fn versions(s: &Arc<dyn StateStore>, name: &str) -> Vec<u64> {
    let history = s.history(&id(name), 100).await.expect("history");
    history.iter().map(|d| d.version).collect()
}

pub(crate) fn doc(d: &str, c: &str, k: &str) -> DocAddr {
    DocAddr::new(d, c, k).expect("valid address")
}

pub(crate) fn stream(d: &str, s: &str) -> StreamAddr {
    StreamAddr::new(d, s).expect("valid stream")
}

pub(crate) fn t(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(1_800_000_000_000_000 + us).unwrap()
}

pub(crate) fn entry(s: &StreamAddr, event: i64, n: u64) -> Append {
    Append::new(
        s.clone(),
        t(event),
        obj(json!({"n": n, "pad": "x".repeat(16)})),
    )
}

pub(crate) async fn append_all(store: &dyn StateStore, appends: Vec<Append>) {
    for a in appends {
        store.append(a).await.expect("append");
    }
}

pub(crate) fn seqs(p: &tierstate_core::JournalPage) -> Vec<u64> {
    p.entries.iter().map(|e| e.seq).collect()
}

pub(crate) async fn six(s: &dyn StateStore, st: &StreamAddr) {
    let mut b = WriteBatch::new();
    for n in 1..=6u64 {
        b = b.append(Append::new(
            st.clone(),
            t(n as i64 * 10),
            obj(json!({"n": n})),
        ));
    }
    s.write(b).await.expect("append six entries");
}

/// A state `levels` deep (the state object is level 1), built without recursion.
pub(crate) fn nested(levels: usize) -> Map<String, Value> {
    let mut v = json!("leaf");
    for i in 1..levels {
        v = if i % 2 == 0 {
            Value::Object(Map::from_iter([("k".to_owned(), v)]))
        } else {
            Value::Array(vec![v])
        };
    }
    Map::from_iter([("root".to_owned(), v)])
}
