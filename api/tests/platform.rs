//! The platform layer the capabilities share, on SQLite and PostgreSQL: the outbox dispatcher,
//! the outbound queue, the scheduler and the inbound webhook store. "Two nodes" are two
//! instances over one database, each with its own pool, as two Vizit processes would be.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sqlx::AnyConnection;
use vizit_api::platform::inbound::{InboundStore, NewEvent, Stored};
use vizit_api::platform::outbound::{Call, Executor, NewCall, Outbound, Outcome, enqueue};
use vizit_api::platform::outbox::{Event, Outbox, OutboxSettings, Subscriber};
use vizit_api::platform::scheduler::{Due, Job, Scheduler};
use vizit_api::platform::{BoxFuture, Clock, Db};
use vizit_api::{Backend, DbError};

/// A fresh database and a second connection pool to it (the "other node").
struct TwoNodes {
    a: Db,
    b: Db,
    _cleanup: common::Cleanup,
}

async fn fresh(backend: Backend) -> TwoNodes {
    let (url, cleanup) = common::database(backend).await;
    let a = Db::connect(&url, 8).await.expect("connects and migrates");
    let b: Result<Db, DbError> = Db::connect(&url, 8).await;
    TwoNodes {
        a,
        b: b.expect("a second pool"),
        _cleanup: cleanup,
    }
}

const T0: i64 = 1_800_000_000_000;

// ---- outbox ---------------------------------------------------------------------------------

/// Records what it was handed, in order; fails the events named in `fail` as many times as
/// given; `hang` makes it hang (after recording) on the first hand-over of that event.
#[derive(Default)]
struct Recorder {
    name: &'static str,
    seen: Mutex<Vec<(String, i64)>>,
    fail: Mutex<HashMap<i64, usize>>,
    hang: Mutex<Option<i64>>,
}

impl Recorder {
    fn new(name: &'static str) -> Arc<Recorder> {
        Arc::new(Recorder {
            name,
            ..Default::default()
        })
    }

    fn seen(&self) -> Vec<(String, i64)> {
        self.seen.lock().unwrap().clone()
    }

    /// Event ids per consultation, in the order handled successfully or not.
    fn per_consultation(&self) -> HashMap<String, Vec<i64>> {
        let mut out: HashMap<String, Vec<i64>> = HashMap::new();
        for (c, id) in self.seen() {
            out.entry(c).or_default().push(id);
        }
        out
    }
}

/// A subscriber whose record lives outside the transaction (so a rolled-back delivery is
/// still seen to have happened, as a side effect would be).
struct Sub(Arc<Recorder>);

impl Subscriber for Sub {
    fn name(&self) -> &'static str {
        self.0.name
    }

    fn wants(&self, kind: &str) -> bool {
        kind.starts_with("test.")
    }

    fn handle<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            // Something written in the delivery's transaction, as a real subscriber does.
            sqlx::query("SELECT COUNT(*) FROM outbox_deliveries")
                .fetch_one(&mut *conn)
                .await?;
            self.0
                .seen
                .lock()
                .unwrap()
                .push((event.consultation_id.clone().unwrap_or_default(), event.id));
            let hang = *self.0.hang.lock().unwrap() == Some(event.id);
            if hang {
                *self.0.hang.lock().unwrap() = None;
                std::future::pending::<()>().await;
            }
            let mut fail = self.0.fail.lock().unwrap();
            if let Some(n) = fail.get_mut(&event.id)
                && *n > 0
            {
                *n -= 1;
                anyhow::bail!("subscriber down for event {}", event.id);
            }
            Ok(())
        })
    }
}

fn outbox(db: &Db, clock: &Clock) -> Arc<Outbox> {
    Arc::new(Outbox::new(
        db.clone(),
        clock.clone(),
        OutboxSettings::default(),
    ))
}

async fn emit(outbox: &Outbox, db: &Db, consultation: &str, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mut tx = db.begin_write().await.unwrap();
        ids.push(
            outbox
                .emit(
                    &mut tx,
                    "test.happened",
                    Some(consultation),
                    json!({"i": i}),
                )
                .await
                .unwrap(),
        );
        tx.commit().await.unwrap();
    }
    ids
}

