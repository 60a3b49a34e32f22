//! The sans-IO SMTP server session of the concentrator's ingress.
//!
//! [`Session`] holds no socket: the shell (see [`super::listener`]) feeds it the bytes it reads
//! with [`Session::feed`], writes the bytes of [`Session::take_replies`] back, and carries out
//! the [`Action`]s of [`Session::next_action`]. This keeps every protocol decision testable
//! without a network, and lets the fuzz target drive the exact code that serves clients.
//!
//! Commands are parsed with `smtp_proto::Request::parse`, one complete CRLF-terminated line at a
//! time. The DATA phase uses this module's own [`DataReceiver`], because the ingress needs three
//! things the generic receiver does not give: a size bound that keeps reading to the end of DATA
//! (so the `552` comes at the right place in the dialogue), detection of bare CR / bare LF, and
//! recognition of the end-of-data marker only after a real CRLF (no SMTP smuggling).
//!
//! **Streamed, then durable before acknowledged.** The session never holds a whole message: at
//! `DATA` it returns [`Action::BeginMessage`] with the envelope, then the unstuffed content in
//! [`Action::MessageData`] chunks of at most [`DATA_CHUNK`] octets (at most one chunk per
//! [`Session::feed`] call), which the shell appends to a spool file. A message refused or cut
//! off mid-way yields [`Action::AbortMessage`]. When it is complete the session does not answer
//! `250`: it returns [`Action::Persist`] and stops consuming input until the shell reports the
//! outcome with [`Session::persisted`], which yields `250` (stored) or `451` (not stored).
//!
//! **Relay denied.** Only the recipients of [`SessionConfig::recipients`] are accepted; any
//! other gets `550 5.7.1`, so the ingress is never an open relay.
//!
//! Decisions where the RFCs leave room are written down in `docs/oct-ingress.md`:
//! - a command line must end with CRLF; a bare-LF command line gets `500 5.5.2`;
//! - a message body holding a bare CR or bare LF is read to its end and refused with
//!   `554 5.6.0` (SESAM-Vitale messages are MIME with base64 parts, so this never refuses a
//!   legitimate message, and it closes the SMTP smuggling family of ambiguities);
//! - BDAT (CHUNKING) is not advertised; a BDAT command is answered `502` and its chunk skipped.

use std::borrow::Cow;
use std::io::Write as _;

use smtp_proto::{Error as ProtoError, MAIL_BODY_BINARYMIME, MailFrom, RcptTo, Request};

/// Limits and identity of an SMTP server session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Host name announced in the greeting and the EHLO reply (non-printable bytes are dropped).
    pub hostname: String,
    /// Largest accepted message, in octets after dot-unstuffing; announced as `SIZE`.
    pub max_message_size: usize,
    /// Most recipients accepted in one transaction; beyond, `452 4.5.3`.
    pub max_recipients: usize,
    /// Number of client errors (5xx replies) after which the session answers `421` and closes.
    pub max_errors: u32,
    /// Longest command line, CRLF included; a longer line is discarded and answered `500`.
    pub max_line_length: usize,
    /// Whether `STARTTLS` is offered (the shell must then be able to start TLS).
    pub starttls: bool,
    /// Which `RCPT TO` addresses are served here; every other one gets `550 5.7.1`.
    pub recipients: Recipients,
}

/// Default [`SessionConfig::max_message_size`]: 64 MiB, far above a claims message (a few MB)
/// and harmless since content is streamed to disk.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
/// Default [`SessionConfig::max_recipients`].
pub const DEFAULT_MAX_RECIPIENTS: usize = 16;
/// Largest [`Action::MessageData`] chunk: the session consumes at most this many octets of
/// DATA input per [`Session::feed`] call, so its own buffer never grows beyond it.
pub const DATA_CHUNK: usize = 64 * 1024;

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            hostname: "svoct.localhost".to_owned(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_recipients: DEFAULT_MAX_RECIPIENTS,
            max_errors: 10,
            max_line_length: 2048,
            starttls: false,
            recipients: Recipients::default(),
        }
    }
}

