//! Personal data: the migration of a log whose actors name their token holders (as every
//! version before the directory of persons wrote it), then erasure, from the command line.

use super::{stdout, tracker};
use std::path::{Path, PathBuf};

/// The files of a directory (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle.as_bytes()) {
            found.push(path.display().to_string());
        }
    }
    found
}

fn digest(data: &Path) -> String {
    let out = stdout(&tracker(&["verify"], data));
    assert!(out.contains("INTACT"), "{out}");
    out.lines().find_map(|l| l.trim().strip_prefix("head digest ")).unwrap().to_string()
}

/// The report's figures, without its header (which names the log's digest) and without
/// the corrections' actors (names before the migration, ids after).
fn figures(data: &Path) -> serde_json::Value {
    let out = tracker(&["replay", "--format", "json"], data);
    let mut report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report.as_object_mut().unwrap().remove("header");
    for correction in report.get_mut("corrections").and_then(|c| c.as_array_mut()).into_iter().flatten() {
        correction.as_object_mut().unwrap().remove("actor");
    }
    report
}

#[test]
fn a_log_naming_its_actors_is_migrated_then_an_agent_forgotten_with_the_same_digest_and_figures() {
    let root = tempfile::tempdir().unwrap();
    let (seeded, data, archive) = (root.path().join("seeded"), root.path().join("data"), root.path().join("archive"));
    assert!(tracker(&["seed", "--scenario", "sample"], &seeded).status.success());
    // Given a log as the current version writes it when token holders act: their label
    // in every event's actor (made here from the seeded log, chained as the writer does),
    // and a token file with the labels.
    std::fs::create_dir_all(&data).unwrap();
    let mut n = 0;
    store::sqlite::rewrite::rewrite(
        &seeded.join("events.sqlite3"),
        &data.join("events.sqlite3"),
        |_, _, actor, payload| {
            n += 1;
            let actor = match n % 3 {
                0 => "opco:Marie Dupont (token 3f2a9c1e)".to_string(),
                1 => "structure:Jean Martin (token 0badcafe)".to_string(),
                _ => actor.to_string(),
            };
            store::sqlite::rewrite::Rewritten { actor, payload: payload.to_string() }
        },
    )
    .unwrap();
    let legacy_tokens = serde_json::json!([{
        "id": "3f2a9c1e-0000-4000-8000-000000000001", "hash": "00", "role": "opco", "structure": null,
        "label": "Marie Dupont", "created_at": "2021-03-01T00:00:00Z", "revoked_at": null
    }]);
    std::fs::write(data.join("tokens.json"), legacy_tokens.to_string()).unwrap();
    let old_digest = digest(&data);
    let old_figures = figures(&data);
    assert!(!files_containing(&data, "Marie Dupont").is_empty());

    // When it is migrated
    let migrated = tracker(&["migrate-personal-data", "--archive", archive.to_str().unwrap(), "--json"], &data);
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let report: serde_json::Value = serde_json::from_slice(&migrated.stdout).unwrap();

    // Then the names are in no file of the data directory, only in the directory of persons
    // until erased; the old log, archived, still proves its digest, which the new log's
    // last event records; the new log verifies, with the same figures.
    assert_eq!(report["previousHead"], old_digest);
    assert_eq!(report["persons"], 2);
    for name in ["Jean Martin", "Marie Dupont"] {
        let files = files_containing(&data, name);
        assert_eq!(files, vec![data.join("directory.sqlite3").display().to_string()], "{name}");
    }
    let archived = tracker(&["verify", "--expect", &old_digest], &archive);
    assert_eq!(archived.status.code(), Some(0), "{}", stdout(&archived));
    let new_digest = digest(&data);
    assert_eq!(report["head"], new_digest);
    let events = stdout(&tracker(&["events"], &data));
    let seal: serde_json::Value = serde_json::from_str(events.lines().last().unwrap()).unwrap();
    assert_eq!(seal["eventType"], "PersonalDataMigrated");
    assert_eq!(seal["payload"]["previousHead"], old_digest);
    assert_eq!(figures(&data), old_figures);
    let replayed = stdout(&tracker(&["replay", "--format", "json"], &data));
    assert!(!replayed.contains("Marie Dupont"), "the report names ids, not persons");
    let before_erasure = replayed.replace(&new_digest, "");

    // The access request, before erasure, lists every event Marie Dupont caused.
    let access = tracker(&["subject-access", "Marie Dupont"], &data);
    assert!(access.status.success(), "{}", String::from_utf8_lossy(&access.stderr));
    let access: serde_json::Value = serde_json::from_slice(&access.stdout).unwrap();
    let person = &access["personnes"][0];
    assert_eq!(person["référence ou nom"], "Marie Dupont");
    let acted = person["événements"].as_array().unwrap();
    assert_eq!(acted.len(), n / 3, "every third event was hers");
    assert!(acted.iter().all(|e| e["qualité"] == "auteur"));
    assert_eq!(person["jetons"].as_array().unwrap().len(), 1, "her token, migrated");
    let csv = stdout(&tracker(&["subject-access", "Marie Dupont", "--format", "csv"], &data));
    assert_eq!(csv.lines().count(), 1 + n / 3);
    assert!(csv.starts_with("identifiant;catégorie;portée;référence ou nom;position;"));

    // When she is forgotten
    let id = person["identifiant"].as_str().unwrap().to_string();
    let forgotten = tracker(&["forget", &id], &data);
    assert!(forgotten.status.success(), "{}", String::from_utf8_lossy(&forgotten.stderr));
    assert!(stdout(&forgotten).contains("token 3f2a9c1e-0000-4000-8000-000000000001 revoked"));

    // Then her name is nowhere, the digest and the figures are the same, and she is erased
    assert_eq!(files_containing(&data, "Marie Dupont"), Vec::<String>::new());
    assert_eq!(digest(&data), new_digest);
    assert_eq!(figures(&data), old_figures);
    let after_erasure = stdout(&tracker(&["replay", "--format", "json"], &data));
    assert_eq!(after_erasure.replace(&new_digest, ""), before_erasure, "the same report, byte for byte");
    let again = tracker(&["subject-access", &id], &data);
    assert!(String::from_utf8_lossy(&again.stderr).contains("was erased"));
    let rebuilt = tracker(&["rebuild"], &data);
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    assert!(files_containing(&data, "Marie Dupont").is_empty(), "nor in the rebuilt snapshots");
}

