//! The B2 record layouts as data (`shared/spec/b2-records.md`), libéral variants.
//!
//! Every field the code reads or writes is a named `pub const` [`Field`], and the tables are built
//! from those constants, so a position is written down exactly once. [`layout_of`] tells a record's
//! layout from its first bytes (and, for type 2/3/4 continuations, from position 36 or 39).
//!
//! Deviations from the published `req` column, all so that a blank reserved zone is not reported as
//! a missing value (see `docs/formats/b2.md`): *blanc* zones are named `filler_*` (the layout checker
//! accepts them blank), and the zones *réservée SESAM*, *Zone message*, *Top éclatement des flux par
//! l'OCT* and *Liste d'opposition* are treated as optional.

use crate::layout::{Field, Layout, Req};

use super::RECORD_LEN;

const M: Req = Req::Mandatory;
const O: Req = Req::Optional;

const fn d(name: &'static str, label: &'static str, from: u16, to: u16, req: Req) -> Field {
    Field::digits(name, label, from, to, req)
}
const fn x(name: &'static str, label: &'static str, from: u16, to: u16, req: Req) -> Field {
    Field::text(name, label, from, to, req)
}
const fn blank(name: &'static str, from: u16, to: u16) -> Field {
    Field::text(name, "blanc", from, to, Req::Optional)
}

// ---------------------------------------------------------------------------------------------
// Type 000: début de fichier
// ---------------------------------------------------------------------------------------------

/// 000 positions 1-3, *Type d'enregistrement*.
pub const F0_TYPE: Field = d("record_type", "Type d'enregistrement", 1, 3, M).fixed("000");
/// 000 positions 4-5, *Type d'émetteur* (`TP`, `TE`, `SI`, `OT`).
pub const F0_SENDER_TYPE: Field = x("sender_type", "Type d'émetteur", 4, 5, M);
/// 000 positions 6-19, *Numéro d'émetteur*: the PS number, right-aligned, zero-filled.
pub const F0_SENDER_NUMBER: Field = d("sender_number", "Numéro d'émetteur", 6, 19, M);
/// 000 positions 26-27, *Type de destinataire* (`OT` for the OCT single file, R3.2).
pub const F0_RECIPIENT_TYPE: Field = x("recipient_type", "Type de destinataire", 26, 27, M);
/// 000 positions 28-41, *N° de destinataire* (the OCT identifier, R3.2).
pub const F0_RECIPIENT_NUMBER: Field = x("recipient_number", "N° de destinataire", 28, 41, M);
/// 000 positions 42-47, *Date de réception du flux sur le frontal*.
pub const F0_RECEPTION_DATE: Field = d(
    "reception_date",
    "Date de réception du flux sur le frontal",
    42,
    47,
    M,
);
/// 000 positions 48-49, *Application* (`TO` for the OCT single file, R3.2).
pub const F0_APPLICATION: Field = x("application", "Application", 48, 49, M);
/// 000 positions 50-55, *Identification du fichier* (the file name, unique per file).
pub const F0_FILE_ID: Field = x("file_id", "Identification du fichier", 50, 55, M);
/// 000 positions 56-61, *Date de création du fichier* (AAMMJJ).
pub const F0_CREATION_DATE: Field = d("creation_date", "Date de création du fichier", 56, 61, M);
/// 000 positions 62-65, *Norme*.
pub const F0_NORME: Field = x("norme", "Norme", 62, 65, M);
/// 000 positions 66-67, *Version de la norme*: always `B2`.
pub const F0_NORME_VERSION: Field = x("norme_version", "Version de la norme", 66, 67, M).fixed("B2");
/// 000 positions 70-72, *zone réservée SESAM*.
pub const F0_RESERVED: Field = x("reserved_sesam", "zone réservée SESAM", 70, 72, O);
/// 000 positions 83-85, *Longueur d'enregistrement*: always `128`.
pub const F0_RECORD_LEN: Field = d("record_len", "Longueur d'enregistrement", 83, 85, M).fixed("128");
/// 000 positions 92-128, *Zone message* (chosen by the software, R3.2).
pub const F0_MESSAGE: Field = x("message", "Zone message", 92, 128, O);

