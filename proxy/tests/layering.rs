//! The architecture of proxy/src, checked: every module imports only its own
//! layer or the layers below it (cli → admin → control → data transports →
//! the data plane's policy core → the data plane's state), and no two modules
//! import each other, directly or around a loop. Reads the sources as they are
//! (`use crate::…`, `crate::…` paths and `super::…`), outside test modules.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers from the top; a module may import its own rank or a higher one.
const LAYERS: [(&str, usize); 6] = [
    ("cli", 0),
    ("admin", 1),
    ("control", 2),
    ("data::transport", 3),
    ("data::policy", 4),
    ("data", 5),
];

fn rank(module: &str) -> usize {
    LAYERS
        .iter()
        .filter(|(prefix, _)| module == *prefix || module.starts_with(&format!("{prefix}::")))
        .map(|&(prefix, rank)| (prefix.len(), rank))
        .max()
        .map(|(_, rank)| rank)
        .unwrap_or_else(|| panic!("module {module} is in no layer"))
}

/// `data/policy/mod.rs` → `data::policy`; `data/plane.rs` → `data::plane`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module paths a source names, before its test module.
fn referenced(module: &str, text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut found = BTreeSet::new();
    for line in code.lines().map(str::trim) {
        if line.starts_with("//") {
            continue;
        }
        for (at, _) in line.match_indices("crate::") {
            let path: String = line[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            found.insert(path.trim_end_matches(':').to_string());
        }
        if let Some(rest) = line.strip_prefix("use super::") {
            let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            found.insert(format!("{parent}::{}", path.trim_end_matches(':')));
        }
    }
    found
}

/// The longest module in `modules` that `path` (a module or an item in one) lies in.
fn resolve<'a>(modules: &'a BTreeSet<String>, path: &str) -> Option<&'a String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find_map(|candidate| modules.get(&candidate))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let sources: BTreeMap<String, String> = files
        .iter()
        .filter(|f| !f.ends_with("main.rs") && !f.ends_with("lib.rs"))
        .map(|f| (module_of(&src, f), std::fs::read_to_string(f).unwrap()))
        .collect();
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(module, text)| {
            let deps = referenced(module, text)
                .iter()
                .filter_map(|path| resolve(&modules, path))
                // A parent module declares its children; only imports count.
                .filter(|dep| *dep != module && !dep.starts_with(&format!("{module}::")))
                .cloned()
                .collect();
            (module.clone(), deps)
        })
        .collect()
}

#[test]
fn every_module_imports_only_its_layer_or_the_layers_below() {
    let mut wrong = Vec::new();
    for (module, deps) in graph() {
        for dep in deps {
            if rank(&dep) < rank(&module) {
                wrong.push(format!("{module} imports {dep}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_modules_import_each_other_around_a_loop() {
    let graph = graph();
    // Depth-first search; a module met again while on the stack closes a loop.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        loops: &mut Vec<String>,
    ) {
        if done.contains(module) {
            return;
        }
        if let Some(at) = stack.iter().position(|m| m == module) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(module.to_string());
            loops.push(cycle.join(" → "));
            return;
        }
        stack.push(module.to_string());
        for dep in &graph[module] {
            visit(dep, graph, stack, done, loops);
        }
        stack.pop();
        done.insert(module.to_string());
    }
    let (mut done, mut loops) = (BTreeSet::new(), Vec::new());
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done, &mut loops);
    }
    assert!(loops.is_empty(), "import cycles:\n{}", loops.join("\n"));
    // The check sees the modules it is about.
    assert!(graph["data::transport::fast_h1"].contains("data::policy::routing"));
    assert!(graph["data::transport::pingora"].contains("data::policy::attempts"));
}
