//! Deterministic synthetic B2 lots for tests, benchmarks, demos and `svoct gen`.
//!
//! Same [`SynthParams`] → same bytes, on every machine: a SplitMix64 generator seeded by
//! [`SynthParams::seed`] drives every choice. The lots validate clean (no [`Finding`]), carry
//! consistent amounts and totals, are marked as test invoices (type 6 position 55 = `T`), and
//! carry a clearly fake seal: `FAKESEAL` followed by 24 hexadecimal digits of a hash of the
//! records before it. Real seals need the PS's smart card (R3.5).
//!
//! [`Finding`]: super::Finding

use super::build::{SingleFileParams, build_single_file};
use super::layouts::{
    ACT_4, F1_CERTIFICATION, F1_CURRENCY, F1_DATE, F1_DEST_ORG, F1_LOT_NUMBER, F1_NORM_VERSION,
    F1_NORME_CODE, F1_NORME_USED, F1_PIVOT_CAISSE, F1_PIVOT_REGIME, F1_PS, F1_PS_NAME, F2_AMC, F2_CAISSE,
    F2_CENTRE, F2_CONTRACT, F2_INVOICE_KIND, F2_REGIME, F2_SETTLEMENT, F4_AMOUNT_AMC, F4_AMOUNT_AMO,
    F4_AMOUNT_BILLED, F5_ACT_COUNT, F5_AMC, F5_AMO, F5_BILLED, F5_INSURED, F5_SEAL, F6_ACTS, F6_AMC, F6_AMO,
    F6_BILLED, F6_INVOICE_KIND, F6_INVOICES, F6_LOT_NUMBER, F6_MARKING, F6_PS, F6_SEAL, F6_TYPE2, F6_TYPE5,
    FI_INVOICE, FI_NIR, FI_NIR_KEY, FI_PS, INVOICE_2M, INVOICE_HEADER, INVOICE_TOTAL, LOT_HEADER,
    LOT_TRAILER,
};
use super::model::parse;
use super::{B2Error, DRE_NORM_VERSION, MAX_INVOICES_PER_LOT, RECORD_LEN};
use crate::layout::{Field, Layout};

/// Most invoices one call generates (about 1.4 GB of lots): bounds the memory a caller's
/// parameters can ask for.
pub const MAX_SYNTH_INVOICES: usize = 2_000_000;

/// Norm version written in synthetic FSE lot headers (type 1 positions 82-87).
pub const SYNTH_FSE_NORM_VERSION: &str = "062005";

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthParams {
    /// Seed of the generator: same seed, same bytes.
    pub seed: u64,
    /// Total number of invoices, spread over kinds and destinations.
    pub invoices: usize,
    /// Generate FSE lots.
    pub fse: bool,
    /// Generate DRE lots.
    pub dre: bool,
    /// Number of distinct destinations (at least 1, at most 900).
    pub destinations: usize,
    /// FSE invoices are enriched: contract type 99, settlement `00`/`05`, an AMC organisation
    /// number and a 2M record (R3.3).
    pub enriched: bool,
    /// Lot and invoice date, AAMMJJ.
    pub date: String,
    /// The PS number + key, 9 digits.
    pub ps_number: String,
    /// The PS name (type 1 positions 30-69).
    pub ps_name: String,
    /// Acts per invoice: 1 to `max_acts` (1 to 99).
    pub max_acts: usize,
    /// Invoices per lot, 1 to 999 (lowered so that a lot never exceeds 9 999 acts).
    pub lot_size: usize,
    /// Number of the first lot (1 to 999); the next ones follow, wrapping after 999.
    pub first_lot: u64,
}

impl Default for SynthParams {
    fn default() -> Self {
        SynthParams {
            seed: 1,
            invoices: 10,
            fse: true,
            dre: false,
            destinations: 1,
            enriched: false,
            date: "261126".into(),
            ps_number: "123456789".into(),
            ps_name: "DOCTEUR TEST SYNTHETIQUE".into(),
            max_acts: 3,
            lot_size: MAX_INVOICES_PER_LOT,
            first_lot: 1,
        }
    }
}

