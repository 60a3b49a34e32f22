use super::*;
use proptest::prelude::*;

fn cfg() -> SessionConfig {
    SessionConfig {
        hostname: "oct.test".into(),
        max_message_size: 64,
        max_recipients: 2,
        max_errors: 5,
        max_line_length: 100,
        starttls: false,
        recipients: Recipients::Any,
    }
}

/// A message as the shell assembles it from the session's actions.
#[derive(Debug, PartialEq)]
struct ReceivedMessage {
    helo: String,
    mail_from: String,
    rcpt_to: Vec<String>,
    data: Vec<u8>,
}

/// Result of driving a session: all reply bytes, the persisted messages, how many messages
/// were aborted, whether it closed.
#[derive(Debug, PartialEq)]
struct Run {
    replies: String,
    messages: Vec<ReceivedMessage>,
    aborted: usize,
    closed: bool,
}

/// What the shell holds while a message is streamed: the content so far.
#[derive(Default)]
struct Shell {
    current: Option<ReceivedMessage>,
    messages: Vec<ReceivedMessage>,
    aborted: usize,
    largest_chunk: usize,
}

impl Shell {
    /// Carries out a content action; returns `false` for the others.
    fn content(&mut self, a: &Action) -> bool {
        match a {
            Action::BeginMessage(e) => {
                assert!(self.current.is_none(), "message begun twice");
                self.current = Some(ReceivedMessage {
                    helo: e.helo.clone(),
                    mail_from: e.mail_from.clone(),
                    rcpt_to: e.rcpt_to.clone(),
                    data: Vec::new(),
                });
            }
            Action::MessageData(chunk) => {
                self.largest_chunk = self.largest_chunk.max(chunk.0.len());
                let m = self.current.as_mut().expect("content outside a message");
                m.data.extend_from_slice(&chunk.0);
            }
            Action::AbortMessage => {
                assert!(self.current.take().is_some(), "abort outside a message");
                self.aborted += 1;
            }
            Action::Persist => {
                let m = self.current.take().expect("persist outside a message");
                self.messages.push(m);
            }
            Action::StartTls | Action::Close => return false,
        }
        true
    }
}

/// Feeds `chunks` one after the other, the way the shell does: keeps unconsumed bytes,
/// answers each persist with `outcome`, completes STARTTLS at once.
fn drive(config: SessionConfig, chunks: &[&[u8]], fail_persist: bool) -> Run {
    let mut s = Session::new(config);
    let mut replies = Vec::new();
    let mut shell = Shell::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut n = 0;
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        loop {
            let used = s.feed(&pending);
            pending.drain(..used);
            replies.extend(s.take_replies());
            let mut acted = false;
            while let Some(a) = s.next_action() {
                acted = true;
                let persist = a == Action::Persist;
                if shell.content(&a) {
                    if persist {
                        n += 1;
                        s.persisted(if fail_persist {
                            PersistOutcome::Failed
                        } else {
                            PersistOutcome::Stored { id: format!("id{n}") }
                        });
                    }
                    continue;
                }
                if a == Action::StartTls {
                    pending.clear();
                    s.tls_started();
                }
            }
            replies.extend(s.take_replies());
            if !acted || s.is_closed() {
                break;
            }
        }
    }
    assert!(shell.largest_chunk <= DATA_CHUNK);
    Run {
        replies: String::from_utf8(replies).unwrap(),
        messages: shell.messages,
        aborted: shell.aborted,
        closed: s.is_closed(),
    }
}

fn codes(run: &Run) -> Vec<String> {
    run.replies
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| l.get(..4).unwrap_or(l).to_owned())
        .collect()
}

const DIALOGUE: &[u8] = b"EHLO client.example\r\n\
MAIL FROM:<ps@example.org> SIZE=20 BODY=8BITMIME\r\n\
RCPT TO:<oct@example.net>\r\n\
DATA\r\n\
Subject: x\r\n\
\r\n\
..dot\r\n\
.\r\n\
QUIT\r\n";

