//! Every kind, in CSV and xlsx, with good, duplicate and bad lines (each rule that can
//! refuse a line), encodings, a missing column, an empty file, a formula cell, a 10 MB
//! file, a dry run and a re-import — all through the real use cases on a log.

use super::*;
use domain::convention::{AllocateEnvelope, ConventionCommand as Cmd, EnvelopeKind, FundingShare, SignConvention};
use domain::{ConventionId, Money};
use store::{EventStore, MemoryStore};

const SIRET_CCAS: &str = "73282932000074";
const SIRET_ASSO: &str = "35600000000001";

fn d(s: &str) -> chrono::NaiveDate {
    s.parse().unwrap()
}

fn who() -> Importer {
    Importer { actor: "import:test".into(), structure: None }
}

/// The plan's four conventions, with small envelopes of our choosing.
async fn log() -> (Arc<dyn EventStore>, Arc<UseCases>) {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let uc = UseCases::new(store.clone());
    type Envelopes = &'static [(&'static str, EnvelopeKind, i64)];
    let conventions: [(&str, Envelopes); 4] = [
        (
            "ANCT-UNIFORMATION-2021",
            &[
                ("Formations certifiantes", EnvelopeKind::CertifyingTrainings, 100_000),
                ("Formations non certifiantes", EnvelopeKind::NonCertifyingTrainings, 20_000),
                ("Frais annexes", EnvelopeKind::AnnexCosts, 10_000),
            ],
        ),
        ("ANCT-PIX-2021", &[("Certifications Pix", EnvelopeKind::Certifications, 10_000)]),
        ("ANCT-AIDANTS-CONNECT-2021", &[("Formation Aidants Connect", EnvelopeKind::AidantsConnectTraining, 10_000)]),
        ("ANCT-UNCCAS-2021", &[("Actions CCAS", EnvelopeKind::CcasActions, 10_000)]),
    ];
    for (code, envelopes) in conventions {
        let total: i64 = envelopes.iter().map(|e| e.2).sum();
        let meta = || CommandMeta::new(CommandId::new_random(), "test");
        let sign = Cmd::Sign(SignConvention {
            code: code.into(),
            partner: "partenaire".into(),
            title: "convention".into(),
            signed_on: d("2021-03-01"),
            period_start: d("2021-03-01"),
            period_end: d("2022-12-31"),
            total: Money::euros(total),
            shares: vec![FundingShare { funder: "ANCT".into(), amount: Money::euros(total) }],
            targets: vec![],
            departements: vec![],
            annex_caps: None,
        });
        uc.convention(sign, meta()).await.unwrap();
        for (name, kind, amount) in envelopes {
            let allocate = Cmd::AllocateEnvelope(AllocateEnvelope {
                convention_id: ConventionId::for_code(code),
                name: name.to_string(),
                kind: *kind,
                amount: Money::euros(*amount),
                allocated_on: d("2021-03-01"),
                financing: None,
            });
            uc.convention(allocate, meta()).await.unwrap();
        }
    }
    (store, uc)
}

async fn run(uc: &Arc<UseCases>, kind: Kind, bytes: &[u8]) -> Report {
    import(uc, kind, bytes, &who(), &Options { dry_run: false }, &|_, _| {}).await.unwrap()
}

fn head(store: &Arc<dyn EventStore>) -> u64 {
    *store.head().borrow()
}

/// A CSV file of `kind`: the template's headers, then `lines` (cells by header name; the
/// others empty).
fn csv(kind: Kind, lines: &[&[(&str, &str)]]) -> Vec<u8> {
    let headers: Vec<&str> = kind.columns().iter().map(|c| c.header).collect();
    let mut out = headers.join(";") + "\n";
    for line in lines {
        let cells: Vec<String> = headers
            .iter()
            .map(|h| {
                let v = line.iter().find(|(k, _)| k == h).map_or("", |(_, v)| v);
                if v.contains([';', '"', '\n']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_string() }
            })
            .collect();
        out += &(cells.join(";") + "\n");
    }
    out.into_bytes()
}