async fn a_failing_subscriber_is_retried_and_never_skips(backend: Backend) {
    let nodes = fresh(backend).await;
    let clock = Clock::manual(T0);
    let outbox = outbox(&nodes.a, &clock);
    let rec = Recorder::new("flaky");
    outbox.subscribe(Arc::new(Sub(rec.clone()))).unwrap();
    let x = emit(&outbox, &nodes.a, "consultation-x", 5).await;
    let y = emit(&outbox, &nodes.a, "consultation-y", 3).await;
    rec.fail.lock().unwrap().insert(x[1], 2);

    // X stops at its second event; Y is not held up by X.
    outbox.dispatch_due().await.unwrap();
    let got = rec.per_consultation();
    assert_eq!(got["consultation-x"], vec![x[0], x[1]]);
    assert_eq!(got["consultation-y"], y);
    // Nothing more before the backoff is over; the failure is kept for a person.
    outbox.dispatch_due().await.unwrap();
    assert_eq!(rec.per_consultation()["consultation-x"], vec![x[0], x[1]]);
    let (attempts, error): (i64, Option<String>) =
        sqlx::query_as("SELECT attempts, last_error FROM outbox_deliveries WHERE event_id = $1")
            .bind(x[1])
            .fetch_one(&nodes.a.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1);
    assert!(error.unwrap().contains("subscriber down"));
    // Fails once more after the backoff, then succeeds: every later event follows, in order.
    clock.advance(60_000);
    outbox.dispatch_due().await.unwrap();
    clock.advance(60_000);
    outbox.dispatch_due().await.unwrap();
    assert_eq!(
        rec.per_consultation()["consultation-x"],
        vec![x[0], x[1], x[1], x[1], x[2], x[3], x[4]],
        "the failed event again and again, then the rest in order, none skipped"
    );
    let pending: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM outbox_deliveries WHERE status = 'pending'")
            .fetch_one(&nodes.a.pool)
            .await
            .unwrap();
    assert_eq!(pending.0, 0);
}
on_both_databases!(
    outbox_retries_a_failing_subscriber_and_never_skips,
    super::a_failing_subscriber_is_retried_and_never_skips
);

async fn a_restart_between_delivery_and_ack_redelivers(backend: Backend) {
    let nodes = fresh(backend).await;
    let clock = Clock::manual(T0);
    let rec = Recorder::new("crashy");
    let first = outbox(&nodes.a, &clock);
    first.subscribe(Arc::new(Sub(rec.clone()))).unwrap();
    let ids = emit(&first, &nodes.a, "consultation-z", 3).await;
    *rec.hang.lock().unwrap() = Some(ids[1]);
    // The process "dies" while the subscriber handles the second event: the task is dropped
    // with its transaction, before the delivery is acknowledged.
    let dying = tokio::spawn({
        let first = first.clone();
        async move { first.dispatch_due().await }
    });
    for _ in 0..200 {
        if rec.seen().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rec.seen().len(), 2, "the second event is being handled");
    dying.abort();
    let _ = dying.await;
    drop(first);
    // The dead process's connections close (its transaction, and any lock, go with them).
    nodes.a.pool.close().await;
    // After the restart (another instance, the second pool), the event comes again.
    let second = outbox(&nodes.b, &clock);
    second.subscribe(Arc::new(Sub(rec.clone()))).unwrap();
    second.dispatch_due().await.unwrap();
    let order: Vec<i64> = rec.seen().into_iter().map(|(_, id)| id).collect();
    assert_eq!(
        order,
        vec![ids[0], ids[1], ids[1], ids[2]],
        "re-delivered after the restart, at least once, in order"
    );
}
on_both_databases!(
    outbox_redelivers_after_a_restart_before_the_ack,
    super::a_restart_between_delivery_and_ack_redelivers
);

