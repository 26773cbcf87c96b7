//! The shape of the code stays what docs/ARCHITECTURE.md says: no source file longer than 600
//! lines, no import circle between the modules of either crate, and every file and test the
//! map names exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const MAX_LINES: usize = 600;

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn no_source_file_is_longer_than_600_lines() {
    let mut long = Vec::new();
    for dir in ["src", "actors/src"] {
        for file in rust_files(&Path::new(ROOT).join(dir)) {
            let lines = std::fs::read_to_string(&file).unwrap().lines().count();
            if lines > MAX_LINES {
                long.push(format!("{} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "split these: {long:?}");
}

/// The top-level module a file of a crate's `src/` belongs to (`None` for the crate root).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .trim_end_matches(".rs");
    (!matches!(first, "lib" | "main")).then(|| first.to_string())
}

/// Which top-level modules each top-level module of the crate at `src` names (`crate::x`).
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let Some(module) = module_of(src, &file) else { continue };
        let text = std::fs::read_to_string(&file).unwrap();
        let names = graph.entry(module.clone()).or_default();
        for (at, _) in text.match_indices("crate::") {
            let name: String = text[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let is_module = src.join(format!("{name}.rs")).exists() || src.join(&name).is_dir();
            if is_module && name != module {
                names.insert(name);
            }
        }
    }
    graph
}

/// A circle in `graph`, if there is one, as the modules along it.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_of_each_crate_import_each_other_without_a_circle() {
    for src in ["src", "actors/src"] {
        let graph = imports(&Path::new(ROOT).join(src));
        assert!(graph.len() > 5, "{src}: the module graph was not read: {graph:?}");
        assert_eq!(find_circle(&graph), None, "{src}: an import circle");
    }
    // The check itself finds a circle where there is one.
    let circle: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(from, to)| (from.to_string(), BTreeSet::from([to.to_string()])))
        .collect();
    assert_eq!(
        find_circle(&circle),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

/// Every `path` and every `module::test` that docs/ARCHITECTURE.md names in backticks exists.
#[test]
fn the_architecture_map_names_only_what_exists() {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/ARCHITECTURE.md")).unwrap();
    assert!(doc.lines().count() < 250, "the map is a map: under 250 lines");
    let quoted: Vec<&str> = doc.split('`').skip(1).step_by(2).collect();
    let mut missing = Vec::new();
    for q in &quoted {
        let is_path = ["src/", "actors/", "tests/", "docs/", "config/", "loadtest/", "deploy/"]
            .iter()
            .any(|p| q.starts_with(p));
        if is_path {
            // `dir/{a,b}.rs` names several files.
            let paths: Vec<String> = match q
                .split_once('{')
                .and_then(|(head, rest)| rest.split_once('}').map(|(alts, tail)| (head, alts, tail)))
            {
                Some((head, alts, tail)) => alts.split(',').map(|a| format!("{head}{a}{tail}")).collect(),
                None => vec![q.to_string()],
            };
            missing.extend(paths.into_iter().filter(|p| !Path::new(ROOT).join(p).exists()));
        } else if let Some((module, test)) = q.split_once("::") {
            let is_test_name = module.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && test
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !is_test_name {
                continue;
            }
            let candidates = [
                format!("tests/it/{module}.rs"),
                format!("actors/src/{module}.rs"),
                format!("src/{module}.rs"),
            ];
            let found = candidates.iter().any(|c| {
                std::fs::read_to_string(Path::new(ROOT).join(c))
                    .is_ok_and(|text| text.contains(&format!("fn {test}(")) || text.contains(&format!("mod {test} ")))
            });
            if !found {
                missing.push(q.to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md names what does not exist: {missing:?}"
    );
}
