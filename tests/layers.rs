//! The module layering of `src/`, checked: every `crate::` reference in non-test code must point
//! to a module of the same or a lower layer (as docs/ARCHITECTURE.md's "Layers" table lists them),
//! and the modules must not import each other in a circle. Comments and test code do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// module → layer number, from the table under "## Layers" in docs/ARCHITECTURE.md.
fn layers() -> BTreeMap<String, usize> {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/ARCHITECTURE.md")).unwrap();
    let section = doc.split("## Layers").nth(1).expect("docs/ARCHITECTURE.md has a `## Layers` section");
    let mut map = BTreeMap::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(n) = cells.get(1).and_then(|c| c.split_whitespace().next()).and_then(|c| c.parse::<usize>().ok())
        else {
            continue;
        };
        for m in cells[2].split(',') {
            let m = m.trim().trim_matches('`');
            if !m.is_empty() {
                assert!(map.insert(m.to_owned(), n).is_none(), "`{m}` is listed twice");
            }
        }
    }
    map
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") && p.file_name().is_some_and(|n| n != "tests.rs") {
            out.push(p);
        }
    }
}

/// The file's code without comments and without `#[cfg(test)]` items.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            // Skip the next item: up to its closing brace at the same depth (or its `;`).
            let mut depth = 0i32;
            let mut opened = false;
            for l in lines.by_ref() {
                let l = l.split("//").next().unwrap_or("");
                depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                opened |= l.contains('{');
                if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" //").next().unwrap_or(""));
        out.push('\n');
    }
    out
}

/// The top-level module a file belongs to (`src/renew/plan.rs` → `renew`).
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(Path::new(ROOT).join("src")).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let m = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(m, "lib" | "main")).then(|| m.to_owned())
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let Some(from) = module_of(&f) else { continue };
        let text = code(&std::fs::read_to_string(&f).unwrap());
        let set = edges.entry(from.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let to: String = text[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            // `crate::Error` and `crate::Result` are the crate root's re-exports of `error`.
            let to = if matches!(to.as_str(), "Error" | "Result") { "error".to_owned() } else { to };
            if !to.is_empty() && to != from {
                set.insert(to);
            }
        }
    }
    edges
}

#[test]
fn every_import_goes_down_or_sideways_and_none_closes_a_circle() {
    let layers = layers();
    let edges = edges();
    let mut problems = Vec::new();
    for m in edges.keys() {
        if !layers.contains_key(m) {
            problems.push(format!("module `{m}` is not in docs/ARCHITECTURE.md's Layers table"));
        }
    }
    for (from, tos) in &edges {
        for to in tos {
            match (layers.get(from), layers.get(to)) {
                (Some(a), Some(b)) if b > a => {
                    problems.push(format!("`{from}` (layer {a}) uses `{to}` (layer {b}): an edge up a layer"))
                }
                (_, None) => problems.push(format!("`{from}` uses `{to}`, which is not in the Layers table")),
                _ => {}
            }
        }
    }
    // A circle: a module that reaches itself.
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        while let Some((m, path)) = stack.pop() {
            for next in edges.get(&m).into_iter().flatten() {
                if next == start {
                    problems.push(format!("import circle: {} → {start}", path.join(" → ")));
                } else if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "layering broken:\n{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_edges_and_skips_comments_and_tests() {
    let text = "use crate::a::B;\n// crate::c\nfn f() { crate::d::g(); } // crate::e\n#[cfg(test)]\nmod tests {\n    use crate::h;\n}\n";
    let c = code(text);
    assert!(c.contains("crate::a") && c.contains("crate::d"));
    assert!(!c.contains("crate::c") && !c.contains("crate::e") && !c.contains("crate::h"), "{c}");
}

/// `eprintln!` panics when stderr is gone (a closed SSH session, `2>&1 | head`), which once left
/// `--exec` running without renewals: woci's own code writes stderr through `terminal::say` or
/// `tracing`, which take that as no error.
#[test]
fn no_stderr_write_can_panic() {
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    let found: Vec<String> = files
        .iter()
        .filter(|p| ["eprintln!", "eprint!"].iter().any(|m| code(&std::fs::read_to_string(p).unwrap()).contains(m)))
        .map(|p| p.display().to_string())
        .collect();
    assert!(found.is_empty(), "use crate::terminal::say instead in {found:?}");
}
