//! Tenants and API keys through the store's public API, on SQLite and (when
//! `WARDEN_TEST_POSTGRES_URL` is set) on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use warden_governance::{parse_scopes, AuthError, KeyCache, Scope, Store, StoreError};
use warden_pg::test_on_both;
use warden_pg::testing::Fixture;

/// What the tests need of a test's fixture (a directory, and a schema on PostgreSQL).
trait Backend {
    fn open(&self) -> Store;
    fn stored(&self) -> Vec<Vec<u8>>;
}

impl Backend for Fixture {
    fn open(&self) -> Store {
        match &self.pg {
            Some(pg) => Store::postgres(pg.clone()).unwrap(),
            None => Store::open(self.dir.path()).unwrap(),
        }
    }

    /// Everything the store has written, as bytes to search.
    fn stored(&self) -> Vec<Vec<u8>> {
        match &self.pg {
            Some(pg) => pg
                .blocking(|c| async move {
                    let rows = c
                        .query("SELECT row_to_json(k)::text FROM api_keys k", &[])
                        .await?;
                    Ok(rows
                        .iter()
                        .map(|r| r.get::<_, String>(0).into_bytes())
                        .collect())
                })
                .unwrap(),
            None => ["warden.db", "warden.db-wal"]
                .iter()
                .map(|f| std::fs::read(self.dir.path().join(f)).unwrap_or_default())
                .collect(),
        }
    }
}

fn a_key_is_shown_once_stored_hashed_and_authenticates(b: Fixture) {
    let store = b.open();
    store.ensure_tenant("acme").unwrap();
    let created = store
        .create_key("acme", &parse_scopes("write,read").unwrap(), Some("ci"))
        .unwrap();
    assert!(created.key.starts_with("wdn_") && created.key.len() > 40);
    assert_eq!(created.scopes, vec![Scope::Read, Scope::Write]);

    let who = store.authenticate(&created.key).unwrap();
    assert_eq!(who.tenant, "acme");
    assert_eq!(who.key_id, created.id);
    assert!(who.allows(&Scope::Read) && who.allows(&Scope::Write));
    assert!(!who.allows(&Scope::Admin) && !who.allows(&Scope::Auditor));

    // The secret is nowhere in the database.
    drop(store);
    let stored = b.stored();
    assert!(stored.iter().any(|f| !f.is_empty()));
    for file in &stored {
        assert!(
            !file
                .windows(created.key.len())
                .any(|w| w == created.key.as_bytes()),
            "the plaintext key was stored"
        );
    }
}
test_on_both!(sync Fixture, a_key_is_shown_once_stored_hashed_and_authenticates);

fn unknown_malformed_and_revoked_keys_are_refused(b: Fixture) {
    let store = b.open();
    store.ensure_tenant("acme").unwrap();
    let k = store.create_key("acme", &[Scope::Read], None).unwrap();
    assert!(matches!(
        store.authenticate("sk-not-ours"),
        Err(AuthError::Malformed)
    ));
    assert!(matches!(
        store.authenticate("wdn_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        Err(AuthError::Unknown)
    ));
    store.revoke_key("acme", &k.id).unwrap();
    match store.authenticate(&k.key) {
        Err(AuthError::Revoked { key_id }) => assert_eq!(key_id, k.id),
        other => panic!("expected revoked, got {other:?}"),
    }
    // Messages never echo the key.
    let msg = store.authenticate(&k.key).unwrap_err().to_string();
    assert!(!msg.contains(&k.key), "{msg}");
}
test_on_both!(sync Fixture, unknown_malformed_and_revoked_keys_are_refused);

fn tenants_are_isolated(b: Fixture) {
    let store = b.open();
    store.ensure_tenant("acme").unwrap();
    store.ensure_tenant("globex").unwrap();
    let a = store.create_key("acme", &[Scope::Admin], None).unwrap();
    let g = store.create_key("globex", &[Scope::Admin], None).unwrap();
    let listed: Vec<String> = store
        .list_keys("acme")
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, vec![a.id.clone()]);
    // Revoking another tenant's key is "not found", and leaves it working.
    assert!(matches!(
        store.revoke_key("acme", &g.id),
        Err(StoreError::KeyNotFound { .. })
    ));
    assert_eq!(store.authenticate(&g.key).unwrap().tenant, "globex");
}
test_on_both!(sync Fixture, tenants_are_isolated);

fn bad_input_is_refused_with_the_field_named(b: Fixture) {
    let store = b.open();
    let err = store.ensure_tenant("Acme Corp").unwrap_err().to_string();
    assert!(err.starts_with("tenant:"), "{err}");
    let err = store
        .create_key("nobody", &[Scope::Read], None)
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownTenant(_)), "{err}");
    store.ensure_tenant("acme").unwrap();
    let err = store.create_key("acme", &[], None).unwrap_err().to_string();
    assert!(err.starts_with("scopes:"), "{err}");
    let err = store
        .create_key("acme", &[Scope::Read], Some("a\nb"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("label:"), "{err}");
}
test_on_both!(sync Fixture, bad_input_is_refused_with_the_field_named);

fn bootstrap_creates_one_admin_key_once_and_the_store_reopens(b: Fixture) {
    let first = b.open().bootstrap().unwrap().unwrap();
    assert_eq!(first.tenant, "default");
    assert_eq!(first.scopes, vec![Scope::Admin]);
    let store = b.open();
    assert!(
        store.bootstrap().unwrap().is_none(),
        "a second start shows no key"
    );
    assert!(store
        .authenticate(&first.key)
        .unwrap()
        .allows(&Scope::Write));
}
test_on_both!(sync Fixture, bootstrap_creates_one_admin_key_once_and_the_store_reopens);

/// The cache in front of the store: a key found is trusted for the TTL (so a revocation takes
/// up to that long), a key not found is asked again every time (so a new key works at once).
fn the_key_cache_trusts_a_key_for_its_ttl_only(b: Fixture) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(b.open());
    store.ensure_tenant("acme").unwrap();
    let ttl = Duration::from_millis(300);
    let cache = KeyCache::with_ttl(store.clone(), ttl);
    rt.block_on(async {
        let k = store
            .create_key("acme", &parse_scopes("mcp").unwrap(), None)
            .unwrap();
        assert_eq!(cache.authenticate(&k.key).await.unwrap().key_id, k.id);
        assert!(matches!(
            cache
                .authenticate("wdn_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
                .await,
            Err(AuthError::Unknown)
        ));
        assert!(matches!(
            cache.authenticate("sk-not-ours").await,
            Err(AuthError::Malformed)
        ));

        store.revoke_key("acme", &k.id).unwrap();
        let revoked_at = std::time::Instant::now();
        // Within the TTL the cached answer stands; after it, the store's.
        assert!(cache.authenticate(&k.key).await.is_ok());
        loop {
            match cache.authenticate(&k.key).await {
                Err(AuthError::Revoked { key_id }) => {
                    assert_eq!(key_id, k.id);
                    break;
                }
                Ok(_) => {
                    assert!(revoked_at.elapsed() < ttl + Duration::from_secs(2));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }

        // A key created after a failed lookup of it is not remembered as unknown.
        let fresh = store
            .create_key("acme", &parse_scopes("read").unwrap(), None)
            .unwrap();
        assert!(cache.authenticate(&fresh.key).await.is_ok());
    });
}
test_on_both!(sync Fixture, the_key_cache_trusts_a_key_for_its_ttl_only);
