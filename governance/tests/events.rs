//! Governance events, webhook deliveries and Gloxi conversations through the crate API, on
//! SQLite and (when `WARDEN_TEST_POSTGRES_URL` is set) on PostgreSQL, where several processes
//! share one store: every statement of these modules runs on both engines here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use warden_governance::gloxi::{Ask, Gloxi};
use warden_governance::{
    Dispatcher, DispatcherOptions, EventQuery, Events, GovError, NewEvent, Principal, PublishEvent,
    RegisterWebhook, Replay, Scope, Store, TargetPolicy, WebhookSecrets, Webhooks,
};
use warden_pg::testing::Fixture;
use warden_pg::{test_on_both, Pg};

/// A store with its event stream and webhooks.
struct Hub {
    f: Fixture,
    store: Arc<Store>,
    events: Arc<Events>,
}

impl Hub {
    fn sqlite() -> Hub {
        Hub::on(Fixture::sqlite())
    }

    fn postgres(test: &str) -> Option<Hub> {
        Fixture::postgres(test).map(Hub::on)
    }

    fn on(f: Fixture) -> Hub {
        let store = Arc::new(open(&f, f.pg.clone()));
        for t in ["acme", "globex"] {
            store.ensure_tenant(t).unwrap();
        }
        Hub {
            events: Arc::new(Events::new(store.clone())),
            store,
            f,
        }
    }

    /// The same store as another process would open it: a pool of its own.
    fn replica(&self) -> (Arc<Store>, Arc<Events>) {
        let pg = self.f.db.as_ref().map(|db| Pg::connect(&db.url).unwrap());
        let store = Arc::new(open(&self.f, pg));
        (store.clone(), Arc::new(Events::new(store)))
    }
}

fn open(f: &Fixture, pg: Option<Arc<Pg>>) -> Store {
    match pg {
        Some(pg) => Store::postgres(pg).unwrap(),
        None => Store::open(f.dir.path()).unwrap(),
    }
}

fn principal(tenant: &str, scope: Scope) -> Principal {
    Principal {
        tenant: tenant.into(),
        key_id: "key_test".into(),
        scopes: vec![scope],
        agent: None,
    }
}

fn publish(source: &str, key: Option<&str>) -> PublishEvent {
    PublishEvent {
        event_type: "risk_score.changed".into(),
        source_table: "agents".into(),
        source_id: source.into(),
        trigger_reason: "recomputed".into(),
        payload: json!({"drivers": ["pii"]}),
        score_before: Some(40.5),
        score_after: Some(71.25),
        idempotency_key: key.map(str::to_owned),
    }
}

fn query(event_type: Option<&str>, limit: Option<&str>, cursor: Option<String>) -> EventQuery {
    EventQuery {
        event_type: event_type.map(str::to_owned),
        limit: limit.map(str::to_owned),
        cursor,
        ..EventQuery::default()
    }
}