/// The same lines as an .xlsx workbook; a cell starting with `=` is written as a formula.
fn xlsx(kind: Kind, lines: &[&[(&str, &str)]]) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (j, c) in kind.columns().iter().enumerate() {
        sheet.write_string(0, j as u16, c.header).unwrap();
    }
    for (i, line) in lines.iter().enumerate() {
        for (j, c) in kind.columns().iter().enumerate() {
            let Some((_, v)) = line.iter().find(|(k, _)| *k == c.header) else { continue };
            let (row, col) = (i as u32 + 1, j as u16);
            if let Some(f) = v.strip_prefix('=') {
                sheet
                    .write_formula(row, col, rust_xlsxwriter::Formula::new(format!("={f}")).set_result("clic"))
                    .unwrap();
            } else if let Ok(n) = v.parse::<f64>() {
                // Numbers as a spreadsheet holds them (SIRETs and counts too).
                sheet.write_number(row, col, n).unwrap();
            } else if let Some(date) = cells::parse_date(v).filter(|_| v.contains('/')) {
                let dt = rust_xlsxwriter::ExcelDateTime::parse_from_str(&date.to_string()).unwrap();
                let format = rust_xlsxwriter::Format::new().set_num_format("dd/mm/yyyy");
                sheet.write_datetime_with_format(row, col, &dt, &format).unwrap();
            } else {
                sheet.write_string(row, col, *v).unwrap();
            }
        }
    }
    book.save_to_buffer().unwrap()
}

fn rules(report: &Report) -> Vec<(usize, &str)> {
    report.refused_lines.iter().map(|r| (r.line, r.rule.as_str())).collect()
}

fn counts(report: &Report) -> (usize, usize, usize) {
    (report.accepted, report.already_there, report.refused)
}

const CCAS: &[(&str, &str)] = &[
    ("SIRET", "732 829 320 00074"),
    ("Nom", "CCAS de Brest"),
    ("Type", "CCAS/CIAS"),
    ("Département", "29"),
    ("Effectif", "10-49"),
    ("Date d'enregistrement", "01/04/2021"),
];
const ASSO: &[(&str, &str)] = &[
    ("SIRET", SIRET_ASSO),
    ("Nom", "Les Bons Clics"),
    ("Type", "association"),
    ("Département", "2A"),
    ("Effectif", "4"),
    ("Date d'enregistrement", "2021-04-02"),
];

async fn with_structures(uc: &Arc<UseCases>) {
    let report = run(uc, Kind::Structures, &csv(Kind::Structures, &[CCAS, ASSO])).await;
    assert_eq!(counts(&report), (2, 0, 0), "{:?}", report.refused_lines);
}

#[tokio::test]
async fn structures_good_duplicate_and_bad_lines() {
    let (store, uc) = log().await;
    let file = csv(
        Kind::Structures,
        &[
            CCAS,
            CCAS, // the same line again: already there
            &[
                ("SIRET", "73282932000075"),
                ("Nom", "x"),
                ("Type", "association"),
                ("Département", "29"),
                ("Effectif", "3"),
                ("Date d'enregistrement", "2021-04-01"),
            ],
            &[
                ("SIRET", SIRET_ASSO),
                ("Nom", "x"),
                ("Type", "club"),
                ("Département", "29"),
                ("Effectif", "3"),
                ("Date d'enregistrement", "2021-04-01"),
            ],
            &[
                ("SIRET", SIRET_ASSO),
                ("Nom", "x"),
                ("Type", "autre"),
                ("Département", "20"),
                ("Effectif", "3"),
                ("Date d'enregistrement", "2021-04-01"),
            ],
            &[
                ("SIRET", SIRET_ASSO),
                ("Nom", ""),
                ("Type", "autre"),
                ("Département", "29"),
                ("Effectif", "3"),
                ("Date d'enregistrement", "2021-04-01"),
            ],
            &[
                ("SIRET", SIRET_ASSO),
                ("Nom", "x"),
                ("Type", "autre"),
                ("Département", "29"),
                ("Effectif", "3"),
                ("Date d'enregistrement", "31/02/2021"),
            ],
            // Registered already, under another name: the domain's rule.
            &[
                ("SIRET", SIRET_CCAS),
                ("Nom", "CCAS de Brest (bis)"),
                ("Type", "CCAS"),
                ("Département", "29"),
                ("Effectif", "12"),
                ("Date d'enregistrement", "2021-04-01"),
            ],
        ],
    );
    let report = run(&uc, Kind::Structures, &file).await;
    assert_eq!(counts(&report), (1, 1, 6));
    assert_eq!(
        rules(&report),
        vec![
            (4, "SiretCleFausse"),
            (5, "Format"),
            (6, "Format"),
            (7, "ColonneVide"),
            (8, "Format"),
            (9, "AlreadyRegistered")
        ]
    );
    let r = &report.refused_lines[0];
    assert_eq!(
        r.message,
        "colonne « SIRET » : « 73282932000075 » n'est pas un SIRET valide : sa clé de contrôle (Luhn) est fausse"
    );
    assert_eq!(report.refused_lines[5].message, "la structure de SIRET 73282932000074 est déjà enregistrée");
    assert_eq!(report.source.encoding.as_deref(), Some("UTF-8"));

    // The same file again: nothing new.
    let before = head(&store);
    let again = run(&uc, Kind::Structures, &file).await;
    assert_eq!(counts(&again), (0, 2, 6));
    assert_eq!(head(&store), before, "a re-import writes nothing");
}

