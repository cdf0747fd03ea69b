//! `cargo run -p docs-check [BOOK_SRC] [WORKSPACE]`: fails (exit 1) when an
//! include in the book does not resolve or an anchor marker is unbalanced.
//! By default it checks this workspace's `docs/src`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> anyhow::Result<ExitCode> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args_os().skip(1);
    let book_src = args.next().map_or_else(|| workspace.join("docs/src"), PathBuf::from);
    let workspace = args.next().map_or(workspace, PathBuf::from);

    let report = docs_check::check(&book_src, &workspace)?;
    for problem in &report.problems {
        eprintln!("docs-check: {problem}");
    }
    println!(
        "docs-check: {} pages, {} includes, {} source files scanned: {} problem(s)",
        report.pages,
        report.includes,
        report.sources,
        report.problems.len()
    );
    Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