/// The recipients a session accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// Only these addresses, compared case-insensitively (the concentrator: its own address).
    /// The default is the empty list, which accepts nobody: a server is never an open relay
    /// by omission.
    Only(Vec<String>),
    /// Any address: only for a server that is the final destination of every address it may
    /// be sent (the insurer simulator, which plays many insurer mailboxes on loopback).
    Any,
}

impl Default for Recipients {
    fn default() -> Self {
        Recipients::Only(Vec::new())
    }
}

impl Recipients {
    /// Whether `address` (a `RCPT TO` forward path) is served here.
    pub fn accepts(&self, address: &str) -> bool {
        match self {
            Recipients::Any => true,
            Recipients::Only(list) => list.iter().any(|a| a.eq_ignore_ascii_case(address)),
        }
    }
}

/// The envelope of a message whose content follows in [`Action::MessageData`] chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEnvelope {
    /// Name the client gave in EHLO/HELO.
    pub helo: String,
    /// Reverse path of `MAIL FROM` (empty for the null sender `<>`).
    pub mail_from: String,
    /// Forward paths of the accepted `RCPT TO` commands, in order.
    pub rcpt_to: Vec<String>,
}

/// A chunk of message content after dot-unstuffing, with its CRLF line ends (the final `.`
/// line excluded). Its `Debug` never prints the content: logs must not carry health data.
#[derive(Clone, PartialEq, Eq)]
pub struct DataChunk(pub Vec<u8>);

impl std::fmt::Debug for DataChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataChunk({} octets)", self.0.len())
    }
}

/// Something the shell must do for the session, beyond writing its replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A message starts (after `354`): prepare to store content for this envelope.
    BeginMessage(MessageEnvelope),
    /// The next content of the message begun, in order.
    MessageData(DataChunk),
    /// The message begun will not be stored (too big, bare line end, timeout): discard
    /// whatever was written for it. No [`Action::Persist`] follows.
    AbortMessage,
    /// The message begun is complete: make it durable, then call [`Session::persisted`].
    Persist,
    /// Write the pending replies, discard any input already buffered (RFC 3207 §4.2), run the
    /// TLS handshake, then call [`Session::tls_started`].
    StartTls,
    /// Write the pending replies and close the connection.
    Close,
}

/// Outcome of a persist request, reported back by the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersistOutcome {
    /// The message is durably in the spool under this identifier.
    Stored {
        /// Spool identifier, quoted in the `250` reply.
        id: String,
    },
    /// The message could not be stored; the client is told to retry later (`451`).
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading commands.
    Command,
    /// Reading message content after `354`.
    Data,
    /// Skipping the octets of a refused BDAT chunk.
    SkipChunk(usize),
    /// Waiting for [`Session::persisted`].
    AwaitPersist,
    /// Waiting for [`Session::tls_started`].
    AwaitTls,
    /// No more input is read.
    Closed,
}

#[derive(Debug, Default)]
struct Transaction {
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
}

/// One SMTP server session (one connection), fed with bytes.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    hostname: String,
    state: State,
    helo: Option<String>,
    tls: bool,
    tx: Transaction,
    errors: u32,
    /// Bytes of the command line read so far (bounded by `max_line_length`).
    line: Vec<u8>,
    /// The current command line exceeded the bound; its bytes are dropped up to its LF.
    line_too_long: bool,
    data: DataReceiver,
    /// Incremented each time the session starts waiting for a new command line or a new DATA
    /// phase: the shell times each phase as a whole, see [`Session::phase`].
    phase: u64,
    replies: Vec<u8>,
    actions: std::collections::VecDeque<Action>,
}

impl Session {
    /// A new session; the `220` greeting is already queued in the replies.
    pub fn new(config: SessionConfig) -> Self {
        let hostname: String = config
            .hostname
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(255)
            .collect();
        let hostname = if hostname.is_empty() {
            "localhost".to_owned()
        } else {
            hostname
        };
        let data = DataReceiver::new(config.max_message_size);
        let mut session = Self {
            config,
            hostname,
            state: State::Command,
            helo: None,
            tls: false,
            tx: Transaction::default(),
            errors: 0,
            line: Vec::new(),
            line_too_long: false,
            data,
            phase: 0,
            replies: Vec::new(),
            actions: std::collections::VecDeque::new(),
        };
        let greeting = format!("{} ESMTP svoct ready", session.hostname);
        session.reply(220, "", &greeting);
        session
    }