const DIALOGUE_REPLIES: &str = "220 oct.test ESMTP svoct ready\r\n\
250-oct.test Hello\r\n\
250-SIZE 64\r\n\
250-PIPELINING\r\n\
250-8BITMIME\r\n\
250 ENHANCEDSTATUSCODES\r\n\
250 2.1.0 Sender OK\r\n\
250 2.1.5 Recipient OK\r\n\
354 Start mail input; end with <CRLF>.<CRLF>\r\n\
250 2.0.0 OK queued as id1\r\n\
221 2.0.0 oct.test closing connection\r\n";

#[test]
fn full_dialogue_exact_replies_and_message() {
    let run = drive(cfg(), &[DIALOGUE], false);
    assert_eq!(run.replies, DIALOGUE_REPLIES);
    assert!(run.closed);
    assert_eq!(run.messages.len(), 1);
    let m = &run.messages[0];
    assert_eq!(m.helo, "client.example");
    assert_eq!(m.mail_from, "ps@example.org");
    assert_eq!(m.rcpt_to, vec!["oct@example.net".to_owned()]);
    // Dot-unstuffed, CRLF kept, final "." line removed.
    assert_eq!(m.data, b"Subject: x\r\n\r\n.dot\r\n");
}

#[test]
fn every_split_point_gives_the_same_dialogue() {
    let whole = drive(cfg(), &[DIALOGUE], false);
    for i in 0..=DIALOGUE.len() {
        let (a, b) = DIALOGUE.split_at(i);
        assert_eq!(drive(cfg(), &[a, b], false), whole, "split at {i}");
    }
    // And byte by byte.
    let bytes: Vec<&[u8]> = DIALOGUE.chunks(1).collect();
    assert_eq!(drive(cfg(), &bytes, false), whole);
}

#[test]
fn every_two_split_points_give_the_same_message() {
    let whole = drive(cfg(), &[DIALOGUE], false);
    for i in (0..DIALOGUE.len()).step_by(3) {
        for j in i..DIALOGUE.len() {
            let run = drive(cfg(), &[&DIALOGUE[..i], &DIALOGUE[i..j], &DIALOGUE[j..]], false);
            assert_eq!(run, whole, "split at {i},{j}");
        }
    }
}

#[test]
fn end_of_data_marker_inside_body_is_stuffed_and_restored() {
    // The client stuffs ".\r\n" lines as "..\r\n"; the body keeps the original.
    let input = b"HELO a\r\nMAIL FROM:<>\r\nRCPT TO:<b@c>\r\nDATA\r\nx\r\n..\r\ny\r\n.\r\n";
    let run = drive(cfg(), &[input], false);
    assert_eq!(run.messages.len(), 1);
    assert_eq!(run.messages[0].data, b"x\r\n.\r\ny\r\n");
    assert_eq!(run.messages[0].mail_from, "");
}

#[test]
fn empty_message_is_accepted() {
    let input = b"HELO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<b@c>\r\nDATA\r\n.\r\n";
    let run = drive(cfg(), &[input], false);
    assert_eq!(run.messages.len(), 1);
    assert!(run.messages[0].data.is_empty());
}

/// Feeds `input` until the session stops consuming, dropping content actions; returns the
/// octets consumed.
fn feed_all(s: &mut Session, input: &[u8]) -> usize {
    let mut used = 0;
    loop {
        let n = s.feed(&input[used..]);
        used += n;
        let mut acted = false;
        while let Some(a) = s.next_action() {
            acted = true;
            assert!(!matches!(a, Action::Close | Action::StartTls));
        }
        if n == 0 && !acted {
            return used;
        }
    }
}

fn tx_with_body(body: &[u8]) -> Vec<u8> {
    let mut v = b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<b@c>\r\nDATA\r\n".to_vec();
    v.extend_from_slice(body);
    v.extend_from_slice(b".\r\nNOOP\r\n");
    v
}