async fn two_subscribers_see_every_event_once_in_order(backend: Backend) {
    let nodes = fresh(backend).await;
    let clock = Clock::manual(T0);
    let (a, b) = (Recorder::new("first"), Recorder::new("second"));
    let node1 = outbox(&nodes.a, &clock);
    let node2 = outbox(&nodes.b, &clock);
    for node in [&node1, &node2] {
        node.subscribe(Arc::new(Sub(a.clone()))).unwrap();
        node.subscribe(Arc::new(Sub(b.clone()))).unwrap();
    }
    // Events of three consultations, interleaved, from both nodes.
    let mut expected: HashMap<String, Vec<i64>> = HashMap::new();
    for round in 0..6 {
        for c in ["c1", "c2", "c3"] {
            let node = if round % 2 == 0 { &node1 } else { &node2 };
            let db = if round % 2 == 0 { &nodes.a } else { &nodes.b };
            let id = emit(node, db, c, 1).await[0];
            expected.entry(c.to_owned()).or_default().push(id);
        }
    }
    // An event nobody wants gets no deliveries.
    let mut tx = nodes.a.begin_write().await.unwrap();
    node1
        .emit(&mut tx, "other.kind", Some("c1"), json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Both nodes dispatch at once.
    let (r1, r2) = tokio::join!(node1.dispatch_due(), node2.dispatch_due());
    assert_eq!(r1.unwrap() + r2.unwrap(), 36, "18 events × 2 subscribers");
    for rec in [&a, &b] {
        assert_eq!(rec.per_consultation(), expected, "{}", rec.name);
        assert_eq!(rec.seen().len(), 18, "each event once");
    }
}
on_both_databases!(
    outbox_two_subscribers_each_see_every_event_once_in_order,
    super::two_subscribers_see_every_event_once_in_order
);

async fn old_events_are_pruned_once_delivered(backend: Backend) {
    let nodes = fresh(backend).await;
    let clock = Clock::manual(T0);
    let outbox = outbox(&nodes.a, &clock);
    let rec = Recorder::new("pruned");
    outbox.subscribe(Arc::new(Sub(rec.clone()))).unwrap();
    let ids = emit(&outbox, &nodes.a, "c", 2).await;
    rec.fail.lock().unwrap().insert(ids[1], 1);
    outbox.dispatch_due().await.unwrap();
    clock.advance(8 * 86_400_000);
    assert_eq!(
        outbox.prune().await.unwrap(),
        1,
        "the delivered one goes; the undelivered one stays"
    );
    outbox.dispatch_due().await.unwrap();
    assert_eq!(outbox.prune().await.unwrap(), 1);
    let left: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox")
        .fetch_one(&nodes.a.pool)
        .await
        .unwrap();
    assert_eq!(left.0, 0);
}
on_both_databases!(
    outbox_prunes_only_delivered_events,
    super::old_events_are_pruned_once_delivered
);

// ---- outbound queue -------------------------------------------------------------------------

/// Counts runs per call; outcomes per system; a little time per call to let workers overlap.
struct Counting {
    system: &'static str,
    runs: Mutex<Vec<(i64, String)>>,
    outcome: Outcome,
    delay: Duration,
}

impl Counting {
    fn new(system: &'static str, outcome: Outcome, delay: Duration) -> Arc<Counting> {
        Arc::new(Counting {
            system,
            runs: Mutex::new(Vec::new()),
            outcome,
            delay,
        })
    }

    fn runs(&self) -> Vec<(i64, String)> {
        self.runs.lock().unwrap().clone()
    }
}

impl Executor for Counting {
    fn system(&self) -> &'static str {
        self.system
    }

    fn inline_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn execute<'a>(
        &'a self,
        call: &'a Call,
        _inline: bool,
    ) -> BoxFuture<'a, Result<Outcome, sqlx::Error>> {
        Box::pin(async move {
            assert_eq!(call.system, self.system, "a call of another system");
            assert!(!call.idempotency_key.is_empty());
            self.runs
                .lock()
                .unwrap()
                .push((call.id, call.consultation_id.clone()));
            tokio::time::sleep(self.delay).await;
            Ok(self.outcome.clone())
        })
    }
}

