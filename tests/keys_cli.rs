//! `warden keys`: create (shown once), list without secrets, revoke.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn keys_are_created_listed_and_revoked_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "read,write",
            "--json",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("wdn_"));
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["scopes"], serde_json::json!(["read", "write"]));

    let out = run(
        dir.path(),
        &["keys", "list", "--tenant", "acme", "--json"],
        "",
    );
    let listed = text(&out.stdout);
    assert!(!listed.contains(&key), "a listing shows the secret");
    let keys: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    let id = keys[0]["id"].as_str().unwrap().to_owned();

    // Another tenant sees nothing and cannot revoke it.
    let out = run(
        dir.path(),
        &["keys", "list", "--tenant", "globex", "--json"],
        "",
    );
    assert_eq!(text(&out.stdout).trim(), "[]");
    let out = run(
        dir.path(),
        &["keys", "revoke", "--tenant", "globex", &id],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no key"),
        "{}",
        text(&out.stderr)
    );

    let out = run(dir.path(), &["keys", "revoke", "--tenant", "acme", &id], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(
        dir.path(),
        &["keys", "list", "--tenant", "acme", "--json"],
        "",
    );
    let keys: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(keys[0]["revoked_at"].is_string());
}

#[test]
fn bad_scopes_and_tenants_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "read,root",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("scopes: unknown scope \"root\""),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        dir.path(),
        &["keys", "create", "--tenant", "Acme Inc", "--scopes", "read"],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("tenant:"),
        "{}",
        text(&out.stderr)
    );
}
