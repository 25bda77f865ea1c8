//! Checks of states: compare-and-swap, history and retention, listing, limits, typed and
//! exact values.

use crate::support::*;

/// Create returns version 1 and the stored record loads back identical.
pub async fn create_then_load(h: &Harness) {
    let s = &h.store;
    assert!(
        s.get(&id("a")).await.unwrap().is_none(),
        "absent deployment must load as None"
    );
    let state = obj(json!({"position": 1.5, "orders": ["x", "y"], "nested": {"b": 2, "a": 1}}));
    let w = StateWrite::create(id("a"), state.clone()).with_schema_version(3);
    let created = s.put(w, KEEP_ALL).await.unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.state, state);
    assert_eq!(created.schema_version, 3);
    assert_eq!(created.created_at, created.updated_at);
    let loaded = s.get(&id("a")).await.unwrap().expect("created state loads");
    assert_eq!(
        loaded, created,
        "loaded record differs from the committed one"
    );
    assert_eq!(loaded.loaded_from, Tier::Warm);
    assert_eq!(
        loaded.checksum,
        tierstate_core::Checksum::of(&tierstate_core::canonical_json(&state).unwrap())
    );
}

/// A create over an existing deployment fails with `AlreadyExists` and changes nothing.
pub async fn create_existing_fails(h: &Harness) {
    let s = &h.store;
    s.put(StateWrite::create(id("a"), obj(json!({"n": 1}))), KEEP_ALL)
        .await
        .unwrap();
    let err = s
        .put(StateWrite::create(id("a"), obj(json!({"n": 2}))), KEEP_ALL)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists { actual: 1, .. }),
        "got {err:?}"
    );
    let now = s.get(&id("a")).await.unwrap().unwrap();
    assert_eq!((now.version, now.state), (1, obj(json!({"n": 1}))));
}

/// An update of the stored version bumps it by one and keeps `created_at`.
pub async fn update_bumps_version(h: &Harness) {
    let s = &h.store;
    let v1 = s
        .put(StateWrite::create(id("a"), obj(json!({"n": 1}))), KEEP_ALL)
        .await
        .unwrap();
    let v2 = s
        .put(
            StateWrite::update(id("a"), 1, obj(json!({"n": 2}))),
            KEEP_ALL,
        )
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(
        v2.created_at, v1.created_at,
        "created_at must survive updates"
    );
    assert!(v2.updated_at >= v1.updated_at);
    let loaded = s.get(&id("a")).await.unwrap().unwrap();
    assert_eq!(loaded, v2);
}

/// An update with a stale expected version is a `Conflict` carrying both versions.
pub async fn stale_update_conflicts(h: &Harness) {
    let s = &h.store;
    s.put(StateWrite::create(id("a"), obj(json!({"n": 1}))), KEEP_ALL)
        .await
        .unwrap();
    s.put(
        StateWrite::update(id("a"), 1, obj(json!({"n": 2}))),
        KEEP_ALL,
    )
    .await
    .unwrap();
    let err = s
        .put(
            StateWrite::update(id("a"), 1, obj(json!({"n": 99}))),
            KEEP_ALL,
        )
        .await
        .unwrap_err();
    match &err {
        Error::Conflict {
            deployment_id,
            target: tierstate_core::Target::State,
            expected: 1,
            actual: Some(2),
        } => {
            assert_eq!(deployment_id.as_str(), "a")
        }
        other => panic!("expected Conflict 1 vs 2, got {other:?}"),
    }
    assert!(err.is_conflict() && !err.is_retryable());
    let now = s.get(&id("a")).await.unwrap().unwrap();
    assert_eq!((now.version, now.state), (2, obj(json!({"n": 2}))));
}

/// An update of a missing deployment is a `Conflict` with no actual version; nothing created.
pub async fn missing_update_conflicts(h: &Harness) {
    let s = &h.store;
    let err = s
        .put(StateWrite::update(id("a"), 4, obj(json!({}))), KEEP_ALL)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                expected: 4,
                actual: None,
                ..
            }
        ),
        "got {err:?}"
    );
    assert!(s.get(&id("a")).await.unwrap().is_none());
    assert!(s.list(None, 10).await.unwrap().is_empty());
}

/// Overwrite creates version 1 or replaces whatever is stored.
pub async fn overwrite_creates_or_replaces(h: &Harness) {
    let s = &h.store;
    let v1 = s
        .put(
            StateWrite::overwrite(id("a"), obj(json!({"n": 1}))),
            KEEP_ALL,
        )
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    s.put(
        StateWrite::update(id("a"), 1, obj(json!({"n": 2}))),
        KEEP_ALL,
    )
    .await
    .unwrap();
    let v3 = s
        .put(
            StateWrite::overwrite(id("a"), obj(json!({"n": 3}))),
            KEEP_ALL,
        )
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    assert_eq!(
        s.get(&id("a")).await.unwrap().unwrap().state,
        obj(json!({"n": 3}))
    );
}

