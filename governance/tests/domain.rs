//! The governance domain through its crate API, on SQLite and (when `WARDEN_TEST_POSTGRES_URL`
//! is set) on PostgreSQL: every statement of the store runs on both engines here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use warden_governance::{
    Begin, Decisions, Evaluate, GovError, Inscribe, Principal, Propose, RegisterAgent,
    RegisterIntent, Resolve, Scope, Store,
};
use warden_ledger::{Keyring, Ledger, LedgerOptions};
use warden_pg::testing::Fixture;
use warden_pg::{test_on_both, Pg};
use warden_policy::{LivePolicySet, PolicySet};

/// A store, a ledger and the decision operations over them, in one fixture.
struct Domain {
    f: Fixture,
    store: Arc<Store>,
    ledger: Arc<Ledger>,
    decisions: Decisions,
}

impl Domain {
    fn sqlite() -> Domain {
        Domain::on(Fixture::sqlite())
    }

    fn postgres(test: &str) -> Option<Domain> {
        Fixture::postgres(test).map(Domain::on)
    }

    fn on(f: Fixture) -> Domain {
        let (store, ledger, decisions) = open(&f, f.pg.clone());
        Domain {
            f,
            store,
            ledger,
            decisions,
        }
    }

    fn keys(&self) -> Keyring {
        Keyring::from_dir(&self.f.dir.path().join("keys")).unwrap()
    }
}

/// Opens the store and the ledger of `f` (through `pg`, a pool of its own if given: what
/// another process would have).
fn open(f: &Fixture, pg: Option<Arc<Pg>>) -> (Arc<Store>, Arc<Ledger>, Decisions) {
    let store = Arc::new(match &pg {
        Some(pg) => Store::postgres(pg.clone()).unwrap(),
        None => Store::open(f.dir.path()).unwrap(),
    });
    let ledger = Arc::new(
        Ledger::open(LedgerOptions {
            dir: f.dir.path().join("ledger"),
            postgres: pg,
            signing_key: f.dir.path().join("keys/ledger.key"),
            origin: "test.warden/domain".into(),
            batch_max: 64,
            batch_wait: Duration::ZERO,
        })
        .unwrap(),
    );
    let policies = Arc::new(LivePolicySet::new(PolicySet::with_default_pack()));
    let decisions = Decisions::new(store.clone(), ledger.clone(), policies);
    (store, ledger, decisions)
}

fn admin(tenant: &str) -> Principal {
    Principal {
        tenant: tenant.into(),
        key_id: "key_test".into(),
        scopes: vec![Scope::Admin],
        agent: None,
    }
}

/// A new intent of `p`'s tenant (created first: tenants exist before their rows do).
fn intent(d: &Domain, p: &Principal) -> String {
    d.store.ensure_tenant(&p.tenant).unwrap();
    d.decisions
        .register_intent(
            p,
            RegisterIntent {
                agency_id: "agency-1".into(),
                description: "refunds".into(),
            },
        )
        .unwrap()
        .intent_id
}

fn refund(amount: f64) -> serde_json::Value {
    json!({"amount": amount, "user_id": "usr_22"})
}

async fn propose_and_inscribe_with_forensics_and_reports(d: Domain) {
    let p = admin("acme");
    let intent_id = intent(&d, &p);
    let propose = |amount| {
        d.decisions.propose(
            &p,
            Propose {
                intent_id: intent_id.clone(),
                decision_type: "execute_refund".into(),
                payload: refund(amount),
                agent_id: "agt-7".into(),
            },
        )
    };
    let allowed = propose(50.0).unwrap();
    assert_eq!(allowed.verdict, "ALLOW");
    let blocked = propose(20_000.0).unwrap();
    assert_eq!(blocked.verdict, "BLOCK");
    let inscribe = |node: &str, verdict: &str, amount| Inscribe {
        intent_id: intent_id.clone(),
        decision_node_id: node.into(),
        verdict: verdict.into(),
        payload: refund(amount),
        agent_id: "agt-7".into(),
        agency_id: "agency-1".into(),
    };
    let wrong = d
        .decisions
        .inscribe(&p, inscribe(&allowed.decision_node_id, "ALLOW", 51.0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            wrong,
            GovError::Conflict {
                field: Some("payload"),
                ..
            }
        ),
        "{wrong}"
    );
    let done = d
        .decisions
        .inscribe(&p, inscribe(&allowed.decision_node_id, "ALLOW", 50.0))
        .await
        .unwrap();
    let again = d
        .decisions
        .inscribe(&p, inscribe(&allowed.decision_node_id, "ALLOW", 50.0))
        .await
        .unwrap_err();
    assert!(matches!(again, GovError::Conflict { .. }), "{again}");

    let f = d.decisions.forensics(&p, &done.decision_id).unwrap();
    assert_eq!(f.verdict, "ALLOW");
    assert_eq!(f.payload, refund(50.0));
    assert_eq!(f.record_hash.as_deref(), Some(done.record_hash.as_str()));
    f.receipt.unwrap().verify(&d.keys()).unwrap();
    let other = admin("globex");
    assert!(matches!(
        d.decisions.forensics(&other, &done.decision_id),
        Err(GovError::NotFound { .. })
    ));

    let summary = d.decisions.client_summary(&p, "agency-1").unwrap();
    assert_eq!(summary.total_decisions, 2);
    assert_eq!(summary.decisions_this_month, 2);
    assert_eq!(summary.false_winners_caught, 1);
    assert_eq!(
        summary
            .recent_decisions
            .iter()
            .filter(|r| r.record_hash.is_some())
            .count(),
        1,
        "one of the two is inscribed"
    );
    let eff = d.decisions.efficiency(&p, "agency-1", 30).unwrap();
    assert_eq!(eff.total_decisions_scored, 2);
    assert!(matches!(
        d.decisions.efficiency(&p, "agency-1", 0),
        Err(GovError::Invalid {
            field: "period",
            ..
        })
    ));
    d.ledger.shutdown().await;
}
test_on_both!(async Domain, propose_and_inscribe_with_forensics_and_reports);