async fn queue(db: &Db, system: &'static str, consultation: &str, now: i64) -> i64 {
    let mut tx = db.begin_write().await.unwrap();
    let id = enqueue(
        &mut tx,
        NewCall {
            system,
            operation: "op",
            consultation_id: consultation,
            payload: Some(json!({"n": 1})),
        },
        now,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn call_state(db: &Db, id: i64) -> (String, i64, Option<i64>) {
    sqlx::query_as("SELECT status, attempts, locked_until FROM outbound_calls WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn a_row_of_another_system_is_never_claimed(backend: Backend) {
    let nodes = fresh(backend).await;
    let clock = Clock::manual(T0);
    let outbound = Outbound::new(nodes.a.clone(), clock.clone());
    let bitrix = Counting::new("bitrix24", Outcome::Done, Duration::ZERO);
    outbound.register(bitrix.clone());
    let payment = queue(&nodes.a, "yookassa", "c1", T0).await;
    let booking = queue(&nodes.a, "bitrix24", "c1", T0).await;
    assert_eq!(outbound.deliver_due("bitrix24").await.unwrap(), 1);
    assert_eq!(bitrix.runs(), vec![(booking, "c1".to_owned())]);
    assert_eq!(
        call_state(&nodes.a, payment).await,
        ("pending".to_owned(), 0, None),
        "the payment call is untouched: not claimed, not attempted, not failed"
    );
    // A system with no executor on this node runs nothing.
    assert_eq!(outbound.deliver_due("yookassa").await.unwrap(), 0);
    // Admin views and retries are per system too.
    assert_eq!(outbound.list("bitrix24", None, 50, 0).await.unwrap().0, 1);
    assert_eq!(outbound.summary("yookassa").await.unwrap().pending, 1);
    assert!(outbound.retry("bitrix24", payment).await.is_err());
}
on_both_databases!(
    outbound_a_row_of_another_system_is_never_claimed,
    super::a_row_of_another_system_is_never_claimed
);

async fn one_stuck_system_does_not_block_another(backend: Backend) {
    let nodes = fresh(backend).await;
    let clock = Clock::manual(T0);
    let outbound = Outbound::new(nodes.a.clone(), clock.clone());
    let stuck = Counting::new("stuck", Outcome::Retry("down".into()), Duration::ZERO);
    let fine = Counting::new("fine", Outcome::Done, Duration::ZERO);
    outbound.register(stuck.clone());
    outbound.register(fine.clone());
    let first = queue(&nodes.a, "stuck", "c1", T0).await;
    let second = queue(&nodes.a, "stuck", "c1", T0).await;
    let other = queue(&nodes.a, "fine", "c1", T0).await;
    outbound.deliver_due("stuck").await.unwrap();
    outbound.deliver_due("fine").await.unwrap();
    assert_eq!(
        fine.runs(),
        vec![(other, "c1".to_owned())],
        "same consultation, another system: not held up"
    );
    assert_eq!(
        stuck.runs(),
        vec![(first, "c1".to_owned())],
        "within the stuck system the second call waits for the first"
    );
    assert_eq!(call_state(&nodes.a, second).await.1, 0);
    // Inline delivery of the consultation reports the stuck system's state.
    assert!(matches!(
        outbound.deliver_consultation("c1").await,
        Some(Outcome::Retry(_))
    ));
    // A failed-for-good call does not hold its line, and an admin can put it back.
    sqlx::query("UPDATE outbound_calls SET status = 'failed' WHERE id = $1")
        .bind(first)
        .execute(&nodes.a.pool)
        .await
        .unwrap();
    clock.advance(10 * 60_000 + 1);
    outbound.deliver_due("stuck").await.unwrap();
    assert_eq!(stuck.runs().last().unwrap().0, second);
    outbound.retry("stuck", first).await.unwrap();
    assert_eq!(call_state(&nodes.a, first).await.0, "pending");
}
on_both_databases!(
    outbound_one_stuck_system_does_not_block_another,
    super::one_stuck_system_does_not_block_another
);

async fn two_workers_never_run_one_call_twice(backend: Backend) {
    let nodes = fresh(backend).await;
    let clock = Clock::system();
    let node1 = Outbound::new(nodes.a.clone(), clock.clone());
    let node2 = Outbound::new(nodes.b.clone(), clock.clone());
    let w1 = Counting::new("bitrix24", Outcome::Done, Duration::from_millis(2));
    let w2 = Counting::new("bitrix24", Outcome::Done, Duration::from_millis(2));
    node1.register(w1.clone());
    node2.register(w2.clone());
    let mut expected: HashMap<String, Vec<i64>> = HashMap::new();
    for i in 0..60 {
        let c = format!("c{}", i % 12);
        let id = queue(&nodes.a, "bitrix24", &c, clock.now_ms()).await;
        expected.entry(c).or_default().push(id);
    }
    let work = |node: Outbound| async move {
        for _ in 0..200 {
            node.deliver_due("bitrix24").await.unwrap();
            if node.summary("bitrix24").await.unwrap().pending == 0 {
                break;
            }
        }
    };
    tokio::join!(work(node1), work(node2));
    let mut all = w1.runs();
    all.extend(w2.runs());
    assert_eq!(all.len(), 60, "every call ran exactly once: {all:?}");
    let mut ids: Vec<i64> = all.iter().map(|r| r.0).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 60, "no call ran twice");
    assert!(
        !w1.runs().is_empty() && !w2.runs().is_empty(),
        "both workers took calls"
    );
    // Each consultation's calls ran in order (ids are queue order).
    let mut per: HashMap<String, Vec<i64>> = HashMap::new();
    let mut runs = all.clone();
    runs.sort_by_key(|r| r.0);
    for (id, c) in runs {
        per.entry(c).or_default().push(id);
    }
    assert_eq!(per, expected);
}
on_both_databases!(
    outbound_two_workers_never_run_one_call_twice,
    super::two_workers_never_run_one_call_twice
);

// ---- scheduler ------------------------------------------------------------------------------

struct Tally {
    kind: &'static str,
    runs: Mutex<Vec<String>>,
    delay: Duration,
}

impl Tally {
    fn new(kind: &'static str, delay: Duration) -> Arc<Tally> {
        Arc::new(Tally {
            kind,
            runs: Mutex::new(Vec::new()),
            delay,
        })
    }

    fn runs(&self) -> Vec<String> {
        self.runs.lock().unwrap().clone()
    }
}

impl Job for Tally {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn run<'a>(&'a self, job: &'a Due) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.runs.lock().unwrap().push(job.key.clone());
            tokio::time::sleep(self.delay).await;
            Ok(())
        })
    }
}