/// Delete removes the state and its whole history and says whether anything was there.
pub async fn delete_removes_state_and_history(h: &Harness) {
    let s = &h.store;
    s.put(StateWrite::create(id("a"), obj(json!({"n": 1}))), KEEP_ALL)
        .await
        .unwrap();
    s.put(
        StateWrite::update(id("a"), 1, obj(json!({"n": 2}))),
        KEEP_ALL,
    )
    .await
    .unwrap();
    s.put(StateWrite::create(id("b"), obj(json!({"n": 1}))), KEEP_ALL)
        .await
        .unwrap();
    assert!(
        s.delete(&id("a")).await.unwrap(),
        "delete of a present deployment returns true"
    );
    assert!(s.get(&id("a")).await.unwrap().is_none());
    assert!(s.history(&id("a"), 10).await.unwrap().is_empty());
    assert!(s.get_version(&id("a"), 1).await.unwrap().is_none());
    assert!(
        !s.delete(&id("a")).await.unwrap(),
        "second delete returns false"
    );
    assert!(
        s.get(&id("b")).await.unwrap().is_some(),
        "delete touched another deployment"
    );
    let again = s
        .put(StateWrite::create(id("a"), obj(json!({"n": 7}))), KEEP_ALL)
        .await
        .unwrap();
    assert_eq!(
        again.version, 1,
        "a deleted deployment starts again at version 1"
    );
}

/// History is newest first, limited, and each retained version loads by number.
pub async fn history_newest_first(h: &Harness) {
    let s = &h.store;
    s.put(StateWrite::create(id("a"), obj(json!({"n": 1}))), KEEP_ALL)
        .await
        .unwrap();
    for v in 1..5u64 {
        s.put(
            StateWrite::update(id("a"), v, obj(json!({"n": v + 1}))),
            KEEP_ALL,
        )
        .await
        .unwrap();
    }
    let all: Vec<u64> = s
        .history(&id("a"), 10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.version)
        .collect();
    assert_eq!(all, vec![5, 4, 3, 2, 1]);
    let two = s.history(&id("a"), 2).await.unwrap();
    assert_eq!(
        two.iter().map(|d| d.version).collect::<Vec<_>>(),
        vec![5, 4]
    );
    assert_eq!(two[1].state, obj(json!({"n": 4})));
    let v3 = s
        .get_version(&id("a"), 3)
        .await
        .unwrap()
        .expect("v3 retained");
    assert_eq!(v3.state, obj(json!({"n": 3})));
    assert!(s.get_version(&id("a"), 99).await.unwrap().is_none());
    assert!(s.get_version(&id("a"), 0).await.unwrap().is_none());
    assert!(s.history(&id("nobody"), 10).await.unwrap().is_empty());
}

/// Retention keeps the newest N versions, pruned by the commit itself.
pub async fn retention_prunes_in_the_same_commit(h: &Harness) {
    let s = &h.store;
    s.put(StateWrite::create(id("a"), obj(json!({"n": 1}))), keep(3))
        .await
        .unwrap();
    for v in 1..6u64 {
        s.put(
            StateWrite::update(id("a"), v, obj(json!({"n": v + 1}))),
            keep(3),
        )
        .await
        .unwrap();
    }
    let kept = versions(s, "a").await;
    assert_eq!(kept, vec![6, 5, 4]);
    assert!(
        s.get_version(&id("a"), 3).await.unwrap().is_none(),
        "v3 must be pruned"
    );
    // Keep-last-1 still keeps the current version.
    s.put(
        StateWrite::update(id("a"), 6, obj(json!({"n": 7}))),
        keep(1),
    )
    .await
    .unwrap();
    let kept = versions(s, "a").await;
    assert_eq!(kept, vec![7]);
    assert_eq!(s.get(&id("a")).await.unwrap().unwrap().version, 7);
}

