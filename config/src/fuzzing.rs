//! Entry points for fuzzing the configuration readers with arbitrary
//! text: the standalone YAML source (a file an admin writes, Services and
//! their annotations included), `validate`, and `migrate`.
//!
//! Each function takes any input, runs it through what the commands and
//! the standalone source run, and checks properties that must hold for
//! every input. It panics only when one is broken, which is a bug in this
//! crate: a reader panicking, the streaming document reader splitting a
//! file differently from [`split_documents`], a problem that points
//! outside its document, the valid subset the controller and speaker act
//! on still having errors, or `migrate` writing YAML that does not read
//! back as the objects it converted.
//!
//! The cargo-fuzz targets in `fuzz/` call these functions, and
//! `config/tests/fuzz_corpus.rs` replays the committed corpus through them
//! on every test run. See `docs/FUZZING.md`.

use serde_json::Value;

use crate::config::Config;
use crate::manifest::parse_read_document;
use crate::migrate::migrate as migrate_text;
use crate::problem::Problem;
use crate::report;
use crate::validate::{valid_subset, validate};
use crate::yaml::{DocumentReader, OwnedDocument, split_documents};

const FILE: &str = "fuzz.yaml";

/// Target `yaml_manifest`: `data` is one manifest file of the standalone
/// source. It is read as the source reads it (one document at a time),
/// every object goes into a [`Config`], and the configuration is
/// validated as `validate` and the binaries do.
pub fn yaml_manifest(data: &[u8]) {
    let read: Vec<std::io::Result<OwnedDocument>> = DocumentReader::new(data).collect();
    let Ok(text) = std::str::from_utf8(data) else {
        // The source refuses such a file whole; the reader stops with an
        // error at the first line that is not UTF-8.
        assert!(read.last().is_some_and(Result::is_err), "{read:?}");
        return;
    };
    let docs: Vec<OwnedDocument> = read
        .into_iter()
        .map(|d| d.expect("UTF-8 text reads"))
        .collect();
    // The streaming reader and split_documents agree.
    let split: Vec<OwnedDocument> = split_documents(text)
        .into_iter()
        .map(|d| OwnedDocument {
            index: d.index,
            start_line: d.start_line,
            text: d.text.to_string(),
        })
        .collect();
    assert_eq!(docs, split, "DocumentReader and split_documents disagree");

    let lines = text.split_inclusive('\n').count().max(1);
    let mut cfg = Config::default();
    let mut problems = Vec::new();
    for doc in &docs {
        let parsed = parse_read_document(doc, FILE);
        let doc_lines = doc.text.split_inclusive('\n').count().max(1);
        for p in &parsed.problems {
            check_problem(p);
            let src = p.source.as_ref().expect("a read problem names its source");
            assert_eq!((src.file.as_str(), src.document), (FILE, doc.index), "{p}");
            // It points into its document (or just past its end, where
            // the parser found it cut short).
            assert!(
                src.line >= doc.start_line && src.line <= doc.start_line + doc_lines,
                "{p}: outside lines {}..{}",
                doc.start_line,
                doc.start_line + doc_lines
            );
            assert!(src.line <= lines + 1);
        }
        problems.extend(parsed.problems);
        for (obj, pos) in &parsed.objects {
            assert_eq!(pos.document, doc.index);
            let _ = obj.object_ref().to_string();
        }
        cfg.add_objects(parsed.objects, &mut problems);
    }

    let found = validate(&cfg);
    for p in &found {
        check_problem(p);
    }
    // What the controller and speaker act on has no errors left.
    let subset = valid_subset(&cfg, &found);
    let again = validate(&subset);
    let errors: Vec<String> = again
        .iter()
        .filter(|p| p.is_error())
        .map(ToString::to_string)
        .collect();
    assert!(
        errors.is_empty(),
        "the valid subset has errors: {errors:#?}"
    );
    problems.extend(found);
    let state = report::configuration_state(&problems);
    let _ = serde_json::to_string(&state).expect("the state serializes");
    for pool in &subset.ip_address_pools {
        let _ = report::pool_status(pool, 0, crate::addr::AddrCount::ZERO);
    }
}

/// A problem can be shown and names a known column, if any, from 1.
fn check_problem(p: &Problem) {
    let shown = p.to_string();
    assert!(!shown.is_empty());
    if let Some(column) = p.column {
        assert!(column >= 1, "{shown}");
        assert!(p.source.is_some(), "{shown}");
    }
}

/// Target `migrate`: `data` is a file given to `ferrolb-controller
/// migrate`. Its output must be YAML that reads back as exactly the
/// objects converted, one document each, and that FerroLB reads.
pub fn migrate(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let migration = migrate_text(text, FILE);
    let _ = (migration.object_count(), migration.comment_count());
    let out = migration.to_yaml();
    let objects: Vec<&Value> = migration
        .documents
        .iter()
        .filter_map(|d| d.object.as_ref())
        .collect();
    // Comment-only documents are blank and dropped by the split.
    let docs = split_documents(&out);
    assert_eq!(
        docs.len(),
        objects.len(),
        "migrate wrote {} documents for {} objects:\n{out}",
        docs.len(),
        objects.len()
    );
    for (doc, object) in docs.iter().zip(&objects) {
        let back: Value = crate::yaml::from_str(doc.text)
            .unwrap_or_else(|e| panic!("migrate wrote YAML that does not read: {e}\n{out}"));
        assert_eq!(
            &back, *object,
            "migrate wrote YAML that reads as another object:\n{}",
            doc.text
        );
    }
    // The output goes through the reader like any file.
    yaml_manifest(out.as_bytes());
}