fn purchase(reference: &str, extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, String)> {
    let mut line: Vec<(&str, String)> = [
        ("Étape", "demande"),
        ("Date", "15/03/2021"),
        ("Convention", "ANCT-UNIFORMATION-2021"),
        ("SIRET", SIRET_ASSO),
        ("Organisme de formation", "Les Bons Clics"),
        ("Intitulé", "Démarches en ligne"),
        ("Blocs", "1, 2, 6"),
        ("Métier", "Agent d'accueil"),
        ("Heures", "35"),
        ("Stagiaires", "10"),
        ("Coût unitaire", "1 000,00"),
        ("Début de session", "03/05/2021"),
        ("Fin de session", "07/05/2021"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    line.push(("Référence achat", reference.to_string()));
    for (k, v) in extra {
        line.retain(|(x, _)| x != k);
        line.push((k, v.to_string()));
    }
    line
}

fn refs<'a>(lines: &'a [Vec<(&'static str, String)>]) -> Vec<Vec<(&'static str, &'a str)>> {
    lines.iter().map(|l| l.iter().map(|(k, v)| (*k, v.as_str())).collect()).collect()
}

fn step(
    reference: &str,
    step: &'static str,
    date: &'static str,
    extra: &[(&'static str, &'static str)],
) -> Vec<(&'static str, String)> {
    let mut line = vec![("Référence achat", reference.to_string()), ("Étape", step.into()), ("Date", date.into())];
    line.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    line
}

fn purchases_file() -> Vec<Vec<(&'static str, String)>> {
    vec![
        purchase("UNIF-1", &[]),
        step("UNIF-1", "accord", "20/03/2021", &[]),
        step("UNIF-1", "paiement", "21/03/2021", &[]), // before attendance: WrongState
        step("UNIF-1", "présence", "07/05/2021", &[("Présents", "11")]), // more than registered
        step("UNIF-1", "présence", "07/05/2021", &[("Présents", "9")]),
        step("UNIF-1", "paiement", "01/06/2021", &[]),
        purchase("UNIF-2", &[("Blocs", "aucun")]),
        purchase("UNIF-3", &[("Certification", "XYZ12")]),
        purchase("UNIF-4", &[("Fin de session", "01/05/2021")]),
        purchase("UNIF-5", &[("SIRET", "40483304800022")]), // valid, never registered
        purchase("UNIF-6", &[("Stagiaires", "200")]),
        step("UNIF-6", "accord", "20/03/2021", &[]), // 200 000 € on a 20 000 € envelope
        step("UNIF-7", "accord", "20/03/2021", &[]), // no such purchase
        step("UNIF-1", "annulation", "20/03/2021", &[]), // no reason
        purchase("UNIF-8", &[("Stagiaires", "0")]),
    ]
}

#[tokio::test]
async fn purchases_with_attendance_and_payment_every_rule_that_refuses_a_line() {
    let (store, uc) = log().await;
    with_structures(&uc).await;
    let lines = purchases_file();
    let file = csv(Kind::Purchases, &refs(&lines).iter().map(Vec::as_slice).collect::<Vec<_>>());
    let report = run(&uc, Kind::Purchases, &file).await;
    assert_eq!(
        rules(&report),
        vec![
            (4, "WrongState"),
            (5, "MorePresentThanRegistered"),
            (8, "NoBlock"),
            (9, "InvalidCertification"),
            (10, "SessionEndsBeforeStart"),
            (11, "Absent"),
            (13, "EnvelopeExceeded"),
            (14, "NotFound"),
            (15, "ColonneVide"),
            (16, "Zero"),
        ]
    );
    assert_eq!(counts(&report), (5, 0, 10));
    let exceeded = &report.refused_lines[6];
    assert_eq!(
        exceeded.message,
        "enveloppe dépassée : l'enveloppe « Formations non certifiantes » a 11 000,00 € disponibles, 200 000,00 € demandés"
    );
    assert_eq!(exceeded.figures["available"], "11000.00");
    assert_eq!(report.refused_lines[1].message, "11 stagiaires présents pour 10 inscrits");
    assert_eq!(
        report.refused_lines[5].message,
        "la structure n'est pas enregistrée : importez-la d'abord (fichier des structures)"
    );

    // The same lines from a workbook: the same commands, already there.
    let before = head(&store);
    let book = xlsx(Kind::Purchases, &refs(&lines).iter().map(Vec::as_slice).collect::<Vec<_>>());
    let again = run(&uc, Kind::Purchases, &book).await;
    assert_eq!(again.source.format, "XLSX");
    assert_eq!(counts(&again), (0, 5, 10), "{:?}", again.refused_lines);
    assert_eq!(head(&store), before);
}

#[tokio::test]
async fn a_free_text_holding_contact_details_or_a_nir_refuses_its_line_in_french() {
    // Given a purchase, then lines whose reason or title says how to reach a person
    let (store, uc) = log().await;
    with_structures(&uc).await;
    let lines = vec![
        purchase("UNIF-1", &[]),
        step("UNIF-1", "annulation", "20/03/2021", &[("Motif", "Annulée, rappeler Mme X au 06 12 34 56 78")]),
        purchase("UNIF-2", &[("Intitulé", "Démarches en ligne, inscriptions : marie@ccas-brest.fr")]),
        step("UNIF-1", "annulation", "20/03/2021", &[("Motif", "Annulée à la demande de la structure")]),
    ];
    // When the file is imported
    let report =
        run(&uc, Kind::Purchases, &csv(Kind::Purchases, &refs(&lines).iter().map(Vec::as_slice).collect::<Vec<_>>()))
            .await;
    // Then those lines are refused, saying which column and what it looks like; the others pass
    assert_eq!(rules(&report), vec![(3, "DonnéePersonnelle"), (4, "DonnéePersonnelle")]);
    assert_eq!(counts(&report), (2, 0, 2));
    assert!(report.refused_lines[0].message.contains("colonne « Motif »"), "{}", report.refused_lines[0].message);
    assert!(report.refused_lines[0].message.contains("un numéro de téléphone"), "{}", report.refused_lines[0].message);
    assert!(
        report.refused_lines[1].message.contains("une adresse électronique"),
        "{}",
        report.refused_lines[1].message
    );
    let log = serde_json::to_string(&store.read_all(0, 1000).await.unwrap()).unwrap();
    assert!(!log.contains("06 12 34 56 78") && !log.contains("marie@ccas-brest.fr"), "nothing of them written");
}

#[tokio::test]
async fn aidants_connect_sessions_and_habilitation_steps() {
    let (store, uc) = log().await;
    with_structures(&uc).await;
    let sessions = csv(
        Kind::AidantsSessions,
        &[
            &[
                ("Référence session", "AC-1"),
                ("Convention", "ANCT-AIDANTS-CONNECT-2021"),
                ("Capacité", "1"),
                ("Coût par place", "125,00"),
                ("Date", "20/04/2021"),
            ],
            &[
                ("Référence session", "AC-2"),
                ("Convention", "ANCT-AIDANTS-CONNECT-2021"),
                ("Capacité", "0"),
                ("Coût par place", "125"),
                ("Date", "20/04/2021"),
            ],
            &[
                ("Référence session", "AC-1"),
                ("Convention", "ANCT-AIDANTS-CONNECT-2021"),
                ("Capacité", "3"),
                ("Coût par place", "125"),
                ("Date", "20/04/2021"),
            ],
        ],
    );
    let report = run(&uc, Kind::AidantsSessions, &sessions).await;
    assert_eq!(rules(&report), vec![(3, "Zero"), (4, "AlreadyOpen")]);

    let h = |aidant: &'static str, step: &'static str, date: &'static str, extra: &[(&'static str, &'static str)]| {
        let mut l = vec![("SIRET", SIRET_CCAS), ("Référence aidant", aidant), ("Étape", step), ("Date", date)];
        l.extend_from_slice(extra);
        l
    };
    let lines = [
        h("A1", "demande", "01/04/2021", &[]),
        h("A1", "éligibilité", "02/04/2021", &[]),
        h("A1", "inscription", "03/04/2021", &[("Référence session", "AC-1")]),
        h("A1", "formation", "20/04/2021", &[]),
        h("A1", "habilitation", "21/04/2021", &[("Moyen", "carte")]),
        h("A2", "demande", "01/04/2021", &[]),
        h("A2", "demande", "02/04/2021", &[]), // another request while one is active
        h("A2", "habilitation", "21/04/2021", &[("Moyen", "carte")]), // not trained
        h("A2", "éligibilité", "02/04/2021", &[]),
        h("A2", "inscription", "03/04/2021", &[("Référence session", "AC-1")]), // full
        h("A2", "inscription", "03/04/2021", &[("Référence session", "AC-9")]), // no such session
        h("A2", "refus", "03/04/2021", &[]),                                    // no reason
        h("A3", "éligibilité", "02/04/2021", &[]),                              // never requested
        h("A1", "révocation", "01/06/2021", &[("Motif", "a quitté la structure")]),
    ];
    let file = csv(Kind::Habilitations, &lines.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let report = run(&uc, Kind::Habilitations, &file).await;
    assert_eq!(
        rules(&report),
        vec![
            (8, "AlreadyActive"),
            (9, "NoCompletedTraining"),
            (11, "Full"),
            (12, "Absent"),
            (13, "ColonneVide"),
            (14, "NotFound")
        ]
    );
    assert_eq!(counts(&report), (8, 0, 6));
    assert_eq!(report.refused_lines[2].message, "la session est complète : 1 places, toutes prises");

    let before = head(&store);
    let book = xlsx(Kind::Habilitations, &lines.iter().map(Vec::as_slice).collect::<Vec<_>>());
    assert_eq!(counts(&run(&uc, Kind::Habilitations, &book).await), (0, 8, 6));
    assert_eq!(head(&store), before);
}

#[tokio::test]
async fn pix_campaigns_and_certifications() {
    let (_store, uc) = log().await;
    with_structures(&uc).await;
    let campaigns = csv(
        Kind::PixCampaigns,
        &[
            &[
                ("Référence campagne", "PIX-A"),
                ("Convention", "ANCT-PIX-2021"),
                ("Public", "Aidants numériques"),
                ("Certifications", "2"),
                ("Prix unitaire", "60"),
                ("Date", "01/06/2021"),
            ],
            &[
                ("Référence campagne", "PIX-B"),
                ("Convention", "ANCT-PIX-2021"),
                ("Public", "tout le monde"),
                ("Certifications", "2"),
                ("Prix unitaire", "60"),
                ("Date", "01/06/2021"),
            ],
            &[
                ("Référence campagne", "PIX-C"),
                ("Convention", "ANCT-PIX-2021"),
                ("Public", "médiateurs"),
                ("Certifications", "1000"),
                ("Prix unitaire", "60"),
                ("Date", "01/06/2021"),
            ],
        ],
    );
    let report = run(&uc, Kind::PixCampaigns, &campaigns).await;
    assert_eq!(rules(&report), vec![(3, "Format"), (4, "EnvelopeExceeded")]);
    let cert = |candidate: &'static str, score: &'static str, campaign: &'static str| {
        vec![
            ("Référence campagne", campaign),
            ("Référence candidat", candidate),
            ("SIRET", SIRET_CCAS),
            ("Score", score),
            ("Date", "15/09/2021"),
        ]
    };
    let lines = [
        cert("C1", "512", "PIX-A"),
        cert("C1", "600", "PIX-A"), // certified already
        cert("C2", "2000", "PIX-A"),
        cert("C2", "700", "PIX-A"),
        cert("C3", "700", "PIX-A"), // both bought are used
        cert("C4", "700", "PIX-Z"),
    ];
    let report = run(
        &uc,
        Kind::PixCertifications,
        &csv(Kind::PixCertifications, &lines.iter().map(Vec::as_slice).collect::<Vec<_>>()),
    )
    .await;
    assert_eq!(rules(&report), vec![(3, "AlreadyCertified"), (4, "ScoreOverMax"), (6, "AllUsed"), (7, "NotFound")]);
    assert_eq!(report.refused_lines[1].message, "un score Pix est sur 1 024 pix, pas 2000");
}

#[tokio::test]
async fn ccas_actions() {
    let (_store, uc) = log().await;
    with_structures(&uc).await;
    let a = |reference: &'static str, siret: &'static str, agents: &'static str, cost: &'static str| {
        vec![
            ("Référence action", reference),
            ("Convention", "ANCT-UNCCAS-2021"),
            ("SIRET", siret),
            ("Intitulé", "Inclusion numérique au guichet"),
            ("Agents", agents),
            ("Cadres", "0"),
            ("Blocs", "1, 3, 8"),
            ("Coût", cost),
            ("Date", "10/06/2021"),
        ]
    };
    let lines = [
        a("U-1", SIRET_CCAS, "8", "4 500,00"),
        a("U-2", SIRET_ASSO, "8", "100"), // an association is no CCAS
        a("U-3", SIRET_CCAS, "0", "100"),
        a("U-4", SIRET_CCAS, "8", "0"),
        a("U-5", SIRET_CCAS, "8", "20 000"),
    ];
    let report =
        run(&uc, Kind::CcasActions, &csv(Kind::CcasActions, &lines.iter().map(Vec::as_slice).collect::<Vec<_>>()))
            .await;
    assert_eq!(rules(&report), vec![(3, "NotACcas"), (4, "NobodyTrained"), (5, "ZeroCost"), (6, "EnvelopeExceeded")]);
    assert_eq!(report.accepted, 1);
}

#[tokio::test]
async fn annex_cost_claims_and_a_structure_claims_only_for_its_own_trainings() {
    let (store, uc) = log().await;
    with_structures(&uc).await;
    let lines = [
        purchase("UNIF-1", &[]),
        step("UNIF-1", "accord", "20/03/2021", &[]),
        step("UNIF-1", "présence", "07/05/2021", &[("Présents", "9")]),
        purchase("UNIF-2", &[]),
    ];
    let report =
        run(&uc, Kind::Purchases, &csv(Kind::Purchases, &refs(&lines).iter().map(Vec::as_slice).collect::<Vec<_>>()))
            .await;
    assert_eq!(report.refused, 0, "{:?}", report.refused_lines);
    let c = |purchase: &'static str, trainee: &'static str, on: &'static str, nights_area: &'static str| {
        vec![
            ("Référence achat", purchase),
            ("Référence stagiaire", trainee),
            ("Date de dépôt", on),
            ("Transport en commun : billets", "2"),
            ("Transport en commun : montant", "38,40"),
            ("Transport en commun : justificatif", "SNCF-1"),
            ("Nuits : nombre", "2"),
            ("Nuits : zone", nights_area),
            ("Nuits : montant", "150"),
            ("Nuits : justificatif", "HOTEL-1"),
        ]
    };
    let claims = [
        c("UNIF-1", "S1", "20/05/2021", "grande ville"),
        c("UNIF-1", "S2", "20/05/2021", ""),         // a night without its area
        c("UNIF-2", "S1", "20/05/2021", "standard"), // attendance not recorded
        c("UNIF-1", "S3", "01/05/2021", "standard"), // before the session ends
        c("UNIF-1", "S4", "01/12/2021", "standard"), // after the deadline
        c("UNIF-9", "S1", "20/05/2021", "standard"), // no such purchase
    ];
    let file = csv(Kind::AnnexClaims, &claims.iter().map(Vec::as_slice).collect::<Vec<_>>());
    // A structure that did not buy the training: refused, nothing written.
    let other = Importer {
        actor: "structure:asso".into(),
        structure: Some(domain::structure::StructureId::for_siret(
            &domain::structure::Siret::parse(SIRET_CCAS).unwrap(),
        )),
    };
    let before = head(&store);
    let report =
        import(&uc, Kind::AnnexClaims, &file[..], &other, &Options { dry_run: false }, &|_, _| {}).await.unwrap();
    assert_eq!(report.accepted, 0);
    assert_eq!(report.refused_lines[0].rule, "NotTheBuyer");
    assert_eq!(head(&store), before);
    // The buyer's own.
    let buyer = Importer {
        actor: "structure:ccas".into(),
        structure: Some(domain::structure::StructureId::for_siret(
            &domain::structure::Siret::parse(SIRET_ASSO).unwrap(),
        )),
    };
    let report =
        import(&uc, Kind::AnnexClaims, &file[..], &buyer, &Options { dry_run: false }, &|_, _| {}).await.unwrap();
    assert_eq!(
        rules(&report),
        vec![(3, "ColonneVide"), (4, "NoAttendance"), (5, "BeforeSessionEnd"), (6, "DeadlinePassed"), (7, "Absent")]
    );
    assert_eq!(report.accepted, 1);
    assert!(
        report.refused_lines[3].message.starts_with("le délai de dépôt était le 05/08/2021 (90 jours"),
        "{}",
        report.refused_lines[3].message
    );
}

#[tokio::test]
async fn a_dry_run_reports_what_the_import_will_do_and_writes_nothing() {
    let (store, uc) = log().await;
    with_structures(&uc).await;
    let lines = purchases_file();
    let file = csv(Kind::Purchases, &refs(&lines).iter().map(Vec::as_slice).collect::<Vec<_>>());
    let before = head(&store);
    let dry = import(&uc, Kind::Purchases, &file, &who(), &Options { dry_run: true }, &|_, _| {}).await.unwrap();
    assert_eq!(head(&store), before, "a dry run writes nothing");
    assert!(dry.dry_run);
    let real = run(&uc, Kind::Purchases, &file).await;
    assert_eq!((counts(&dry), rules(&dry)), (counts(&real), rules(&real)), "the same decisions");
}

#[tokio::test]
async fn encodings_windows_1252_and_utf8_with_a_bom_are_read_and_said() {
    let (store, uc) = log().await;
    let text = "SIRET;Nom;Type;Département;Effectif;Date d'enregistrement\r\n73282932000074;CCAS de Sète;CCAS;34;12;01/04/2021\r\n";
    let (cp1252, _, _) = encoding_rs::WINDOWS_1252.encode(text);
    let report = run(&uc, Kind::Structures, &cp1252).await;
    assert_eq!(report.source.encoding.as_deref(), Some("Windows-1252"));
    assert_eq!(report.accepted, 1);
    let events = store.read_all(0, 1000).await.unwrap();
    assert!(events.last().unwrap().payload.as_str().to_string().contains("CCAS de Sète"));

    let with_bom = format!("\u{feff}{text}");
    let report = run(&uc, Kind::Structures, with_bom.as_bytes()).await;
    assert_eq!(report.source.encoding.as_deref(), Some("UTF-8 (avec BOM)"));
    assert_eq!(counts(&report), (0, 1, 0), "the same line, whatever its encoding");
}

#[tokio::test]
async fn a_file_that_cannot_be_read_writes_nothing_and_says_where() {
    let (store, uc) = log().await;
    let before = head(&store);
    let missing = b"SIRET;Nom;Type;Effectif;Date d'enregistrement\n73282932000074;CCAS;CCAS;12;01/04/2021\n";
    let err =
        import(&uc, Kind::Structures, missing, &who(), &Options { dry_run: false }, &|_, _| {}).await.unwrap_err();
    assert_eq!((err.line, err.column.as_deref()), (Some(1), Some("Département")));
    assert!(err.message.contains("tracker import --template structures"), "{}", err.message);

    let bad_bytes = b"SIRET;Nom;Type;D\xe9partement;Effectif;Date d'enregistrement\n73282932000074;CCAS\x81;CCAS;29;12;01/04/2021\n";
    let err =
        import(&uc, Kind::Structures, bad_bytes, &who(), &Options { dry_run: false }, &|_, _| {}).await.unwrap_err();
    assert_eq!((err.line, err.column.as_deref()), (Some(2), Some("Nom")));

    let err = import(&uc, Kind::Structures, b"", &who(), &Options { dry_run: false }, &|_, _| {}).await.unwrap_err();
    assert_eq!(err.line, Some(1));
    let err = import(&uc, Kind::Structures, b"PK\x03\x04garbage", &who(), &Options { dry_run: false }, &|_, _| {})
        .await
        .unwrap_err();
    assert!(err.message.contains("classeur illisible"));
    assert_eq!(head(&store), before);

    // Headers only: nothing to do, and said so.
    let report = run(&uc, Kind::Structures, &template(Kind::Structures)).await;
    assert_eq!((report.lines, report.accepted), (0, 0));
}

#[tokio::test]
async fn a_formula_is_imported_as_text_and_never_exported_as_a_formula() {
    let (store, uc) = log().await;
    let hyperlink = "=HYPERLINK(\"http://evil.example\";\"clic\")";
    let named = [
        ("SIRET", SIRET_CCAS),
        ("Nom", hyperlink),
        ("Type", "CCAS"),
        ("Département", "29"),
        ("Effectif", "3"),
        ("Date d'enregistrement", "2021-04-01"),
    ];
    let refused = [
        ("SIRET", SIRET_ASSO),
        ("Nom", "x"),
        ("Type", "=1+1"),
        ("Département", "29"),
        ("Effectif", "3"),
        ("Date d'enregistrement", "2021-04-01"),
    ];
    let report = run(&uc, Kind::Structures, &csv(Kind::Structures, &[&named, &refused])).await;
    assert_eq!(counts(&report), (1, 0, 1));
    let events = store.read_all(0, 1000).await.unwrap();
    let payload = events.last().unwrap().payload.as_str().to_string();
    assert!(payload.contains("=HYPERLINK(\\\"http://evil.example\\\""), "stored as the text it is: {payload}");
    let report_csv = String::from_utf8(report.to_csv()).unwrap();
    assert!(report_csv.contains(";'=1+1;"), "{report_csv}");
    assert!(report_csv.starts_with("\u{feff}Rapport d'import;structures employeuses\r\n"), "{report_csv}");
    assert!(report_csv.contains("Refusées;1\r\n\r\nLigne;Règle;Motif;SIRET;Nom;"), "{report_csv}");
    assert!(!report_csv.lines().any(|l| l.split(';').any(|c| c.starts_with(['=', '+', '-', '@']))), "{report_csv}");

    // In a workbook, the formula's text is the value: never its computed result.
    let (store, uc) = log().await;
    let report = run(&uc, Kind::Structures, &xlsx(Kind::Structures, &[&named])).await;
    assert_eq!(report.accepted, 1, "{:?}", report.refused_lines);
    let payload = store.read_all(0, 1000).await.unwrap().last().unwrap().payload.as_str().to_string();
    assert!(payload.contains("=HYPERLINK(") && !payload.contains("\"clic\"}"), "{payload}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_megabyte_file_is_imported_whole() {
    let (store, uc) = log().await;
    // 10 000 structures, with a long comment column the import does not use (extracts carry such).
    let mut file = String::from("SIRET;Nom;Type;Département;Effectif;Date d'enregistrement;Commentaire\n");
    let comment = "x".repeat(1_000);
    let mut n = 0;
    let mut candidate = 100_000_000_000_000u64 / 10;
    while n < 10_000 {
        candidate += 1;
        let siret = format!("{candidate:014}");
        if domain::structure::Siret::parse(&siret).is_err() {
            continue;
        }
        file += &format!("{siret};Structure {n};association;29;5;2021-04-01;{comment}\n");
        n += 1;
    }
    assert!(file.len() >= 10_000_000, "{} bytes", file.len());
    let seen = AtomicUsize::new(0);
    let report = import(&uc, Kind::Structures, file.as_bytes(), &who(), &Options { dry_run: false }, &|done, _| {
        seen.fetch_max(done, Ordering::Relaxed);
    })
    .await
    .unwrap();
    assert_eq!(counts(&report), (10_000, 0, 0));
    assert_eq!(seen.load(Ordering::Relaxed), 10_000, "progress reached the end");
    assert_eq!(
        store.read_all(0, 100_000).await.unwrap().iter().filter(|e| e.event_type == "StructureRegistered").count(),
        10_000
    );
}

#[test]
fn every_template_is_read_back_with_all_its_columns() {
    for kind in Kind::ALL {
        let table = read::read(&template(kind)).unwrap();
        assert!(columns(kind, &table).is_ok(), "{kind:?}");
        assert_eq!(Kind::parse(kind.name()), Some(kind));
    }
    assert!(templates_markdown().contains("| Référence aidant |"));
}

#[test]
fn the_readme_shows_the_templates_as_the_code_has_them() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    assert!(readme.contains(&templates_markdown()), "update the README's Imports section from `templates_markdown()`");
}