/// SplitMix64: tiny, fast, good enough for test data, stable forever.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform-ish in `lo..=hi` (modulo bias is irrelevant here).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// FNV-1a 64 with a chosen offset basis, for the fake seal.
fn fnv(bytes: &[u8], basis: u64) -> u64 {
    let mut h = basis;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `FAKESEAL` + 24 hex digits of a hash of `covered`: 32 characters, deterministic, obviously
/// not a real seal.
pub fn fake_seal(covered: &[u8]) -> String {
    let a = fnv(covered, 0xcbf2_9ce4_8422_2325);
    let b = fnv(covered, 0x6c62_272e_07bb_0142);
    let mut s = format!("FAKESEAL{a:016X}{b:016X}");
    s.truncate(32);
    s
}

struct W<'p> {
    index: usize,
    p: &'p SynthParams,
}

impl W<'_> {
    fn put(&self, rec: &mut [u8], f: &Field, v: &str) -> Result<(), B2Error> {
        f.put(rec, v).map_err(|source| B2Error::Field {
            record: self.index,
            offset: self.index * RECORD_LEN,
            source,
        })
    }
    fn num(&self, rec: &mut [u8], f: &Field, v: u64) -> Result<(), B2Error> {
        f.put_number(rec, v).map_err(|source| B2Error::Field {
            record: self.index,
            offset: self.index * RECORD_LEN,
            source,
        })
    }
    fn named(&self, rec: &mut [u8], layout: &Layout, name: &str, v: &str) -> Result<(), B2Error> {
        match layout.field(name) {
            Some(f) => self.put(rec, f, v),
            None => Ok(()),
        }
    }
    fn prefix(&self, rec: &mut [u8], nir: &str, key: u64, invoice: u64) -> Result<(), B2Error> {
        self.put(rec, &FI_PS, &self.p.ps_number)?;
        self.put(rec, &FI_NIR, nir)?;
        self.num(rec, &FI_NIR_KEY, key)?;
        self.num(rec, &FI_INVOICE, invoice)
    }
}

/// One destination of the synthetic set: (organisme, pivot régime, pivot caisse).
fn destination(d: usize) -> (String, &'static str, String) {
    let d = d % 900;
    (
        format!("{:03}", 100 + d),
        "01",
        format!("{:03}", 100 + (d * 37 + 651) % 900),
    )
}

/// Generate the lots, each as its own byte vector, in a deterministic order: for each kind (FSE
/// then DRE) and each destination, its invoices in lots of at most `lot_size`.
pub fn generate_lots(p: &SynthParams) -> Result<Vec<Vec<u8>>, B2Error> {
    let mut out = Vec::new();
    for_each_lot(p, |lot| {
        out.push(lot.to_vec());
    })?;
    Ok(out)
}

/// Generate the lots concatenated (a bare sequence of lots, as [`parse`] accepts).
pub fn generate_bytes(p: &SynthParams) -> Result<Vec<u8>, B2Error> {
    let mut out = Vec::new();
    for_each_lot(p, |lot| out.extend_from_slice(lot))?;
    Ok(out)
}

/// Generate the lots framed as an OCT single file (R3.2).
pub fn generate_single_file(p: &SynthParams, file: &SingleFileParams) -> Result<Vec<u8>, B2Error> {
    let lots = generate_bytes(p)?;
    let input = parse(&lots)?;
    build_single_file(input.lots(), file)
}

