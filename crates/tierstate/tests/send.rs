//! The front door's futures are `Send`: a fleet opens stores and runs calls on spawned tasks.
//! A future that is not `Send` fails to compile here.

#[cfg(feature = "postgres")]
#[test]
fn building_a_postgres_manager_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let build = tierstate::StateManager::builder()
        .postgres(tierstate::PostgresConfig::new(
            "postgres://nobody@127.0.0.1:1/none",
        ))
        .build();
    assert_send(&build);
    // And it really runs on a spawned task: an unreachable server is a typed error there.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(async { tokio::spawn(build).await.unwrap() });
    assert!(
        matches!(r, Err(e) if e.is_retryable()),
        "an unreachable server is retryable"
    );
}

#[cfg(feature = "sqlite")]
#[test]
fn building_an_embedded_manager_can_be_spawned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt
        .block_on(async move {
            tokio::spawn(tierstate::StateManager::builder().sqlite(path).build())
                .await
                .unwrap()
        })
        .unwrap();
    drop(m);
}
