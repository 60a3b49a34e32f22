//! The whole exchange of `svoct demo`, asserted: OCT, AM simulator and PS on loopback.

use std::time::Duration;

use svoct_sim::demo::{DemoOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_message_lot_and_invoice_gets_its_return() {
    let dir = tempfile::tempdir().unwrap();
    let options = DemoOptions {
        dir: dir.path().join("demo"),
        seed: 7,
        invoices: 24,
        timeout: Duration::from_secs(120),
    };
    let mut out = Vec::new();
    let summary = run(&options, &mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(summary.complete, "returns missing:\n{text}");
    // Four sendings: split (one message per destination: 2), single, enriched, old lot.
    // split: 2 files; single: 1; enriched single: 1; enriched per destination: 2; old lot: 1.
    assert_eq!(summary.messages_sent, 7, "{text}");
    assert_eq!(summary.art, summary.messages_sent, "one ART per message");
    assert_eq!(summary.arl, summary.lots_sent, "one ARL per lot the PS built");
    assert_eq!(summary.quarantined_at_ps, 0, "{text}");
    assert_eq!(
        summary.lots_negative, 1,
        "the 120-day-old lot is refused:\n{text}"
    );
    assert_eq!(summary.lots_positive, summary.lots_sent - 1, "{text}");
    assert_eq!(summary.unmatched_returns, 0, "{text}");
    // Every FSE invoice of an accepted lot got a payment return; the rules reject and defer some.
    assert!(
        summary.invoices_paid > 0 && summary.invoices_rejected > 0,
        "{text}"
    );
    // 24 + 24 + 24 + 24 + 3 invoices were generated.
    assert_eq!(summary.invoices_sent, 99, "{text}");
}