fn for_each_lot(p: &SynthParams, mut emit: impl FnMut(&[u8])) -> Result<(), B2Error> {
    if p.invoices > MAX_SYNTH_INVOICES {
        return Err(B2Error::TooMany {
            what: "synthetic invoices",
            count: p.invoices,
            max: MAX_SYNTH_INVOICES,
        });
    }
    let max_acts = p.max_acts.clamp(1, 99);
    // The type 6 act count has 4 digits: keep every lot's worst case under 10 000 acts.
    let lot_size = p.lot_size.clamp(1, MAX_INVOICES_PER_LOT).min(9_999 / max_acts);
    let destinations = p.destinations.clamp(1, 900);
    let mut kinds = Vec::new();
    if p.fse {
        kinds.push(false);
    }
    if p.dre {
        kinds.push(true);
    }
    if kinds.is_empty() {
        return Ok(());
    }
    let groups = kinds.len() * destinations;
    let mut rng = Rng(p.seed);
    let invoice_number: u64 = rng.range(1, 400_000_000);
    let mut generator = Generator {
        w: W { index: 0, p },
        rng,
        max_acts: max_acts as u64,
        invoice_number,
    };
    // The increment below makes the first lot `first_lot`.
    let mut lot_number: u64 = p.first_lot.clamp(1, 999) - 1;
    let mut lot = Vec::with_capacity((lot_size * 8 + 2) * RECORD_LEN);
    for g in 0..groups {
        let (org, regime, caisse) = destination(g % destinations);
        let group = Group {
            dre: kinds.get(g / destinations).copied().unwrap_or(false),
            org,
            regime,
            caisse,
        };
        // Invoices i with i % groups == g belong to this group.
        let count = p.invoices / groups + usize::from(g < p.invoices % groups);
        let mut left = count;
        while left > 0 {
            let n = left.min(lot_size);
            left -= n;
            lot_number = lot_number % 999 + 1;
            lot.clear();
            generator.lot(&mut lot, &group, lot_number, n)?;
            emit(&lot);
        }
    }
    Ok(())
}

/// The invoices of one kind (FSE or DRE) for one destination.
struct Group {
    dre: bool,
    org: String,
    regime: &'static str,
    caisse: String,
}

/// One invoice's key, repeated in the prefix of each of its records.
struct InvoiceId {
    nir: String,
    key: u64,
    number: u64,
}

/// Amounts and record counts summed over the invoices of a lot, for its trailer.
#[derive(Default)]
struct LotTotals {
    acts: u64,
    type2: u64,
    billed: u64,
    amo: u64,
    amc: u64,
}

/// The generator's running state. The order of the `rng` draws is the contract of the module
/// (same seed, same bytes): the helpers below draw in the order the records are written.
struct Generator<'p> {
    w: W<'p>,
    rng: Rng,
    max_acts: u64,
    /// The last invoice number used; the next invoice takes the one after.
    invoice_number: u64,
}

