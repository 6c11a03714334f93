//! The house's plan, checked: every `crate::` reference in the product library
//! (`crates/lagwatch-core/src/`) and the binary (`src/`) goes to a module of its own layer or a
//! lower one, as the layer table in ARCHITECTURE.md lays them out. The table is read from
//! ARCHITECTURE.md itself, so the map and the code cannot drift apart. What the layers inside
//! one crate cannot show the compiler holds: the library does not depend on the emulator
//! crate, which sees only the library's public API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// References that still go up the table, each `(from, to)`: debts to pay, listed so that the
/// test catches every new one. An entry that no longer occurs fails the test too, so the list
/// only shrinks.
/// None left: the last ones (`cli`, `demo` → `emulator`) went when the emulator became a crate.
const KNOWN_UPWARD: &[(&str, &str)] = &[];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Module name → layer number, from the `## Layers` table of ARCHITECTURE.md.
fn layers() -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let section = text
        .split("\n## Layers")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("ARCHITECTURE.md has a `## Layers` section");
    let mut map = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (Some(layer), Some(modules)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Some(n) = layer
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue; // the header row
        };
        for m in modules.split(',') {
            let name: String = m
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            assert!(!name.is_empty(), "unreadable module in layer row: {row}");
            assert!(
                map.insert(name.clone(), n).is_none(),
                "{name} is in two layers"
            );
        }
    }
    assert!(map.len() > 10, "the layer table was not found: {map:?}");
    map
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file under a crate's `src` belongs to (`None` for the library root;
/// the binary's root belongs to its command line).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some("main") => Some("cli".to_string()),
        Some(m) => Some(m.to_string()),
        None => Some(first.to_string()),
    }
}

/// Top-level modules named after `crate::` in code (comments are not code), including those
/// inside `use crate::{a::X, b}` groups.
fn references(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Only the group's top level: `{a::{X, Y}, b}` names a and b.
            let mut depth = 0;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        found.push(ident(&group[j..]));
                    }
                    _ => {}
                }
            }
        } else {
            found.push(ident(rest));
        }
    }
    found.retain(|m| !m.is_empty() && m.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
    found
}

#[test]
fn imports_go_one_way_down_the_layer_table() {
    let layers = layers();
    let mut upward: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for src in [root().join("crates/lagwatch-core/src"), root().join("src")] {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        files.sort();
        assert!(!files.is_empty(), "no sources under {}", src.display());
        for file in &files {
            let Some(from) = module_of(&src, file) else {
                continue;
            };
            let Some(&from_layer) = layers.get(&from) else {
                panic!(
                    "module `{from}` ({}) is in no layer of ARCHITECTURE.md",
                    file.display()
                );
            };
            let text = std::fs::read_to_string(file).expect("readable source");
            for to in references(&text) {
                if to == from {
                    continue;
                }
                let to_layer = *layers.get(&to).unwrap_or_else(|| {
                    panic!(
                        "{} refers to crate::{to}, which is in no layer",
                        file.display()
                    )
                });
                if to_layer > from_layer {
                    let rel = file.strip_prefix(root()).unwrap_or(file);
                    upward
                        .entry((from.clone(), to))
                        .or_default()
                        .push(rel.display().to_string());
                }
            }
        }
    }
    let new: Vec<String> = upward
        .iter()
        .filter(|((f, t), _)| !KNOWN_UPWARD.contains(&(f.as_str(), t.as_str())))
        .map(|((f, t), files)| format!("{f} -> {t} (in {})", files.join(", ")))
        .collect();
    assert!(
        new.is_empty(),
        "imports up the layer table of ARCHITECTURE.md:\n{}",
        new.join("\n")
    );
    let paid: Vec<String> = KNOWN_UPWARD
        .iter()
        .filter(|(f, t)| !upward.contains_key(&(f.to_string(), t.to_string())))
        .map(|(f, t)| format!("{f} -> {t}"))
        .collect();
    assert!(
        paid.is_empty(),
        "no longer imported upwards, remove from KNOWN_UPWARD: {}",
        paid.join(", ")
    );
}

#[test]
fn the_reference_reader_sees_groups_and_skips_comments() {
    let text = "use crate::{net::{A, B}, gate::Gate};\n// crate::probe in a comment\nlet x = crate::metrics::m();";
    assert_eq!(references(text), vec!["net", "gate", "metrics"]);
}