    /// The configuration this session runs with.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Feeds bytes read from the client; returns how many were consumed.
    ///
    /// Fewer than `input.len()` are consumed when the session waits for the shell (a persist,
    /// a TLS handshake) or is closed: the shell keeps the rest and feeds it again after
    /// [`Session::persisted`] (the rest must be dropped after a STARTTLS, see [`Action`]).
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let mut pos = 0usize;
        while let Some(rest) = input.get(pos..) {
            if rest.is_empty() {
                break;
            }
            let used = match self.state {
                State::Command => self.feed_command(rest),
                State::Data => self.feed_data(rest),
                State::SkipChunk(left) => {
                    let n = left.min(rest.len());
                    let left = left.saturating_sub(n);
                    self.state = if left == 0 {
                        State::Command
                    } else {
                        State::SkipChunk(left)
                    };
                    n
                }
                State::AwaitPersist | State::AwaitTls | State::Closed => break,
            };
            pos = pos.saturating_add(used);
            // The shell carries out each action before more input is consumed: content
            // chunks reach the spool in order and the session's buffer stays at one chunk.
            if !self.actions.is_empty() {
                break;
            }
        }
        pos.min(input.len())
    }

    /// Takes the reply bytes to write to the client (empty when there is nothing to write).
    pub fn take_replies(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.replies)
    }

    /// Takes the next action the shell must carry out, if any.
    pub fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Whether the session is waiting for [`Session::persisted`].
    pub fn awaiting_persist(&self) -> bool {
        self.state == State::AwaitPersist
    }

    /// Whether the session has ended (after QUIT, a 421, or too many errors).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether the session is inside DATA (the shell applies its data timeout then).
    pub fn in_data(&self) -> bool {
        matches!(self.state, State::Data | State::SkipChunk(_))
    }

    /// A number that changes each time a new phase starts: a command line is complete (the
    /// next one starts), a DATA phase ends, a persist or TLS handshake is over. The shell
    /// bounds the whole duration of a phase, not each read, so a client trickling bytes
    /// cannot hold a connection.
    pub fn phase(&self) -> u64 {
        self.phase
    }

    /// Octets read in the current DATA phase (wire octets, before unstuffing): the shell
    /// requires a minimum data rate with it.
    pub fn data_octets(&self) -> u64 {
        if self.state == State::Data {
            self.data.seen
        } else {
            0
        }
    }

    /// Reports the outcome of the last [`Action::Persist`]: queues `250` or `451`.
    pub fn persisted(&mut self, outcome: PersistOutcome) {
        if self.state != State::AwaitPersist {
            return;
        }
        match outcome {
            PersistOutcome::Stored { id } => {
                let id: String = id.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
                self.reply(250, "2.0.0", &format!("OK queued as {id}"));
            }
            PersistOutcome::Failed => {
                self.reply(451, "4.3.0", "Local error storing the message, try again later");
            }
        }
        self.state = State::Command;
        self.next_phase();
    }

    fn next_phase(&mut self) {
        self.phase = self.phase.wrapping_add(1);
    }

    /// Reports that the TLS handshake completed: the session forgets the EHLO (RFC 3207 §4.2).
    pub fn tls_started(&mut self) {
        if self.state == State::AwaitTls {
            self.tls = true;
            self.helo = None;
            self.tx = Transaction::default();
            self.state = State::Command;
            self.next_phase();
        }
    }

    /// The shell's timeout fired: queues `421` and closes.
    pub fn timeout(&mut self) {
        self.close_with(421, "4.4.2", "Timeout, closing connection");
    }

    /// The server is shutting down: queues `421` and closes (not while a persist is pending).
    pub fn shutdown(&mut self) {
        if self.state != State::AwaitPersist {
            self.close_with(421, "4.3.2", "Service shutting down, try again later");
        }
    }

    /// Queues `421 4.7.0` and closes: used by the shell for connection and rate limits.
    pub fn refuse(&mut self, text: &str) {
        self.close_with(421, "4.7.0", text);
    }

    fn close_with(&mut self, code: u16, enhanced: &str, text: &str) {
        if self.state == State::Closed {
            return;
        }
        if self.state == State::Data && !self.data.rejected() {
            // Cut off mid-message: what the shell wrote for it must go.
            self.actions.push_back(Action::AbortMessage);
        }
        let text = format!("{} {}", self.hostname, text);
        self.reply(code, enhanced, &text);
        self.state = State::Closed;
        self.actions.push_back(Action::Close);
    }

    fn reply(&mut self, code: u16, enhanced: &str, text: &str) {
        let _ = if enhanced.is_empty() {
            write!(self.replies, "{code} {text}\r\n")
        } else {
            write!(self.replies, "{code} {enhanced} {text}\r\n")
        };
    }

    /// A 5xx caused by the client: counts toward `max_errors`.
    fn client_error(&mut self, code: u16, enhanced: &str, text: &str) {
        self.reply(code, enhanced, text);
        self.errors = self.errors.saturating_add(1);
        if self.errors >= self.config.max_errors {
            self.close_with(421, "4.7.0", "Too many errors, closing connection");
        }
    }

    fn feed_command(&mut self, input: &[u8]) -> usize {
        let Some(lf) = memchr::memchr(b'\n', input) else {
            self.push_line(input);
            return input.len();
        };
        let line_end = lf.saturating_add(1);
        self.push_line(input.get(..line_end).unwrap_or(input));
        let line = std::mem::take(&mut self.line);
        if std::mem::take(&mut self.line_too_long) {
            self.client_error(500, "5.5.6", "Line too long");
        } else {
            self.command_line(&line);
        }
        // Keep the allocation for the next line.
        self.line = line;
        self.line.clear();
        self.next_phase();
        line_end
    }

    fn push_line(&mut self, bytes: &[u8]) {
        if self.line_too_long {
            return;
        }
        if self.line.len().saturating_add(bytes.len()) > self.config.max_line_length {
            self.line_too_long = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn command_line(&mut self, line: &[u8]) {
        if !line.ends_with(b"\r\n") {
            self.client_error(500, "5.5.2", "Syntax error: command line must end with CRLF");
            return;
        }
        match Request::parse(&mut line.iter()) {
            Ok(request) => self.command(request),
            Err(e) => self.parse_error(e),
        }
    }

    fn parse_error(&mut self, e: ProtoError) {
        match e {
            ProtoError::UnknownCommand => {
                self.client_error(500, "5.5.1", "Command unrecognized");
            }
            ProtoError::InvalidSenderAddress => {
                self.client_error(501, "5.1.7", "Bad sender address syntax");
            }
            ProtoError::InvalidRecipientAddress => {
                self.client_error(501, "5.1.3", "Bad recipient address syntax");
            }
            ProtoError::SyntaxError { syntax } => {
                self.client_error(501, "5.5.2", &format!("Syntax: {syntax}"));
            }
            ProtoError::InvalidParameter { param } => {
                self.client_error(501, "5.5.4", &format!("Invalid value for parameter {param}"));
            }
            ProtoError::UnsupportedParameter { .. } => {
                self.client_error(555, "5.5.4", "Unsupported parameter");
            }
            ProtoError::ResponseTooLong => self.client_error(500, "5.5.6", "Line too long"),
            ProtoError::NeedsMoreData { .. } | ProtoError::InvalidResponse { .. } => {
                self.client_error(500, "5.5.2", "Syntax error");
            }
        }
    }

    /// One SMTP verb: each has its own method below, the rest answer in one line here.
    fn command(&mut self, request: Request<Cow<'_, str>>) {
        match request {
            Request::Ehlo { host } => self.ehlo(host.into_owned()),
            Request::Helo { host } => {
                self.helo = Some(host.into_owned());
                self.tx = Transaction::default();
                let text = self.hostname.clone();
                self.reply(250, "", &text);
            }
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data_command(),
            Request::Bdat { chunk_size, .. } => {
                self.client_error(502, "5.5.1", "CHUNKING not supported");
                if chunk_size > 0 && self.state == State::Command {
                    self.state = State::SkipChunk(chunk_size);
                }
            }
            Request::Rset => {
                self.tx = Transaction::default();
                self.reply(250, "2.0.0", "Reset OK");
            }
            Request::Noop { .. } => self.reply(250, "2.0.0", "OK"),
            Request::Quit => {
                let text = format!("{} closing connection", self.hostname);
                self.reply(221, "2.0.0", &text);
                self.state = State::Closed;
                self.actions.push_back(Action::Close);
            }
            Request::Vrfy { .. } => {
                self.reply(252, "2.5.0", "Cannot VRFY user, but will accept message");
            }
            Request::Help { .. } => {
                self.reply(214, "2.0.0", "See RFC 5321");
            }
            Request::StartTls => self.starttls(),
            Request::Expn { .. }
            | Request::Auth { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. }
            | Request::Lhlo { .. } => {
                self.client_error(502, "5.5.1", "Command not implemented");
            }
        }
    }

    fn ehlo(&mut self, host: String) {
        self.helo = Some(host);
        self.tx = Transaction::default();
        let mut lines = vec![
            format!("{} Hello", self.hostname),
            format!("SIZE {}", self.config.max_message_size),
            "PIPELINING".to_owned(),
            "8BITMIME".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
        ];
        if self.config.starttls && !self.tls {
            lines.push("STARTTLS".to_owned());
        }
        let last = lines.len().saturating_sub(1);
        for (i, text) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let _ = write!(self.replies, "250{sep}{text}\r\n");
        }
    }

    fn mail(&mut self, from: MailFrom<Cow<'_, str>>) {
        if self.helo.is_none() {
            self.client_error(503, "5.5.1", "Send EHLO or HELO first");
        } else if self.tx.mail_from.is_some() {
            self.client_error(503, "5.5.1", "Nested MAIL command");
        } else if from.size > self.config.max_message_size {
            self.client_error(552, "5.3.4", "Message size exceeds fixed maximum");
        } else if from.flags & MAIL_BODY_BINARYMIME != 0 {
            self.client_error(555, "5.5.4", "BODY=BINARYMIME not supported");
        } else {
            self.tx.mail_from = Some(from.address.into_owned());
            self.reply(250, "2.1.0", "Sender OK");
        }
    }

    fn rcpt(&mut self, to: RcptTo<Cow<'_, str>>) {
        if self.tx.mail_from.is_none() {
            self.client_error(503, "5.5.1", "Need MAIL before RCPT");
        } else if to.address.is_empty() {
            self.client_error(501, "5.1.3", "Empty recipient address");
        } else if !self.config.recipients.accepts(&to.address) {
            // The address is not echoed: the reply says why, the log has the peer.
            self.client_error(550, "5.7.1", "Relaying denied: recipient not served here");
        } else if self.tx.rcpt_to.len() >= self.config.max_recipients {
            self.reply(452, "4.5.3", "Too many recipients");
        } else {
            self.tx.rcpt_to.push(to.address.into_owned());
            self.reply(250, "2.1.5", "Recipient OK");
        }
    }

    fn data_command(&mut self) {
        if self.tx.mail_from.is_none() {
            self.client_error(503, "5.5.1", "Need MAIL before DATA");
        } else if self.tx.rcpt_to.is_empty() {
            self.client_error(503, "5.5.1", "Need RCPT before DATA");
        } else {
            self.reply(354, "", "Start mail input; end with <CRLF>.<CRLF>");
            self.data.reset();
            self.state = State::Data;
            let tx = std::mem::take(&mut self.tx);
            self.actions.push_back(Action::BeginMessage(MessageEnvelope {
                helo: self.helo.clone().unwrap_or_default(),
                mail_from: tx.mail_from.unwrap_or_default(),
                rcpt_to: tx.rcpt_to,
            }));
        }
    }

    fn starttls(&mut self) {
        if !self.config.starttls {
            self.client_error(502, "5.5.1", "STARTTLS not offered");
        } else if self.tls {
            self.client_error(503, "5.5.1", "TLS already active");
        } else if self.helo.is_none() {
            self.client_error(503, "5.5.1", "Send EHLO first");
        } else {
            self.reply(220, "2.0.0", "Ready to start TLS");
            self.state = State::AwaitTls;
            self.actions.push_back(Action::StartTls);
        }
    }

    fn feed_data(&mut self, input: &[u8]) -> usize {
        let was_rejected = self.data.rejected();
        let input = input.get(..DATA_CHUNK).unwrap_or(input);
        let (used, done) = self.data.ingest(input);
        if self.data.rejected() {
            if !was_rejected {
                self.actions.push_back(Action::AbortMessage);
            }
        } else if let Some(chunk) = self.data.take_output() {
            self.actions.push_back(Action::MessageData(DataChunk(chunk)));
        }
        if !done {
            return used;
        }
        self.state = State::Command;
        self.next_phase();
        match self.data.finish() {
            DataOutcome::TooBig => {
                self.reply(552, "5.3.4", "Message size exceeds fixed maximum");
            }
            DataOutcome::BareLineEnd => {
                self.reply(
                    554,
                    "5.6.0",
                    "Message refused: bare CR or LF, lines must end with CRLF",
                );
            }
            DataOutcome::Complete => {
                self.actions.push_back(Action::Persist);
                self.state = State::AwaitPersist;
            }
        }
        used
    }
}

