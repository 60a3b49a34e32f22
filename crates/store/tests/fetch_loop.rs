//! "Stored before deleted": the retrieval loop into the store's inbox, against real Exim +
//! Dovecot, with a crash injected at every point between storing and the server's deletion.

use std::time::Duration;

use svoct_mail::pop3::{Mailbox, MessageSink, Pop3Config, Pop3Error, Pop3Session, RetrievePolicy, retrieve};
use svoct_mail::secret::Secret;
use svoct_mail::transport::{SmtpConfig, SmtpEnvelope, SmtpTransport, Transport};
use svoct_store::{Store, StoreError};
use svoct_testkit::{Dovecot, Exim, EximConfig};

const SOURCE: &str = "pop3:ps1@127.0.0.1";
const N: usize = 4;

/// The inbox as a retrieval sink.
struct InboxSink<'a> {
    store: &'a Store,
    /// Fail `store` after this many successful stores (a crash before the write is durable).
    fail_store_after: Option<usize>,
    stores: usize,
}

impl MessageSink for InboxSink<'_> {
    type Error = StoreError;
    fn has(&mut self, uidl: &str) -> Result<bool, StoreError> {
        self.store.inbox().contains(SOURCE, uidl)
    }
    fn store(&mut self, uidl: &str, raw: &[u8]) -> Result<(), StoreError> {
        if self.fail_store_after == Some(self.stores) {
            return Err(StoreError::NotFound {
                table: "crash",
                id: 0,
            });
        }
        self.stores += 1;
        self.store.inbox().store_if_new(SOURCE, uidl, raw)?;
        Ok(())
    }
    fn deleted(&mut self, uidls: &[String]) -> Result<(), StoreError> {
        uidls
            .iter()
            .try_for_each(|u| self.store.inbox().mark_deleted_on_server(SOURCE, u))
    }
}

/// A POP3 session that "crashes" (drops the connection, no QUIT) at the k-th DELE.
struct Crashing {
    inner: Pop3Session,
    crash_at_delete: Option<usize>,
    deletes: usize,
}

impl Mailbox for Crashing {
    type Error = Pop3Error;
    fn list(&mut self) -> Result<Vec<(String, u64)>, Pop3Error> {
        self.inner.list()
    }
    fn fetch(&mut self, uidl: &str) -> Result<Vec<u8>, Pop3Error> {
        self.inner.fetch(uidl)
    }
    fn delete(&mut self, uidl: &str) -> Result<(), Pop3Error> {
        if self.crash_at_delete == Some(self.deletes) {
            return Err(Pop3Error::Finished {
                endpoint: "crash".into(),
            });
        }
        self.deletes += 1;
        self.inner.delete(uidl)
    }
    fn finish(&mut self) -> Result<(), Pop3Error> {
        self.inner.finish()
    }
}

fn msg(run: usize, i: usize) -> Vec<u8> {
    format!("Subject: run {run} message {i}\r\n\r\nline\r\n.\r\nrun {run} message {i}\r\n").into_bytes()
}

#[test]
fn a_crash_anywhere_never_loses_nor_duplicates() {
    let mx = Exim::start(&EximConfig {
        mailboxes: &["ps1"],
        ..Default::default()
    })
    .unwrap();
    let pop = Dovecot::start(&[("ps1", "pw", mx.maildir("ps1").unwrap())]).unwrap();
    let smtp = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", mx.port())).unwrap();
    // Loopback Dovecot without TLS: the clear-text login is allowed explicitly.
    let cfg = || Pop3Config {
        allow_plaintext_auth: true,
        ..Pop3Config::plain("127.0.0.1", pop.port(), "ps1", Secret::new("pw".to_owned()))
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("svoct.db")).unwrap();
    let policy = RetrievePolicy {
        max_size: 1 << 20,
        delete: true,
    };

    // Crash at each DELE position, then before each store.
    let scenarios: Vec<(Option<usize>, Option<usize>)> = (0..N)
        .map(|k| (Some(k), None))
        .chain((0..N).map(|k| (None, Some(k))))
        .collect();
    let mut expected_total = 0;
    for (run, (crash_at_delete, fail_store_after)) in scenarios.into_iter().enumerate() {
        for i in 0..N {
            smtp.send(&SmtpEnvelope::new("oct@oct.test", "ps1@ps.test"), &msg(run, i))
                .unwrap();
        }
        mx.wait_for_messages("ps1", N, Duration::from_secs(20)).unwrap();
        expected_total += N;

        // First run: crashes part-way.
        let mut crashing = Crashing {
            inner: Pop3Session::connect(&cfg()).unwrap(),
            crash_at_delete,
            deletes: 0,
        };
        let mut sink = InboxSink {
            store: &store,
            fail_store_after,
            stores: 0,
        };
        assert!(retrieve(&mut crashing, &mut sink, policy).is_err());
        drop(crashing); // connection gone without QUIT: the server deletes nothing
        assert_eq!(
            mx.messages("ps1").len(),
            N,
            "run {run}: nothing deleted by the crashed session"
        );

        // Second run: completes.
        let mut session = Pop3Session::connect(&cfg()).unwrap();
        let mut sink = InboxSink {
            store: &store,
            fail_store_after: None,
            stores: 0,
        };
        let report = retrieve(&mut session, &mut sink, policy).unwrap();
        let stored_before = crash_at_delete.or(fail_store_after).unwrap_or(0);
        let already = if crash_at_delete.is_some() {
            stored_before + 1
        } else {
            stored_before
        };
        assert_eq!(report.already_had.len(), already.min(N), "run {run}");
        assert_eq!(report.stored.len() + report.already_had.len(), N, "run {run}");

        // Server empty, every message stored exactly once with its exact bytes.
        assert!(mx.messages("ps1").is_empty(), "run {run}");
        assert_eq!(store.inbox().count(SOURCE).unwrap() as usize, expected_total);
        assert!(store.inbox().not_deleted_on_server(SOURCE).unwrap().is_empty());
        let all = store.inbox().with_state(svoct_store::InboxState::New).unwrap();
        for i in 0..N {
            let sent = msg(run, i);
            let copies = all.iter().filter(|m| m.raw.ends_with(&sent)).count();
            assert_eq!(copies, 1, "run {run} message {i}");
        }
    }
}
