//! The book's code comes from the crates, through mdBook includes such as
//! `{{#include ../../ch01-os-threads/src/main.rs:sequential}}`, which copy the
//! lines between two marker comments in the source file. That way the text
//! and the code cannot drift apart.
//!
//! mdBook does not fail when such an include is broken: it renders an empty
//! code block (or a warning) and exits 0. This crate is the check that does
//! fail. It reports:
//!
//! - an include whose file does not exist;
//! - an include whose anchor is not in that file, or is empty;
//! - an include with a line range past the end of the file;
//! - a start marker with no end marker (or an end with no start), in any
//!   source file of the workspace, included or not;
//! - a chapter in `SUMMARY.md` whose page does not exist.
//!
//! Run it with `cargo run -p docs-check`; CI does, and a test does too.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The marker words, spelt in two halves so that this file itself contains no
/// marker for the check to trip over.
const START: &str = concat!("ANCH", "OR:");
const END: &str = concat!("ANCHOR", "_END:");

/// One thing wrong, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The page or source file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// What the check looked at, and what it found.
#[derive(Debug, Default)]
pub struct Report {
    /// Pages read.
    pub pages: usize,
    /// Includes checked.
    pub includes: usize,
    /// Source files scanned for markers.
    pub sources: usize,
    /// Everything wrong.
    pub problems: Vec<Problem>,
}

/// Checks the book in `book_src` (the folder holding `SUMMARY.md`) and the
/// anchor markers of every source file under `workspace`.
pub fn check(book_src: &Path, workspace: &Path) -> io::Result<Report> {
    let mut report = Report::default();
    let summary = book_src.join("SUMMARY.md");
    let summary_text = std::fs::read_to_string(&summary)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", summary.display())))?;
    for (line, target) in summary_links(&summary_text) {
        if !book_src.join(&target).is_file() {
            report.problems.push(Problem {
                file: summary.clone(),
                line,
                message: format!("chapter page {target} does not exist"),
            });
        }
    }

    for page in files_with_extension(book_src, &["md"])? {
        report.pages += 1;
        let text = std::fs::read_to_string(&page)?;
        for (line, spec) in includes(&text) {
            report.includes += 1;
            let dir = page.parent().unwrap_or(book_src);
            if let Err(message) = check_include(dir, &spec) {
                report.problems.push(Problem { file: page.clone(), line, message });
            }
        }
    }

    for source in files_with_extension(workspace, &["rs", "toml"])? {
        report.sources += 1;
        let text = std::fs::read_to_string(&source)?;
        report.problems.extend(unbalanced_markers(&text).into_iter().map(|(line, message)| Problem {
            file: source.clone(),
            line,
            message,
        }));
    }
    Ok(report)
}

/// The `(line, target)` of every `[title](target.md)` link in `SUMMARY.md`.
fn summary_links(text: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(open) = rest.find("](") {
            let after = &rest[open + 2..];
            let Some(close) = after.find(')') else { break };
            let target = &after[..close];
            if !target.is_empty() && !target.contains("://") {
                links.push((i + 1, target.to_string()));
            }
            rest = &after[close..];
        }
    }
    links
}

/// The `(line, spec)` of every `{{#include spec}}` / `{{#rustdoc_include spec}}`,
/// skipping escaped ones (`\{{#include …}}`, which mdBook prints as text).
fn includes(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut from = 0;
        while let Some(open) = line[from..].find("{{#") {
            let start = from + open;
            from = start + 3;
            if line[..start].ends_with('\\') {
                continue;
            }
            let inner = &line[start + 3..];
            let Some(close) = inner.find("}}") else { continue };
            let mut words = inner[..close].split_whitespace();
            if let (Some("include" | "rustdoc_include"), Some(spec)) = (words.next(), words.next()) {
                found.push((i + 1, spec.to_string()));
            }
        }
    }
    found
}

/// Checks one include `path[:anchor]` or `path[:start[:end]]`, relative to `dir`.
fn check_include(dir: &Path, spec: &str) -> Result<(), String> {
    let mut parts = spec.splitn(2, ':');
    let path = parts.next().unwrap_or_default();
    let selector = parts.next();
    let file = dir.join(path);
    let text = std::fs::read_to_string(&file).map_err(|e| format!("include {spec}: cannot read {path}: {e}"))?;
    let Some(selector) = selector.filter(|s| !s.is_empty()) else { return Ok(()) };

    let is_range = selector.split(':').all(|n| n.is_empty() || n.chars().all(|c| c.is_ascii_digit()));
    if is_range {
        let lines = text.lines().count();
        let first: usize = selector.split(':').next().and_then(|n| n.parse().ok()).unwrap_or(1);
        return if first > lines {
            Err(format!("include {spec}: line {first} is past the end of {path} ({lines} lines)"))
        } else {
            Ok(())
        };
    }
    match anchor_body(&text, selector) {
        None => Err(format!("include {spec}: {path} has no anchor named {selector:?}")),
        Some(0) => Err(format!("include {spec}: anchor {selector:?} in {path} is empty")),
        Some(_) => Ok(()),
    }
}

/// How many lines lie between the start and end markers named `name`, or
/// `None` if there is no start marker with that name.
fn anchor_body(text: &str, name: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|line| marker(line, START) == Some(name))?;
    let end = lines[start + 1..].iter().position(|line| marker(line, END) == Some(name));
    Some(end.unwrap_or(lines.len() - start - 1))
}