/// A version retention pruned stays gone, whatever a later write keeps: a store may reclaim
/// pruned rows later than the commit that pruned them, but no read returns them again, not
/// after a write that keeps everything or more. States and documents alike.
pub async fn retention_never_brings_pruned_versions_back(h: &Harness) {
    use tierstate_core::{DocAddr, DocWrite};
    let s = &h.store;
    let a = DocAddr::new("a", "book", "positions").expect("valid address");
    let write = |v: u64, retention: Retention| {
        let n = obj(json!({ "n": v }));
        let (state, doc) = if v == 1 {
            (
                StateWrite::create(id("a"), n.clone()),
                DocWrite::new(a.clone(), PutMode::Create, n),
            )
        } else {
            (
                StateWrite::update(id("a"), v - 1, n.clone()),
                DocWrite::new(a.clone(), PutMode::Update { expected: v - 1 }, n),
            )
        };
        WriteBatch::new()
            .put(state)
            .document(doc)
            .with_retention(retention)
    };
    // 40 versions keeping 4: past more than one run of deferred reclaiming.
    for v in 1..=40 {
        s.write(write(v, keep(4))).await.unwrap();
    }
    for (v, retention) in [(41, KEEP_ALL), (42, keep(100)), (43, KEEP_ALL)] {
        s.write(write(v, retention)).await.unwrap();
    }
    let states = versions(s, "a").await;
    let docs: Vec<u64> = s
        .document_history(&a, 100)
        .await
        .unwrap()
        .iter()
        .map(|d| d.version)
        .collect();
    let kept: Vec<u64> = (37..=43).rev().collect();
    assert_eq!(states, kept, "state versions after keeping 4, then more");
    assert_eq!(docs, kept, "document versions after keeping 4, then more");
    for v in [1, 20, 32, 36] {
        assert!(
            s.get_version(&id("a"), v).await.unwrap().is_none(),
            "state v{v} was pruned"
        );
    }
    assert_eq!(
        s.get_version(&id("a"), 37)
            .await
            .unwrap()
            .map(|d| d.version),
        Some(37)
    );
}

