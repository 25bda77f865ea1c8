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

/// Fails with "no deployment ID" unless the deployment holds some record (a state, a
/// document or a journal): a command on a typo says so instead of printing nothing.
///
/// # Errors
/// `Other` naming the deployment; `Store` if the store fails.
pub async fn require_deployment(store: &Arc<dyn StateStore>, id: &DeploymentId) -> Result<()> {
    let found = matches!(
        store.get(id).await,
        Ok(Some(_)) | Err(tierstate::Error::Integrity { .. })
    ) || !store.collections(id, None, 1).await?.is_empty()
        || !store.streams(id, None, 1).await?.is_empty();
    if found {
        Ok(())
    } else {
        Err(CliError::Other(format!("no deployment {id}")))
    }
}

/// Every deployment holding any record (a state, a document or a journal).
pub async fn deployments(store: &Arc<dyn StateStore>) -> Result<Vec<DeploymentId>> {
    let mut out: Vec<DeploymentId> = Vec::new();
    loop {
        let page = store.deployments(out.last(), PAGE).await?;
        let done = page.len() < PAGE;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// `list`: every deployment holding any record, with its state's version, schema, size and
/// last update; a damaged state is listed as damaged (not hidden) and fails the command.
pub async fn list(store: &Arc<dyn StateStore>) -> Result<Report> {
    let mut rows = Vec::new();
    let mut items = Vec::new();
    let mut damaged = 0u64;
    for id in deployments(store).await? {
        match store.get(&id).await {
            Ok(Some(d)) => {
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
            }
            Ok(None) => {
                rows.push(vec![
                    id.to_string(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "(no state; documents or journals only)".into(),
                ]);
                items.push(json!({"deployment": id.as_str(), "version": null}));
            }
            Err(e) if e.is_damage() => {
                damaged += 1;
                rows.push(vec![
                    id.to_string(),
                    "DAMAGED".into(),
                    String::new(),
                    String::new(),
                    e.to_string(),
                ]);
                items.push(json!({"deployment": id.as_str(), "damaged": e.to_string()}));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut text = table(
        &["DEPLOYMENT", "VERSION", "SCHEMA", "BYTES", "UPDATED"],
        &rows,
    );
    text.push_str(&format!("{} deployment(s)\n", rows.len()));
    let report = Report {
        text,
        json: Value::Array(items),
    };
    if damaged > 0 {
        return Err(CliError::DamagedReport(report, damaged));
    }
    Ok(report)
}

/// Journals listed one per line; a family of more than this many (`orders.ev.*`, one per
/// order) is summed up in one line.
const FAMILY: usize = 5;

/// The journal lines of `inspect`: each journal, or each large family of them summed up
/// (the family's name is its members' name up to their last dot).
fn journal_lines(journals: &[(String, u64, u64, u64)]) -> Vec<String> {
    let family = |s: &str| s.rsplit_once('.').map(|(p, _)| p.to_owned());
    let mut sizes: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for (s, count, _, _) in journals {
        if let Some(f) = family(s) {
            let e = sizes.entry(f).or_default();
            e.0 += 1;
            e.1 += count;
        }
    }
    let mut out = Vec::new();
    let mut summed = std::collections::BTreeSet::new();
    for (s, count, first, last) in journals {
        match family(s) {
            Some(f) if sizes[&f].0 > FAMILY as u64 => {
                if summed.insert(f.clone()) {
                    let (n, entries) = sizes[&f];
                    out.push(format!("  {f}.*: {n} journals, {entries} entries in all"));
                }
            }
            _ => out.push(format!("  {s}: {count} entries (#{first}..#{last})")),
        }
    }
    out
}

/// `inspect ID`: the current state with its version, checksum, schema and tier, and the
/// deployment's collections and journals.
pub async fn inspect(store: &Arc<dyn StateStore>, id: &str) -> Result<Report> {
    let id = deployment(id)?;
    require_deployment(store, &id).await?;
    let Some(d) = store.get(&id).await? else {
        return inspect_records_only(store, &id).await;
    };
    let colls = collections(store, &id).await?;
    let (jrows, jitems) = journal_rows(store, &id).await?;
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
    text.push_str(&format!("journals    {}\n", jrows.len()));
    for l in journal_lines(&jrows) {
        text.push_str(&l);
        text.push('\n');
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

/// Each journal of a deployment as (name, entries, first, last), and as JSON.
async fn journal_rows(
    store: &Arc<dyn StateStore>,
    id: &DeploymentId,
) -> Result<(Vec<(String, u64, u64, u64)>, Vec<Value>)> {
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for s in streams(store, id).await? {
        let addr = StreamAddr {
            deployment_id: id.clone(),
            stream: s.clone(),
        };
        let info = store.journal_info(&addr).await?;
        let (first, last, count) = info.map_or((0, 0, 0), |i| (i.first_seq, i.last_seq, i.count));
        items.push(
            json!({"stream": s.as_str(), "first_seq": first, "last_seq": last, "count": count}),
        );
        rows.push((s.to_string(), count, first, last));
    }
    Ok((rows, items))
}

/// `inspect` of a deployment with documents or journals but no state.
async fn inspect_records_only(store: &Arc<dyn StateStore>, id: &DeploymentId) -> Result<Report> {
    let colls = collections(store, id).await?;
    let (jrows, jitems) = journal_rows(store, id).await?;
    let mut text = format!(
        "deployment  {id}\nstate       none (this deployment holds documents or journals only)\ncollections {}\njournals    {}\n",
        if colls.is_empty() {
            "none".to_owned()
        } else {
            colls
                .iter()
                .map(Name::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        },
        jrows.len()
    );
    for l in journal_lines(&jrows) {
        text.push_str(&l);
        text.push('\n');
    }
    Ok(Report {
        text,
        json: json!({
            "deployment": id.as_str(),
            "version": null,
            "backend": store.backend(),
            "collections": colls.iter().map(Name::as_str).collect::<Vec<_>>(),
            "journals": jitems,
            "state": null,
        }),
    })
}

/// `history ID`: retained versions, newest first.
pub async fn history(store: &Arc<dyn StateStore>, id: &str, limit: usize) -> Result<Report> {
    let id = deployment(id)?;
    if limit == 0 {
        return Err(CliError::Usage("--limit must be at least 1".into()));
    }
    let versions = store.history(&id, limit).await?;
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
/// was then. What retention pruned (or a journal's truncation removed) is said, part by part;
/// the rest is shown.
pub async fn at(store: &Arc<dyn StateStore>, id: &str, when: &str, limit: usize) -> Result<Report> {
    let id = deployment(id)?;
    let t = parse_time(when)?;
    if limit == 0 {
        return Err(CliError::Usage("--limit must be at least 1".into()));
    }
    require_deployment(store, &id).await?;
    let head = store.get(&id).await?;
    let mut text = format!("{id} as of {}\n", time(t));
    let mut docs_json = Vec::new();
    let mut pruned = Vec::new();
    let state = match store.get_as_of(&id, t).await {
        Ok(s) => s,
        Err(tierstate::Error::NotRetained { .. }) => {
            match &head {
                Some(h) if h.created_at > t => {}
                _ => pruned.push("state".to_owned()),
            }
            None
        }
        Err(e) => return Err(e.into()),
    };
    match &state {
        Some(d) => text.push_str(&format!(
            "state v{} (committed {})\n{}\n",
            d.version,
            time(d.updated_at),
            serde_json::to_string_pretty(&d.state).unwrap_or_default()
        )),
        None if !pruned.is_empty() => {
            let oldest = store.history(&id, usize::MAX).await?.pop();
            text.push_str(&match oldest {
                Some(o) => format!(
                    "state: pruned (retention keeps the newest versions; the oldest kept is v{}, committed {})\n",
                    o.version,
                    time(o.updated_at)
                ),
                None => "state: pruned by retention\n".to_owned(),
            });
        }
        None => text.push_str("state: did not exist yet\n"),
    }
    for c in collections(store, &id).await? {
        let page = store.list_documents(&id, &c, None, limit).await?;
        let mut shown = Vec::new();
        let mut gone = 0;
        for doc in page {
            let doc = doc?;
            match store.document_as_of(&doc.address, t).await {
                Ok(Some(then)) => shown.push(then),
                Ok(None) => {}
                Err(tierstate::Error::NotRetained { .. }) if doc.created_at <= t => gone += 1,
                Err(tierstate::Error::NotRetained { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if gone > 0 {
            pruned.push(format!("{gone} document(s) of {c}"));
        }
        if shown.is_empty() && gone == 0 {
            continue;
        }
        text.push_str(&format!("collection {c} (first {limit} keys)\n"));
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
        if gone > 0 {
            text.push_str(&format!(
                "  {gone} more: versions of then pruned by retention\n"
            ));
        }
    }
    let mut journals_json = Vec::new();
    let mut lines = Vec::new();
    for s in streams(store, &id).await? {
        let addr = StreamAddr {
            deployment_id: id.clone(),
            stream: s.clone(),
        };
        let (upto, truncated) = last_committed_by(store, &addr, t).await?;
        journals_json
            .push(json!({"stream": s.as_str(), "last_seq": upto, "truncated_before": truncated}));
        if let Some(first) = truncated {
            pruned.push(format!("{s} before #{first}"));
        }
        if upto > 0 {
            lines.push((s.to_string(), upto, 0, upto));
        }
    }
    text.push_str(&format!("journals with entries by then: {}\n", lines.len()));
    for (s, upto, _, _) in &lines {
        text.push_str(&format!("  {s}: through #{upto}\n"));
    }
    if !pruned.is_empty() {
        text.push_str(&format!("not retained as of then: {}\n", pruned.join("; ")));
    }
    Ok(Report {
        text,
        json: json!({
            "deployment": id.as_str(),
            "at": t,
            "state": state.map(|d| json!({"version": d.version, "updated_at": d.updated_at, "state": d.state})),
            "documents": docs_json,
            "journals": journals_json,
            "not_retained": pruned,
        }),
    })
}

/// The last sequence number of `stream` committed at or before `t` (0: none), and whether
/// truncation removed entries that may have been there then (`Some(first retained)`): a
/// binary search of point reads, commit times never decreasing along a stream.
async fn last_committed_by(
    store: &Arc<dyn StateStore>,
    stream: &StreamAddr,
    t: DateTime<Utc>,
) -> Result<(u64, Option<u64>)> {
    let Some(info) = store.journal_info(stream).await? else {
        return Ok((0, None));
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
    // Nothing retained was committed by then, but entries before the first retained one were
    // removed: what the journal held then is gone.
    let truncated = (found == 0 && info.first_seq > 1).then_some(info.first_seq);
    Ok((found, truncated))
}
