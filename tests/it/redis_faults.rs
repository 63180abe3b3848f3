//! Faults with Redis: a server killed under a stream of answers, Redis killed and restarted from its AOF, an
//! outage answered with clear `503`s and recovered from without a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::redis_support::{Deployment, RedisServer};

/// Waits until `/readyz` of an instance says ready; panics after `limit`.
async fn wait_ready(deployment: &Deployment, instance: usize, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if deployment
            .get(instance, "/readyz")
            .await
            .is_some_and(|r| r.status == 200)
        {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not ready after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_redis_outage_gives_clear_503s_and_the_service_comes_back_by_itself() {
    let mut redis = RedisServer::start();
    let deployment = Deployment::start(1, &redis.url(), None);
    let ready = deployment.get(0, "/readyz").await.expect("a reply");
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    let token = deployment.pass_check(0, 0).await;
    let challenge = deployment.post_challenge(0).await.expect("a reply");
    let pending = challenge.body["challenge_id"].as_str().expect("an id").to_owned();

    redis.kill();
    // Not ready, but alive.
    let ready = deployment.get(0, "/readyz").await.expect("a reply");
    assert_eq!(ready.status, 503, "{:?}", ready.body);
    assert_eq!(ready.body["status"], "unavailable");
    let health = deployment.get(0, "/healthz").await.expect("a reply");
    assert_eq!(health.status, 200);
    // The widget API: 503 with its JSON error body.
    for reply in [
        deployment.post_challenge(0).await.expect("a reply"),
        deployment.post_answer(0, &pending).await.expect("a reply"),
    ] {
        assert_eq!(reply.status, 503, "{:?}", reply.body);
        assert_eq!(reply.body["success"], false);
        assert_eq!(reply.body["error"], "store-unavailable");
        assert!(reply.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // siteverify: 503 with reCAPTCHA's shape and `internal-error`; the token is not consumed.
    let verify = deployment.siteverify(0, &token).await.expect("a reply");
    assert_eq!(verify.status, 503, "{:?}", verify.body);
    assert_eq!(verify.body["success"], false);
    assert_eq!(verify.body["error-codes"][0], "internal-error");

    // Redis comes back from its AOF; the server reconnects without a restart, within 10 s.
    redis.restart();
    wait_ready(&deployment, 0, Duration::from_secs(10)).await;
    let verify = deployment.siteverify(0, &token).await.expect("a reply");
    assert_eq!(verify.body["success"], true, "{:?}", verify.body);
    let answer = deployment.post_answer(0, &pending).await.expect("a reply");
    assert_eq!(answer.body["success"], true, "{:?}", answer.body);
    deployment.pass_check(0, 0).await;
    assert_eq!(deployment.contributions().len(), 3);
}

/// What a stream of citizens saw.
#[derive(Default)]
struct Tally {
    /// Answers whose success reply was received: their contributions must be stored.
    acknowledged: AtomicUsize,
    /// Answers sent whose reply was an error or never came: their contributions may or may not be stored.
    unsure: AtomicUsize,
    /// Replies with a 5xx status, seen during outages.
    unavailable: AtomicUsize,
}

/// Citizens answering checks at `instance` until `stop`, counting what they were told.
async fn answer_stream(
    deployment: Arc<Deployment>,
    instance: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    // Below the project's capacity (unknowns × the three votes that decide one): every acknowledged answer
    // records a vote. The assertion keeps the two numbers honest if either changes.
    const MAX_ANSWERS: usize = 5000;
    const _: () = assert!(MAX_ANSWERS < crate::redis_support::BULK_UNKNOWNS * 3);
    while !stop.load(Ordering::Relaxed) {
        if tally.acknowledged.load(Ordering::Relaxed) + tally.unsure.load(Ordering::Relaxed) >= MAX_ANSWERS {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let Some(challenge) = deployment.post_challenge(instance).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if challenge.status != 200 {
            assert_eq!(challenge.status, 503, "{:?}", challenge.body);
            tally.unavailable.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let id = challenge.body["challenge_id"].as_str().expect("an id").to_owned();
        match deployment.post_answer(instance, &id).await {
            Some(reply) if reply.status == 200 && reply.body["success"] == true => {
                tally.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Some(reply) => {
                assert!(reply.status == 503 || reply.status == 404, "{:?}", reply.body);
                tally
                    .unavailable
                    .fetch_add(usize::from(reply.status == 503), Ordering::Relaxed);
                tally.unsure.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                tally.unsure.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[tokio::test]
async fn no_acknowledged_contribution_is_lost_when_a_server_then_redis_are_killed() {
    let mut redis = RedisServer::start();
    let deployment = Arc::new(Deployment::start(2, &redis.url(), None));
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let streams: Vec<_> = (0..8)
        .map(|n| {
            tokio::spawn(answer_stream(
                Arc::clone(&deployment),
                n % 2,
                Arc::clone(&stop),
                Arc::clone(&tally),
            ))
        })
        .collect();
    let acknowledged = || tally.acknowledged.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(acknowledged() > 0, "the stream is running");

    // SIGKILL one instance under the stream; the other carries on.
    deployment.kill_instance(0);
    let after_server_kill = acknowledged();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(acknowledged() > after_server_kill, "instance 1 keeps serving");

    // SIGKILL Redis under the stream: instance 1 answers 503s and stays up.
    redis.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let health = deployment.get(1, "/healthz").await.expect("instance 1 is alive");
    assert_eq!(health.status, 200);
    assert!(
        tally.unavailable.load(Ordering::Relaxed) > 0,
        "the outage was seen as 503s"
    );

    // Redis restarts from its AOF; instance 1 recovers by itself, instance 0 is restarted.
    redis.restart();
    wait_ready(&deployment, 1, Duration::from_secs(10)).await;
    deployment.restart_instance(0);
    let after_outage = acknowledged();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        acknowledged() > after_outage,
        "the service is back: {}",
        deployment.log(1)
    );
    stop.store(true, Ordering::Relaxed);
    for stream in streams {
        stream.await.expect("a stream ended without panicking");
    }

    let acknowledged = acknowledged();
    let unsure = tally.unsure.load(Ordering::Relaxed);
    let stored = deployment.contributions();
    let mut seqs: Vec<u64> = stored.iter().map(|c| c["seq"].as_u64().expect("a seq")).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), stored.len(), "a sequence number used twice");
    // Every acknowledged contribution is there; nothing beyond what was sent is, so none is there twice.
    assert!(
        stored.len() >= acknowledged,
        "lost contributions: {acknowledged} acknowledged, {} stored",
        stored.len()
    );
    assert!(
        stored.len() <= acknowledged + unsure,
        "more contributions than answers: {} stored, {acknowledged} acknowledged, {unsure} unsure",
        stored.len()
    );
}