#[test]
fn message_of_exactly_max_size_is_accepted_one_more_is_552_after_the_end() {
    // 62 bytes + CRLF = 64 = max.
    let body = [b"a".repeat(62), b"\r\n".to_vec()].concat();
    let run = drive(cfg(), &[&tx_with_body(&body)], false);
    assert_eq!(run.messages.len(), 1);
    assert_eq!(run.messages[0].data.len(), 64);

    let body = [b"a".repeat(63), b"\r\n".to_vec()].concat();
    let input = tx_with_body(&body);
    // Before the final dot arrives, no reply after 354.
    let cut = input.len() - b".\r\nNOOP\r\n".len();
    let mut s = Session::new(cfg());
    let used = feed_all(&mut s, &input[..cut]);
    assert_eq!(used, cut);
    let replies = String::from_utf8(s.take_replies()).unwrap();
    assert!(replies.ends_with("354 Start mail input; end with <CRLF>.<CRLF>\r\n"));
    let run = drive(cfg(), &[&input], false);
    assert!(run.messages.is_empty());
    assert_eq!(
        codes(&run)[codes(&run).len() - 2..],
        ["552 ".to_owned(), "250 ".to_owned()]
    );
    assert!(
        run.replies
            .contains("552 5.3.4 Message size exceeds fixed maximum\r\n")
    );
}

#[test]
fn oversized_message_is_aborted_as_soon_as_it_exceeds_the_bound() {
    let body = [b"a".repeat(100), b"\r\n".to_vec()].concat();
    let mut input = tx_with_body(&body);
    input.truncate(input.len() - b".\r\nNOOP\r\n".len());
    let mut s = Session::new(cfg());
    let mut actions = Vec::new();
    let mut used = 0;
    loop {
        let n = s.feed(&input[used..]);
        used += n;
        let before = actions.len();
        actions.extend(std::iter::from_fn(|| s.next_action()));
        if n == 0 && actions.len() == before {
            break;
        }
    }
    // The abort comes before the end of DATA, so the shell frees its file at once; no
    // content of the refused message was ever handed out.
    assert_eq!(used, input.len());
    assert!(matches!(
        actions.as_slice(),
        [Action::BeginMessage(_), Action::AbortMessage]
    ));
}

#[test]
fn content_is_handed_out_in_bounded_chunks_whatever_the_input_size() {
    let mut c = cfg();
    c.max_message_size = 1 << 20;
    let line = [b"b".repeat(998), b"\r\n".to_vec()].concat();
    let body = line.repeat(500);
    let input = tx_with_body(&body);
    // One feed with the whole input, as a shell with a huge read buffer would do.
    let run = drive(c, &[&input], false);
    assert_eq!(run.messages.len(), 1);
    assert_eq!(run.messages[0].data, body);
}

#[test]
fn recipients_not_served_here_get_550_relay_denied() {
    let mut c = cfg();
    c.recipients = Recipients::Only(vec!["oct@oct.example".into()]);
    let run = drive(
        c,
        &[
            b"EHLO a\r\nMAIL FROM:<ps@example.org>\r\nRCPT TO:<victim@gmail.com>\r\n\
RCPT TO:<OCT@Oct.Example>\r\nRCPT TO:<oct@oct.example.evil>\r\nDATA\r\nx\r\n.\r\n",
        ],
        false,
    );
    let c = codes(&run);
    assert_eq!(
        c[c.len() - 5..],
        ["550 ", "250 ", "550 ", "354 ", "250 "].map(String::from)[..]
    );
    assert!(
        run.replies
            .contains("550 5.7.1 Relaying denied: recipient not served here\r\n")
    );
    assert_eq!(run.messages.len(), 1);
    assert_eq!(run.messages[0].rcpt_to, ["OCT@Oct.Example"]);
}