/// The references of persons an events listing holds in clear (not ids): aidants,
/// trainees, Pix candidates, as the versions before the directory wrote them.
fn clear_references(events: &str) -> Vec<String> {
    events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|e| {
            let field = match e["eventType"].as_str()? {
                "HabilitationRequested" => "aidant",
                "AnnexClaimSubmitted" => "trainee",
                "PixCertificationRecorded" => "candidate",
                _ => return None,
            };
            let reference = e["payload"][field].as_str()?.to_string();
            uuid::Uuid::parse_str(&reference).is_err().then_some(reference)
        })
        .collect()
}

#[test]
fn references_in_clear_leave_every_file_but_the_directory_and_a_second_migration_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (seeded, data, archive) = (root.path().join("seeded"), root.path().join("data"), root.path().join("archive"));
    assert!(tracker(&["seed", "--scenario", "sample"], &seeded).status.success());
    // Given a log as the versions before the directory wrote it: actors naming their
    // token holder, and the persons' references as given (the sample's invented ones,
    // when it records them so)
    std::fs::create_dir_all(&data).unwrap();
    let mut n = 0;
    store::sqlite::rewrite::rewrite(&seeded.join("events.sqlite3"), &data.join("events.sqlite3"), |_, _, actor, p| {
        n += 1;
        let actor = if n % 2 == 0 { "anct:Paul Durand (token 0123abcd)".to_string() } else { actor.to_string() };
        store::sqlite::rewrite::Rewritten { actor, payload: p.to_string() }
    })
    .unwrap();
    let references = clear_references(&stdout(&tracker(&["events"], &data)));
    let (old_digest, old_figures) = (digest(&data), figures(&data));

    // When it is migrated
    let migrated = tracker(&["migrate-personal-data", "--archive", archive.to_str().unwrap(), "--json"], &data);
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let report: serde_json::Value = serde_json::from_slice(&migrated.stdout).unwrap();

    // Then every reference was replaced, and is in no file but the directory, nor once
    // the read models are rebuilt; the log verifies with the same figures, and the old
    // digest is proven by the archive
    let replaced: u64 = report["referencesReplaced"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(replaced, references.len() as u64);
    assert!(clear_references(&stdout(&tracker(&["events"], &data))).is_empty());
    assert!(tracker(&["rebuild"], &data).status.success());
    for reference in references.iter().map(|r| format!("\"{r}\"")) {
        let directory_only = files_containing(&data, &reference[1..reference.len() - 1]);
        assert!(directory_only.iter().all(|f| f.contains("directory.sqlite3")), "{reference} in {directory_only:?}");
    }
    assert_eq!(figures(&data), old_figures);
    let new_digest = digest(&data);
    assert_eq!(report["head"], new_digest);
    let archived = tracker(&["verify", "--expect", &old_digest], &archive);
    assert_eq!(archived.status.code(), Some(0), "{}", stdout(&archived));

    // When it is migrated again, it is refused, and nothing changes
    let again = tracker(&["migrate-personal-data", "--archive", root.path().join("again").to_str().unwrap()], &data);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to migrate"), "{again:?}");
    assert_eq!(digest(&data), new_digest);
}

