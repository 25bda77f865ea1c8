//! Commands over a deployment's versioned state and its catalog: list, inspect, history,
//! diff, at.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tierstate::{DeploymentId, Name, StateData, StateStore, StreamAddr};

use crate::error::{CliError, Result};
use crate::out::{Report, table, time};

/// Catalog pages (collections and streams are listed this many at a time).
const PAGE: usize = 1_000;
/// Journals named in `inspect` before the rest are counted.
const STREAMS_SHOWN: usize = 12;

/// Parses a deployment id, refusing bad ones with the rule they break.
pub fn deployment(id: &str) -> Result<DeploymentId> {
    Ok(DeploymentId::new(id)?)
}

/// Parses an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            CliError::Usage(format!(
                "{s:?} is not an RFC 3339 time ({e}); e.g. 2026-11-21T14:03:07Z"
            ))
        })
}

async fn current(store: &Arc<dyn StateStore>, id: &DeploymentId) -> Result<StateData> {
    store
        .get(id)
        .await?
        .ok_or_else(|| CliError::Other(format!("no deployment {id}")))
}

fn state_bytes(d: &StateData) -> usize {
    serde_json::to_vec(&d.state).map_or(0, |v| v.len())
}

/// Every collection of a deployment.
pub async fn collections(store: &Arc<dyn StateStore>, id: &DeploymentId) -> Result<Vec<Name>> {
    let mut out: Vec<Name> = Vec::new();
    loop {
        let page = store.collections(id, out.last(), PAGE).await?;
        let done = page.len() < PAGE;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// Every journal of a deployment.
pub async fn streams(store: &Arc<dyn StateStore>, id: &DeploymentId) -> Result<Vec<Name>> {
    let mut out: Vec<Name> = Vec::new();
    loop {
        let page = store.streams(id, out.last(), PAGE).await?;
        let done = page.len() < PAGE;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// Every deployment id.
pub async fn deployments(store: &Arc<dyn StateStore>) -> Result<Vec<DeploymentId>> {
    let mut out: Vec<DeploymentId> = Vec::new();
    loop {
        let page = store.list(out.last(), PAGE).await?;
        let done = page.len() < PAGE;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// `list`: every deployment; a damaged one is listed as damaged, not hidden.
pub async fn list(store: &Arc<dyn StateStore>) -> Result<Report> {
    let mut rows = Vec::new();
    let mut items = Vec::new();
    let mut after: Option<DeploymentId> = None;
    loop {
        let page = store.scan(after.as_ref(), PAGE).await?;
        let n = page.len();
        for r in page {
            match r {
                Ok(d) => {
                    rows.push(vec![
                        d.deployment_id.to_string(),
                        d.version.to_string(),
                        d.schema_version.to_string(),
                        state_bytes(&d).to_string(),
                        time(d.updated_at),
                    ]);
                    items.push(json!({
                        "deployment": d.deployment_id.as_str(),
                        "version": d.version,
                        "schema_version": d.schema_version,
                        "bytes": state_bytes(&d),
                        "updated_at": d.updated_at,
                    }));
                    after = Some(d.deployment_id);
                }
                Err(e) => {
                    let id = match &e {
                        tierstate::Error::Integrity { deployment_id, .. } => deployment_id.clone(),
                        _ => return Err(e.into()),
                    };
                    rows.push(vec![
                        id.to_string(),
                        "DAMAGED".into(),
                        String::new(),
                        String::new(),
                        e.to_string(),
                    ]);
                    items.push(json!({"deployment": id.as_str(), "damaged": e.to_string()}));
                    after = Some(id);
                }
            }
        }
        if n < PAGE {
            break;
        }
    }
    let mut text = table(
        &["DEPLOYMENT", "VERSION", "SCHEMA", "BYTES", "UPDATED"],
        &rows,
    );
    text.push_str(&format!("{} deployment(s)\n", rows.len()));
    Ok(Report {
        text,
        json: Value::Array(items),
    })
}

/// `inspect ID`: the current state with its version, checksum, schema and tier, and the
/// deployment's collections and journals.
pub async fn inspect(store: &Arc<dyn StateStore>, id: &str) -> Result<Report> {
    let id = deployment(id)?;
    let d = current(store, &id).await?;
    let colls = collections(store, &id).await?;
    let journals = streams(store, &id).await?;
    let mut jrows = Vec::new();
    let mut jitems = Vec::new();
    for s in &journals {
        let addr = StreamAddr {
            deployment_id: id.clone(),
            stream: s.clone(),
        };
        let info = store.journal_info(&addr).await?;
        let (first, last, count) = info.map_or((0, 0, 0), |i| (i.first_seq, i.last_seq, i.count));
        jitems.push(
            json!({"stream": s.as_str(), "first_seq": first, "last_seq": last, "count": count}),
        );
        if jrows.len() < STREAMS_SHOWN {
            jrows.push((s.to_string(), count, first, last));
        }
    }
    let pretty = serde_json::to_string_pretty(&d.state).unwrap_or_default();
    let mut text = format!(
        "deployment  {}\nversion     {}\nchecksum    {}\nschema      {}\ntier        {} ({})\ncreated     {}\nupdated     {}\nbytes       {}\n",
        id,
        d.version,
        d.checksum,
        d.schema_version,
        d.loaded_from,
        store.backend(),
        time(d.created_at),
        time(d.updated_at),
        state_bytes(&d),
    );
    text.push_str(&format!(
        "collections {}\n",
        if colls.is_empty() {
            "none".to_owned()
        } else {
            colls
                .iter()
                .map(Name::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    text.push_str(&format!("journals    {}\n", journals.len()));
    for (s, count, first, last) in &jrows {
        text.push_str(&format!("  {s}: {count} entries (#{first}..#{last})\n"));
    }
    if journals.len() > jrows.len() {
        text.push_str(&format!("  … and {} more\n", journals.len() - jrows.len()));
    }
    text.push_str("state\n");
    text.push_str(&pretty);
    text.push('\n');
    Ok(Report {
        text,
        json: json!({
            "deployment": id.as_str(),
            "version": d.version,
            "checksum": d.checksum.to_string(),
            "schema_version": d.schema_version,
            "tier": d.loaded_from.to_string(),
            "backend": store.backend(),
            "created_at": d.created_at,
            "updated_at": d.updated_at,
            "collections": colls.iter().map(Name::as_str).collect::<Vec<_>>(),
            "journals": jitems,
            "state": d.state,
        }),
    })
}

/// `history ID`: retained versions, newest first.
pub async fn history(store: &Arc<dyn StateStore>, id: &str, limit: usize) -> Result<Report> {
    let id = deployment(id)?;
    let versions = store.history(&id, limit.max(1)).await?;
    if versions.is_empty() {
        return Err(CliError::Other(format!("no deployment {id}")));
    }
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|d| {
            vec![
                d.version.to_string(),
                time(d.updated_at),
                d.schema_version.to_string(),
                state_bytes(d).to_string(),
                d.checksum.to_string()[..16].to_owned(),
            ]
        })
        .collect();
    let items: Vec<Value> = versions
        .iter()
        .map(|d| {
            json!({
                "version": d.version,
                "updated_at": d.updated_at,
                "schema_version": d.schema_version,
                "bytes": state_bytes(d),
                "checksum": d.checksum.to_string(),
            })
        })
        .collect();
    Ok(Report {
        text: table(
            &["VERSION", "COMMITTED", "SCHEMA", "BYTES", "CHECKSUM"],
            &rows,
        ),
        json: Value::Array(items),
    })
}

async fn version(store: &Arc<dyn StateStore>, id: &DeploymentId, v: u64) -> Result<StateData> {
    store
        .get_version(id, v)
        .await?
        .ok_or_else(|| CliError::Other(format!("{id} has no retained version {v}")))
}

/// `diff ID V1 V2`: the JSON Patch (RFC 6902) from V1 to V2, and as text each changed path
/// with its old and new value.
pub async fn diff(store: &Arc<dyn StateStore>, id: &str, v1: u64, v2: u64) -> Result<Report> {
    let id = deployment(id)?;
    let a = Value::Object(version(store, &id, v1).await?.state);
    let b = Value::Object(version(store, &id, v2).await?.state);
    let patch = json_patch::diff(&a, &b);
    let mut text = format!("{id} v{v1} → v{v2}: {} change(s)\n", patch.0.len());
    for op in &patch.0 {
        use json_patch::PatchOperation as P;
        let line = match op {
            P::Add(o) => format!("+ {} = {}\n", o.path, o.value),
            P::Remove(o) => format!(
                "- {} (was {})\n",
                o.path,
                a.pointer(o.path.as_str()).unwrap_or(&Value::Null)
            ),
            P::Replace(o) => format!(
                "~ {}: {} → {}\n",
                o.path,
                a.pointer(o.path.as_str()).unwrap_or(&Value::Null),
                o.value
            ),
            other => format!("  {}\n", serde_json::to_string(&other).unwrap_or_default()),
        };
        text.push_str(&line);
    }
    Ok(Report {
        text,
        json: json!({"deployment": id.as_str(), "from": v1, "to": v2, "patch": patch}),
    })
}

/// `at ID TIME`: the state and documents as they stood at `TIME`, and how long each journal
/// was then.
pub async fn at(store: &Arc<dyn StateStore>, id: &str, when: &str, limit: usize) -> Result<Report> {
    let id = deployment(id)?;
    let t = parse_time(when)?;
    let state = store.get_as_of(&id, t).await?;
    let mut text = format!("{id} as of {}\n", time(t));
    let mut docs_json = Vec::new();
    match &state {
        Some(d) => text.push_str(&format!(
            "state v{} (committed {})\n{}\n",
            d.version,
            time(d.updated_at),
            serde_json::to_string_pretty(&d.state).unwrap_or_default()
        )),
        None => text.push_str("state: did not exist yet\n"),
    }
    for c in collections(store, &id).await? {
        let page = store.list_documents(&id, &c, None, limit.max(1)).await?;
        let mut shown = Vec::new();
        for doc in page {
            let doc = doc?;
            if let Some(then) = store.document_as_of(&doc.address, t).await? {
                shown.push(then);
            }
        }
        if shown.is_empty() {
            continue;
        }
        text.push_str(&format!("collection {c} (first {} keys)\n", limit.max(1)));
        for d in &shown {
            text.push_str(&format!(
                "  {} v{}: {}\n",
                d.address.key,
                d.version,
                serde_json::to_string(&d.value).unwrap_or_default()
            ));
            docs_json.push(json!({
                "collection": c.as_str(),
                "key": d.address.key.as_str(),
                "version": d.version,
                "value": d.value,
            }));
        }
    }
    let mut journals_json = Vec::new();
    let mut lines = Vec::new();
    for s in streams(store, &id).await? {
        let addr = StreamAddr {
            deployment_id: id.clone(),
            stream: s.clone(),
        };
        let upto = last_committed_by(store, &addr, t).await?;
        journals_json.push(json!({"stream": s.as_str(), "last_seq": upto}));
        if upto > 0 {
            lines.push(format!("  {s}: through #{upto}\n"));
        }
    }
    text.push_str(&format!("journals with entries by then: {}\n", lines.len()));
    for l in lines.iter().take(STREAMS_SHOWN) {
        text.push_str(l);
    }
    if lines.len() > STREAMS_SHOWN {
        text.push_str(&format!("  … and {} more\n", lines.len() - STREAMS_SHOWN));
    }
    Ok(Report {
        text,
        json: json!({
            "deployment": id.as_str(),
            "at": t,
            "state": state.map(|d| json!({"version": d.version, "updated_at": d.updated_at, "state": d.state})),
            "documents": docs_json,
            "journals": journals_json,
        }),
    })
}

/// The last sequence number of `stream` committed at or before `t` (0: none): a binary search
/// of point reads, commit times never decreasing along a stream.
async fn last_committed_by(
    store: &Arc<dyn StateStore>,
    stream: &StreamAddr,
    t: DateTime<Utc>,
) -> Result<u64> {
    let Some(info) = store.journal_info(stream).await? else {
        return Ok(0);
    };
    let (mut lo, mut hi, mut found) = (info.first_seq, info.last_seq, 0);
    while lo <= hi && hi > 0 {
        let mid = lo + (hi - lo) / 2;
        let page = store
            .read_journal(
                stream,
                tierstate::JournalQuery::Range {
                    from: mid,
                    to: mid,
                    descending: false,
                    limit: 1,
                },
            )
            .await?;
        let committed = page.entries.first().map(|e| e.commit_time);
        if committed.is_some_and(|c| c <= t) {
            found = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    Ok(found)
}
