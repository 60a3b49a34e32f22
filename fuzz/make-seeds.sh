#!/usr/bin/env bash
# Regenerate the seed corpus fuzz/seeds/<target>/ from `svoct gen`, the worked examples of
# formats.md section 1, and the builders (through the crates' tests/fuzz_props.rs). Deterministic
# (the same svoct version writes the same seeds) except message/facture-sv-zk.eml, whose key and
# CMS content key are fresh each time.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p svoct
svoct=target/debug/svoct
seeds=fuzz/seeds
rm -rf "$seeds"/{zone,b2,noemie,arl,art,loi,message,pop3,smtp}
mkdir -p "$seeds/zone" "$seeds/b2"

# B2: bare lots and single files, FSE, DRE, enriched, several destinations, small lots.
i=0
for flags in "--invoices 1" "--invoices 3 --dre 1" "--invoices 4 --enriched" \
             "--invoices 5 --destinations 2 --lot-size 2" "--invoices 2 --dre 2 --max-acts 1"; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    "$svoct" gen --seed "$i" $flags --format lots --out "$seeds/b2/lots-$i.b2"
    # shellcheck disable=SC2086
    "$svoct" gen --seed "$i" $flags --format single-file --out "$seeds/b2/file-$i.b2"
done

# Zone: the generator's lot-parameter zones, plus hand-made edge cases.
"$svoct" gen --seed 1 --invoices 1 --format zone --out "$seeds/zone/gen-1.zone"
"$svoct" gen --seed 2 --invoices 3 --dre 1 --enriched --format zone --out "$seeds/zone/gen-2.zone"
python3 - "$seeds/zone" <<'PY'
import os, sys
d = sys.argv[1]
def w(name, data):
    open(os.path.join(d, name), "wb").write(bytes(data))
# formats.md section 1, worked examples
w("example-101.zone", [0x00, 0x65, 0x0C, 0x01, 0x54, 0x08] + list(b"58666451") + [0x00])
w("example-12.zone", [0x00, 0x0C, 0x81, 0xCA, 0x81, 0xC8] + [i % 251 for i in range(200)])
# every long form, and an empty group
w("long-forms.zone", [0x05, 0x29, 0x84, 0, 0, 0, 0x0A, 0x81, 0x02, b"9"[0], b"9"[0],
                      0x83, 0, 0, 0x02] + list(b"AB") + [0x00, 0x0E, 0x00])
PY

# NOEMIE 580 (build_580), ARL (Arl::build), ART, dLOI/LOI, messages (build_message, plain and
# /ZK), a POP3 server session and SMTP client transcripts: written by the fuzz_props tests of
# each crate, from the builders.
seeds_abs="$(pwd)/$seeds"
for crate in svoct-formats svoct-mail svoct-oct; do
    SVOCT_FUZZ_SEEDS="$seeds_abs" cargo test -q -p "$crate" --test fuzz_props -- \
        valid_samples_parse valid_transcripts_deliver >/dev/null
done
ls -l "$seeds"/*