/// Type 000, *Début de fichier*.
pub static FILE_HEADER: Layout = Layout {
    code: "000",
    title: "Début de fichier",
    len: RECORD_LEN,
    fields: &[
        F0_TYPE,
        F0_SENDER_TYPE,
        F0_SENDER_NUMBER,
        blank("filler_20_25", 20, 25),
        F0_RECIPIENT_TYPE,
        F0_RECIPIENT_NUMBER,
        F0_RECEPTION_DATE,
        F0_APPLICATION,
        F0_FILE_ID,
        F0_CREATION_DATE,
        F0_NORME,
        F0_NORME_VERSION,
        blank("filler_68", 68, 68),
        blank("filler_69", 69, 69),
        F0_RESERVED,
        blank("filler_73_82", 73, 82),
        F0_RECORD_LEN,
        blank("filler_86_91", 86, 91),
        F0_MESSAGE,
    ],
};

// ---------------------------------------------------------------------------------------------
// Type 1: début de lot
// ---------------------------------------------------------------------------------------------

/// Type 1 position 1.
pub const F1_TYPE: Field = d("record_type", "Type d'enregistrement", 1, 1, M).fixed("1");
/// Type 1 positions 2-10, *N° partenaire de santé + clé*: the sender of the lot.
pub const F1_PS: Field = d("ps_number", "N° partenaire de santé + clé", 2, 10, M);
/// Type 1 positions 11-16, *Origine du fichier*.
pub const F1_ORIGIN: Field = x("origin", "Origine du fichier", 11, 16, O);
/// Type 1 positions 17-19, *N° d'organisme destinataire*: the routing key.
pub const F1_DEST_ORG: Field = d("dest_organisme", "N° d'organisme destinataire", 17, 19, M);
/// Type 1 positions 20-22, *N° de lot*.
pub const F1_LOT_NUMBER: Field = d("lot_number", "N° de lot", 20, 22, M);
/// Type 1 positions 30-69, *Nom ou raison sociale du partenaire de santé*.
pub const F1_PS_NAME: Field = x(
    "ps_name",
    "Nom ou raison sociale du partenaire de santé",
    30,
    69,
    M,
);
/// Type 1 positions 70-71, *Version de la norme utilisée*.
pub const F1_NORME_USED: Field = x("norme_used", "Version de la norme utilisée", 70, 71, M);
/// Type 1 positions 72-77, *Date de création du lot* (AAMMJJ).
pub const F1_DATE: Field = d("lot_date", "Date de création du lot", 72, 77, M);
/// Type 1 positions 79-80, *Code norme*.
pub const F1_NORME_CODE: Field = x("norme_code", "Code norme", 79, 80, M);
/// Type 1 position 81, *Top certification du lot*.
pub const F1_CERTIFICATION: Field = x("certification", "Top certification du lot", 81, 81, O);
/// Type 1 positions 82-87, *Numéro de version de norme*: tells FSE from DRE lots (provisional).
pub const F1_NORM_VERSION: Field = d("norm_version", "Numéro de version de norme", 82, 87, M);
/// Type 1 position 88, *Unité monétaire de facturation*.
pub const F1_CURRENCY: Field = x("currency", "Unité monétaire de facturation", 88, 88, O);
/// Type 1 positions 89-90, *Grand régime de la caisse pivot*.
pub const F1_PIVOT_REGIME: Field = x("pivot_regime", "Grand régime de la caisse pivot", 89, 90, O);
/// Type 1 positions 91-93, *N° de la caisse pivot*.
pub const F1_PIVOT_CAISSE: Field = x("pivot_caisse", "N° de la caisse pivot", 91, 93, O);

/// Type 1, *Début de lot*.
pub static LOT_HEADER: Layout = Layout {
    code: "1",
    title: "Début de lot",
    len: RECORD_LEN,
    fields: &[
        F1_TYPE,
        F1_PS,
        F1_ORIGIN,
        F1_DEST_ORG,
        F1_LOT_NUMBER,
        x("category", "Catégorie", 23, 25, O),
        x("legal_status", "Statut juridique", 26, 27, O),
        x("tariff_mode", "Mode de fixation des tarifs", 28, 29, O),
        F1_PS_NAME,
        F1_NORME_USED,
        F1_DATE,
        blank("filler_78", 78, 78),
        F1_NORME_CODE,
        F1_CERTIFICATION,
        F1_NORM_VERSION,
        F1_CURRENCY,
        F1_PIVOT_REGIME,
        F1_PIVOT_CAISSE,
        x(
            "ccp_device",
            "Indication de dispositif Caisse Centralisatrice des Paiements",
            94,
            94,
            O,
        ),
        blank("filler_95_128", 95, 128),
    ],
};

// ---------------------------------------------------------------------------------------------
// Fields shared by the invoice records 2, 2x, 4, 5 (libéral)
// ---------------------------------------------------------------------------------------------