/// Result of a DATA phase.
#[derive(Debug, PartialEq, Eq)]
pub enum DataOutcome {
    /// The message is within the size bound, with CRLF line ends only; its content was
    /// handed out by [`DataReceiver::take_output`].
    Complete,
    /// The message exceeded the size bound (its bytes were dropped as they came).
    TooBig,
    /// The message held a bare CR or a bare LF.
    BareLineEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataState {
    /// After a CRLF (or at the start of DATA).
    LineStart,
    /// Inside a line.
    Mid,
    /// A CR inside a line, not yet known to be followed by LF.
    Cr,
    /// A `.` at the start of a line.
    Dot,
    /// `.` then CR at the start of a line.
    DotCr,
}

/// Reads DATA content: dot-unstuffing, end at `CRLF . CRLF`, size bound, bare CR/LF detection.
///
/// It does not keep the message: the unstuffed content of each [`DataReceiver::ingest`] call
/// waits in a buffer (never larger than that call's input) until
/// [`DataReceiver::take_output`]. Once the message is known to be refused (too big, bare line
/// end) nothing more is output; the input is still read to the end marker.
#[derive(Debug)]
pub struct DataReceiver {
    max: usize,
    state: DataState,
    out: Vec<u8>,
    /// Unstuffed octets so far (compared with `max`).
    size: usize,
    /// Wire octets so far.
    seen: u64,
    too_big: bool,
    bare: bool,
}

impl DataReceiver {
    /// A receiver that accepts at most `max` octets of content.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            state: DataState::LineStart,
            out: Vec::new(),
            size: 0,
            seen: 0,
            too_big: false,
            bare: false,
        }
    }

    /// Starts a new message.
    pub fn reset(&mut self) {
        self.state = DataState::LineStart;
        self.out.clear();
        self.size = 0;
        self.seen = 0;
        self.too_big = false;
        self.bare = false;
    }

    /// Whether the message is already known to be refused.
    pub fn rejected(&self) -> bool {
        self.too_big || self.bare
    }

    /// Takes the content unstuffed since the last call; `None` when there is none (or the
    /// message is refused).
    pub fn take_output(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() || self.rejected() {
            self.out.clear();
            return None;
        }
        Some(std::mem::take(&mut self.out))
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.rejected() {
            return;
        }
        self.size = self.size.saturating_add(bytes.len());
        if self.size > self.max {
            self.too_big = true;
            self.out = Vec::new();
        } else {
            self.out.extend_from_slice(bytes);
        }
    }

    fn mark_bare(&mut self) {
        self.bare = true;
        self.out = Vec::new();
    }

    /// Consumes input; returns the octets consumed and whether the end marker was reached.
    pub fn ingest(&mut self, input: &[u8]) -> (usize, bool) {
        let (used, done) = self.unstuff(input);
        self.seen = self.seen.saturating_add(u64::try_from(used).unwrap_or(u64::MAX));
        (used, done)
    }

    fn unstuff(&mut self, input: &[u8]) -> (usize, bool) {
        let mut pos = 0usize;
        loop {
            let Some(rest) = input.get(pos..) else {
                return (input.len(), false);
            };
            let Some(&first) = rest.first() else {
                return (pos, false);
            };
            match self.state {
                DataState::LineStart => {
                    if first == b'.' {
                        self.state = DataState::Dot;
                        pos = pos.saturating_add(1);
                    } else {
                        self.state = DataState::Mid;
                    }
                }
                DataState::Mid => match memchr::memchr2(b'\r', b'\n', rest) {
                    None => {
                        self.push(rest);
                        return (input.len(), false);
                    }
                    Some(i) => {
                        self.push(rest.get(..i).unwrap_or_default());
                        if rest.get(i) == Some(&b'\r') {
                            self.state = DataState::Cr;
                        } else {
                            self.mark_bare();
                        }
                        pos = pos.saturating_add(i).saturating_add(1);
                    }
                },
                DataState::Cr => {
                    if first == b'\n' {
                        self.push(b"\r\n");
                        self.state = DataState::LineStart;
                        pos = pos.saturating_add(1);
                    } else {
                        self.mark_bare();
                        self.state = DataState::Mid;
                    }
                }
                DataState::Dot => {
                    if first == b'\r' {
                        self.state = DataState::DotCr;
                        pos = pos.saturating_add(1);
                    } else {
                        // Transparency (RFC 5321 §4.5.2): the leading dot is dropped.
                        self.state = DataState::Mid;
                    }
                }
                DataState::DotCr => {
                    if first == b'\n' {
                        self.state = DataState::LineStart;
                        return (pos.saturating_add(1), true);
                    }
                    self.mark_bare();
                    self.state = DataState::Mid;
                }
            }
        }
    }

    /// Ends the message after [`DataReceiver::ingest`] reported the end marker.
    pub fn finish(&mut self) -> DataOutcome {
        self.out = Vec::new();
        if self.too_big {
            DataOutcome::TooBig
        } else if self.bare {
            DataOutcome::BareLineEnd
        } else {
            DataOutcome::Complete
        }
    }
}

