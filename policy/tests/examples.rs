//! Every example pack in `examples/policies/` loads, and its cases file passes.

use std::path::PathBuf;

use warden_policy::{load_pack_file, run_cases, PolicySet, TrustPolicy};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/policies")
}

const PACKS: &[&str] = &[
    "refunds",
    "budget-changes",
    "data-exports",
    "model-use",
    "tool-calls",
];

#[test]
fn each_example_passes_its_cases() {
    for name in PACKS {
        let path = examples().join(format!("{name}.yaml"));
        let pack = load_pack_file(&path, &TrustPolicy::AllowUnsigned)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let set = PolicySet::new([pack]).unwrap();
        let cases_path = examples().join(format!("{name}.cases.yaml"));
        let text = std::fs::read_to_string(&cases_path).unwrap();
        let report = run_cases(&set, &text, &cases_path.display().to_string()).unwrap();
        assert!(
            report.all_passed(),
            "{name}: {}",
            serde_json::to_string_pretty(&report).unwrap()
        );
        assert!(report.passed >= 5, "{name}: only {} cases", report.passed);
    }
}

#[test]
fn the_examples_directory_loads_as_one_set() {
    let set = PolicySet::load_dir(&examples(), &TrustPolicy::AllowUnsigned).unwrap();
    let ids: Vec<&str> = set.packs().iter().map(|p| p.id()).collect();
    assert_eq!(
        ids,
        [
            "budget-changes",
            "data-exports",
            "model-use",
            "refunds",
            "tool-calls"
        ]
    );
}