/// Positions 2-10 of invoice records, *N° du partenaire santé*.
pub const FI_PS: Field = d("ps_number", "N° du partenaire santé", 2, 10, M);
/// Positions 12-24, *N° immatriculation assuré* (NIR).
pub const FI_NIR: Field = x("insured_nir", "N° immatriculation assuré", 12, 24, M);
/// Positions 25-26, *Clé du N° immatriculation*.
pub const FI_NIR_KEY: Field = d("insured_nir_key", "Clé du N° immatriculation", 25, 26, M);
/// Positions 27-35, *N° facture*.
pub const FI_INVOICE: Field = d("invoice_number", "N° facture", 27, 35, M);
/// Position 36, *Complément du type*: tells 2S/2M/2P/2B/2C (and 4x) apart.
pub const FI_COMPLEMENT: Field = x("complement", "Complément du type", 36, 36, O);

/// The fields every libéral invoice record (2, 2x, 4, 5) starts with, then `$f`.
macro_rules! invoice_fields {
    ($t:literal; $($f:expr),* $(,)?) => {
        &[
            d("record_type", "Type d'enregistrement", 1, 1, M).fixed($t),
            FI_PS,
            blank("filler_11", 11, 11),
            FI_NIR,
            FI_NIR_KEY,
            FI_INVOICE,
            $($f),*
        ]
    };
}

// ---------------------------------------------------------------------------------------------
// Type 2: début facture
// ---------------------------------------------------------------------------------------------

/// Type 2 position 46, *Top éclatement des flux par le PS* (`E`/`F`).
pub const F2_PS_SPLIT: Field = x("ps_split", "Top éclatement des flux par le PS", 46, 46, O);
/// Type 2 position 47, *Type de facture* (`F` = SESAM).
pub const F2_INVOICE_KIND: Field = x("invoice_kind", "Type de facture", 47, 47, O);
/// Type 2 positions 49-50, *Code Grand Régime* of the insured.
pub const F2_REGIME: Field = d("regime", "Code Grand Régime", 49, 50, M);
/// Type 2 positions 51-53, *N° Caisse gestionnaire*.
pub const F2_CAISSE: Field = d("caisse", "N° Caisse gestionnaire", 51, 53, M);
/// Type 2 positions 54-57, *N° Centre gestionnaire*.
pub const F2_CENTRE: Field = d("centre", "N° Centre gestionnaire", 54, 57, M);
/// Type 2 positions 105-112, *N° d'adhérent* (AMC member number).
pub const F2_MEMBER: Field = x("member_number", "N° d'adhérent", 105, 112, O);
/// Type 2 positions 115-116, *Destinataire du règlement* (`00`, `05`, `15`, `25`, ...).
pub const F2_SETTLEMENT: Field = d("settlement", "Destinataire du règlement", 115, 116, M);
/// Type 2 positions 117-118, *Type de contrat* (`99` = the OCT may split, R3.3).
pub const F2_CONTRACT: Field = d(
    "contract_type",
    "Type de contrat souscrit auprès d'un organisme complémentaire",
    117,
    118,
    O,
);
/// Type 2 positions 119-128, *N° d'organisme complémentaire*.
pub const F2_AMC: Field = x("amc_number", "N° d'organisme complémentaire", 119, 128, O);

/// Type 2, *Début facture* (libéral).
pub static INVOICE_HEADER: Layout = Layout {
    code: "2",
    title: "Début facture",
    len: RECORD_LEN,
    fields: invoice_fields![
        "2";
            FI_COMPLEMENT,
            x("marking", "Marquage de la facture", 37, 37, O),
            x(
                "amo_forcing",
                "Indicateur de forçage de la tarification de la part AMO",
                38,
                38,
                O,
            ),
            d("operation", "Nature d'opération", 39, 39, M),
            d("invoice_date", "Date de facturation", 40, 45, M),
            F2_PS_SPLIT,
            F2_INVOICE_KIND,
            x("portable", "Facture établie sur un dispositif portable", 48, 48, O),
            F2_REGIME,
            F2_CAISSE,
            F2_CENTRE,
            d("rights_proof", "Nature de la pièce justificative des droits", 58, 58, M),
            d("prescriber", "N° prescripteur + clé", 59, 67, M),
            d("prescription_date", "Date de prescription", 68, 73, M),
            x("benefit_regime", "Régime de prestation de l'assuré", 74, 76, O),
            d("insurance_kind", "Nature d'assurance", 77, 78, M),
            x(
                "exemption",
                "Justification d'exonération ou de modulation du ticket modérateur",
                79,
                79,
                M,
            ),
            d("maternity_date", "Date Maternité", 80, 85, O),
            d(
                "accident",
                "Numéro accident du travail ou date d'accident de droit commun",
                86,
                94,
                O,
            ),
            d(
                "substitute_cps",
                "Présence d'une CPS de remplaçant pour sécurisation de la facture",
                95,
                95,
                M,
            ),
            x("birth_date", "Date de naissance du bénéficiaire", 96, 101, M),
            d("birth_rank", "Rang de naissance", 102, 102, O),
            x("beneficiary_rank", "Rang de bénéficiaire", 103, 104, O),
            F2_MEMBER,
            d("prescriber_specialty", "Spécialité de prescripteur", 113, 114, O),
            F2_SETTLEMENT,
            F2_CONTRACT,
            F2_AMC,
    ],
};