/// Drives a session with arbitrary client bytes; the body of the cargo-fuzz target.
///
/// Every persist succeeds, a STARTTLS is completed at once; the input is fed in chunks whose
/// sizes come from the input itself, so that split points are explored too.
pub fn fuzz_session(data: &[u8]) {
    let config = SessionConfig {
        max_message_size: 4096,
        max_recipients: 4,
        max_errors: 50,
        max_line_length: 512,
        starttls: data.first().is_some_and(|b| b & 1 == 1),
        recipients: Recipients::Any,
        ..SessionConfig::default()
    };
    let mut session = Session::new(config);
    let chunk = usize::from(data.get(1).copied().unwrap_or(7)).max(1);
    let mut pos = 0usize;
    let mut stalls = 0u32;
    // Content of the message in progress, as the shell would append it to a spool file.
    let mut message: Option<Vec<u8>> = None;
    while pos < data.len() && !session.is_closed() {
        let end = pos.saturating_add(chunk).min(data.len());
        let used = session.feed(data.get(pos..end).unwrap_or_default());
        pos = pos.saturating_add(used);
        let _ = session.take_replies();
        let mut acted = false;
        while let Some(action) = session.next_action() {
            acted = true;
            match action {
                Action::BeginMessage(_) => {
                    assert!(message.is_none(), "message begun twice");
                    message = Some(Vec::new());
                }
                Action::MessageData(chunk) => {
                    assert!(chunk.0.len() <= DATA_CHUNK);
                    let m = message.as_mut().expect("content outside a message");
                    m.extend_from_slice(&chunk.0);
                    assert!(m.len() <= 4096);
                }
                Action::AbortMessage => {
                    assert!(message.take().is_some(), "abort outside a message");
                }
                Action::Persist => {
                    assert!(message.take().is_some(), "persist outside a message");
                    session.persisted(PersistOutcome::Stored { id: "1".into() });
                }
                Action::StartTls => session.tls_started(),
                Action::Close => {}
            }
        }
        if used == 0 && !acted {
            stalls = stalls.saturating_add(1);
            assert!(stalls < 2, "session stalled without an action");
        } else {
            stalls = 0;
        }
    }
}

#[cfg(test)]
mod tests;
