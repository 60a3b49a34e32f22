//! A mailbox, whatever serves it (POP3, a Maildir), and the retrieval loop that never loses or
//! duplicates a message.

use std::fmt;

/// A remote or local mailbox seen as `(uidl, size)` entries.
///
/// Deletions may only take effect at [`finish`](Mailbox::finish) (POP3 applies DELE at QUIT);
/// a session dropped without `finish` deletes nothing there.
pub trait Mailbox {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every message: its unique id (stable across sessions) and its size in octets.
    fn list(&mut self) -> Result<Vec<(String, u64)>, Self::Error>;
    /// The message's raw bytes (CRLF line ends).
    fn fetch(&mut self, uidl: &str) -> Result<Vec<u8>, Self::Error>;
    /// The message's header block (up to the blank line), read without retrieving the
    /// message nor marking it read, so a message that is not ours can be left as it was.
    /// The default fetches the whole message and cuts it (for mailboxes where a fetch leaves
    /// no trace).
    fn headers(&mut self, uidl: &str) -> Result<Vec<u8>, Self::Error> {
        let mut raw = self.fetch(uidl)?;
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            raw.truncate(p + 4);
        }
        Ok(raw)
    }
    /// Marks the message for deletion.
    fn delete(&mut self, uidl: &str) -> Result<(), Self::Error>;
    /// Ends the session, committing deletions.
    fn finish(&mut self) -> Result<(), Self::Error>;
}

/// Where retrieved messages go (the store's inbox in practice). `store` must be durable when it
/// returns: the message is deleted on the server right after.
pub trait MessageSink {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Whether this uidl is already stored (then the message is not fetched again).
    fn has(&mut self, uidl: &str) -> Result<bool, Self::Error>;
    /// Stores the message durably. Storing a uidl already stored must be a no-op.
    fn store(&mut self, uidl: &str, raw: &[u8]) -> Result<(), Self::Error>;
    /// Told after the mailbox committed the deletion of these uidls (e.g. to mark them deleted
    /// in the inbox). Does nothing by default.
    fn deleted(&mut self, uidls: &[String]) -> Result<(), Self::Error> {
        let _ = uidls;
        Ok(())
    }
}

/// What a retrieval run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetrieveReport {
    /// Newly stored, in mailbox order.
    pub stored: Vec<String>,
    /// Already stored by an earlier (interrupted) run: only deleted this time.
    pub already_had: Vec<String>,
    /// Left on the server because they exceed the size limit: `(uidl, size)`.
    pub too_large: Vec<(String, u64)>,
    /// Left on the server untouched (not retrieved, not deleted) because their headers say
    /// they are not for us ([`retrieve_selected`]).
    pub left: Vec<String>,
}

/// A retrieval run failed; the messages stored so far stay stored, nothing unstored was deleted.
#[derive(Debug)]
pub enum RetrieveError<M, S> {
    Mailbox(M),
    Sink(S),
}

impl<M: fmt::Display, S: fmt::Display> fmt::Display for RetrieveError<M, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetrieveError::Mailbox(e) => write!(f, "mailbox: {e}"),
            RetrieveError::Sink(e) => write!(f, "storing a retrieved message: {e}"),
        }
    }
}

impl<M, S> std::error::Error for RetrieveError<M, S>
where
    M: std::error::Error + 'static,
    S: std::error::Error + 'static,
{
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RetrieveError::Mailbox(e) => Some(e),
            RetrieveError::Sink(e) => Some(e),
        }
    }
}

/// Retrieval policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetrievePolicy {
    /// Messages larger than this stay on the server (reported in `too_large`).
    pub max_size: u64,
    /// Delete messages on the server once stored (otherwise keep them; the sink's `has`
    /// prevents storing them twice).
    pub delete: bool,
}

/// Moves every message of `mailbox` into `sink`: for each, fetch (unless already stored), store
/// durably, **then** delete; finally `finish` to commit the deletions.
///
/// A crash or error at any point loses nothing (a message is deleted only after `store`
/// returned) and duplicates nothing (a stored uidl is not stored again on the next run).
pub fn retrieve<M: Mailbox, S: MessageSink>(
    mailbox: &mut M,
    sink: &mut S,
    policy: RetrievePolicy,
) -> Result<RetrieveReport, RetrieveError<M::Error, S::Error>> {
    run(mailbox, sink, policy, None)
}

/// [`retrieve`], but only the messages `select` accepts from their header block
/// ([`Mailbox::headers`]); the others are left exactly as they were: not retrieved, not
/// deleted (listed in [`RetrieveReport::left`]). A message already stored by an earlier run
/// was selected then and is not looked at again.
pub fn retrieve_selected<M: Mailbox, S: MessageSink>(
    mailbox: &mut M,
    sink: &mut S,
    policy: RetrievePolicy,
    select: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<RetrieveReport, RetrieveError<M::Error, S::Error>> {
    run(mailbox, sink, policy, Some(select))
}

/// Decides from a header block whether to take a message.
type Select<'a> = &'a mut dyn FnMut(&[u8]) -> bool;

fn run<M: Mailbox, S: MessageSink>(
    mailbox: &mut M,
    sink: &mut S,
    policy: RetrievePolicy,
    mut select: Option<Select<'_>>,
) -> Result<RetrieveReport, RetrieveError<M::Error, S::Error>> {
    let mut report = RetrieveReport::default();
    let mut deleted = Vec::new();
    let entries = mailbox.list().map_err(RetrieveError::Mailbox)?;
    for (uidl, size) in entries {
        if sink.has(&uidl).map_err(RetrieveError::Sink)? {
            report.already_had.push(uidl.clone());
        } else {
            if let Some(select) = select.as_mut() {
                let head = mailbox.headers(&uidl).map_err(RetrieveError::Mailbox)?;
                if !select(&head) {
                    report.left.push(uidl);
                    continue;
                }
            }
            if size > policy.max_size {
                report.too_large.push((uidl, size));
                continue;
            }
            let raw = mailbox.fetch(&uidl).map_err(RetrieveError::Mailbox)?;
            sink.store(&uidl, &raw).map_err(RetrieveError::Sink)?;
            report.stored.push(uidl.clone());
        }
        if policy.delete {
            mailbox.delete(&uidl).map_err(RetrieveError::Mailbox)?;
            deleted.push(uidl);
        }
    }
    mailbox.finish().map_err(RetrieveError::Mailbox)?;
    sink.deleted(&deleted).map_err(RetrieveError::Sink)?;
    Ok(report)
}