/// Type 2S, *Suite de l'en-tête de la facture*.
pub static INVOICE_2S: Layout = Layout {
    code: "2S",
    title: "Suite de l'en-tête de la facture",
    len: RECORD_LEN,
    fields: invoice_fields![
        "2";
        x("complement", "Complément du type", 36, 36, O).fixed("S"),
        blank("filler_37_49", 37, 49),
        x("individual_nir", "N° immatriculation individuel", 50, 62, O),
        d("individual_nir_key", "Clé du N° immatriculation", 63, 64, O),
        d("opposition_ref", "Référence de la liste d'opposition", 65, 70, O),
        d("filler_71_128", "Blanc", 71, 128, O),
    ],
};

/// Type 2M, *Suite de l'en-tête de la facture* (AMC routing data of an enriched FSE).
pub static INVOICE_2M: Layout = Layout {
    code: "2M",
    title: "Suite de l'en-tête de la facture",
    len: RECORD_LEN,
    fields: invoice_fields![
        "2";
        x("complement", "Complément du type", 36, 36, M).fixed("M"),
        d("amc_number", "N° d'organisme complémentaire", 37, 46, O),
        x("amc_dest_routing", "Code routage destinataire AMC", 47, 48, O),
        x("amc_dest_host", "Identifiant de l'hôte destinataire AMC", 49, 51, O),
        blank("filler_52_71", 52, 71),
        d("amc_id", "Identifiant AMC fourni par l'organisme complémentaire", 72, 86, O),
        blank("filler_87_93", 87, 93),
        x("amc_forcing", "Code forçage de la tarification de la part AMC", 94, 94, O),
        x("sts_type", "Type du module STS", 95, 95, O),
        x("sts_version", "N° de version du module STS", 96, 99, O),
        x("amc_routing", "Code routage AMC", 100, 101, O),
        x("amc_host", "Identifiant hôte AMC", 102, 104, O),
        x("domain", "Nom de domaine", 105, 124, O),
        x("processing", "Indicateur de traitement", 125, 126, O),
        x("amc_application", "Code application AMC", 127, 128, O),
    ],
};

/// Type 2P, *Suite de l'en-tête de la facture*.
pub static INVOICE_2P: Layout = Layout {
    code: "2P",
    title: "Suite de l'en-tête de la facture",
    len: RECORD_LEN,
    fields: invoice_fields![
        "2";
        x("complement", "Complément du type", 36, 36, O).fixed("P"),
        x("settlement_operator", "N° d'opérateur de règlement", 37, 46, O),
        x("amc_context", "Contexte conventionnel AMC", 47, 80, O),
        blank("filler_81_128", 81, 128),
    ],
};

/// Type 2B, *Suite de l'en-tête de la facture* (beneficiary identity).
pub static INVOICE_2B: Layout = Layout {
    code: "2B",
    title: "Suite de l'en-tête de la facture",
    len: RECORD_LEN,
    fields: invoice_fields![
        "2";
        x("complement", "Complément du type", 36, 36, M).fixed("B"),
        blank("filler_37", 37, 37),
        x("quality", "Qualité du bénéficiaire", 38, 39, M),
        x("civility", "Code civilité", 40, 42, M),
        x("last_name", "Nom du bénéficiaire", 43, 67, M),
        x("first_name", "Prénom", 68, 82, M),
        d("street_number", "N° de la voie", 83, 86, O),
        x("street_number_ext", "Complément N° voie", 87, 87, O),
        x("street_type", "Type de voie", 88, 91, O),
        x("street", "Libellé de la voie", 92, 116, O),
        blank("filler_117_128", 117, 128),
    ],
};

