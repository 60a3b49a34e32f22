//! The practices directory the pipeline looks senders up in: a snapshot of the `practice`
//! table (or of the configuration's `[[sender]]` blocks, for a pipeline without a database)
//! with the three lookups and each practice's certificate, loaded when the snapshot is built.
//!
//! The workers hold a [`Directory`] and ask it for the current snapshot once per batch: it reads
//! the table's generation (one small row) and rebuilds only when it moved, so a change made by
//! `svoct oct ps` in another process applies to the next message, without restart or signal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use svoct_formats::PaddedNumber;
use svoct_mail::cms::RecipientCert;

use crate::config::{Config, Sender};
use crate::state::{PracticeRecord, PracticeState, PracticeStore, StateError};

/// A practice's certificate as the snapshot loaded it.
#[derive(Clone, Debug)]
pub enum CertSlot {
    /// None configured: returns go in clear.
    None,
    Loaded(Arc<RecipientCert>),
    /// Configured but unusable (missing, unreadable, expired): returns for the practice are
    /// quarantined until it is fixed.
    Unusable(String),
}

/// One practice of the snapshot.
#[derive(Clone, Debug)]
pub struct Practice {
    /// Its row id; `None` for a `[[sender]]` block of a pipeline without a database.
    pub id: Option<i64>,
    pub sender: Sender,
    pub suspended: bool,
    pub cert: CertSlot,
}

/// A certificate file as loaded, with the modification time it had: reused by the next
/// snapshot while the file is unchanged (thousands of practices, one change at a time).
#[derive(Clone, Debug)]
struct Loaded {
    modified: Option<SystemTime>,
    slot: CertSlot,
}

/// The practices at one moment, with their lookups.
#[derive(Debug, Default)]
pub struct Practices {
    list: Vec<Practice>,
    by_address: HashMap<String, usize>,
    by_ps_number: HashMap<String, usize>,
    by_sender_number: HashMap<String, usize>,
    certs: HashMap<PathBuf, Loaded>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load_cert(path: &Path) -> CertSlot {
    let loaded = RecipientCert::from_file(path).and_then(|c| c.check_validity().map(|()| c));
    match loaded {
        Ok(c) => CertSlot::Loaded(Arc::new(c)),
        Err(e) => {
            tracing::error!(certificate = %path.display(), error = %e, "a practice's certificate cannot be used: returns for it go to quarantine until it is fixed");
            CertSlot::Unusable(format!("{}: {e}", path.display()))
        }
    }
}

impl Practices {
    /// The `[[sender]]` blocks of `config`, all active: the directory of a pipeline without a
    /// state database (tests, embedding).
    pub fn from_config(config: &Config) -> Practices {
        let entries = config.senders.iter().map(|s| (None, s.clone(), false));
        Practices::build(entries, None)
    }

    /// The rows of the `practice` table; certificates whose file did not change since
    /// `previous` are taken from it instead of being read again.
    pub fn from_records(records: &[PracticeRecord], previous: Option<&Practices>) -> Practices {
        let entries = records.iter().map(|r| {
            (
                Some(r.id),
                super::sender_of(&r.fields),
                r.state == PracticeState::Suspended,
            )
        });
        Practices::build(entries, previous)
    }

    fn build(
        entries: impl Iterator<Item = (Option<i64>, Sender, bool)>,
        previous: Option<&Practices>,
    ) -> Practices {
        let mut p = Practices::default();
        for (id, sender, suspended) in entries {
            let cert = match &sender.certificate {
                None => CertSlot::None,
                Some(path) => p.cert_for(path, previous),
            };
            let i = p.list.len();
            // The first of two rows with one key wins (the table's unique keys make it moot).
            p.by_address
                .entry(sender.address.to_ascii_lowercase())
                .or_insert(i);
            p.by_ps_number
                .entry(PaddedNumber::new(&sender.ps_number).significant().to_owned())
                .or_insert(i);
            p.by_sender_number
                .entry(PaddedNumber::new(&sender.sender_number).significant().to_owned())
                .or_insert(i);
            p.list.push(Practice {
                id,
                sender,
                suspended,
                cert,
            });
        }
        p
    }

    fn cert_for(&mut self, path: &Path, previous: Option<&Practices>) -> CertSlot {
        if let Some(l) = self.certs.get(path) {
            return l.slot.clone();
        }
        let modified = modified(path);
        let slot = match previous.and_then(|p| p.certs.get(path)) {
            Some(l) if l.modified.is_some() && l.modified == modified => l.slot.clone(),
            _ => load_cert(path),
        };
        self.certs.insert(
            path.to_owned(),
            Loaded {
                modified,
                slot: slot.clone(),
            },
        );
        slot
    }

    /// Every practice, in table order.
    pub fn list(&self) -> &[Practice] {
        &self.list
    }

    /// The practice whose `From` address is `address` (case-insensitive).
    pub fn by_address(&self, address: &str) -> Option<&Practice> {
        self.by_address
            .get(&address.to_ascii_lowercase())
            .and_then(|&i| self.list.get(i))
    }

    /// The practice with this PS number (leading zeros and blanks ignored; never a blank one).
    pub fn by_ps_number(&self, ps_number: &str) -> Option<&Practice> {
        Self::by_number(&self.by_ps_number, ps_number).and_then(|i| self.list.get(i))
    }

    /// The practice with this file sender number (leading zeros and blanks ignored).
    pub fn by_sender_number(&self, number: &str) -> Option<&Practice> {
        Self::by_number(&self.by_sender_number, number).and_then(|i| self.list.get(i))
    }

    fn by_number(map: &HashMap<String, usize>, written: &str) -> Option<usize> {
        let key = PaddedNumber::new(written);
        if key.significant().is_empty() {
            return None;
        }
        map.get(key.significant()).copied()
    }
}

/// The snapshot a worker processes with, rebuilt when the table's generation moves.
#[derive(Debug, Default)]
pub struct Directory {
    generation: Option<i64>,
    current: Arc<Practices>,
}

impl Directory {
    /// The current practices: the snapshot in hand while the generation is the same (one small
    /// read), else the table read again.
    pub fn refresh(&mut self, store: &dyn PracticeStore) -> Result<Arc<Practices>, StateError> {
        let generation = store.practice_generation()?;
        if self.generation != Some(generation) {
            let records = store.practice_list()?;
            self.current = Arc::new(Practices::from_records(&records, Some(&self.current)));
            if self.generation.is_some() {
                tracing::info!(
                    practices = records.len(),
                    generation,
                    "practices changed: directory reloaded"
                );
            }
            self.generation = Some(generation);
        }
        Ok(self.current.clone())
    }
}