#[test]
fn the_migration_refuses_an_archive_inside_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    assert!(tracker(&["seed", "--scenario", "sample"], dir.path()).status.success());
    let inside = dir.path().join("old");
    let refused = tracker(&["migrate-personal-data", "--archive", inside.to_str().unwrap()], dir.path());
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("outside the data directory"));
}

/// The sample seeded into `DIR/data`, and the SIRET of one of its structures.
fn sample_and_a_siret(dir: &Path) -> (PathBuf, String) {
    let data = dir.join("data");
    assert!(tracker(&["seed", "--scenario", "sample"], &data).status.success());
    let events = stdout(&tracker(&["events"], &data));
    let siret = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["eventType"] == "StructureRegistered")
        .map(|e| e["payload"]["siret"].as_str().unwrap().to_string())
        .unwrap();
    (data, siret)
}

#[test]
fn an_imported_aidant_is_in_no_file_but_the_directory_then_in_none_once_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let (data, siret) = sample_and_a_siret(dir.path());
    // Given a structure's file: one aidant by a pseudonymous reference, one by an e-mail address
    let file = dir.path().join("aidants.csv");
    std::fs::write(
        &file,
        format!(
            "SIRET;Référence aidant;Étape;Date;Référence session;Moyen;Motif\n\
             {siret};AIDANT-SECRET-77;demande;01/04/2021;;;\n\
             {siret};marie.dupont@example.org;demande;01/04/2021;;;\n"
        ),
    )
    .unwrap();
    let imported = tracker(&["import", "habilitations", file.to_str().unwrap(), "--json"], &data);
    let report: serde_json::Value = serde_json::from_slice(&imported.stdout).unwrap();
    // Then the e-mail address is refused, naming the column, and goes nowhere
    let text = report.to_string();
    assert!(text.contains("ressemble à une adresse électronique"), "{text}");
    assert!(files_containing(&data, "marie.dupont@example.org").is_empty());
    // and the reference is in the directory only (log, WAL, snapshots)
    assert!(tracker(&["rebuild"], &data).status.success());
    assert_eq!(files_containing(&data, "AIDANT-SECRET-77"), vec![data.join("directory.sqlite3").display().to_string()]);
    let access = tracker(&["subject-access", "AIDANT-SECRET-77"], &data);
    let access: serde_json::Value = serde_json::from_slice(&access.stdout).unwrap();
    let about = access["personnes"][0]["événements"].as_array().unwrap();
    assert_eq!(about.len(), 1, "{access}");
    assert_eq!(about[0]["type"], "HabilitationRequested");
    assert_eq!(about[0]["qualité"], "concerné");
    let (digest_before, figures_before) = (digest(&data), figures(&data));

    // Retention: requested on 2021-04-01, no convention touched yet: kept 5 years (ours)
    let early = tracker(&["retention", "--today", "2026-03-31", "--json"], &data);
    let early: serde_json::Value = serde_json::from_slice(&early.stdout).unwrap();
    let early_ids: Vec<&str> =
        early["erased"].as_array().unwrap().iter().map(|e| e["person"].as_str().unwrap()).collect();
    let aidant = access["personnes"][0]["identifiant"].as_str().unwrap();
    assert!(!early_ids.contains(&aidant), "{early}");
    let dry = tracker(&["retention", "--today", "2026-04-01", "--dry-run", "--json"], &data);
    let dry: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    let due = dry["erased"].as_array().unwrap().iter().find(|e| e["person"] == aidant).expect("due on 2026-04-01");
    assert_eq!(due["because"], "last event on 2021-04-01, + 5 years");
    assert_eq!(files_containing(&data, "AIDANT-SECRET-77").len(), 1, "a dry run erases nothing");

    // When the aidant is forgotten
    assert!(tracker(&["forget", "AIDANT-SECRET-77"], &data).status.success());

    // Then the reference is in no byte of the data directory, and nothing else changed
    assert_eq!(files_containing(&data, "AIDANT-SECRET-77"), Vec::<String>::new());
    assert_eq!(digest(&data), digest_before);
    assert_eq!(figures(&data), figures_before);
    assert!(tracker(&["rebuild"], &data).status.success());
    assert_eq!(figures(&data), figures_before);
}