/// Type 2C, *Suite de l'en-tête de la facture* (address).
pub static INVOICE_2C: Layout = Layout {
    code: "2C",
    title: "Suite de l'en-tête de la facture",
    len: RECORD_LEN,
    fields: invoice_fields![
        "2";
        x("complement", "Complément du type", 36, 36, O).fixed("C"),
        blank("filler_37_40", 37, 40),
        x("address_ext", "Complément d'adresse", 41, 65, O),
        x("city", "Commune résidence", 66, 90, M),
        x("postcode", "Code postal", 91, 95, M),
        x("insured_last_name", "Nom de l'assuré", 96, 120, O),
        x("insured_first_name", "Prénom de l'assuré", 121, 128, O),
    ],
};

// ---------------------------------------------------------------------------------------------
// Type 3: ligne de facture / prestations hospitalières
// ---------------------------------------------------------------------------------------------

/// Type 3, *Ligne de facture/prestations hospitalières* (its invoice number is at 30-38).
pub static LINE_3: Layout = Layout {
    code: "3",
    title: "Ligne de facture/prestations hospitalières",
    len: RECORD_LEN,
    fields: &[
        d("record_type", "Type d'enregistrement", 1, 1, M).fixed("3"),
        FI_PS,
        blank("filler_11", 11, 11),
        FI_NIR,
        FI_NIR_KEY,
        d("beneficiary_rank", "Rang de bénéficiaire", 27, 29, M),
        d("invoice_number", "N° facture", 30, 38, M),
        d("treatment_mode", "Mode de traitement", 39, 40, O),
        d("discipline", "Discipline de prestations", 41, 43, O),
        d("stay_start", "Date début de séjour", 44, 49, M),
        d("stay_end", "Date fin de séjour", 50, 55, M),
        x("act_code", "Code acte", 56, 60, M),
        d("quantity", "Quantités d'actes", 61, 63, M),
        x(
            "exemption",
            "Justification d'exonération du Ticket Modérateur au niveau de l'acte",
            64,
            64,
            O,
        ),
        d("coefficient", "Coefficient", 65, 69, O),
        x(
            "daily_fee",
            "Code prise en charge du forfait journalier",
            70,
            70,
            O,
        ),
        d("mco_coefficient", "Coefficient MCO ou HAD", 71, 75, O),
        d("unit_price", "Prix unitaire", 76, 82, M),
        d("base", "Base de remboursement", 83, 90, M),
        d("rate", "Taux applicable à la prestation", 91, 93, M),
        d("amount_amo", "Montant remboursable par la caisse", 94, 101, M),
        d("amount_billed", "Montant total de la dépense", 102, 109, M),
        d("ghs", "N° de GHS ou n° de GHT", 110, 113, O),
        d("funding_rate", "Taux de financement", 114, 116, O),
        blank("filler_117_119", 117, 119),
        x("expense_qualifier", "Qualificatif de la dépense", 120, 120, O),
        x("short_stay", "Domaine court séjour", 121, 121, O),
        d(
            "amount_amc",
            "Montant remboursable par l'organisme complémentaire",
            122,
            128,
            O,
        ),
    ],
};

// ---------------------------------------------------------------------------------------------
// Type 4: prestations (libéral)
// ---------------------------------------------------------------------------------------------

/// Type 4 positions 106-112, *Montant remboursable par l'organisme d'Assurance Maladie*.
pub const F4_AMOUNT_AMO: Field = d(
    "amount_amo",
    "Montant remboursable par l'organisme d'Assurance Maladie",
    106,
    112,
    M,
);
/// Type 4 positions 113-119, *Montant des honoraires ou de la dépense*.
pub const F4_AMOUNT_BILLED: Field = d(
    "amount_billed",
    "Montant des honoraires ou de la dépense",
    113,
    119,
    M,
);
/// Type 4 positions 122-128, *Montant remboursable par l'organisme complémentaire*.
pub const F4_AMOUNT_AMC: Field = d(
    "amount_amc",
    "Montant remboursable par l'organisme complémentaire",
    122,
    128,
    O,
);