impl Generator<'_> {
    /// Writes lot `lot_number` of `n` invoices of `group` into `lot`: header, invoices, trailer.
    fn lot(&mut self, lot: &mut Vec<u8>, group: &Group, lot_number: u64, n: usize) -> Result<(), B2Error> {
        lot.extend_from_slice(&self.lot_header(group, lot_number)?);
        let mut totals = LotTotals::default();
        for _ in 0..n {
            self.invoice(lot, group, &mut totals)?;
        }
        let w = &self.w;
        let p = w.p;
        let mut t = LOT_TRAILER.blank();
        w.put(&mut t, &F6_PS, &p.ps_number)?;
        w.num(&mut t, &F6_INVOICES, n as u64)?;
        w.num(&mut t, &F6_ACTS, totals.acts)?;
        w.num(&mut t, &F6_TYPE2, totals.type2)?;
        w.num(&mut t, &F6_TYPE5, n as u64)?;
        w.num(&mut t, &F6_BILLED, totals.billed)?;
        w.num(&mut t, &F6_AMO, totals.amo)?;
        w.num(&mut t, &F6_AMC, totals.amc)?;
        w.num(&mut t, &F6_LOT_NUMBER, lot_number)?;
        w.put(&mut t, &F6_MARKING, "T")?;
        w.put(&mut t, &F6_INVOICE_KIND, "F")?;
        let seal = fake_seal(lot);
        w.put(&mut t, &F6_SEAL, &seal)?;
        lot.extend_from_slice(&t);
        Ok(())
    }

    fn lot_header(&self, group: &Group, lot_number: u64) -> Result<Vec<u8>, B2Error> {
        let w = &self.w;
        let p = w.p;
        let mut h = LOT_HEADER.blank();
        w.put(&mut h, &F1_PS, &p.ps_number)?;
        w.put(&mut h, &F1_DEST_ORG, &group.org)?;
        w.num(&mut h, &F1_LOT_NUMBER, lot_number)?;
        w.put(&mut h, &F1_PS_NAME, &p.ps_name)?;
        w.put(&mut h, &F1_NORME_USED, "SV")?;
        w.put(&mut h, &F1_DATE, &p.date)?;
        w.put(&mut h, &F1_NORME_CODE, "B2")?;
        w.put(&mut h, &F1_CERTIFICATION, "S")?;
        let version = if group.dre {
            DRE_NORM_VERSION
        } else {
            SYNTH_FSE_NORM_VERSION
        };
        w.put(&mut h, &F1_NORM_VERSION, version)?;
        w.put(&mut h, &F1_CURRENCY, "U")?;
        w.put(&mut h, &F1_PIVOT_REGIME, group.regime)?;
        w.put(&mut h, &F1_PIVOT_CAISSE, &group.caisse)?;
        Ok(h)
    }

    /// Writes the next invoice into `lot` (type 2, 2M when enriched, its acts, type 5) and adds
    /// it to `totals`.
    fn invoice(&mut self, lot: &mut Vec<u8>, group: &Group, totals: &mut LotTotals) -> Result<(), B2Error> {
        self.invoice_number = self.invoice_number % 999_999_999 + 1;
        let inv_start = lot.len();
        let nir_num = self.rng.range(1_000_000_000_000, 2_999_999_999_999);
        let id = InvoiceId {
            nir: nir_num.to_string(),
            key: 97 - nir_num % 97,
            number: self.invoice_number,
        };
        let enriched = self.w.p.enriched && !group.dre;
        let amc_org = format!("{:010}", self.rng.range(1, 9_999_999_999));
        lot.extend_from_slice(&self.invoice_header(group, &id, enriched, &amc_org)?);
        let mut type2 = 1;
        if enriched {
            let w = &self.w;
            let mut m = INVOICE_2M.blank();
            w.prefix(&mut m, &id.nir, id.key, id.number)?;
            w.named(&mut m, &INVOICE_2M, "amc_number", &amc_org)?;
            w.named(&mut m, &INVOICE_2M, "amc_routing", "OC")?;
            w.named(&mut m, &INVOICE_2M, "domain", "AMC.INVALID")?;
            lot.extend_from_slice(&m);
            type2 += 1;
        }

        let acts = self.rng.range(1, self.max_acts);
        let sums = self.acts(lot, &id, acts, enriched || group.dre)?;

        let w = &self.w;
        let mut t = INVOICE_TOTAL.blank();
        w.prefix(&mut t, &id.nir, id.key, id.number)?;
        w.num(&mut t, &F5_ACT_COUNT, acts)?;
        w.num(&mut t, &F5_BILLED, sums.billed)?;
        w.num(&mut t, &F5_AMO, sums.amo)?;
        w.num(&mut t, &F5_INSURED, sums.billed - sums.amo)?;
        w.num(&mut t, &F5_AMC, sums.amc)?;
        let seal = fake_seal(lot.get(inv_start..).unwrap_or(&[]));
        w.put(&mut t, &F5_SEAL, &seal)?;
        lot.extend_from_slice(&t);

        totals.acts += acts;
        totals.type2 += type2;
        totals.billed += sums.billed;
        totals.amo += sums.amo;
        totals.amc += sums.amc;
        Ok(())
    }

    /// The type 2 record of an invoice.
    fn invoice_header(
        &mut self,
        group: &Group,
        id: &InvoiceId,
        enriched: bool,
        amc_org: &str,
    ) -> Result<Vec<u8>, B2Error> {
        let (w, rng) = (&self.w, &mut self.rng);
        let p = w.p;
        let mut r2 = INVOICE_HEADER.blank();
        w.prefix(&mut r2, &id.nir, id.key, id.number)?;
        w.named(&mut r2, &INVOICE_HEADER, "operation", "0")?;
        w.named(&mut r2, &INVOICE_HEADER, "invoice_date", &p.date)?;
        w.put(&mut r2, &F2_INVOICE_KIND, "F")?;
        w.put(&mut r2, &F2_REGIME, group.regime)?;
        w.put(&mut r2, &F2_CAISSE, &group.caisse)?;
        w.num(&mut r2, &F2_CENTRE, rng.range(1, 9999))?;
        w.named(&mut r2, &INVOICE_HEADER, "rights_proof", "1")?;
        w.named(&mut r2, &INVOICE_HEADER, "insurance_kind", "10")?;
        w.named(&mut r2, &INVOICE_HEADER, "exemption", "0")?;
        w.named(&mut r2, &INVOICE_HEADER, "substitute_cps", "0")?;
        let birth = format!(
            "{:02}{:02}{:02}",
            rng.range(0, 99),
            rng.range(1, 12),
            rng.range(1, 28)
        );
        w.named(&mut r2, &INVOICE_HEADER, "birth_date", &birth)?;
        let settlement = if group.dre {
            "25"
        } else if enriched {
            ["00", "05"][(rng.next() % 2) as usize]
        } else {
            ["00", "05", "15"][(rng.next() % 3) as usize]
        };
        w.put(&mut r2, &F2_SETTLEMENT, settlement)?;
        if enriched {
            w.put(&mut r2, &F2_CONTRACT, "99")?;
            w.named(
                &mut r2,
                &INVOICE_HEADER,
                "member_number",
                &format!("{:08}", rng.range(1, 99_999_999)),
            )?;
        }
        if enriched || group.dre {
            w.put(&mut r2, &F2_AMC, amc_org)?;
        }
        Ok(r2)
    }

    /// Writes `acts` type 4 records into `lot`; the AMC pays the rest of each act when
    /// `with_amc` (enriched FSE and DRE), nothing otherwise. Returns their sums.
    fn acts(
        &mut self,
        lot: &mut Vec<u8>,
        id: &InvoiceId,
        acts: u64,
        with_amc: bool,
    ) -> Result<LotTotals, B2Error> {
        let (w, rng) = (&self.w, &mut self.rng);
        let p = w.p;
        let mut sums = LotTotals::default();
        for seq in 1..=acts {
            let mut a = ACT_4.blank();
            w.prefix(&mut a, &id.nir, id.key, id.number)?;
            let price = rng.range(500, 12_000);
            let a_amo = price * 70 / 100;
            let a_amc = if with_amc { price - a_amo } else { 0 };
            w.named(&mut a, &ACT_4, "sequence", &format!("{:02}", seq % 100))?;
            w.named(&mut a, &ACT_4, "prior_agreement", "9")?;
            w.named(&mut a, &ACT_4, "performer", &p.ps_number)?;
            w.named(&mut a, &ACT_4, "act_date", &p.date)?;
            let code = ["C", "CS", "AMI", "V", "K"][(rng.next() % 5) as usize];
            w.named(&mut a, &ACT_4, "act_code", code)?;
            w.named(&mut a, &ACT_4, "quantity", "01")?;
            w.named(&mut a, &ACT_4, "coefficient", "000100")?;
            w.named(&mut a, &ACT_4, "count", "01")?;
            w.named(&mut a, &ACT_4, "unit_price", &price.to_string())?;
            w.named(&mut a, &ACT_4, "base", &price.to_string())?;
            w.named(&mut a, &ACT_4, "rate", "070")?;
            w.num(&mut a, &F4_AMOUNT_AMO, a_amo)?;
            w.num(&mut a, &F4_AMOUNT_BILLED, price)?;
            w.named(&mut a, &ACT_4, "expense_qualifier", "N")?;
            w.named(&mut a, &ACT_4, "place", "0")?;
            w.num(&mut a, &F4_AMOUNT_AMC, a_amc)?;
            lot.extend_from_slice(&a);
            sums.billed += price;
            sums.amo += a_amo;
            sums.amc += a_amc;
        }
        Ok(sums)
    }
}
