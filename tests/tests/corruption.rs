//! Seeded damage trials on stored rows. States: 1,000 byte flips per backend (body or
//! checksum). Journals: 400 trials per backend, each damaging one entry of a fresh stream (a
//! flipped byte of its body, checksum or chain hash, or its row deleted) and then reading it
//! every way a caller can. Every read gives either exactly what was written or an `Integrity`
//! error naming the stream and the damaged entry — never a wrong value, never a panic.

use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use serde_json::{Map, Value};
use tierstate_core::journal::{EntryDamage, Flip};
use tierstate_core::{
    Append, Error, JournalPage, JournalQuery, Name, Retention, StateStore, StateWrite, StreamAddr,
    Target, Tier, WriteBatch,
};
use tierstate_tests::{Backend, Damager, dep};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_byte_flips_are_caught() {
    trials(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_byte_flips_are_caught() {
    trials(Backend::Redb).await;
}

async fn trials(backend: Backend) {
    let seed = std::env::var("TIERSTATE_CORRUPTION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x7157_a7e5u64);
    eprintln!("corruption trials ({}): seed {seed}", backend.name());
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let (store, damage) = backend
        .open_with_damage(&dir.path().join("flip.db"))
        .await
        .unwrap();
    let id = dep("victim");
    let (mut caught, mut intact) = (0u32, 0u32);
    for trial in 0..1000u64 {
        let state =
            json!({"trial": trial, "cash": "1234.5678", "orders": ["a", "b"], "ü": trial * 3})
                .as_object()
                .unwrap()
                .clone();
        let written = store
            .put(
                StateWrite::overwrite(id.clone(), state.clone()),
                Retention::DEFAULT,
            )
            .await
            .unwrap();
        let offset = rng.random_range(0..10_000usize);
        let mask = rng.random_range(1..=255u8);
        assert!(
            damage.state(&id, offset, mask).await.unwrap(),
            "trial {trial}: nothing damaged"
        );
        for result in [
            store.get(&id).await.map(|d| d.unwrap()),
            store
                .get_version(&id, written.version)
                .await
                .map(|d| d.unwrap()),
        ] {
            match result {
                Ok(d) => {
                    // Only possible when the flip kept the meaning (e.g. hex digit case).
                    assert_eq!(d.state, state, "trial {trial}: a wrong value was returned");
                    assert_eq!(d.version, written.version);
                    intact += 1;
                }
                Err(Error::Integrity {
                    deployment_id,
                    tier: Tier::Warm,
                    version,
                    ..
                }) => {
                    assert_eq!((deployment_id, version), (id.clone(), written.version));
                    caught += 1;
                }
                Err(other) => panic!("trial {trial} (offset {offset}, mask {mask:#x}): {other:?}"),
            }
        }
        let scanned = store.scan(None, 10).await.unwrap();
        assert_eq!(scanned.len(), 1);
        if let Ok(d) = &scanned[0] {
            assert_eq!(d.state, state, "trial {trial}: scan returned a wrong value");
        }
    }
    eprintln!(
        "corruption trials ({}): {caught} loads refused with Integrity, {intact} equivalent flips loaded intact",
        backend.name()
    );
    assert!(caught >= 1800, "too few flips were detected: {caught}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_journal_damage_is_caught() {
    let (store, damage) = Damager::memory();
    journal_trials("memory", &*store, &damage, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_journal_damage_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (store, damage) = Backend::Sqlite
        .open_with_damage(&dir.path().join("j.db"))
        .await
        .unwrap();
    journal_trials("sqlite", &*store, &damage, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_journal_damage_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (store, damage) = Backend::Redb
        .open_with_damage(&dir.path().join("j.redb"))
        .await
        .unwrap();
    journal_trials("redb", &*store, &damage, true).await;
}

const ENTRIES: u64 = 8;

fn event_time(seq: u64) -> DateTime<Utc> {
    Utc.timestamp_micros(1_800_000_000_000_000 + seq as i64 * 1_000_000)
        .unwrap()
}

fn body(trial: u64, seq: u64) -> Map<String, Value> {
    json!({"trial": trial, "seq": seq, "qty": "0.125", "side": "buy", "note": "é-ü"})
        .as_object()
        .unwrap()
        .clone()
}

/// What one read returned, judged against what was written.
enum Verdict {
    /// Every entry returned is exactly the one written at its sequence number.
    Intact(Vec<u64>),
    /// Refused with `Integrity` naming the damaged entry.
    Caught,
}

fn judge(
    what: &str,
    trial: u64,
    st: &StreamAddr,
    damaged: u64,
    read: tierstate_core::Result<JournalPage>,
) -> Verdict {
    match read {
        Ok(page) => {
            for e in &page.entries {
                assert!(
                    (1..=ENTRIES).contains(&e.seq),
                    "trial {trial} {what}: invented seq {}",
                    e.seq
                );
                assert_eq!(
                    (&e.value, e.event_time, e.key.as_ref().map(Name::as_str)),
                    (
                        &body(trial, e.seq),
                        event_time(e.seq),
                        Some(format!("k{}", e.seq).as_str())
                    ),
                    "trial {trial} {what}: a wrong entry was returned"
                );
            }
            Verdict::Intact(page.entries.iter().map(|e| e.seq).collect())
        }
        Err(Error::Integrity {
            deployment_id,
            target: Target::Journal { stream },
            tier: Tier::Warm,
            version,
            ..
        }) => {
            assert_eq!(
                (&deployment_id, &stream, version),
                (&st.deployment_id, &st.stream, damaged),
                "trial {trial} {what}: the error names the wrong entry"
            );
            Verdict::Caught
        }
        Err(other) => panic!("trial {trial} {what}: {other:?}"),
    }
}

/// `indexed`: the backend keeps its key and event-time indexes in tables of their own, so it
/// can see that an entry they name was deleted.
async fn journal_trials(name: &str, store: &dyn StateStore, damage: &Damager, indexed: bool) {
    let seed = std::env::var("TIERSTATE_CORRUPTION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x10a2_4a15u64);
    eprintln!("journal damage trials ({name}): seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut caught, mut intact, mut deleted_unseen) = (0u32, 0u32, 0u32);
    for trial in 0..400u64 {
        let st = StreamAddr::new("victim", &format!("t{trial}")).unwrap();
        let mut batch = WriteBatch::new();
        for seq in 1..=ENTRIES {
            batch = batch.append(
                Append::new(st.clone(), event_time(seq), body(trial, seq))
                    .with_key(Name::key(format!("k{seq}")).unwrap()),
            );
        }
        store.write(batch).await.unwrap();
        let seq = rng.random_range(1..=ENTRIES);
        let flip = Flip::At {
            offset: rng.random_range(0..4096),
            mask: rng.random_range(1..=255u8),
        };
        let kind = match rng.random_range(0..8) {
            0..=2 => EntryDamage::Body(flip),
            3 | 4 => EntryDamage::Checksum(flip),
            5 | 6 => EntryDamage::Hash(flip),
            _ => EntryDamage::Delete,
        };
        let what = format!("{kind:?} at #{seq}");
        assert!(
            damage.entry(&st, seq, kind).await.unwrap(),
            "trial {trial}: nothing damaged"
        );
        // Reads that cover the damaged entry by sequence number.
        let mut covering = Vec::new();
        for q in [
            JournalQuery::from_seq(1, 100),
            JournalQuery::newest(100),
            JournalQuery::Range {
                from: seq,
                to: seq,
                descending: false,
                limit: 1,
            },
        ] {
            let read = store.read_journal(&st, q.clone()).await;
            covering.push(judge(&format!("{what} {q:?}"), trial, &st, seq, read));
        }
        for v in &covering {
            match v {
                Verdict::Caught => caught += 1,
                Verdict::Intact(seqs) => {
                    // A deleted row is never an equivalent flip: a range over it must refuse.
                    assert!(
                        kind != EntryDamage::Delete,
                        "trial {trial} {what}: the gap was not noticed ({seqs:?})"
                    );
                    assert!(seqs.contains(&seq), "trial {trial} {what}: entry dropped");
                    intact += 1;
                }
            }
        }
        // Reads by time and key: a damaged entry they return is caught, and so is a deleted
        // one whose successor they return (every returned entry's link to its predecessor is
        // checked, fetching the predecessor when the page does not hold it). A deleted entry
        // nothing returned points at is seen where the key and time indexes are tables of
        // their own (`indexed`, redb); where they index the entry's own row (SQLite, memory)
        // those reads may leave it out — but whatever they return is exactly what was written.
        // (query, whether the damaged entry is in its answer, whether its successor is)
        for (q, names_it, names_next) in [
            (
                JournalQuery::window(event_time(1), event_time(ENTRIES + 1), 100),
                true,
                seq < ENTRIES,
            ),
            (JournalQuery::AtOrBefore(event_time(seq)), true, false),
            (
                JournalQuery::ByKey(Name::key(format!("k{seq}")).unwrap()),
                true,
                false,
            ),
            (JournalQuery::Last, seq == ENTRIES, seq + 1 == ENTRIES),
            (JournalQuery::First, seq == 1, false),
        ] {
            let read = store.read_journal(&st, q.clone()).await;
            let verdict = judge(&format!("{what} {q:?}"), trial, &st, seq, read);
            // A refusal naming the damaged entry is always a right answer (reads that check the
            // link to a neighbour see damage next to what they return).
            match verdict {
                Verdict::Caught => {}
                Verdict::Intact(seqs) if names_it && !seqs.contains(&seq) => {
                    assert!(
                        kind == EntryDamage::Delete && !indexed && !names_next,
                        "trial {trial} {q:?}: the damaged entry was left out ({kind:?})"
                    );
                    deleted_unseen += 1;
                }
                Verdict::Intact(_) => {}
            }
        }
        if indexed && kind == EntryDamage::Delete {
            // Replaying the deleted entry's idempotency key must not append it a second time.
            let again = Append::new(st.clone(), event_time(seq), body(trial, seq))
                .with_key(Name::key(format!("k{seq}")).unwrap());
            let replay = store.append(again).await.map(|a| JournalPage {
                entries: vec![a.entry],
                next: None,
                truncated: false,
                damage: Vec::new(),
            });
            assert!(
                matches!(judge("replay", trial, &st, seq, replay), Verdict::Caught),
                "trial {trial} {what}: a replayed key was appended again"
            );
        }
        // Entries before the damaged one still read.
        if seq > 1 {
            let before = store
                .read_journal(
                    &st,
                    JournalQuery::Range {
                        from: 1,
                        to: seq - 1,
                        descending: false,
                        limit: 100,
                    },
                )
                .await;
            match judge("prefix", trial, &st, seq, before) {
                Verdict::Intact(seqs) => assert_eq!(seqs, (1..seq).collect::<Vec<_>>()),
                Verdict::Caught => panic!("trial {trial} {what}: the intact prefix was refused"),
            }
        }
    }
    eprintln!(
        "journal damage trials ({name}): {caught} range reads refused with Integrity, {intact} equivalent flips read intact, {deleted_unseen} time/key reads that could not see a deleted row"
    );
    assert!(
        caught >= 1000,
        "too few damaged entries were caught: {caught}"
    );
}