fn publish_page_and_isolate(h: Hub) {
    let writer = principal("acme", Scope::Write);
    let reader = principal("acme", Scope::Read);
    let first = h
        .events
        .publish(&writer, publish("agt-1", Some("k1")))
        .unwrap();
    assert!(first.created);
    assert_eq!(first.event.score_after, Some(71.25));
    let again = h
        .events
        .publish(&writer, publish("agt-1", Some("k1")))
        .unwrap();
    assert!(
        !again.created,
        "the same idempotency key gives the first event"
    );
    assert_eq!(again.event, first.event);
    for i in 2..=5 {
        h.events
            .publish(&writer, publish(&format!("agt-{i}"), None))
            .unwrap();
    }
    h.events
        .emit(
            "*",
            NewEvent::of("ledger.checkpoint", "ledger", "9", "tree size 9", json!({})),
        )
        .unwrap();
    h.events
        .publish(
            &principal("globex", Scope::Write),
            publish("globex-only", None),
        )
        .unwrap();

    // Newest first, two per page, by cursor: every event of the tenant (and the public one)
    // once, none of the other tenant's.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = h
            .events
            .list(&reader, query(None, Some("2"), cursor.take()))
            .unwrap();
        seen.extend(page.events.iter().map(|e| e.source_id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["9", "agt-5", "agt-4", "agt-3", "agt-2", "agt-1"]);
    let only = h
        .events
        .list(&reader, query(Some("ledger.checkpoint"), None, None))
        .unwrap();
    assert_eq!(only.count, 1);
    let by_source = h
        .events
        .list(
            &reader,
            EventQuery {
                finding_id: Some("agt-3".into()),
                ..EventQuery::default()
            },
        )
        .unwrap();
    assert_eq!(by_source.events.len(), 1);
    assert_eq!(by_source.events[0].payload, json!({"drivers": ["pii"]}));

    let bad = h
        .events
        .list(&reader, query(None, None, Some("c-1".into())))
        .unwrap_err();
    assert!(
        matches!(
            bad,
            GovError::Invalid {
                field: "cursor",
                ..
            }
        ),
        "{bad:?}"
    );
    let forged = h
        .events
        .publish(
            &writer,
            PublishEvent {
                event_type: "decision.made".into(),
                ..publish("x", None)
            },
        )
        .unwrap_err();
    assert!(matches!(
        forged,
        GovError::Invalid {
            field: "event_type",
            ..
        }
    ));
}
test_on_both!(sync Hub, publish_page_and_isolate);

/// Two writers (two processes on PostgreSQL) adding events at once: every event is listed
/// once, in an order that paging by cursor walks without skipping any.
async fn concurrent_writers_page_without_gaps(h: Hub) {
    let (_, other) = h.replica();
    let mut tasks = Vec::new();
    for (w, events) in [(0, h.events.clone()), (1, other)] {
        tasks.push(tokio::task::spawn_blocking(move || {
            let p = principal("acme", Scope::Write);
            for i in 0..40 {
                events
                    .publish(&p, publish(&format!("w{w}-{i}"), None))
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let reader = principal("acme", Scope::Read);
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = h
            .events
            .list(&reader, query(None, Some("7"), cursor.take()))
            .unwrap();
        seen.extend(page.events.into_iter().map(|e| e.source_id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 80, "{seen:?}");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 80);
    // Each writer's events appear newest first, in the order it wrote them.
    for w in 0..2 {
        let mine: Vec<&String> = seen
            .iter()
            .filter(|s| s.starts_with(&format!("w{w}-")))
            .collect();
        let expected: Vec<String> = (0..40).rev().map(|i| format!("w{w}-{i}")).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>());
    }
}
test_on_both!(async Hub, concurrent_writers_page_without_gaps);

/// What a webhook receiver got: delivery ids (the `webhook-id` header) and a status to answer.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<String>>>,
    status: Arc<Mutex<u16>>,
}

async fn receiver() -> (SocketAddr, Receiver) {
    let r = Receiver::default();
    *r.status.lock().unwrap() = 204;
    let state = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let state = state.clone();
            async move {
                let id = headers["webhook-id"].to_str().unwrap().to_owned();
                state.got.lock().unwrap().push(id);
                axum::http::StatusCode::from_u16(*state.status.lock().unwrap()).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, r)
}

fn secrets() -> WebhookSecrets {
    let mut s = WebhookSecrets::default();
    s.insert("main", "a test secret of at least 32 bytes")
        .unwrap();
    s
}

/// The webhooks of `h`, allowed to send to the receiver at `addr`.
fn webhooks(h: &Hub, addr: SocketAddr) -> Webhooks {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Webhooks::new(
        h.store.clone(),
        h.events.clone(),
        secrets(),
        TargetPolicy::new(vec![addr.to_string()]),
    )
}

fn dispatcher(store: &Arc<Store>, events: &Arc<Events>, addr: SocketAddr) -> Arc<Dispatcher> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Dispatcher::new(
        store.clone(),
        events.clone(),
        secrets(),
        TargetPolicy::new(vec![addr.to_string()]),
        DispatcherOptions {
            timeout: Duration::from_secs(5),
            max_attempts: 2,
            retry_base: Duration::from_millis(20),
            retry_max: Duration::from_millis(50),
            endpoint_concurrency: 4,
        },
    )
    .unwrap()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn webhooks_deliver_dead_letter_and_replay(h: Hub) {
    let (addr, rx) = receiver().await;
    let hooks = webhooks(&h, addr);
    let admin = principal("acme", Scope::Admin);
    let hook = hooks
        .register(
            &admin,
            RegisterWebhook {
                target_url: format!("http://{addr}/hook"),
                event_types: vec!["risk_score.changed".into()],
                hmac_secret_alias: "main".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(hooks.list(&admin).unwrap(), std::slice::from_ref(&hook));
    assert!(hooks
        .list(&principal("globex", Scope::Admin))
        .unwrap()
        .is_empty());

    let writer = principal("acme", Scope::Write);
    h.events.publish(&writer, publish("agt-1", None)).unwrap();
    h.events
        .publish(
            &writer,
            PublishEvent {
                event_type: "assessment.completed".into(),
                ..publish("not-subscribed", None)
            },
        )
        .unwrap();
    assert_eq!(hooks.queue_depths().unwrap().pending, 1);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = dispatcher(&h.store, &h.events, addr).spawn(stop_rx);
    wait_until("the first delivery", || rx.got.lock().unwrap().len() == 1).await;
    wait_until("the delivery marked", || {
        hooks.queue_depths().unwrap().pending == 0
    })
    .await;

    // A failing receiver: two attempts, then a dead letter.
    *rx.status.lock().unwrap() = 500;
    h.events.publish(&writer, publish("agt-2", None)).unwrap();
    wait_until("the dead letter", || {
        hooks.queue_depths().unwrap().dead == 1
    })
    .await;
    let dead = hooks.dead_letters(&admin).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(dead[0].last_status, Some(500));
    assert_eq!(dead[0].event.source_id, "agt-2");
    assert!(hooks
        .dead_letters(&principal("globex", Scope::Admin))
        .unwrap()
        .is_empty());

    // Replaying an unknown id changes nothing; replaying the real one delivers it, under the
    // same webhook-id.
    let err = hooks
        .replay(
            &admin,
            Replay {
                delivery_ids: vec![dead[0].delivery_id.clone(), "msg_nope".into()],
            },
        )
        .unwrap_err();
    assert!(matches!(err, GovError::NotFound { .. }), "{err:?}");
    assert_eq!(hooks.queue_depths().unwrap().dead, 1, "all or nothing");
    *rx.status.lock().unwrap() = 204;
    let replayed = hooks.replay(&admin, Replay::default()).unwrap();
    assert_eq!(replayed.replayed, 1);
    wait_until("the replayed delivery", || {
        hooks.queue_depths().unwrap()
            == warden_governance::QueueDepths {
                pending: 0,
                dead: 0,
            }
    })
    .await;
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.last(), Some(&dead[0].delivery_id));

    hooks.delete(&admin, &hook.id).unwrap();
    assert!(hooks.list(&admin).unwrap().is_empty());
    let err = hooks.delete(&admin, &hook.id).unwrap_err();
    assert!(matches!(err, GovError::NotFound { .. }));
    let _ = stop_tx.send(true);
    let _ = task.await;
}
test_on_both!(async Hub, webhooks_deliver_dead_letter_and_replay);

/// Two dispatchers on one store (two processes of a fleet): each delivery is sent once.
async fn dispatchers_sharing_a_store_send_each_delivery_once(h: Hub) {
    let (addr, rx) = receiver().await;
    let hooks = webhooks(&h, addr);
    hooks
        .register(
            &principal("acme", Scope::Admin),
            RegisterWebhook {
                target_url: format!("http://{addr}/hook"),
                event_types: vec![],
                hmac_secret_alias: "main".into(),
            },
        )
        .await
        .unwrap();
    let writer = principal("acme", Scope::Write);
    let n = 120;
    for i in 0..n {
        h.events
            .publish(&writer, publish(&format!("agt-{i}"), None))
            .unwrap();
    }
    let (store2, events2) = h.replica();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let a = dispatcher(&h.store, &h.events, addr).spawn(stop_rx.clone());
    let b = dispatcher(&store2, &events2, addr).spawn(stop_rx);
    wait_until("every delivery", || rx.got.lock().unwrap().len() >= n).await;
    wait_until("every delivery marked", || {
        hooks.queue_depths().unwrap().pending == 0
    })
    .await;
    // Long enough for a second dispatcher's duplicate to arrive, if there were one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rx.got.lock().unwrap().clone();
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for id in &got {
        *counts.entry(id).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(repeated.is_empty(), "sent more than once: {repeated:?}");
    assert_eq!(got.len(), n);
    let _ = stop_tx.send(true);
    let _ = (a.await, b.await);
}
test_on_both!(async Hub, dispatchers_sharing_a_store_send_each_delivery_once);

/// A Gloxi conversation started through one store is continued through another (another
/// replica on PostgreSQL), and stays its tenant's.
async fn gloxi_conversations_continue_and_stay_in_their_tenant(h: Hub) {
    let (store2, _) = h.replica();
    let config = warden_guardians::GuardianConfig::default();
    let one = Gloxi::with_lazy_guardians(h.store.clone(), config.clone());
    let two = Gloxi::with_lazy_guardians(store2, config);
    let reader = principal("acme", Scope::Read);
    let ask = |query: &str, conversation_id: Option<String>| Ask {
        query: query.into(),
        context: None,
        // Given with the first question only: a follow-up inherits it.
        jurisdiction: conversation_id.is_none().then(|| "eu".to_owned()),
        conversation_id,
        stream: None,
    };
    let prepared = one
        .prepare(&reader, ask("What is a high-risk AI system?", None))
        .await
        .unwrap();
    let first = one.answer(prepared, None).await.unwrap();
    let prepared = two
        .prepare(
            &reader,
            ask("And from when?", Some(first.conversation_id.clone())),
        )
        .await
        .unwrap();
    let second = two.answer(prepared, None).await.unwrap();
    assert_eq!(second.conversation_id, first.conversation_id);
    assert_eq!(
        second.jurisdiction, "eu",
        "the conversation's jurisdiction applies"
    );
    let err = two
        .prepare(
            &principal("globex", Scope::Read),
            ask("And then?", Some(first.conversation_id.clone())),
        )
        .await
        .err()
        .expect("another tenant's conversation is not found");
    assert!(
        matches!(err, warden_governance::gloxi::GloxiError::NotFound(_)),
        "{err:?}"
    );
}
test_on_both!(async Hub, gloxi_conversations_continue_and_stay_in_their_tenant);