/// The name after a marker word on this line, if the line has one.
/// Names are made of letters, digits, `_` and `-`, as mdBook reads them.
fn marker<'a>(line: &'a str, word: &str) -> Option<&'a str> {
    let at = line.find(word)?;
    let rest = line[at + word.len()..].trim_start();
    let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-')).unwrap_or(rest.len());
    (len > 0).then(|| &rest[..len])
}

/// Start markers without an end, ends without a start, and names opened twice.
fn unbalanced_markers(text: &str) -> Vec<(usize, String)> {
    let mut open: Vec<(usize, &str)> = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(name) = marker(line, START) {
            if open.iter().any(|(_, n)| *n == name) {
                problems.push((i + 1, format!("anchor {name:?} starts again before it ended")));
            }
            open.push((i + 1, name));
        } else if let Some(name) = marker(line, END) {
            match open.iter().position(|(_, n)| *n == name) {
                Some(index) => {
                    open.remove(index);
                }
                None => problems.push((i + 1, format!("anchor end {name:?} has no start above it"))),
            }
        }
    }
    problems.extend(open.into_iter().map(|(line, name)| (line, format!("anchor {name:?} has no end marker"))));
    problems
}

/// Every file under `root` with one of these extensions, skipping build
/// output, hidden folders and the rendered book.
fn files_with_extension(root: &Path, extensions: &[&str]) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path.is_dir() {
                let skip = name.starts_with('.') || name.starts_with("target") || path.ends_with("docs/book");
                if !skip {
                    folders.push(path);
                }
            } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.contains(&e)) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway folder for a fake book, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("docs-check-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("book/src")).unwrap();
            std::fs::create_dir_all(dir.join("crate/src")).unwrap();
            Scratch(dir)
        }

        fn write(&self, path: &str, text: &str) -> &Scratch {
            std::fs::write(self.0.join(path), text).unwrap();
            self
        }

        fn problems(&self) -> Vec<String> {
            let report = check(&self.0.join("book/src"), &self.0.join("crate")).unwrap();
            report.problems.iter().map(|p| p.message.clone()).collect()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn source(anchor: &str) -> String {
        format!("fn a() {{}}\n// {START} {anchor}\nfn b() {{}}\n// {END} {anchor}\n")
    }

    fn book(include: &str) -> String {
        format!("# Page\n\n```rust\n{{{{#include {include}}}}}\n```\n")
    }

    #[test]
    fn a_good_book_passes() {
        let scratch = Scratch::new("good");
        scratch
            .write("crate/src/lib.rs", &source("demo"))
            .write("book/src/SUMMARY.md", "# Summary\n\n- [Page](page.md)\n")
            .write("book/src/page.md", &book("../../crate/src/lib.rs:demo"));
        assert_eq!(scratch.problems(), Vec::<String>::new());
    }

    #[test]
    fn a_broken_anchor_fails() {
        let scratch = Scratch::new("anchor");
        scratch
            .write("crate/src/lib.rs", &source("demo"))
            .write("book/src/SUMMARY.md", "- [Page](page.md)\n")
            .write("book/src/page.md", &book("../../crate/src/lib.rs:demoo"));
        assert_eq!(
            scratch.problems(),
            ["include ../../crate/src/lib.rs:demoo: ../../crate/src/lib.rs has no anchor named \"demoo\""]
        );
    }

    #[test]
    fn a_broken_path_and_a_missing_page_fail() {
        let scratch = Scratch::new("path");
        scratch
            .write("book/src/SUMMARY.md", "- [Page](page.md)\n- [Gone](gone.md)\n")
            .write("book/src/page.md", &book("../../crate/src/nope.rs:demo"));
        let problems = scratch.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("gone.md does not exist"), "{problems:?}");
        assert!(problems[1].contains("cannot read ../../crate/src/nope.rs"), "{problems:?}");
    }

    #[test]
    fn unbalanced_markers_fail_even_when_not_included() {
        let scratch = Scratch::new("unbalanced");
        let text = format!("// {START} open\nfn a() {{}}\n// {END} stray\n");
        scratch.write("crate/src/lib.rs", &text).write("book/src/SUMMARY.md", "");
        assert_eq!(
            scratch.problems(),
            ["anchor end \"stray\" has no start above it", "anchor \"open\" has no end marker"]
        );
    }

    #[test]
    fn escaped_includes_and_line_ranges() {
        let scratch = Scratch::new("ranges");
        scratch
            .write("crate/src/lib.rs", "line 1\nline 2\n")
            .write("book/src/SUMMARY.md", "- [Page](page.md)\n")
            .write("book/src/page.md", "\\{{#include nowhere.rs}}\n{{#include ../../crate/src/lib.rs:2}}\n{{#include ../../crate/src/lib.rs:5:9}}\n");
        assert_eq!(
            scratch.problems(),
            ["include ../../crate/src/lib.rs:5:9: line 5 is past the end of ../../crate/src/lib.rs (2 lines)"]
        );
    }

    #[test]
    fn an_empty_anchor_fails() {
        let scratch = Scratch::new("empty");
        scratch
            .write("crate/src/lib.rs", &format!("// {START} nothing\n// {END} nothing\n"))
            .write("book/src/SUMMARY.md", "- [Page](page.md)\n")
            .write("book/src/page.md", &book("../../crate/src/lib.rs:nothing"));
        assert_eq!(
            scratch.problems(),
            ["include ../../crate/src/lib.rs:nothing: anchor \"nothing\" in ../../crate/src/lib.rs is empty"]
        );
    }
}
