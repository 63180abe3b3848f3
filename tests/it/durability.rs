//! An acknowledged contribution is never lost: not when the server is killed right after acknowledging it.

use crate::helpers::{CONTROL_LABEL, TestApp};

#[tokio::test]
async fn every_acknowledged_contribution_survives_a_sigkill() {
    let mut app = TestApp::spawn().await;
    let mut acknowledged = 0;
    for _ in 0..15 {
        let challenge = app.challenge().await;
        let reply = app
            .answer(challenge.challenge_id.as_str(), [CONTROL_LABEL, CONTROL_LABEL])
            .await;
        assert!(reply.success);
        acknowledged += 1;
    }
    // SIGKILL straight after the last acknowledgement: no graceful shutdown, no flush.
    app.server.kill();
    app.restart(&[]);
    // The restarted server still serves, on the same data.
    let token = app.pass_check().await;
    assert!(app.siteverify(&app.site.secret, &token).await.success);
    acknowledged += 1;
    let contributions = app.export_stopped("contributions");
    assert_eq!(contributions.len(), acknowledged);
    let mut seqs: Vec<u64> = contributions.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), acknowledged, "duplicate sequence numbers");
}

#[tokio::test]
async fn tokens_outstanding_at_a_restart_cannot_be_redeemed_afterwards() {
    // Tokens live in memory: a restart forgets them, so they fail safe (refused) rather than work twice.
    let mut app = TestApp::spawn().await;
    let token = app.pass_check().await;
    app.restart(&[]);
    let reply = app.siteverify(&app.site.secret, &token).await;
    assert!(!reply.success);
    assert_eq!(reply.error_codes, ["timeout-or-duplicate"]);
}
