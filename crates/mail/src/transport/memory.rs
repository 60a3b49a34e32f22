//! The in-memory backend, with scripted failures, for unit tests.

use std::sync::Mutex;

use super::{SendError, SendOk, SmtpEnvelope, Transport};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    pub envelope: SmtpEnvelope,
    pub raw: Vec<u8>,
}

/// Keeps sent messages in memory; failures can be scripted. For unit tests.
#[derive(Debug, Default)]
pub struct MemoryTransport {
    sent: Mutex<Vec<Captured>>,
    script: Mutex<std::collections::VecDeque<SendError>>,
}

impl MemoryTransport {
    pub fn new() -> MemoryTransport {
        MemoryTransport::default()
    }

    /// Makes the next `send` fail with `err` (queued: several calls fail in order).
    pub fn fail_next(&self, err: SendError) {
        if let Ok(mut s) = self.script.lock() {
            s.push_back(err);
        }
    }

    /// The messages sent so far, in order.
    pub fn sent(&self) -> Vec<Captured> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Transport for MemoryTransport {
    fn send(&self, envelope: &SmtpEnvelope, raw: &[u8]) -> Result<SendOk, SendError> {
        if let Some(err) = self.script.lock().ok().and_then(|mut s| s.pop_front()) {
            return Err(err);
        }
        if envelope.to.is_empty() {
            return Err(SendError::permanent("envelope without recipient", None, None));
        }
        let mut sent = self
            .sent
            .lock()
            .map_err(|_| SendError::transient("memory transport poisoned", None, None))?;
        sent.push(Captured {
            envelope: envelope.clone(),
            raw: raw.to_vec(),
        });
        Ok(SendOk {
            code: 250,
            answer: format!("250 OK memory #{}", sent.len()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_transport_captures_and_scripts_failures() {
        let t = MemoryTransport::new();
        t.fail_next(SendError::transient("x", Some(451), Some("451 try later".into())));
        let env = SmtpEnvelope::new("ps@ps.test", "oct@oct.test");
        let e = t.send(&env, b"m").unwrap_err();
        assert!(e.is_transient() && !e.is_permanent());
        assert_eq!(e.code(), Some(451));
        assert_eq!(e.server_answer(), Some("451 try later"));
        let ok = t.send(&env, b"m").unwrap();
        assert_eq!(ok.code, 250);
        assert_eq!(
            t.sent(),
            vec![Captured {
                envelope: env,
                raw: b"m".to_vec()
            }]
        );
    }
}
