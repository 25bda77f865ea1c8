//! PostgreSQL-specific behaviour: schema snapshot, migration versions, secrets, error classes.

mod common;

use tierstate_core::{
    BackendErrorKind, Change, DeploymentId, Error, Retention, StateStore, StateWrite,
};
use tierstate_postgres::{PostgresConfig, PostgresStore};

/// Columns, indexes and checks of tierstate's tables in `schema`, as text.
async fn schema_dump(pool: &sqlx::PgPool, schema: &str) -> String {
    let cols: Vec<(String, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text, collation_name::text \
         FROM information_schema.columns WHERE table_schema = $1 AND table_name LIKE 'ts_%' \
         ORDER BY table_name, ordinal_position",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap();
    let idx: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, replace(indexdef, $1 || '.', '') FROM pg_indexes \
         WHERE schemaname = $1 ORDER BY indexname",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap();
    let checks: Vec<(String, String)> = sqlx::query_as(
        "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE connamespace = $1::regnamespace AND contype = 'c' ORDER BY 1, 2",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap();
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut out = String::new();
    for (t, c, ty, null, coll) in cols {
        out.push_str(&format!(
            "{t}.{c} {ty} nullable={null} collation={}\n",
            coll.unwrap_or_default()
        ));
    }
    for (name, def) in idx {
        out.push_str(&format!("index {name}: {def}\n"));
    }
    for (table, def) in checks {
        let table = table.rsplit('.').next().unwrap_or(&table).to_owned();
        out.push_str(&format!("check {table}: {def}\n"));
    }
    out.push_str(&format!("migrations applied: {applied:?}\n"));
    out
}

/// One snapshot per migration version; a store connected fresh equals the newest.
#[tokio::test]
async fn schema_snapshots_at_every_version() {
    let Some(url) = common::url() else { return };
    for v in 1..=PostgresStore::schema_version() {
        let schema = common::fresh_schema("snap");
        let cfg = PostgresConfig::new(&url).schema(&schema).unwrap();
        let pool = PostgresStore::create_at_version(&cfg, v).await.unwrap();
        insta::assert_snapshot!(
            format!("postgres_schema_v{v}"),
            schema_dump(&pool, &schema).await
        );
    }
    let schema = common::fresh_schema("snap");
    let store = PostgresStore::connect(PostgresConfig::new(&url).schema(&schema).unwrap())
        .await
        .unwrap();
    let fixture_schema = common::fresh_schema("snap");
    let cfg = PostgresConfig::new(&url).schema(&fixture_schema).unwrap();
    let latest = PostgresStore::create_at_version(&cfg, PostgresStore::schema_version())
        .await
        .unwrap();
    assert_eq!(
        schema_dump(store.pool(), &schema).await,
        schema_dump(&latest, &fixture_schema)
            .await
            .replace(&fixture_schema, &schema)
    );
}

/// A database at migration 1 with data is upgraded on connect, data intact; the dry run lists
/// the pending steps first and applies nothing.
#[tokio::test]
async fn v1_fixture_upgrades_with_data_intact() {
    use tierstate_core::{Checksum, canonical_json};
    let Some(url) = common::url() else { return };
    let schema = common::fresh_schema("upg");
    let cfg = PostgresConfig::new(&url).schema(&schema).unwrap();
    let pool = PostgresStore::create_at_version(&cfg, 1).await.unwrap();
    let state = serde_json::json!({"n": 7}).as_object().unwrap().clone();
    let body = canonical_json(&state).unwrap();
    sqlx::query("INSERT INTO ts_head VALUES ('a', 1, 1700000000000000)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO ts_version VALUES ('a', 1, 1, $1, 1700000000000000, $2)")
        .bind(Checksum::of(&body).to_hex())
        .bind(&body)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let pending = PostgresStore::pending_migrations(&cfg).await.unwrap();
    assert_eq!(
        pending.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        (2..=PostgresStore::schema_version()).collect::<Vec<_>>()
    );
    assert_eq!(
        PostgresStore::pending_migrations(&cfg).await.unwrap().len(),
        pending.len(),
        "dry run applies nothing"
    );
    let store = PostgresStore::connect(cfg.clone()).await.unwrap();
    let d = store
        .get(&DeploymentId::new("a").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.version, d.state), (1, state));
    assert!(
        PostgresStore::pending_migrations(&cfg)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn newer_migrations_are_refused() {
    let Some(url) = common::url() else { return };
    let schema = common::fresh_schema("newer");
    let cfg = PostgresConfig::new(&url).schema(&schema).unwrap();
    let store = PostgresStore::connect(cfg.clone()).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (999999, 'from the future', true, '\\x00', 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    store.close().await;
    let err = PostgresStore::connect(cfg).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::SchemaTooNew {
                backend: "postgres",
                found: 999_999,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn reconnect_reapplies_nothing_and_keeps_data() {
    let Some(url) = common::url() else { return };
    let schema = common::fresh_schema("again");
    let cfg = PostgresConfig::new(&url).schema(&schema).unwrap();
    let a = PostgresStore::connect(cfg.clone()).await.unwrap();
    let id = DeploymentId::new("d").unwrap();
    a.put(
        StateWrite::create(id.clone(), Default::default()),
        Retention::DEFAULT,
    )
    .await
    .unwrap();
    a.close().await;
    let b = PostgresStore::connect(cfg).await.unwrap();
    assert_eq!(b.get(&id).await.unwrap().unwrap().version, 1);
}

#[tokio::test]
async fn password_never_in_errors() {
    let Some(url) = common::url() else { return };
    let wrong = "Wr0ngPa55-n0t-in-logs";
    let bad_url = match url.split_once('@') {
        Some((head, tail)) => {
            let user = head.rsplit_once(':').map_or(head, |(u, _)| u);
            format!("{user}:{wrong}@{tail}")
        }
        None => return,
    };
    let cfg = PostgresConfig::new(&bad_url).acquire_timeout(std::time::Duration::from_secs(2));
    assert!(!format!("{cfg:?}").contains(wrong));
    let err = PostgresStore::connect(cfg).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(wrong), "the password leaked: {shown}");
    assert!(
        matches!(
            err,
            Error::Backend {
                backend: "postgres",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn unreachable_server_is_retryable_and_not_applied() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = PostgresConfig::new(format!("postgres://u:p@127.0.0.1:{port}/db"))
        .acquire_timeout(std::time::Duration::from_millis(500));
    let err = PostgresStore::connect(cfg).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    // The real cause and the server, not "pool timed out"; never the password.
    let msg = err.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert!(
        !msg.contains("pool timed out") && !msg.contains(":p@"),
        "{msg}"
    );
    assert!(
        matches!(
            err,
            Error::Backend {
                kind: BackendErrorKind::Unavailable,
                ..
            }
        ),
        "{err:?}"
    );
}

/// Lone state updates share one statement per group: 32 writers on their own deployments and
/// 8 racing on one. Every committed version is announced, stored once, pruned to the
/// retention, and keeps `created_at`; each racer that lost hears the exact conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_updates_commit_announce_and_conflict_exactly() {
    use std::num::NonZeroU32;
    let Some(url) = common::url() else { return };
    let schema = common::fresh_schema("lane");
    let store = PostgresStore::connect(PostgresConfig::new(&url).schema(&schema).unwrap())
        .await
        .unwrap();
    let keep = Retention::KeepLast(NonZeroU32::new(3).unwrap());
    let obj = |n: u64| serde_json::json!({ "n": n }).as_object().unwrap().clone();
    let ids: Vec<DeploymentId> = (0..33)
        .map(|i| DeploymentId::new(format!("w{i}")).unwrap())
        .collect();
    let mut created = Vec::new();
    for id in &ids {
        let d = store
            .put(StateWrite::create(id.clone(), obj(0)), keep)
            .await
            .unwrap();
        created.push(d.created_at);
    }
    let mut feed = store.changes().expect("listening");
    // The listener connects on its own task: only a live feed promises every later commit (a
    // busy machine used to start the writers before it listened, and the test then waited for
    // announcements made before anyone listened).
    if !feed.live {
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while !matches!(
                feed.events.recv().await,
                Ok(tierstate_core::Change::Resumed)
            ) {}
        })
        .await
        .expect("the listener starts listening");
    }
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids[..32].iter() {
        let (s, id) = (store.clone(), id.clone());
        tasks.spawn(async move {
            for v in 1..=10u64 {
                let d = s.put(StateWrite::update(id.clone(), v, obj(v)), keep).await;
                assert_eq!(d.unwrap().version, v + 1);
            }
            0u32
        });
    }
    // Eight racers, each trying every version once: exactly one wins each round.
    let raced = ids[32].clone();
    for _ in 0..8 {
        let (s, id) = (store.clone(), raced.clone());
        tasks.spawn(async move {
            let mut lost = 0;
            for v in 1..=10u64 {
                match s.put(StateWrite::update(id.clone(), v, obj(v)), keep).await {
                    Ok(d) => assert_eq!(d.version, v + 1),
                    Err(Error::Conflict {
                        expected, actual, ..
                    }) => {
                        assert_eq!(expected, v);
                        let actual = actual.expect("the deployment exists");
                        assert!(actual > v, "actual {actual} after expecting {v}");
                        lost += 1;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            lost
        });
    }
    let mut lost = 0;
    while let Some(r) = tasks.join_next().await {
        lost += r.unwrap();
    }
    assert_eq!(
        lost,
        8 * 10 - 10,
        "one winner per version of the raced deployment"
    );
    for (id, at) in ids.iter().zip(&created) {
        let d = store.get(id).await.unwrap().unwrap();
        assert_eq!((d.version, d.state.clone()), (11, obj(10)), "{id}");
        assert_eq!(d.created_at, *at, "created_at kept for {id}");
        let versions: Vec<u64> = store
            .history(id, 100)
            .await
            .unwrap()
            .iter()
            .map(|h| h.version)
            .collect();
        assert_eq!(versions, vec![11, 10, 9], "retention of 3 for {id}");
    }
    // 33 deployments x 10 updates announced, each once.
    let mut heard = std::collections::HashSet::new();
    while heard.len() < 330 {
        let change = tokio::time::timeout(std::time::Duration::from_secs(10), feed.events.recv())
            .await
            .expect("every commit announced")
            .unwrap();
        match change {
            tierstate_core::Change::Committed {
                deployment_id,
                version,
            } => assert!(heard.insert((deployment_id, version)), "announced twice"),
            // Says why announcements are missing, if they ever are.
            tierstate_core::Change::Gap => panic!("the listener lost its connection mid-test"),
            tierstate_core::Change::Resumed => {}
        }
    }
}

/// A store on `schema` that does not listen, as another process of the fleet would open it.
async fn quiet_store(url: &str, schema: &str) -> PostgresStore {
    let cfg = PostgresConfig::new(url)
        .schema(schema)
        .unwrap()
        .listen(false);
    PostgresStore::connect(cfg).await.unwrap()
}

/// A store that remembers nothing guesses a created or overwritten state or document absent
/// and a journal whose first append expects it empty, empty, and commits in one statement. When another
/// store created them first the guess is refused and the batch ends as the locking path ends
/// it: `AlreadyExists` or the exact conflict, with nothing of it stored. Racing creators of
/// one order: exactly one wins, and its journal holds exactly its entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_writes_guessed_absent_yield_to_other_writers() {
    use tierstate_core::journal::{Append, JournalQuery, genesis_hash};
    use tierstate_core::{DocAddr, DocWrite, PutMode, StreamAddr, WriteBatch};
    let Some(url) = common::url() else { return };
    let schema = common::fresh_schema("guess");
    let open = || quiet_store(&url, &schema);
    let (a, b) = (open().await, open().await);
    let obj = |n: u64| serde_json::json!({ "n": n }).as_object().unwrap().clone();
    let at = chrono::Utc::now();
    let place = |order: &str, n: u64| {
        WriteBatch::new()
            .put(StateWrite::create(
                DeploymentId::new(order).unwrap(),
                obj(n),
            ))
            .document(DocWrite::new(
                DocAddr::new("p", "orders", order).unwrap(),
                PutMode::Create,
                obj(n),
            ))
            .append(Append::new(StreamAddr::new("p", order).unwrap(), at, obj(n)).expecting(0))
            .append(Append::new(
                StreamAddr::new("p", order).unwrap(),
                at,
                obj(n + 1),
            ))
    };
    let entries = |s: &PostgresStore, order: &'static str| {
        let s = s.clone();
        async move {
            s.read_journal(
                &StreamAddr::new("p", order).unwrap(),
                JournalQuery::from_seq(1, 100),
            )
            .await
            .unwrap()
            .entries
        }
    };

    let c = a.write(place("o1", 1)).await.unwrap();
    assert_eq!((c.states[0].version, c.documents[0].version), (1, 1));
    let got = entries(&a, "o1").await;
    assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    let genesis = genesis_hash(&StreamAddr::new("p", "o1").unwrap());
    assert_eq!(
        got[0].prev_hash, genesis,
        "the first entry links to genesis"
    );
    assert_eq!(got[1].prev_hash, got[0].hash);

    // b remembers nothing and guesses o1 new: refused, and nothing of its batch stays.
    assert!(matches!(
        b.write(place("o1", 7)).await,
        Err(Error::AlreadyExists { .. })
    ));
    let only_append = WriteBatch::new()
        .append(Append::new(StreamAddr::new("p", "o1").unwrap(), at, obj(7)).expecting(0));
    match b.write(only_append).await {
        Err(Error::Conflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (0, Some(2))),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(entries(&b, "o1").await.len(), 2);
    // An overwrite is guessed a first version too; here it is not, and lands as version 2.
    let c = b
        .write(
            WriteBatch::new()
                .put(StateWrite::overwrite(
                    DeploymentId::new("o1").unwrap(),
                    obj(9),
                ))
                .document(DocWrite::new(
                    DocAddr::new("p", "orders", "o1").unwrap(),
                    PutMode::Overwrite,
                    obj(9),
                )),
        )
        .await
        .unwrap();
    assert_eq!((c.states[0].version, c.documents[0].version), (2, 2));
    // The journal head the guess inserted is a real one: b appends after it.
    let c = b
        .write(WriteBatch::new().append(Append::new(
            StreamAddr::new("p", "o1").unwrap(),
            at,
            obj(8),
        )))
        .await
        .unwrap();
    assert_eq!(c.entries[0].entry.seq, 3);
    assert_eq!(c.entries[0].entry.prev_hash, got[1].hash);

    // Eight stores that remember nothing race to place o2: one wins.
    let mut racers = tokio::task::JoinSet::new();
    for n in 0..8 {
        let (s, batch) = (open().await, place("o2", 10 * n));
        racers.spawn(async move { s.write(batch).await });
    }
    let mut won = 0;
    while let Some(r) = racers.join_next().await {
        match r.unwrap() {
            Ok(_) => won += 1,
            Err(Error::AlreadyExists { .. } | Error::Conflict { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
    let got = entries(&a, "o2").await;
    assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    let state = a
        .get(&DeploymentId::new("o2").unwrap())
        .await
        .unwrap()
        .unwrap();
    let doc = a
        .get_document(&DocAddr::new("p", "orders", "o2").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.version, 1);
    assert_eq!(
        state.state["n"], doc.value["n"],
        "state and document of the same winner"
    );
    assert_eq!(
        got[0].value["n"], doc.value["n"],
        "journal of the same winner"
    );
}

/// Removals and version checks commit in one statement from remembered heads, guarded where
/// those heads stand: when another store moved them, the batch ends as the locking path ends
/// it (the removal removes what is there now, the check reports the exact conflict and nothing
/// of its batch stays).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_and_checks_on_remembered_heads_yield_to_other_writers() {
    use tierstate_core::{DocAddr, DocWrite, PutMode, WriteBatch};
    let Some(url) = common::url() else { return };
    let schema = common::fresh_schema("guards");
    let open = || quiet_store(&url, &schema);
    let (a, b) = (open().await, open().await);
    let obj = |n: u64| serde_json::json!({ "n": n }).as_object().unwrap().clone();
    let (x, g, y) = (
        DocAddr::new("d", "book", "x").unwrap(),
        DocAddr::new("d", "registry", "g").unwrap(),
        DocAddr::new("d", "book", "y").unwrap(),
    );
    let put = |addr: &DocAddr, mode, n| {
        WriteBatch::new().document(DocWrite::new(addr.clone(), mode, obj(n)))
    };
    a.write(put(&x, PutMode::Create, 1)).await.unwrap();
    a.write(put(&g, PutMode::Create, 1)).await.unwrap();

    // Remembered and current: the removal and the check commit in one statement.
    let c = a
        .write(
            put(&y, PutMode::Create, 1)
                .expect(g.clone(), Some(1))
                .delete_document(x.clone(), Some(1)),
        )
        .await
        .unwrap();
    assert_eq!(c.removed, vec![true]);
    assert!(a.get_document(&x).await.unwrap().is_none());
    assert!(
        a.document_history(&x, 10).await.unwrap().is_empty(),
        "history removed too"
    );

    // b moves x (re-created) and g; a still remembers g at 1 and x as removed.
    b.write(put(&x, PutMode::Create, 5)).await.unwrap();
    b.write(put(&x, PutMode::Update { expected: 1 }, 6))
        .await
        .unwrap();
    b.write(put(&g, PutMode::Update { expected: 1 }, 2))
        .await
        .unwrap();
    match a
        .write(put(&y, PutMode::Update { expected: 1 }, 2).expect(g.clone(), Some(1)))
        .await
    {
        Err(Error::Conflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (1, Some(2))),
        other => panic!("expected the check's conflict, got {other:?}"),
    }
    assert_eq!(
        a.get_document(&y).await.unwrap().unwrap().version,
        1,
        "nothing stayed"
    );
    // a learns x at 2 from b's writes only through the locking path; a stale removal of a
    // remembered head is refused by its guard and lands as the locking path lands it.
    let x_at = b.get_document(&x).await.unwrap().unwrap().version;
    assert_eq!(x_at, 2);
    a.write(put(&x, PutMode::Update { expected: 2 }, 7))
        .await
        .unwrap();
    b.write(put(&x, PutMode::Update { expected: 3 }, 8))
        .await
        .unwrap();
    match a
        .write(WriteBatch::new().delete_document(x.clone(), Some(3)))
        .await
    {
        Err(Error::Conflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (3, Some(4))),
        other => panic!("expected the removal's conflict, got {other:?}"),
    }
    assert_eq!(b.get_document(&x).await.unwrap().unwrap().version, 4);
    let c = a
        .write(WriteBatch::new().delete_document(x.clone(), None))
        .await
        .unwrap();
    assert_eq!(c.removed, vec![true]);
    assert!(b.get_document(&x).await.unwrap().is_none());
    assert!(b.document_history(&x, 10).await.unwrap().is_empty());
}

/// Two stores on one schema, as two processes: each remembers the heads it committed and
/// plans its next batch from them. Whenever the other wrote in between, the remembered heads
/// are stale and the batch must still land exactly as the locking path would land it: the
/// right conflict, the next sequence number with an intact chain, a replayed key answered
/// with the stored entry, and no re-creation of what was deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remembered_heads_yield_to_other_writers() {
    use tierstate_core::journal::{Append, JournalQuery};
    use tierstate_core::{DocAddr, DocWrite, Name, PutMode, StreamAddr, WriteBatch};
    let Some(url) = common::url() else { return };
    let schema = common::fresh_schema("heads");
    let open = || async {
        PostgresStore::connect(PostgresConfig::new(&url).schema(&schema).unwrap())
            .await
            .unwrap()
    };
    let (a, b) = (open().await, open().await);
    let obj = |n: u64| serde_json::json!({ "n": n }).as_object().unwrap().clone();
    let id = DeploymentId::new("d").unwrap();
    let doc = DocAddr::new("d", "book", "k").unwrap();
    let fills = StreamAddr::new("d", "fills").unwrap();
    let at = chrono::Utc::now();
    let tick = |expected: Option<u64>, n: u64| {
        let mode = expected.map_or(PutMode::Overwrite, |e| PutMode::Update { expected: e });
        WriteBatch::new()
            .put(tierstate_core::StateWrite::new(id.clone(), mode, obj(n)))
            .document(DocWrite::new(doc.clone(), PutMode::Overwrite, obj(n)))
            .append(Append::new(fills.clone(), at, obj(n)))
    };
    let seqs = |c: &tierstate_core::Committed| -> Vec<u64> {
        c.entries.iter().map(|e| e.entry.seq).collect()
    };

    // a creates everything (locking path), then ticks from its remembered heads.
    a.write(
        WriteBatch::new()
            .put(StateWrite::create(id.clone(), obj(0)))
            .document(DocWrite::new(doc.clone(), PutMode::Create, obj(0)))
            .append(Append::new(fills.clone(), at, obj(0))),
    )
    .await
    .unwrap();
    let c = a.write(tick(Some(1), 1)).await.unwrap();
    assert_eq!((c.states[0].version, c.documents[0].version), (2, 2));
    assert_eq!(seqs(&c), vec![2]);
    // b ticks: a's remembered heads are now one behind.
    let c = b.write(tick(Some(2), 2)).await.unwrap();
    assert_eq!((c.states[0].version, seqs(&c)), (3, vec![3]));
    // A caller of a who read version 2 hears the exact conflict; nothing of the tick lands.
    match a.write(tick(Some(2), 9)).await {
        Err(Error::Conflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (2, Some(3))),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Planned from stale heads, refused by the guards, committed by the locking path.
    let c = a.write(tick(None, 4)).await.unwrap();
    assert_eq!(
        (c.states[0].version, c.documents[0].version, seqs(&c)),
        (4, 4, vec![4])
    );
    let c = b.write(tick(None, 5)).await.unwrap();
    assert_eq!(seqs(&c), vec![5]);
    // A keyed entry replayed through a store whose heads are current: the key's unique index
    // refuses the optimistic insert and the stored entry is the answer.
    let keyed =
        |n: u64| Append::new(fills.clone(), at, obj(n)).with_key(Name::key("fill-1").unwrap());
    let first = a.append(keyed(6)).await.unwrap();
    assert!(first.fresh);
    assert_eq!(first.entry.seq, 6);
    let again = a.append(keyed(6)).await.unwrap();
    assert_eq!((again.fresh, again.entry.seq), (false, 6));
    let again = b.append(keyed(6)).await.unwrap();
    assert_eq!((again.fresh, again.entry.seq), (false, 6));
    assert!(matches!(
        a.append(keyed(7)).await,
        Err(Error::KeyReused { seq: 6, .. })
    ));
    // Every entry once, contiguous, chained.
    let page = b
        .read_journal(&fills, JournalQuery::from_seq(1, 100))
        .await
        .unwrap();
    let got: Vec<u64> = page.entries.iter().map(|e| e.seq).collect();
    assert_eq!(got, (1..=6).collect::<Vec<_>>());
    for w in page.entries.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash, "chain at {}", w[1].seq);
    }
    // b deletes the deployment; a still remembers version 5 of its state.
    assert_eq!(a.get(&id).await.unwrap().unwrap().version, 5);
    assert!(b.delete(&id).await.unwrap());
    match a
        .put(
            StateWrite::update(id.clone(), 5, obj(8)),
            Retention::DEFAULT,
        )
        .await
    {
        Err(Error::Conflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (5, None)),
        other => panic!("a deleted deployment must not be re-created: {other:?}"),
    }
    assert!(a.get(&id).await.unwrap().is_none());
}

/// Sequential scans of `schema`'s tierstate tables so far, and rows inserted into its versions
/// (which shows when the writers' statistics have reached the server).
async fn table_scans(pool: &sqlx::PgPool, schema: &str) -> (i64, i64) {
    let _ = sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(pool)
        .await;
    sqlx::query_as(
        "SELECT coalesce(sum(seq_scan), 0)::bigint, \
         coalesce(sum(n_tup_ins) FILTER (WHERE relname = 'ts_version'), 0)::bigint \
         FROM pg_stat_user_tables WHERE schemaname = $1 AND relname LIKE 'ts\\_%'",
    )
    .bind(schema)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The sequential scans of `schema`'s tables once `store` is closed and its statistics show
/// `versions` stored versions (a backend sends its statistics when it exits).
async fn settled(store: PostgresStore, monitor: &sqlx::PgPool, schema: &str, versions: i64) -> i64 {
    store.close().await;
    let mut seen = (0, 0);
    for _ in 0..200 {
        seen = table_scans(monitor, schema).await;
        if seen.1 >= versions {
            return seen.0;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("statistics never showed {versions} versions: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_writes_reach_rows_by_key_not_by_table_scans() {
    use std::num::NonZeroU32;
    use tierstate_core::{Append, DocAddr, DocWrite, PutMode, StreamAddr, WriteBatch};
    let Some(url) = common::url() else { return };
    let schema = common::fresh_schema("keyed");
    // Few connections: each runs a statement often enough for its cached plan to turn
    // generic (after five runs).
    let cfg = PostgresConfig::new(&url)
        .schema(&schema)
        .unwrap()
        .max_connections(1)
        .listen(false);
    let keep = Retention::KeepLast(NonZeroU32::new(3).unwrap());
    let obj = |n: u64| serde_json::json!({ "n": n }).as_object().unwrap().clone();
    // Two of each per batch: the statement's multi-row (array) form.
    let ids = [
        DeploymentId::new("a").unwrap(),
        DeploymentId::new("b").unwrap(),
    ];
    let docs = [
        DocAddr::new("a", "book", "positions").unwrap(),
        DocAddr::new("b", "book", "positions").unwrap(),
    ];
    let stream = StreamAddr::new("a", "fills").unwrap();
    let store = PostgresStore::connect(cfg.clone()).await.unwrap();
    let mut first = WriteBatch::new().with_retention(keep);
    for (id, doc) in ids.iter().zip(&docs) {
        first = first
            .put(StateWrite::create(id.clone(), obj(0)))
            .document(DocWrite::new(doc.clone(), PutMode::Create, obj(0)));
    }
    store.write(first).await.unwrap();
    let monitor = sqlx::PgPool::connect(&url).await.unwrap();
    // Building each index during the migrations counted one scan of its table.
    let before = settled(store, &monitor, &schema, 2).await;
    let store = PostgresStore::connect(cfg).await.unwrap();
    let ticks = 40u64;
    for i in 1..=ticks {
        // State "a" also takes a lone update per tick; "b" only the batches.
        let mut b = WriteBatch::new()
            .put(StateWrite::update(ids[0].clone(), 2 * i - 1, obj(i)))
            .put(StateWrite::update(ids[1].clone(), i, obj(i)))
            .with_retention(keep);
        for doc in &docs {
            b = b.document(DocWrite::new(
                doc.clone(),
                PutMode::Update { expected: i },
                obj(i),
            ));
        }
        for j in 0..3 {
            b = b.append(Append::new(stream.clone(), chrono::Utc::now(), obj(j)));
        }
        store.write(b).await.unwrap();
        // The CAS lane's statement.
        store
            .put(StateWrite::update(ids[0].clone(), 2 * i, obj(i)), keep)
            .await
            .unwrap_or_else(|e| panic!("update {i}: {e}"));
    }
    let versions = 2 + 3 * i64::try_from(ticks).unwrap();
    let after = settled(store, &monitor, &schema, versions).await;
    assert_eq!(
        after - before,
        0,
        "sequential scans of tierstate tables during keyed writes"
    );
}

/// A config on a fresh schema whose connections carry their own `application_name` (returned),
/// so a test can find them in `pg_stat_activity`.
fn named_store(url: &str, prefix: &str) -> (String, PostgresConfig) {
    let schema = common::fresh_schema(prefix);
    let app = format!("tierstate-{schema}");
    let cfg = PostgresConfig::new(url)
        .schema(&schema)
        .unwrap()
        .application_name(&app);
    (app, cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_recover_from_killed_connections_and_stop_after_close() {
    let Some(url) = common::url() else { return };
    let (app, cfg) = named_store(&url, "kept");
    let cfg = cfg.listen(false);
    let store = PostgresStore::connect(cfg).await.unwrap();
    let obj = |n: u64| serde_json::json!({ "n": n }).as_object().unwrap().clone();
    let d = DeploymentId::new("kept").unwrap();
    let keep = Retention::DEFAULT;
    store
        .put(StateWrite::create(d.clone(), obj(0)), keep)
        .await
        .unwrap();
    let mut version = 1;
    let monitor = sqlx::PgPool::connect(&url).await.unwrap();
    for round in 0..3 {
        // Lone updates: the lane's kept connection.
        store
            .put(StateWrite::update(d.clone(), version, obj(version)), keep)
            .await
            .unwrap();
        version += 1;
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(&app)
        .fetch_all(&monitor)
        .await
        .unwrap();
        assert!(!killed.is_empty(), "round {round}: no connection to kill");
        // The first write may learn of the loss (and not know its outcome); the next ones
        // run on fresh connections.
        let mut failures = 0;
        loop {
            match store
                .put(StateWrite::update(d.clone(), version, obj(version)), keep)
                .await
            {
                Ok(s) => {
                    assert_eq!(s.version, version + 1);
                    version += 1;
                    break;
                }
                Err(e) if failures < 2 && e.is_retryable() => failures += 1,
                Err(e) => panic!("round {round}, after {failures} failures: {e}"),
            }
        }
    }
    let stored = store.get(&d).await.unwrap().unwrap();
    assert_eq!(stored.version, version);
    store.close().await;
    match store
        .put(StateWrite::update(d.clone(), version, obj(0)), keep)
        .await
    {
        Err(Error::Backend { kind, .. }) => assert_eq!(kind, BackendErrorKind::Closed),
        other => panic!("a write after close: {other:?}"),
    }
}

/// Connections of `app` the server still has (the monitor's own excluded).
async fn connections(monitor: &sqlx::PgPool, app: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(app)
        .fetch_one(monitor)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_store_leaves_no_connection_listening() {
    let Some(url) = common::url() else { return };
    let (app, cfg) = named_store(&url, "dropped");
    let store = PostgresStore::connect(cfg).await.unwrap();
    let mut changes = store
        .changes()
        .expect("a listening store has a change feed");
    let wait = std::time::Duration::from_secs(10);
    if !changes.live {
        tokio::time::timeout(wait, async {
            while !matches!(changes.events.recv().await, Ok(Change::Resumed)) {}
        })
        .await
        .expect("the listener starts listening");
    }
    let d = DeploymentId::new("dropped").unwrap();
    let obj = serde_json::json!({ "n": 1 }).as_object().unwrap().clone();
    let clone = store.clone();
    store
        .put(StateWrite::create(d.clone(), obj), Retention::DEFAULT)
        .await
        .unwrap();
    tokio::time::timeout(wait, async {
        while !matches!(changes.events.recv().await, Ok(Change::Committed { .. })) {}
    })
    .await
    .expect("the listener hears the commit");
    let monitor = sqlx::PgPool::connect(&url).await.unwrap();
    assert!(connections(&monitor, &app).await >= 2, "pool and listener");
    drop(store);
    assert!(
        connections(&monitor, &app).await >= 2,
        "a clone still holds the listener and the pool"
    );
    drop(clone);
    // The server sees the sockets close a moment later; wait for it, bounded.
    let mut left = connections(&monitor, &app).await;
    for _ in 0..200 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        left = connections(&monitor, &app).await;
    }
    assert_eq!(left, 0, "connections left behind by a dropped store");
}