/// Type 4, *Prestations réglées au partenaire de santé ou à l'assuré* (position 36 blank).
pub static ACT_4: Layout = Layout {
    code: "4",
    title: "Prestations réglées au partenaire de santé ou à l'assuré",
    len: RECORD_LEN,
    fields: invoice_fields![
        "4";
        FI_COMPLEMENT,
        d("sequence", "Séquence", 37, 38, O),
        d("treatment_mode", "Mode de traitement", 39, 40, O),
        d("discipline", "Discipline de prestations", 41, 43, O),
        d("prior_agreement_date", "Date de la demande d'accord préalable", 44, 49, O),
        d("prior_agreement", "Code accord préalable", 50, 50, M),
        x("renewal", "Séquence de renouvellement", 51, 52, O),
        blank("filler_53", 53, 53),
        x("exemption", "Justification d'exonération du ticket modérateur au niveau de l'acte", 54, 54, O),
        d("performer", "N° exécutant + clé", 55, 63, M),
        d("performer_zone", "Zone tarif de l'exécutant", 64, 65, O),
        d("performer_specialty", "Spécialité de l'exécutant", 66, 67, O),
        d("act_date", "Date de l'acte", 68, 73, M),
        x("act_code", "Code acte", 74, 78, M),
        d("quantity", "Quantités d'actes", 79, 80, M),
        d("coefficient", "Coefficient", 81, 86, M),
        d("count", "Dénombrement", 87, 88, M),
        d("unit_price", "Prix unitaire", 89, 95, M),
        d("base", "Base de remboursement", 96, 102, M),
        d("rate", "Taux applicable à la prestation", 103, 105, M),
        F4_AMOUNT_AMO,
        F4_AMOUNT_BILLED,
        x("expense_qualifier", "Qualificatif de la dépense", 120, 120, M),
        d("place", "Code lieu", 121, 121, M),
        F4_AMOUNT_AMC,
    ],
};

// ---------------------------------------------------------------------------------------------
// Type 5: totalisation de la facture
// ---------------------------------------------------------------------------------------------

/// Type 5 positions 39-41, *Nombre d'enregistrement de Type 4*.
pub const F5_ACT_COUNT: Field = d("act_count", "Nombre d'enregistrement de Type 4", 39, 41, M);
/// Type 5 positions 58-65, *Total des montants facturés*.
pub const F5_BILLED: Field = d("total_billed", "Total des montants facturés", 58, 65, M);
/// Type 5 positions 66-73, *Total remboursable par la Caisse*.
pub const F5_AMO: Field = d("total_amo", "Total remboursable par la Caisse", 66, 73, M);
/// Type 5 positions 74-81, *Total participation assuré avant participation de l'AMC*.
pub const F5_INSURED: Field = d(
    "total_insured",
    "Total participation assuré avant participation de l'organisme complémentaire",
    74,
    81,
    M,
);
/// Type 5 positions 82-89, *Total remboursable par l'organisme complémentaire*.
pub const F5_AMC: Field = d(
    "total_amc",
    "Total remboursable par l'organisme complémentaire",
    82,
    89,
    O,
);
/// Type 5 position 90, *Top éclatement des flux par l'OCT* (`A` = split by an OCT, R8.3).
pub const F5_OCT_SPLIT: Field = x("oct_split", "Top éclatement des flux par l'OCT", 90, 90, O);
/// Type 5 positions 97-128, *Zone de certification*: the PS's seal, opaque.
pub const F5_SEAL: Field = x("seal", "Zone de certification", 97, 128, M);

/// Type 5, *Totalisation de la facture* (libéral).
pub static INVOICE_TOTAL: Layout = Layout {
    code: "5",
    title: "Totalisation de la facture",
    len: RECORD_LEN,
    fields: invoice_fields![
        "5";
        blank("filler_36_38", 36, 38),
        F5_ACT_COUNT,
        x("reserved_sesam_42_57", "Zone réservée SESAM", 42, 57, O),
        F5_BILLED,
        F5_AMO,
        F5_INSURED,
        F5_AMC,
        F5_OCT_SPLIT,
        x("reserved_sesam_91_93", "Zone réservée SESAM", 91, 93, O),
        x("opposition", "Liste d'opposition", 94, 94, O),
        blank("filler_95_96", 95, 96),
        F5_SEAL,
    ],
};

// ---------------------------------------------------------------------------------------------
// Type 6: fin du lot
// ---------------------------------------------------------------------------------------------