async fn schedule(s: &Scheduler, db: &Db, key: &str, due: i64) {
    let mut tx = db.begin_write().await.unwrap();
    s.schedule(&mut tx, "reminder", key, due, Some(json!({"k": key})))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn a_job_due_while_down_runs_once_after_restart(backend: Backend) {
    let nodes = fresh(backend).await;
    let clock = Clock::manual(T0);
    {
        let before = Scheduler::new(nodes.a.clone(), clock.clone());
        before.register(Tally::new("reminder", Duration::ZERO));
        schedule(&before, &nodes.a, "reminder:c1", T0 + 3_600_000).await;
        schedule(&before, &nodes.a, "reminder:c2", T0 + 7_200_000).await;
        assert_eq!(before.run_due().await.unwrap(), 0, "not due yet");
        // Moved later, then the process stops.
        schedule(&before, &nodes.a, "reminder:c2", T0 + 9_000_000).await;
    }
    clock.advance(4 * 3_600_000);
    let after = Scheduler::new(nodes.b.clone(), clock.clone());
    let tally = Tally::new("reminder", Duration::ZERO);
    after.register(tally.clone());
    assert_eq!(after.run_due().await.unwrap(), 2);
    assert_eq!(after.run_due().await.unwrap(), 0, "once");
    let mut runs = tally.runs();
    runs.sort();
    assert_eq!(runs, vec!["reminder:c1", "reminder:c2"]);
    // A cancelled job never runs; a rescheduled one runs again at its new time.
    schedule(&after, &nodes.b, "reminder:c3", clock.now_ms() + 1000).await;
    let mut tx = nodes.b.begin_write().await.unwrap();
    assert!(after.cancel(&mut tx, "reminder:c3").await.unwrap());
    tx.commit().await.unwrap();
    schedule(&after, &nodes.b, "reminder:c1", clock.now_ms() + 1000).await;
    clock.advance(2000);
    assert_eq!(after.run_due().await.unwrap(), 1);
    assert_eq!(tally.runs().len(), 3);
    assert_eq!(tally.runs().last().unwrap(), "reminder:c1");
}
on_both_databases!(
    scheduler_runs_a_job_due_while_down_once_after_restart,
    super::a_job_due_while_down_runs_once_after_restart
);

async fn two_nodes_run_each_job_once(backend: Backend) {
    let nodes = fresh(backend).await;
    let clock = Clock::manual(T0);
    let node1 = Scheduler::new(nodes.a.clone(), clock.clone());
    let node2 = Scheduler::new(nodes.b.clone(), clock.clone());
    let (t1, t2) = (
        Tally::new("reminder", Duration::from_millis(3)),
        Tally::new("reminder", Duration::from_millis(3)),
    );
    node1.register(t1.clone());
    node2.register(t2.clone());
    for i in 0..40 {
        schedule(&node1, &nodes.a, &format!("reminder:{i}"), T0 - i).await;
    }
    let work = |s: Scheduler| async move {
        let mut ran = 0;
        for _ in 0..20 {
            ran += s.run_due().await.unwrap();
        }
        ran
    };
    let (r1, r2) = tokio::join!(work(node1), work(node2));
    assert_eq!(r1 + r2, 40);
    let mut all = t1.runs();
    all.extend(t2.runs());
    all.sort();
    let mut unique = all.clone();
    unique.dedup();
    assert_eq!(all.len(), 40, "each job ran once");
    assert_eq!(unique.len(), 40);

    // A recurring job: once per period however many nodes look, and once after downtime.
    let n1 = Scheduler::new(nodes.a.clone(), clock.clone());
    let n2 = Scheduler::new(nodes.b.clone(), clock.clone());
    let every = Tally::new("sweep", Duration::from_millis(2));
    n1.register(every.clone());
    n2.register(every.clone());
    n1.every("sweep", "sweep", Duration::from_secs(60))
        .await
        .unwrap();
    n2.every("sweep", "sweep", Duration::from_secs(60))
        .await
        .unwrap();
    let (a, b) = tokio::join!(n1.run_due(), n2.run_due());
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    clock.advance(30_000);
    assert_eq!(n1.run_due().await.unwrap() + n2.run_due().await.unwrap(), 0);
    clock.advance(10 * 60_000);
    let (a, b) = tokio::join!(n1.run_due(), n2.run_due());
    assert_eq!(a.unwrap() + b.unwrap(), 1, "ten missed periods: one run");
    assert_eq!(every.runs().len(), 2);
}
on_both_databases!(
    scheduler_two_nodes_run_each_job_once,
    super::two_nodes_run_each_job_once
);

struct Failing(AtomicUsize);

impl Job for Failing {
    fn kind(&self) -> &'static str {
        "flaky"
    }

    fn run<'a>(&'a self, _job: &'a Due) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            if self.0.fetch_add(1, Ordering::SeqCst) < 2 {
                anyhow::bail!("not yet");
            }
            Ok(())
        })
    }
}

