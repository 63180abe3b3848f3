//! Several server instances sharing one Redis: one truth, whichever instance a request reaches.

use futures_util::future::join_all;

use crate::redis_support::{Deployment, RedisServer};

#[tokio::test]
async fn a_challenge_from_one_instance_is_answered_at_another_and_verified_at_the_first() {
    let redis = RedisServer::start();
    let deployment = Deployment::start(2, &redis.url(), None);
    let challenge = deployment.post_challenge(0).await.expect("a reply");
    assert_eq!(challenge.status, 200, "{:?}", challenge.body);
    let id = challenge.body["challenge_id"].as_str().expect("a challenge id");

    // The images of A's challenge are served by B.
    for n in 0..2 {
        let image = deployment
            .client
            .get(deployment.url(1, &format!("/api/v1/challenge/{id}/image/{n}")))
            .send()
            .await
            .expect("a reply");
        assert_eq!(image.status(), 200);
        assert_eq!(
            image.headers()["content-type"].to_str().expect("ascii"),
            "image/jpeg"
        );
    }
    let answer = deployment.post_answer(1, id).await.expect("a reply");
    assert_eq!(answer.body["success"], true, "{:?}", answer.body);
    // The challenge is consumed everywhere.
    let again = deployment.post_answer(0, id).await.expect("a reply");
    assert_eq!(again.status, 404, "{:?}", again.body);
    assert_eq!(again.body["error"], "unknown-challenge");

    let token = answer.body["token"].as_str().expect("a token");
    let verified = deployment.siteverify(0, token).await.expect("a reply");
    assert_eq!(verified.body["success"], true, "{:?}", verified.body);
    assert_eq!(verified.body["hostname"], crate::helpers::HOSTNAME);
    let replayed = deployment.siteverify(1, token).await.expect("a reply");
    assert_eq!(replayed.body["success"], false);
    assert_eq!(replayed.body["error-codes"][0], "timeout-or-duplicate");

    // The contribution went to the shared store once.
    assert_eq!(deployment.contributions().len(), 1);
}

#[tokio::test]
async fn a_hundred_concurrent_redemptions_of_one_token_across_two_instances_give_one_success() {
    let redis = RedisServer::start();
    let deployment = Deployment::start(2, &redis.url(), None);
    let token = deployment.pass_check(0, 1).await;
    let replies = join_all((0..100).map(|n| deployment.siteverify(n % 2, &token))).await;
    let mut successes = 0;
    for reply in replies {
        let reply = reply.expect("a reply");
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        if reply.body["success"] == true {
            successes += 1;
        } else {
            assert_eq!(
                reply.body["error-codes"][0], "timeout-or-duplicate",
                "{:?}",
                reply.body
            );
        }
    }
    assert_eq!(successes, 1, "a token is redeemed exactly once");
}

#[tokio::test]
async fn tokens_outstanding_when_the_short_lived_redis_restarts_empty_are_never_redeemed() {
    let durable = RedisServer::start();
    let mut ephemeral =
        RedisServer::start_with(&["--maxmemory", "64mb", "--maxmemory-policy", "volatile-ttl"]);
    let deployment = Deployment::start(2, &durable.url(), Some(&ephemeral.url()));
    let outstanding = deployment.pass_check(0, 1).await;
    let redeemed = deployment.pass_check(1, 0).await;
    assert_eq!(
        deployment.siteverify(0, &redeemed).await.expect("a reply").body["success"],
        true
    );

    ephemeral.restart_empty();
    // Whether the instances reconnect first or not, neither token ever verifies: the outstanding one is
    // forgotten, the redeemed one stays redeemed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = deployment.siteverify(1, &outstanding).await.expect("a reply");
        assert_eq!(reply.body["success"], false, "{:?}", reply.body);
        if reply.status == 200 {
            assert_eq!(reply.body["error-codes"][0], "timeout-or-duplicate");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the store did not come back: {:?}",
            reply.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for instance in 0..2 {
        for token in [&outstanding, &redeemed] {
            let reply = deployment.siteverify(instance, token).await.expect("a reply");
            assert_eq!(reply.body["success"], false, "{:?}", reply.body);
            assert_eq!(reply.body["error-codes"][0], "timeout-or-duplicate");
        }
    }
    // The durable data is untouched: checks pass again, and both contributions are kept.
    let fresh = deployment.pass_check(0, 1).await;
    assert_eq!(
        deployment.siteverify(1, &fresh).await.expect("a reply").body["success"],
        true
    );
    assert_eq!(deployment.contributions().len(), 3);
}