/// Type 6 positions 2-10, *N° partenaire de santé + clé*.
pub const F6_PS: Field = d("ps_number", "N° partenaire de santé + clé", 2, 10, M);
/// Type 6 positions 11-13, *Nombre de factures*.
pub const F6_INVOICES: Field = d("invoice_count", "Nombre de factures", 11, 13, M);
/// Type 6 positions 14-17, *Nombre de lignes actes* (type 4 records of the lot).
pub const F6_ACTS: Field = d("act_count", "Nombre de lignes actes", 14, 17, M);
/// Type 6 positions 18-21, *Compatibilisation des enregistrements des types 2*.
pub const F6_TYPE2: Field = d(
    "type2_count",
    "Compatibilisation des enregistrements des types 2",
    18,
    21,
    M,
);
/// Type 6 positions 22-24, *Total de tous les enregistrements de type 5*.
pub const F6_TYPE5: Field = d(
    "type5_count",
    "Total de tous les enregistrements de type 5",
    22,
    24,
    M,
);
/// Type 6 positions 25-33, *Montant total général du lot prestations facturées*.
pub const F6_BILLED: Field = d(
    "total_billed",
    "Montant total général du lot prestations facturées",
    25,
    33,
    M,
);
/// Type 6 positions 34-42, lot total reimbursable by AMO.
pub const F6_AMO: Field = d(
    "total_amo",
    "Montant total général du lot prestations remboursables par l'organisme d'assurance maladie",
    34,
    42,
    M,
);
/// Type 6 positions 43-51, lot total reimbursable by AMC.
pub const F6_AMC: Field = d(
    "total_amc",
    "Montant total général du lot prestations remboursables par les organismes complémentaires",
    43,
    51,
    M,
);
/// Type 6 positions 52-54, *N° de lot*.
pub const F6_LOT_NUMBER: Field = d("lot_number", "N° de lot", 52, 54, M);
/// Type 6 position 55, *Indicateur de marquage des factures du lot* (`R`, `T`, `D`).
pub const F6_MARKING: Field = x("marking", "Indicateur de marquage des factures du lot", 55, 55, O);
/// Type 6 position 56, *Type de facture*.
pub const F6_INVOICE_KIND: Field = x("invoice_kind", "Type de facture", 56, 56, O);
/// Type 6 positions 97-128, *Zone de certification*: the PS's lot seal, opaque.
pub const F6_SEAL: Field = x("seal", "Zone de certification", 97, 128, O);

/// Type 6, *Fin du lot*.
pub static LOT_TRAILER: Layout = Layout {
    code: "6",
    title: "Fin du lot",
    len: RECORD_LEN,
    fields: &[
        d("record_type", "Type d'enregistrement", 1, 1, M).fixed("6"),
        F6_PS,
        F6_INVOICES,
        F6_ACTS,
        F6_TYPE2,
        F6_TYPE5,
        F6_BILLED,
        F6_AMO,
        F6_AMC,
        F6_LOT_NUMBER,
        F6_MARKING,
        F6_INVOICE_KIND,
        blank("filler_57_60", 57, 60),
        x("software_approval", "N° agrément progiciel de santé", 61, 72, O),
        x(
            "portable_approval",
            "N° agrément du dispositif portable",
            73,
            84,
            O,
        ),
        blank("filler_85_87", 85, 87),
        d("substitute_ps", "N° d'identification du PS remplaçant", 88, 96, O),
        F6_SEAL,
    ],
};

// ---------------------------------------------------------------------------------------------
// Type 999: fin de fichier
// ---------------------------------------------------------------------------------------------

/// 999 positions 1-3.
pub const F9_TYPE: Field = d("record_type", "Type d'enregistrement", 1, 3, M).fixed("999");
/// 999 positions 4-5, *Type d'émetteur*.
pub const F9_SENDER_TYPE: Field = x("sender_type", "Type d'émetteur", 4, 5, M);
/// 999 positions 6-19, *Numéro émetteur*.
pub const F9_SENDER_NUMBER: Field = d("sender_number", "Numéro émetteur", 6, 19, M);
/// 999 positions 26-27, *Type de destinataire*.
pub const F9_RECIPIENT_TYPE: Field = x("recipient_type", "Type de destinataire", 26, 27, M);
/// 999 positions 28-41, *Numéro de destinataire* (digits here, text in 000).
pub const F9_RECIPIENT_NUMBER: Field = d("recipient_number", "Numéro de destinataire", 28, 41, M);
/// 999 positions 48-49, *Application*.
pub const F9_APPLICATION: Field = x("application", "Application", 48, 49, M);
/// 999 positions 50-55, *Identification du fichier*.
pub const F9_FILE_ID: Field = x("file_id", "Identification du fichier", 50, 55, M);
/// 999 positions 56-63, *Volume du fichier*: records in the file, header and trailer included
/// (provisional, `docs/formats/b2.md`).
pub const F9_RECORDS: Field = d("record_count", "Volume du fichier", 56, 63, M);
/// 999 positions 83-85, *Nombre de lots*.
pub const F9_LOTS: Field = d("lot_count", "Nombre de lots", 83, 85, M);

