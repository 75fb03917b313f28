//! docs/spec.md is the repository's copy of the project's binding
//! specification; where the shared original sits beside the checkout
//! (`../shared/SPEC.md`, as on CI), the two must be identical.

use std::path::Path;

#[test]
fn docs_spec_is_in_step_with_the_shared_spec() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ours = std::fs::read_to_string(root.join("docs/spec.md")).expect("docs/spec.md exists");
    assert!(ours.starts_with("# rhythm"), "docs/spec.md is not the spec");
    let shared = root.join("../shared/SPEC.md");
    match std::fs::read_to_string(&shared) {
        Ok(theirs) => assert!(
            ours == theirs,
            "docs/spec.md differs from {}: copy it over",
            shared.display()
        ),
        Err(_) => eprintln!(
            "no {} beside the checkout: nothing to compare",
            shared.display()
        ),
    }
}
