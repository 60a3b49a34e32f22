//! Compression bombs against the real service: four PS messages whose encrypted attachment
//! decompresses to 300 MiB each (about 300 KB on the wire) go into a running `svoct oct serve`
//! with four pipeline workers. Each must be quarantined with the decompression limit as its
//! reason, and the peak resident memory of the service process (`VmHWM`, read from /proc) must
//! stay far below what decompressing them would take: the default limit is 16 MiB per worker.

mod pipeline_common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pipeline_common::*;
use svoct_mail::profile::{self, Mailbox, MessageHeaders, Profile, Protect};
use svoct_mail::subject::{FileKind, InvoiceSubject, PartyNumber, SpecVersion, Subject};
use svoct_mail::transport::{SmtpConfig, SmtpEnvelope, SmtpTransport, Transport};
use svoct_oct::state::{OctStore, State};

const BOMBS: u32 = 4;
const BOMB_BYTES: u64 = 300 * 1024 * 1024;
/// Peak RSS allowed to the service: its baseline (tens of MB) plus four workers at the 16 MiB
/// limit, with room for allocator slack; decompressing the bombs would take over 1 GiB.
const MAX_HWM_KIB: u64 = 200 * 1024;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// 300 MiB of zeros as one gzip member, made by the system's gzip (fast, independent of the
/// code under test).
fn gzip_bomb() -> Vec<u8> {
    let out = Command::new("sh")
        .args(["-c", &format!("head -c {BOMB_BYTES} /dev/zero | gzip -c")])
        .output()
        .expect("run gzip");
    assert!(out.status.success() && out.stdout.len() < 1024 * 1024);
    out.stdout
}

/// A PS message whose attachment is `gz` encrypted for the OCT and declared compressed (`ZK`):
/// built as `K` (encrypt only, so that the builder does not compress again), then relabelled.
fn bomb_message(world: &World, gz: &[u8], counter: u32) -> Vec<u8> {
    let envelope = MessageHeaders {
        from: Mailbox::new(PS_ADDRESS).expect("from"),
        to: Mailbox::new(OCT_ADDRESS).expect("to"),
        subject: Subject::Invoice(
            InvoiceSubject::new(
                FileKind::Fse,
                SpecVersion::v140700(),
                PartyNumber::new(PS_NUMBER).expect("exercice"),
                compostage(counter),
                1,
            )
            .expect("subject"),
        ),
        profile: Profile::Invoice(FileKind::Fse),
        file_name: "F00001.B2".into(),
        date: time::OffsetDateTime::now_utc(),
        message_id: Some(format!("bomb.{counter}@ps.example")),
    };
    let certs = [world.oct_cert()];
    let protect = Protect::Encrypt {
        recipients: &certs,
        cipher: svoct_mail::cms::CmsCipher::Aes256Cbc,
        compress: false,
    };
    let raw = profile::build_message(&envelope, gz, protect).expect("message");
    let text = String::from_utf8(raw).expect("ASCII message");
    let relabelled = text.replacen("FACTURE/SV/K\r\n", "FACTURE/SV/ZK\r\n", 1);
    assert_ne!(relabelled, text, "the Content-Description was relabelled");
    relabelled.into_bytes()
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM line")
}

#[test]
fn bombs_are_quarantined_and_the_service_memory_stays_bounded() {
    let bin = svoct_binary();
    // Nothing listens on port 1: the refusal ARTs stay queued, which does not matter here.
    let world = World::new(1, "[pipeline]\nworkers = 4\n");
    let gz = gzip_bomb();
    let mut child = Command::new(&bin)
        .args(["--log", "warn", "oct", "serve", "--config"])
        .arg(&world.config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn svoct oct serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let server = Server(child);
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));

    let messages: Vec<Vec<u8>> = (0..BOMBS).map(|n| bomb_message(&world, &gz, 2 * n + 2)).collect();
    std::thread::scope(|s| {
        for raw in &messages {
            s.spawn(move || {
                SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", port))
                    .expect("client")
                    .send(&SmtpEnvelope::new(PS_ADDRESS, OCT_ADDRESS), raw)
                    .expect("the ingress accepts the message");
            });
        }
    });

    let state = State::open(&world.dir.path().join("state.sqlite")).expect("state");
    let start = Instant::now();
    let rows = loop {
        let rows = state.quarantine_list(true).expect("quarantine list");
        if rows.len() as u32 >= BOMBS {
            break rows;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {} quarantined",
            rows.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let hwm = vm_hwm_kib(server.0.id());
    let mut err = std::io::stderr();
    let _ = writeln!(err, "service VmHWM after {BOMBS} bombs: {} MiB", hwm / 1024);
    assert!(hwm < MAX_HWM_KIB, "peak RSS {} MiB", hwm / 1024);
    for row in &rows {
        assert!(
            row.reason.contains("more than the 16777216-byte limit"),
            "reason names the limit: {}",
            row.reason
        );
    }
}
