//! An independent reader in Python (a different algorithm: the published entity lengths, a
//! backward scan for what each `990` closes, the `999` counting physical lines) checks the builder's output and agrees with the
//! Rust reader's findings.

use std::io::Write;
use std::process::{Command, Stdio};

use svoct_formats::noemie::{
    self, FindingKind, InvoiceOutcome, PartOutcome, PartState, RejectLine, RejectPart, RspParams, Ymd,
};

const PY: &str = r#"
import sys, json
data = sys.stdin.buffer.read()
LEN = {'020':21,'040':21,'070':12,'071':86,'080':15,'081':22,'100':15,'102':40,'103':152,
       '110':88,'120':57,'150':8,'160':23,'198':24,'199':49,'210':118,'250':47,'261':19,
       '262':134,'290':98,'294':153,'295':135,'990':43}
pos, lines = 0, []
while pos < len(data):
    n = int(data[pos:pos+4]); lines.append(data[pos+4:pos+4+n]); pos += 4 + n
    assert data[pos:pos+2] == b'\r\n'; pos += 2
header, trailer = lines[0].decode('latin-1'), lines[-1].decode('latin-1')
stream = b''.join(lines[1:-1]).decode('latin-1')
ents, p = [], 0
while p < len(stream):
    e = stream[p:p+LEN[stream[p:p+3]]]
    assert e.endswith('@'), e
    ents.append(e); p += len(e)
def signed(v, s): return -v if s == 'N' else v
def amount(e):
    t = e[:3]
    if t in ('198', '199'): return signed(int(e[14:22]), e[22])
    if t == '250': return signed(int(e[29:37]), e[37])
    if t == '261': return int(e[10:18])
    return 0
bad990 = []
for i, e in enumerate(ents):
    if e[:3] != '990': continue
    L = int(e[3:5]); levels = []; tot = 0; j = i - 1
    while j >= 0:
        f = ents[j]; fl = int(f[3:5])
        if (f[:3] == '990' and fl <= L) or (f[:3] != '990' and fl < L): break
        if f[:3] != '990' and fl > L: levels.append(fl); tot += amount(f)
        j -= 1
    # The count is of the level directly below: the smallest level under L in the group.
    cnt = levels.count(min(levels)) if levels else 0
    if (int(e[22:30]), signed(int(e[30:41]), e[41])) != (cnt, tot): bad990.append(i)
invoices = []
for e in ents:
    t = e[:3]
    if t == '102':
        invoices.append({'number': e[5:14].rstrip(), 'lot': e[20:23], 'lot_date': e[23:29],
                         'type': e[29], 'amo': None, 'amc': None, 'rejects': []})
    elif t in ('198', '199'):
        invoices[-1]['amo' if t == '198' else 'amc'] = [e[13], int(e[5:13]), signed(int(e[14:22]), e[22])]
    elif t == '294':
        invoices[-1]['rejects'].append([e[5:9].rstrip(), e[9:95].rstrip(), e[96]])
total = sum(amount(e) for e in ents)
print(json.dumps({
    'reference': header[61:65].strip(),
    'bad990': bad990,
    'trailer_count_ok': int(trailer[55:63]) == len(lines),
    'trailer_lots_ok': int(trailer[82:85]) == sum(1 for e in ents if e[:3] == '080'),
    'trailer_sum_ok': signed(int(trailer[85:96]), trailer[96]) == total,
    'invoices': invoices,
}))
"#;