/// 8 tasks × 200 read-modify-CAS increments on one deployment, each retry re-reading from the
/// store: the counter ends at exactly 1600 and the versions are contiguous.
pub async fn concurrent_increments_are_exact(h: &Harness) {
    const TASKS: u64 = 8;
    const EACH: u64 = 200;
    let s = h.store.clone();
    s.put(
        StateWrite::create(id("ctr"), obj(json!({"count": 0}))),
        KEEP_ALL,
    )
    .await
    .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let s: Arc<dyn StateStore> = s.clone();
        tasks.spawn(async move {
            let mut conflicts = 0u64;
            for _ in 0..EACH {
                loop {
                    let cur = s.get(&id("ctr")).await.unwrap().unwrap();
                    let n = cur.state["count"].as_u64().unwrap();
                    let next = obj(json!({"count": n + 1}));
                    match s
                        .put(StateWrite::update(id("ctr"), cur.version, next), KEEP_ALL)
                        .await
                    {
                        Ok(done) => {
                            assert_eq!(done.version, cur.version + 1);
                            break;
                        }
                        Err(Error::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("unexpected error during increments: {e}"),
                    }
                }
            }
            conflicts
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let fin = s.get(&id("ctr")).await.unwrap().unwrap();
    assert_eq!(
        fin.state["count"],
        json!(TASKS * EACH),
        "lost or doubled increments"
    );
    assert_eq!(fin.version, TASKS * EACH + 1);
    let hist = s.history(&id("ctr"), usize::MAX).await.unwrap();
    assert_eq!(
        hist.len() as u64,
        TASKS * EACH + 1,
        "history must hold every version"
    );
    for (i, d) in hist.iter().enumerate() {
        let v = TASKS * EACH + 1 - i as u64;
        assert_eq!(d.version, v, "versions not contiguous");
        assert_eq!(
            d.state["count"],
            json!(v - 1),
            "version {v} holds the wrong count"
        );
    }
}

/// 10,000 deployments are listed in id order and scanned in pages, all verified.
pub async fn ten_thousand_deployments_listed_and_scanned(h: &Harness) {
    const N: usize = 10_000;
    let s = &h.store;
    let names: Vec<String> = (0..N)
        .map(|i| format!("dep-{:05}", (i * 7919) % N))
        .collect();
    for chunk in names.chunks(1000) {
        let mut batch = WriteBatch::new();
        for n in chunk {
            batch = batch.put(StateWrite::create(id(n), obj(json!({"id": n}))));
        }
        s.commit(batch).await.unwrap();
    }
    let mut listed = Vec::new();
    let mut after: Option<DeploymentId> = None;
    loop {
        let page = s.list(after.as_ref(), 777).await.unwrap();
        let Some(last) = page.last().cloned() else {
            break;
        };
        listed.extend(page);
        after = Some(last);
    }
    let expected: Vec<String> = names
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        listed.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        expected
    );
    let mut scanned = 0;
    let mut after: Option<DeploymentId> = None;
    loop {
        let page = s.scan(after.as_ref(), 4096).await.unwrap();
        if page.is_empty() {
            break;
        }
        for r in &page {
            let d = r.as_ref().expect("scan of intact records");
            assert_eq!(d.state["id"], json!(d.deployment_id.as_str()));
        }
        scanned += page.len();
        after = Some(page.last().unwrap().as_ref().unwrap().deployment_id.clone());
    }
    assert_eq!(scanned, N);
}

/// A 1 MiB state round-trips exactly.
pub async fn one_mib_state_round_trips(h: &Harness) {
    let s = &h.store;
    let blob: String = (0..1024 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let state = obj(json!({"blob": blob, "tail": [1, 2, 3]}));
    let done = s
        .put(StateWrite::create(id("big"), state.clone()), KEEP_ALL)
        .await
        .unwrap();
    assert_eq!(done.state, state);
    assert_eq!(s.get(&id("big")).await.unwrap().unwrap().state, state);
}

/// Keys and values in any script, with escapes, round-trip and keep their checksum.
pub async fn unicode_keys_round_trip(h: &Harness) {
    let s = &h.store;
    let state = obj(json!({
        "价格": "42", "ключ": {"ü": 1, "é": 2}, "🚀": [1, "\u{1F600}"],
        "quote\"and\\slash": "tab\t", "z": null, "A": true, "\u{0001}ctl": 0
    }));
    let ident = id("ünï-策略-🚀");
    let done = s
        .put(StateWrite::create(ident.clone(), state.clone()), KEEP_ALL)
        .await
        .unwrap();
    let loaded = s.get(&ident).await.unwrap().unwrap();
    assert_eq!(loaded.state, state);
    assert_eq!(loaded.checksum, done.checksum);
    assert_eq!(s.list(None, 10).await.unwrap(), vec![ident]);
}

/// Every kind of bad input is rejected with `InvalidInput` and writes nothing.
pub async fn invalid_input_changes_nothing(h: &Harness) {
    let s = &h.store;
    for bad in ["", "line\nbreak", "nul\0", &"x".repeat(129)] {
        assert!(
            matches!(DeploymentId::new(bad), Err(Error::InvalidInput { .. })),
            "{bad:?}"
        );
    }
    for v in [json!(null), json!(3), json!("text"), json!([1, 2])] {
        let err = StateWrite::from_value(id("a"), PutMode::Create, v).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { field: "state", .. }));
    }
    let zero = s
        .put(StateWrite::update(id("a"), 0, obj(json!({}))), KEEP_ALL)
        .await
        .unwrap_err();
    assert!(matches!(zero, Error::InvalidInput { .. }), "got {zero:?}");
    let dup = WriteBatch::new()
        .put(StateWrite::create(id("a"), obj(json!({}))))
        .put(StateWrite::create(id("a"), obj(json!({}))));
    assert!(matches!(
        s.commit(dup).await.unwrap_err(),
        Error::InvalidInput { .. }
    ));
    let huge = obj(json!({"blob": "x".repeat(MAX_STATE_BYTES)}));
    let err = s
        .put(StateWrite::create(id("a"), huge), KEEP_ALL)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { field: "state", .. }),
        "got {err:?}"
    );
    assert!(
        s.list(None, 10).await.unwrap().is_empty(),
        "rejected input wrote something"
    );
}

/// A typed struct saves and loads through serde.
pub async fn typed_state_round_trips(h: &Harness) {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Strategy {
        symbol: String,
        qty: String,
        open_orders: Vec<u64>,
        paused: bool,
    }
    let s = &h.store;
    let st = Strategy {
        symbol: "BTC-PERP".into(),
        qty: "0.125".into(),
        open_orders: vec![7, 9],
        paused: false,
    };
    let w = StateWrite::typed(id("t"), PutMode::Create, &st).unwrap();
    s.put(w, KEEP_ALL).await.unwrap();
    let back: Strategy = s.get(&id("t")).await.unwrap().unwrap().to_typed().unwrap();
    assert_eq!(back, st);
    #[derive(Debug, Deserialize, serde::Serialize)]
    #[allow(dead_code)]
    struct Wrong {
        symbol: u64,
    }
    let err = s
        .get(&id("t"))
        .await
        .unwrap()
        .unwrap()
        .to_typed::<Wrong>()
        .unwrap_err();
    assert!(matches!(err, Error::Serialization { .. }));
}