#[test]
fn retention_erases_a_participant_whose_period_ran_out_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (data, siret) = sample_and_a_siret(dir.path());
    let file = dir.path().join("aidants.csv");
    std::fs::write(
        &file,
        format!(
            "SIRET;Référence aidant;Étape;Date;Référence session;Moyen;Motif\n{siret};AIDANT-RETENU-9;demande;01/04/2021;;;\n"
        ),
    )
    .unwrap();
    assert!(tracker(&["import", "habilitations", file.to_str().unwrap()], &data).status.success());
    let digest_before = digest(&data);
    // Given five years (ours) after the aidant's last event, when retention runs
    let run = tracker(&["retention", "--today", "2026-04-02"], &data);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    // Then it says whom it erased and why, the reference is gone, the log is the same
    let out = stdout(&run);
    assert!(out.contains("(aidant): last event on 2021-04-01, + 5 years"), "{out}");
    assert_eq!(files_containing(&data, "AIDANT-RETENU-9"), Vec::<String>::new());
    assert_eq!(digest(&data), digest_before);
    // and, run again the next day, it finds nothing more to erase
    let again = stdout(&tracker(&["retention", "--today", "2026-04-03"], &data));
    assert!(again.contains("0 erased"), "{again}");
}

#[test]
fn the_seeded_samples_invented_references_are_in_the_directory_only_then_in_no_file_once_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = sample_and_a_siret(dir.path());
    let references = ["AIDANT-001", "STAGIAIRE-001", "PIX-0001"];
    // Given the sample seeded, and its read models' snapshots written
    assert!(tracker(&["rebuild"], &data).status.success());
    // Then its invented references of persons are in the directory of persons only: the
    // log (and its WAL, the snapshots) hold the ids it issued
    let directory = vec![data.join("directory.sqlite3").display().to_string()];
    for reference in references {
        assert_eq!(files_containing(&data, reference), directory, "{reference}");
    }
    // and the access request of the aidant lists their habilitation, every step of it
    let access = tracker(&["subject-access", "AIDANT-001"], &data);
    assert!(access.status.success(), "{}", String::from_utf8_lossy(&access.stderr));
    let access: serde_json::Value = serde_json::from_slice(&access.stdout).unwrap();
    let person = &access["personnes"][0];
    assert_eq!(
        (person["catégorie"].as_str(), person["référence ou nom"].as_str()),
        (Some("aidant"), Some("AIDANT-001"))
    );
    let about = person["événements"].as_array().unwrap();
    let types: Vec<&str> = about.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for step in ["HabilitationRequested", "EligibilityValidated", "TrainingCompleted", "Habilitated"] {
        assert!(types.contains(&step), "{step}: {types:?}");
    }
    assert!(about.iter().all(|e| e["qualité"] == "concerné"));
    let trainee = tracker(&["subject-access", "STAGIAIRE-001"], &data);
    let trainee: serde_json::Value = serde_json::from_slice(&trainee.stdout).unwrap();
    let types = trainee["personnes"][0]["événements"].to_string();
    assert!(types.contains("AnnexClaimSubmitted") && types.contains("AnnexClaimReimbursed"), "{types}");
    let (digest_before, figures_before) = (digest(&data), figures(&data));

    // When the three are forgotten
    for reference in references {
        let forgotten = tracker(&["forget", reference, "--all"], &data);
        assert!(forgotten.status.success(), "{}", String::from_utf8_lossy(&forgotten.stderr));
    }

    // Then none is in any byte of the data directory, and nothing else changed
    for reference in references {
        assert_eq!(files_containing(&data, reference), Vec::<String>::new(), "{reference}");
    }
    assert_eq!(digest(&data), digest_before);
    assert_eq!(figures(&data), figures_before);
    assert!(tracker(&["rebuild"], &data).status.success());
    assert_eq!(figures(&data), figures_before);
}