#[test]
fn default_recipients_accept_nobody() {
    let c = SessionConfig::default();
    assert!(!c.recipients.accepts("oct@svoct.localhost"));
    let run = drive(c, &[b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@b>\r\n"], false);
    assert!(
        run.replies
            .ends_with("550 5.7.1 Relaying denied: recipient not served here\r\n")
    );
}

#[test]
fn timeout_inside_data_aborts_the_message() {
    let mut s = Session::new(cfg());
    let input = b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<b@c>\r\nDATA\r\npartial";
    let mut actions = Vec::new();
    let mut used = 0;
    while used < input.len() {
        used += s.feed(&input[used..]);
        actions.extend(std::iter::from_fn(|| s.next_action()));
    }
    assert!(s.in_data());
    assert_eq!(s.data_octets(), 7);
    s.timeout();
    actions.extend(std::iter::from_fn(|| s.next_action()));
    assert!(matches!(
        actions.as_slice(),
        [
            Action::BeginMessage(_),
            Action::MessageData(_),
            Action::AbortMessage,
            Action::Close
        ]
    ));
    assert!(
        String::from_utf8(s.take_replies())
            .unwrap()
            .ends_with("421 4.4.2 oct.test Timeout, closing connection\r\n")
    );
}

#[test]
fn phase_changes_per_command_line_not_per_byte() {
    let mut s = Session::new(cfg());
    let p0 = s.phase();
    for b in b"EHLO a" {
        s.feed(&[*b]);
    }
    assert_eq!(s.phase(), p0, "a partial line is the same phase");
    s.feed(b"\r\n");
    let p1 = s.phase();
    assert_ne!(p1, p0);
    s.feed(b"NOOP\r\nNOOP\r\n");
    assert_ne!(s.phase(), p1);
}

#[test]
fn mail_size_parameter_over_limit_is_552() {
    let run = drive(cfg(), &[b"EHLO a\r\nMAIL FROM:<a@b> SIZE=65\r\n"], false);
    assert_eq!(codes(&run).last().unwrap(), "552 ");
}

#[test]
fn bare_lf_in_body_is_refused_and_does_not_end_data() {
    // "\n.\r\n" is not an end marker (smuggling): DATA continues to the real "\r\n.\r\n".
    let body = b"a\n.\r\nMAIL FROM:<evil@x>\r\n";
    let run = drive(cfg(), &[&tx_with_body(body)], false);
    assert!(run.messages.is_empty());
    let c = codes(&run);
    assert_eq!(c[c.len() - 2..], ["554 ".to_owned(), "250 ".to_owned()]);
    // No second "Sender OK": the smuggled MAIL stayed inside the refused body.
    assert_eq!(run.replies.matches("2.1.0").count(), 1);
}

#[test]
fn bare_cr_in_body_is_refused() {
    let run = drive(cfg(), &[&tx_with_body(b"a\rb\r\n")], false);
    assert!(run.messages.is_empty());
    assert!(run.replies.contains("554 5.6.0"));
}

#[test]
fn out_of_order_commands_get_503() {
    let mut c = cfg();
    c.max_errors = 10;
    let run = drive(
        c,
        &[b"MAIL FROM:<a@b>\r\nEHLO x\r\nRCPT TO:<a@b>\r\nDATA\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\nDATA\r\n"],
        false,
    );
    assert_eq!(
        codes(&run),
        [
            "220 ", "503 ", "250-", "250-", "250-", "250-", "250 ", "503 ", "503 ", "250 ", "503 ", "503 "
        ]
    );
    assert!(run.replies.contains("503 5.5.1 Need RCPT before DATA"));
}

#[test]
fn unknown_unimplemented_and_informational_commands() {
    let run = drive(
        cfg(),
        &[b"FOO bar\r\nEXPN list\r\nVRFY user\r\nNOOP\r\nRSET\r\nHELP\r\n"],
        false,
    );
    assert_eq!(
        codes(&run),
        ["220 ", "500 ", "502 ", "252 ", "250 ", "250 ", "214 "]
    );
}

#[test]
fn too_many_errors_closes_with_421_and_reads_no_more() {
    let input = b"X\r\nX\r\nX\r\nX\r\nX\r\nNOOP\r\n";
    let mut s = Session::new(cfg());
    let used = s.feed(input);
    assert!(s.is_closed());
    assert_eq!(used, 15, "stops after the fifth bad line");
    let replies = String::from_utf8(s.take_replies()).unwrap();
    assert!(replies.ends_with("421 4.7.0 oct.test Too many errors, closing connection\r\n"));
    assert_eq!(s.next_action(), Some(Action::Close));
    assert_eq!(s.feed(b"NOOP\r\n"), 0);
}

#[test]
fn lines_without_crlf_and_overlong_lines() {
    let long = [b"NOOP ".to_vec(), b"x".repeat(200), b"\r\n".to_vec()].concat();
    let input = [b"NOOP\n".to_vec(), long, b"NOOP\r\n".to_vec()].concat();
    let run = drive(cfg(), &[&input], false);
    assert_eq!(codes(&run), ["220 ", "500 ", "500 ", "250 "]);
    assert!(
        run.replies
            .contains("500 5.5.2 Syntax error: command line must end with CRLF")
    );
    assert!(run.replies.contains("500 5.5.6 Line too long"));
}

#[test]
fn too_many_recipients_get_452() {
    let run = drive(
        cfg(),
        &[b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<1@b>\r\nRCPT TO:<2@b>\r\nRCPT TO:<3@b>\r\nDATA\r\nx\r\n.\r\n"],
        false,
    );
    assert!(run.replies.contains("452 4.5.3 Too many recipients"));
    assert_eq!(run.messages[0].rcpt_to, ["1@b", "2@b"]);
}

#[test]
fn failed_persist_is_451_and_pipelined_commands_wait_for_it() {
    let input = b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<b@c>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n";
    let mut s = Session::new(cfg());
    // The session stops at each action (begin, content, persist) until the end of DATA.
    let mut used = 0;
    let mut actions = Vec::new();
    while !s.awaiting_persist() {
        let n = s.feed(&input[used..]);
        assert!(n > 0 || s.awaiting_persist());
        used += n;
        while let Some(a) = s.next_action() {
            actions.push(a);
        }
    }
    assert_eq!(&input[used..], b"NOOP\r\n", "stops at the end of DATA");
    assert!(matches!(actions.as_slice(), [
        Action::BeginMessage(_),
        Action::MessageData(DataChunk(d)),
        Action::Persist,
    ] if d == b"x\r\n"));
    assert_eq!(s.feed(&input[used..]), 0);
    let before = String::from_utf8(s.take_replies()).unwrap();
    assert!(before.ends_with("354 Start mail input; end with <CRLF>.<CRLF>\r\n"));
    s.persisted(PersistOutcome::Failed);
    assert_eq!(s.feed(&input[used..]), 6);
    let after = String::from_utf8(s.take_replies()).unwrap();
    assert_eq!(
        after,
        "451 4.3.0 Local error storing the message, try again later\r\n250 2.0.0 OK\r\n"
    );
}

#[test]
fn rset_discards_the_transaction() {
    let run = drive(
        cfg(),
        &[b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<b@c>\r\nRSET\r\nDATA\r\n"],
        false,
    );
    assert!(run.replies.ends_with("503 5.5.1 Need MAIL before DATA\r\n"));
}

#[test]
fn starttls_flow() {
    let mut c = cfg();
    c.starttls = true;
    let run = drive(
        c.clone(),
        &[
            b"EHLO a\r\nSTARTTLS\r\nMAIL FROM:<injected@x>\r\n",
            b"MAIL FROM:<a@b>\r\nEHLO a\r\n",
        ],
        false,
    );
    // The injected MAIL pipelined after STARTTLS is dropped; after TLS the EHLO is forgotten.
    assert!(run.replies.contains("250 STARTTLS\r\n"));
    assert!(run.replies.contains("220 2.0.0 Ready to start TLS\r\n"));
    assert!(run.replies.contains("503 5.5.1 Send EHLO or HELO first\r\n"));
    assert!(!run.replies.contains("2.1.0"));
    // Second EHLO no longer offers STARTTLS.
    assert_eq!(run.replies.matches("STARTTLS\r\n").count(), 1);

    let run = drive(cfg(), &[b"EHLO a\r\nSTARTTLS\r\n"], false);
    assert!(run.replies.ends_with("502 5.5.1 STARTTLS not offered\r\n"));
    assert!(!run.replies.contains("STARTTLS\r\n250"));
}

#[test]
fn bdat_is_refused_and_its_chunk_skipped() {
    let run = drive(cfg(), &[b"EHLO a\r\nBDAT 10 LAST\r\nQUIT\r\nQUITNOOP\r\n"], false);
    assert_eq!(codes(&run)[6..], ["502 ".to_owned(), "250 ".to_owned()]);
}

#[test]
fn timeout_and_shutdown_say_421() {
    let mut s = Session::new(cfg());
    let _ = s.take_replies();
    s.timeout();
    assert_eq!(
        s.take_replies(),
        b"421 4.4.2 oct.test Timeout, closing connection\r\n"
    );
    assert!(s.is_closed());
    let mut s = Session::new(cfg());
    let _ = s.take_replies();
    s.shutdown();
    assert!(
        String::from_utf8(s.take_replies())
            .unwrap()
            .starts_with("421 4.3.2")
    );
}

#[test]
fn hostname_cannot_inject_reply_lines() {
    let mut c = cfg();
    c.hostname = "a\r\n250 b".into();
    let mut s = Session::new(c);
    assert_eq!(s.take_replies(), b"220 a250b ESMTP svoct ready\r\n");
}

/// Body lines as the client sees them: no CR or LF inside a line.
fn body_lines() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop::collection::vec(
            prop_oneof![
                Just(b'.'),
                any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n')
            ],
            0..20,
        ),
        0..12,
    )
}

proptest! {
    #[test]
    fn data_receiver_round_trips_stuffed_content(lines in body_lines(), splits in prop::collection::vec(0usize..400, 0..6)) {
        let mut original = Vec::new();
        let mut wire = Vec::new();
        for line in &lines {
            original.extend_from_slice(line);
            original.extend_from_slice(b"\r\n");
            if line.first() == Some(&b'.') {
                wire.push(b'.');
            }
            wire.extend_from_slice(line);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b".\r\nTRAILING");
        let mut r = DataReceiver::new(10_000);
        let mut cuts: Vec<usize> = splits.into_iter().map(|s| s % (wire.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(wire.len());
        let mut pos = 0;
        let mut done = false;
        let mut out = Vec::new();
        for cut in cuts {
            if cut < pos { continue; }
            let (used, d) = r.ingest(&wire[pos..cut]);
            pos += used;
            out.extend(r.take_output().unwrap_or_default());
            if d { done = true; break; }
            prop_assert_eq!(pos, cut);
        }
        prop_assert!(done);
        prop_assert_eq!(&wire[pos..], b"TRAILING");
        prop_assert_eq!(r.finish(), DataOutcome::Complete);
        prop_assert_eq!(out, original);
    }

    #[test]
    fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..2000)) {
        fuzz_session(&data);
    }

    #[test]
    fn mutated_dialogues_never_panic(
        edits in prop::collection::vec((0usize..200, any::<u8>()), 0..8),
        mode in any::<u8>(),
        chunk in 1u8..40,
    ) {
        let mut data = vec![mode, chunk];
        data.extend_from_slice(DIALOGUE);
        for (at, b) in edits {
            let i = at % data.len();
            data[i] = b;
        }
        fuzz_session(&data);
    }

    #[test]
    fn session_replies_are_crlf_lines_with_codes(data in prop::collection::vec(
        prop_oneof![
            Just(b"EHLO a\r\n".to_vec()), Just(b"MAIL FROM:<a@b>\r\n".to_vec()),
            Just(b"RCPT TO:<c@d>\r\n".to_vec()), Just(b"DATA\r\n".to_vec()),
            Just(b".\r\n".to_vec()), Just(b"RSET\r\n".to_vec()), Just(b"x\n".to_vec()),
            prop::collection::vec(any::<u8>(), 0..10),
        ], 0..30)) {
        let input = data.concat();
        let run = drive(cfg(), &[&input], false);
        prop_assert!(run.replies.ends_with("\r\n"));
        for line in run.replies.split_terminator("\r\n") {
            let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            prop_assert!((200..600).contains(&code), "bad reply line {:?}", line);
        }
    }
}