async fn a_failing_job_is_retried_with_backoff(backend: Backend) {
    let nodes = fresh(backend).await;
    let clock = Clock::manual(T0);
    let s = Scheduler::new(nodes.a.clone(), clock.clone());
    let job = Arc::new(Failing(AtomicUsize::new(0)));
    s.register(job.clone());
    let mut tx = nodes.a.begin_write().await.unwrap();
    s.schedule(&mut tx, "flaky", "flaky:1", T0, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.run_due().await.unwrap(), 0);
    assert_eq!(s.run_due().await.unwrap(), 0, "waits for its backoff");
    clock.advance(60_000);
    assert_eq!(s.run_due().await.unwrap(), 0);
    clock.advance(60_000);
    assert_eq!(s.run_due().await.unwrap(), 1);
    assert_eq!(job.0.load(Ordering::SeqCst), 3);
    let (status, attempts): (String, i64) =
        sqlx::query_as("SELECT status, attempts FROM scheduled_jobs WHERE job_key = 'flaky:1'")
            .fetch_one(&nodes.a.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("done", 3));
}
on_both_databases!(
    scheduler_retries_a_failing_job,
    super::a_failing_job_is_retried_with_backoff
);

// ---- inbound store --------------------------------------------------------------------------

async fn inbound_events_are_deduplicated_and_leased(backend: Backend) {
    let nodes = fresh(backend).await;
    let clock = Clock::manual(T0);
    let node1 = InboundStore::new(nodes.a.clone(), clock.clone());
    let node2 = InboundStore::new(nodes.b.clone(), clock.clone());
    let event = |key: &'static str| NewEvent {
        system: "yookassa",
        dedup_key: key,
        event: "payment.succeeded",
        object_id: Some("p-1"),
        payload: Some("{\"id\":\"p-1\"}"),
    };
    let first = node1.store(event("p-1:succeeded")).await.unwrap();
    assert!(matches!(first, Stored::New(_)));
    assert_eq!(
        node2.store(event("p-1:succeeded")).await.unwrap(),
        Stored::Duplicate
    );
    // Another system's event with the same key is its own.
    let other = NewEvent {
        system: "bitrix24",
        ..event("p-1:succeeded")
    };
    assert!(matches!(node1.store(other).await.unwrap(), Stored::New(_)));
    let (claimed, lease) = node1.claim("yookassa", 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].payload.as_deref(), Some("{\"id\":\"p-1\"}"));
    assert!(
        node2.claim("yookassa", 10).await.unwrap().0.is_empty(),
        "leased to the first node"
    );
    // Processing failed: released, and the other node takes it.
    node1
        .release(&[claimed[0].id], lease, "upstream down", clock.now_ms())
        .await
        .unwrap();
    let (again, lease2) = node2.claim("yookassa", 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    node2.processed(again[0].id, lease2, "done").await.unwrap();
    assert_eq!(node1.unprocessed("yookassa").await.unwrap(), 0);
    assert_eq!(node1.unprocessed("bitrix24").await.unwrap(), 1);
}
on_both_databases!(
    inbound_store_deduplicates_and_leases,
    super::inbound_events_are_deduplicated_and_leased
);