fn python(input: &[u8]) -> serde_json::Value {
    let mut child = Command::new("python3")
        .args(["-c", PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is installed on the test machine");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn outcomes() -> Vec<InvoiceOutcome> {
    (0..60u32)
        .map(|i| {
            let state = [
                PartState::Paid,
                PartState::Rejected,
                PartState::Deferred,
                PartState::NotProcessed,
            ][(i % 4) as usize];
            InvoiceOutcome {
                lot_number: format!("{:03}", i / 7),
                lot_date: Ymd::new(2026, 11, 1 + (i / 7) as u8),
                invoice_number: format!("{:09}", 1000 + i),
                invoice_type: if i % 5 == 0 { 'D' } else { 'F' },
                billing_date: Some(Ymd::new(2026, 10, 1 + (i % 28) as u8)),
                amo: (i % 3 != 0).then(|| PartOutcome {
                    state,
                    requested_cents: 1000 + u64::from(i),
                    paid_cents: if i % 11 == 0 {
                        -(i as i64) * 10
                    } else {
                        i as i64 * 25
                    },
                    amc_number: String::new(),
                }),
                amc: (i % 2 == 0).then(|| PartOutcome {
                    state: PartState::Rejected,
                    requested_cents: 300,
                    paid_cents: 0,
                    amc_number: format!("{:010}", i),
                }),
                rejects: if i % 2 == 0 {
                    vec![RejectLine {
                        code: format!("R{:03}", i),
                        label: "PART COMPLEMENTAIRE REJETEE".into(),
                        part: RejectPart::Amc,
                    }]
                } else {
                    vec![]
                },
                comments: if i % 9 == 0 {
                    vec!["VOIR COURRIER".into()]
                } else {
                    vec![]
                },
            }
        })
        .collect()
}

fn params() -> RspParams {
    RspParams {
        sender_type: "CP".into(),
        sender_number: "751".into(),
        sender_program: "SIMAM".into(),
        recipient_type: "TP".into(),
        recipient_number: "10987654321".into(),
        file_id: "R00007".into(),
        created: Ymd::new(2026, 11, 26),
        flow_type: 'T',
        settlement_recipient: "10987654321".into(),
        accounting_date: Ymd::new(2026, 11, 26),
        transfer_label: "VIREMENT".into(),
        payer: "CPAM 75".into(),
    }
}

#[test]
fn python_reader_agrees_with_the_builder() {
    let o = outcomes();
    let bytes = noemie::build_580(&params(), &o).unwrap();
    let py = python(&bytes);
    assert_eq!(py["reference"], "580");
    assert_eq!(py["bad990"], serde_json::json!([]));
    assert_eq!(py["trailer_count_ok"], true);
    assert_eq!(py["trailer_lots_ok"], true);
    assert_eq!(py["trailer_sum_ok"], true);
    let inv = py["invoices"].as_array().unwrap();
    assert_eq!(inv.len(), o.len());
    for (p, o) in inv.iter().zip(&o) {
        assert_eq!(p["number"], o.invoice_number.as_str());
        assert_eq!(p["lot"], o.lot_number.as_str());
        assert_eq!(p["lot_date"], o.lot_date.yymmdd().as_str());
        assert_eq!(p["type"], o.invoice_type.to_string().as_str());
        for (key, part) in [("amo", &o.amo), ("amc", &o.amc)] {
            match part {
                None => assert!(p[key].is_null()),
                Some(part) => assert_eq!(
                    p[key],
                    serde_json::json!([part.state.code(), part.requested_cents, part.paid_cents])
                ),
            }
        }
        assert_eq!(p["rejects"].as_array().unwrap().len(), o.rejects.len());
    }
}

#[test]
fn python_and_rust_flag_the_same_wrong_990() {
    let bytes = noemie::build_580(&params(), &outcomes()).unwrap();
    let n = noemie::parse(&bytes).unwrap();
    assert!(n.findings.is_empty());
    // Corrupt the count of every 5th 990, keeping the line length.
    let f = &n.files[0];
    let mut bad = bytes.clone();
    let mut corrupted = Vec::new();
    for (i, e) in f
        .entities
        .iter()
        .enumerate()
        .filter(|(_, e)| e.code == Some(990))
        .step_by(5)
    {
        let at = f.input_offset(e.start as usize) + 29; // last digit of the count (23-30)
        bad[at] = if bad[at] == b'9' { b'0' } else { bad[at] + 1 };
        corrupted.push(i);
    }
    let py = python(&bad);
    let py_bad: Vec<usize> = py["bad990"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let rust_bad: Vec<usize> = noemie::parse(&bad)
        .unwrap()
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::ControlCount)
        .filter_map(|f| f.entity)
        .collect();
    assert_eq!(py_bad, corrupted);
    assert_eq!(rust_bad, corrupted);
}