/// Type 999, *Fin de fichier*.
pub static FILE_TRAILER: Layout = Layout {
    code: "999",
    title: "Fin de fichier",
    len: RECORD_LEN,
    fields: &[
        F9_TYPE,
        F9_SENDER_TYPE,
        F9_SENDER_NUMBER,
        blank("filler_20_25", 20, 25),
        F9_RECIPIENT_TYPE,
        F9_RECIPIENT_NUMBER,
        blank("filler_42_47", 42, 47),
        F9_APPLICATION,
        F9_FILE_ID,
        F9_RECORDS,
        blank("filler_64_82", 64, 82),
        F9_LOTS,
        blank("filler_86_128", 86, 128),
    ],
};

/// Every table of this module, for self-checks, the inspector and documentation.
pub static ALL: &[&Layout] = &[
    &FILE_HEADER,
    &LOT_HEADER,
    &INVOICE_HEADER,
    &INVOICE_2S,
    &INVOICE_2M,
    &INVOICE_2P,
    &INVOICE_2B,
    &INVOICE_2C,
    &LINE_3,
    &ACT_4,
    &INVOICE_TOTAL,
    &LOT_TRAILER,
    &FILE_TRAILER,
];

/// The structural role of a record, told from its first byte(s) alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    /// `000`, file header.
    FileHeader,
    /// `1`, lot header.
    LotHeader,
    /// `2`, invoice header or one of its continuations (2S, 2M, ...).
    InvoiceHeader,
    /// `3`, invoice line.
    Line,
    /// `4`, act (or one of its variants).
    Act,
    /// `5`, invoice total.
    InvoiceTotal,
    /// `6`, lot trailer.
    LotTrailer,
    /// `999`, file trailer.
    FileTrailer,
    /// Anything else.
    Unknown,
}

impl RecordType {
    /// Classify a record by its first byte(s). Never panics; an empty slice is `Unknown`.
    #[inline]
    pub fn of(record: &[u8]) -> RecordType {
        match record.first() {
            Some(b'1') => RecordType::LotHeader,
            Some(b'2') => RecordType::InvoiceHeader,
            Some(b'3') => RecordType::Line,
            Some(b'4') => RecordType::Act,
            Some(b'5') => RecordType::InvoiceTotal,
            Some(b'6') => RecordType::LotTrailer,
            Some(b'0') if record.get(..3) == Some(b"000") => RecordType::FileHeader,
            Some(b'9') if record.get(..3) == Some(b"999") => RecordType::FileTrailer,
            _ => RecordType::Unknown,
        }
    }

    /// A short human name, used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            RecordType::FileHeader => "file header (000)",
            RecordType::LotHeader => "lot header (type 1)",
            RecordType::InvoiceHeader => "invoice header (type 2)",
            RecordType::Line => "invoice line (type 3)",
            RecordType::Act => "act (type 4)",
            RecordType::InvoiceTotal => "invoice total (type 5)",
            RecordType::LotTrailer => "lot trailer (type 6)",
            RecordType::FileTrailer => "file trailer (999)",
            RecordType::Unknown => "unknown record type",
        }
    }
}

/// The continuation letter (position 36) of a type 2 record, if it is one of 2S/2M/2P/2B/2C.
#[inline]
pub fn invoice_continuation(record: &[u8]) -> Option<u8> {
    match record.get(35) {
        Some(c @ (b'S' | b'M' | b'P' | b'B' | b'C')) => Some(*c),
        _ => None,
    }
}

/// The layout of one record, from its type (positions 1-3) and, for continuations, position 36
/// (types 2 and 4) or 36/39 (type 3). `None` for a record type this module has no table for
/// (unknown types, and 3S/3F/3H/4x variants): such a record is kept as opaque bytes.
pub fn layout_of(record: &[u8]) -> Option<&'static Layout> {
    layout_index(record).and_then(|i| ALL.get(i).copied())
}

/// Index in [`ALL`] of the layout of `record` (see [`layout_of`]).
#[inline]
pub(crate) fn layout_index(record: &[u8]) -> Option<usize> {
    match RecordType::of(record) {
        RecordType::FileHeader => Some(0),
        RecordType::LotHeader => Some(1),
        RecordType::InvoiceHeader => Some(match invoice_continuation(record) {
            None => 2,
            Some(b'S') => 3,
            Some(b'M') => 4,
            Some(b'P') => 5,
            Some(b'B') => 6,
            Some(_) => 7,
        }),
        RecordType::Line => {
            let variant = matches!(record.get(35), Some(b'F' | b'H')) || record.get(38) == Some(&b'S');
            (!variant).then_some(8)
        }
        RecordType::Act => (record.get(35) == Some(&b' ')).then_some(9),
        RecordType::InvoiceTotal => Some(10),
        RecordType::LotTrailer => Some(11),
        RecordType::FileTrailer => Some(12),
        RecordType::Unknown => None,
    }
}
