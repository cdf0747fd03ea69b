//! The real book: every include resolves and every anchor is balanced.

use std::path::Path;

#[test]
fn the_real_book_has_no_broken_includes() -> std::io::Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let report = docs_check::check(&workspace.join("docs/src"), &workspace)?;
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "broken docs:\n{}", problems.join("\n"));
    assert!(report.includes > 0, "the book should include code from the crates");
    Ok(())
}