async fn escalations_wait_and_resolve_once(d: Domain) {
    let p = admin("acme");
    let intent_id = intent(&d, &p);
    let proposal = d
        .decisions
        .propose(
            &p,
            Propose {
                intent_id: intent_id.clone(),
                decision_type: "execute_refund".into(),
                payload: refund(1250.0),
                agent_id: "agt-7".into(),
            },
        )
        .unwrap();
    assert_eq!(proposal.verdict, "ESCALATE");
    let thread = proposal.escalation_thread_id.unwrap();
    let open = d.decisions.list_escalations(&p, Some("open")).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].reason_codes, vec!["AMOUNT_OVER_THRESHOLD"]);
    assert_eq!(d.decisions.open_escalations().unwrap(), 1);
    // The decision and its escalation were announced in the same transactions.
    let announced = d
        .decisions
        .events()
        .list(&p, warden_governance::EventQuery::default())
        .unwrap();
    let types: Vec<&str> = announced
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert!(
        types.contains(&"escalation.opened") && types.contains(&"decision.made"),
        "{types:?}"
    );
    assert!(matches!(
        d.decisions.list_escalations(&p, Some("maybe")),
        Err(GovError::Invalid {
            field: "status",
            ..
        })
    ));
    let short = d
        .decisions
        .wait_escalation(&p, &thread, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(short.status, "OPEN");

    let started = Instant::now();
    let (waited, resolved) = tokio::join!(
        d.decisions
            .wait_escalation(&p, &thread, Duration::from_secs(30)),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            d.decisions
                .resolve_escalation(
                    &p,
                    &thread,
                    Resolve {
                        resolution: "approve".into(),
                        resolved_by: "reviewer@example.com".into(),
                        notes: Some("checked".into()),
                    },
                )
                .await
        }
    );
    assert_eq!(resolved.unwrap().resolution, "APPROVE");
    let waited = waited.unwrap();
    assert_eq!(waited.status, "APPROVE");
    assert_eq!(waited.notes.as_deref(), Some("checked"));
    assert!(started.elapsed() < Duration::from_secs(10));
    let twice = d
        .decisions
        .resolve_escalation(
            &p,
            &thread,
            Resolve {
                resolution: "REJECT".into(),
                resolved_by: "someone".into(),
                notes: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(twice, GovError::Conflict { .. }), "{twice}");
    let inscribed = d
        .decisions
        .inscribe(
            &p,
            Inscribe {
                intent_id,
                decision_node_id: proposal.decision_node_id,
                verdict: "ESCALATE".into(),
                payload: refund(1250.0),
                agent_id: "agt-7".into(),
                agency_id: "agency-1".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(inscribed.resolution.as_deref(), Some("APPROVE"));
    assert!(d
        .decisions
        .list_escalations(&p, Some("OPEN"))
        .unwrap()
        .is_empty());
    d.ledger.shutdown().await;
}
test_on_both!(async Domain, escalations_wait_and_resolve_once);

async fn agents_evaluations_lineage_and_call_intents(d: Domain) {
    let p = admin("acme");
    d.store.ensure_tenant(&p.tenant).unwrap();
    let registered = d
        .decisions
        .register_agent(
            &p,
            RegisterAgent {
                name: "refunder".into(),
                description: Some("pays back".into()),
                model: "gpt-4o".into(),
                temperature: Some(0.2),
                tools: vec!["refund".into()],
                owner: None,
            },
        )
        .await
        .unwrap();
    let dup = d
        .decisions
        .register_agent(
            &p,
            RegisterAgent {
                name: "refunder".into(),
                description: None,
                model: "gpt-4o".into(),
                temperature: None,
                tools: vec![],
                owner: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            dup,
            GovError::Conflict {
                field: Some("name"),
                ..
            }
        ),
        "{dup}"
    );
    let agent = d.decisions.agent(&p, &registered.agent_id).unwrap();
    assert_eq!(agent.tools, vec!["refund"]);
    assert_eq!(agent.default_intent_id, registered.default_intent_id);
    d.decisions
        .check_intent(&p, &registered.default_intent_id)
        .unwrap();
    assert!(matches!(
        d.decisions
            .check_intent(&admin("globex"), &registered.default_intent_id),
        Err(GovError::NotFound { .. })
    ));

    let evaluated = d
        .decisions
        .evaluate(
            &p,
            Evaluate {
                agent_id: registered.agent_id.clone(),
                action: "execute_refund".into(),
                context: refund(1250.0),
            },
        )
        .await
        .unwrap();
    assert_eq!(evaluated.decision, "require_approval");
    assert!(evaluated.escalation_thread_id.is_some());
    let lineage = d.decisions.lineage(&p, &evaluated.decision_id).unwrap();
    assert!(lineage.anchored);
    lineage.receipt.verify(&d.keys()).unwrap();

    let first = d
        .decisions
        .ensure_agent_intent("acme", "agt-9", Some("chat"))
        .unwrap();
    let second = d
        .decisions
        .ensure_agent_intent("acme", "agt-9", Some("chat"))
        .unwrap();
    assert_eq!(first, second, "ensure_agent_intent is idempotent");
    d.ledger.shutdown().await;
}
test_on_both!(async Domain, agents_evaluations_lineage_and_call_intents);

fn idempotency_keys_replay_refuse_and_release(d: Domain) {
    let s = &d.store;
    assert_eq!(
        s.idempotency_begin("wdn_a", "k1", "h1").unwrap(),
        Begin::New
    );
    assert_eq!(
        s.idempotency_begin("wdn_a", "k1", "h1").unwrap(),
        Begin::InProgress
    );
    assert_eq!(
        s.idempotency_begin("wdn_a", "k1", "h2").unwrap(),
        Begin::Mismatch
    );
    s.idempotency_finish("wdn_a", "k1", 201, b"{\"ok\":true}")
        .unwrap();
    assert_eq!(
        s.idempotency_begin("wdn_a", "k1", "h1").unwrap(),
        Begin::Replay {
            status: 201,
            body: b"{\"ok\":true}".to_vec()
        }
    );
    // Another API key's idempotency keys are its own.
    assert_eq!(
        s.idempotency_begin("wdn_b", "k1", "h9").unwrap(),
        Begin::New
    );
    s.idempotency_release("wdn_b", "k1").unwrap();
    assert_eq!(
        s.idempotency_begin("wdn_b", "k1", "h9").unwrap(),
        Begin::New
    );
    s.ping().unwrap();
    d.ledger.shutdown_blocking();
}
test_on_both!(sync Domain, idempotency_keys_replay_refuse_and_release);

/// Two processes' worth of stores on one database: a thread resolved through one wakes a
/// waiter held by the other (LISTEN/NOTIFY), long before its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_resolution_on_one_replica_wakes_a_waiter_on_another() {
    let Some(d) = Domain::postgres("postgres_resolution_on_one_replica_wakes_a_waiter_on_another")
    else {
        return;
    };
    let url = d.f.db.as_ref().unwrap().url.clone();
    let (_, other_ledger, other) = open(&d.f, Some(Pg::connect(&url).unwrap()));
    let p = admin("acme");
    let intent_id = intent(&d, &p);
    let thread = d
        .decisions
        .propose(
            &p,
            Propose {
                intent_id,
                decision_type: "execute_refund".into(),
                payload: refund(1250.0),
                agent_id: "agt-7".into(),
            },
        )
        .unwrap()
        .escalation_thread_id
        .unwrap();
    // Give the other replica's listener time to connect.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let (waited, resolved) = tokio::join!(
        d.decisions
            .wait_escalation(&p, &thread, Duration::from_secs(30)),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            other
                .resolve_escalation(
                    &p,
                    &thread,
                    Resolve {
                        resolution: "REJECT".into(),
                        resolved_by: "reviewer".into(),
                        notes: None,
                    },
                )
                .await
        }
    );
    resolved.unwrap();
    assert_eq!(waited.unwrap().status, "REJECT");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by the notification, not the 30 s deadline ({:?})",
        started.elapsed()
    );
    other_ledger.shutdown().await;
    d.ledger.shutdown().await;
}