/// A state nested exactly [`MAX_STATE_DEPTH`] levels saves and reads back from WARM; one level
/// more (or thousands) is `InvalidInput` and writes nothing.
pub async fn nesting_limit_is_one_rule_for_write_and_read(h: &Harness) {
    let s = &h.store;
    let deepest = nested(MAX_STATE_DEPTH);
    s.put(StateWrite::create(id("deep"), deepest.clone()), KEEP_ALL)
        .await
        .expect("a state at the depth limit saves");
    let back = s
        .get(&id("deep"))
        .await
        .unwrap()
        .expect("and loads from WARM");
    assert_eq!(back.state, deepest);
    assert_eq!(
        s.scan(None, 10).await.unwrap().len(),
        1,
        "scan reads it too"
    );
    for levels in [MAX_STATE_DEPTH + 1, 3_000] {
        let err = s
            .put(StateWrite::create(id("deeper"), nested(levels)), KEEP_ALL)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput { field: "state", .. }),
            "{levels} levels: {err:?}"
        );
    }
    assert!(s.get(&id("deeper")).await.unwrap().is_none());
}

/// Finite `f64` values from random bit patterns come back bit-exactly from WARM, and the
/// checksum of what was read equals the stored one.
pub async fn floats_round_trip_bit_exactly(h: &Harness) {
    let s = &h.store;
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut floats = Vec::new();
    while floats.len() < 4_000 {
        // xorshift64*: cheap, seeded, reproducible.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let f = f64::from_bits(x.wrapping_mul(0x2545_F491_4F6C_DD1D));
        if f.is_finite() {
            floats.push(f);
        }
    }
    floats.extend([
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        f64::MIN,
        0.1,
        1e21,
    ]);
    for (n, chunk) in floats.chunks(1_000).enumerate() {
        let state = obj(json!({ "f": chunk }));
        let dep = id(&format!("floats-{n}"));
        let done = s
            .put(StateWrite::create(dep.clone(), state), KEEP_ALL)
            .await
            .unwrap();
        let back = s.get(&dep).await.unwrap().unwrap();
        let got = back.state["f"].as_array().unwrap();
        for (want, got) in chunk.iter().zip(got) {
            let got = got.as_f64().unwrap();
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{want:e} came back as {got:e}"
            );
        }
        assert_eq!(back.checksum, done.checksum);
        assert_eq!(
            Checksum::of(&canonical_json(&back.state).unwrap()),
            back.checksum
        );
    }
}

/// A payload schema version a backend cannot store exactly is refused, never clamped.
pub async fn schema_version_out_of_range_is_refused(h: &Harness) {
    let s = &h.store;
    let top = s
        .put(
            StateWrite::create(id("a"), obj(json!({}))).with_schema_version(MAX_SCHEMA_VERSION),
            KEEP_ALL,
        )
        .await
        .unwrap();
    assert_eq!(top.schema_version, MAX_SCHEMA_VERSION);
    assert_eq!(
        s.get(&id("a")).await.unwrap().unwrap().schema_version,
        MAX_SCHEMA_VERSION
    );
    for bad in [MAX_SCHEMA_VERSION + 1, u32::MAX] {
        let err = s
            .put(
                StateWrite::update(id("a"), 1, obj(json!({"n": 1}))).with_schema_version(bad),
                KEEP_ALL,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "schema_version",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    assert_eq!(s.get(&id("a")).await.unwrap().unwrap().version, 1);
}

/// tierstate's own records (reserved ids) are stored like any other but never listed or
/// scanned, and a page of `list`/`scan` still holds `limit` callers' ids around them.
pub async fn reserved_records_are_hidden_from_listing(h: &Harness) {
    let s = &h.store;
    let own = DeploymentId::reserved("probe").unwrap();
    for name in ["_a", "__tierstate", "__tierstate0", "zz"] {
        s.put(StateWrite::create(id(name), obj(json!({}))), KEEP_ALL)
            .await
            .unwrap();
    }
    s.put(
        StateWrite::create(own.clone(), obj(json!({"internal": true}))),
        KEEP_ALL,
    )
    .await
    .unwrap();
    assert_eq!(
        s.get(&own).await.unwrap().unwrap().state["internal"],
        json!(true)
    );
    let listed: Vec<String> = s
        .list(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(listed, vec!["__tierstate", "__tierstate0", "_a", "zz"]);
    let page = s.list(Some(&id("__tierstate")), 1).await.unwrap();
    assert_eq!(
        page,
        vec![id("__tierstate0")],
        "the page skips the reserved id"
    );
    let scanned: Vec<String> = s
        .scan(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().deployment_id.to_string())
        .collect();
    assert_eq!(scanned, listed);
    let page = s.scan(Some(&id("__tierstate")), 1).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].as_ref().unwrap().deployment_id, id("__tierstate0"));
}
