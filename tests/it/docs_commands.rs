//! Every command the documentation shows runs, every configuration it shows is valid, and every
//! link in it leads somewhere: README.md and the pages of `docs/` (not `docs/design/` and
//! `docs/runbooks/`, which show no lagwatch commands or configurations).
//!
//! - Each `lagwatch SUB …` shown (in a ```sh block or an inline code span, and
//!   `cargo run --release -- SUB`): `lagwatch SUB --help` succeeds and names every flag shown
//!   with it. Each `lagwatch init …` of a shell block runs, and what it prints passes
//!   `check-config` (the front door's path from nothing to a checked file).
//! - Each ```yaml block is a configuration `lagwatch check-config` accepts, unless the line
//!   before it is `<!-- fragment: … -->` (a piece of a file, such as one system's `auth:`) or
//!   `<!-- not a lagwatch config: … -->` (another tool's file). A block without `instance:` is
//!   checked with `instance: docs` added; after `<!-- uses: crm, … -->` the named systems are
//!   taken from an earlier block of the same page (a target's example needs a source).
//!   Workload identity gets its environment (`AZURE_TENANT_ID`, …) as the webhook sets it;
//!   secrets are not resolved (`--no-resolve`).
//! - Each relative link points at a file that exists, and an anchor at one of its headings.
//!
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Inline code that starts like a command and is not one.
const NOT_COMMANDS: &[&str] = &["lagwatch is running."];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and docs/*.md, as (path relative to the repository, text).
fn pages() -> Vec<(String, String)> {
    let mut names = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    names.extend(docs);
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(root().join(&n)).expect("readable page");
            (n, text)
        })
        .collect()
}

/// A fenced block: its language, its first line number, the line before its fence and its body.
struct Block {
    lang: String,
    line: usize,
    before: String,
    body: String,
}

fn blocks(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim_start();
        if let Some(lang) = l.strip_prefix("```") {
            let indent = lines[i].len() - l.len();
            let before = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map_or(String::new(), |l| l.trim().to_string());
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && !lines[end].trim_start().starts_with("```") {
                end += 1;
            }
            let body: Vec<&str> = lines[start..end]
                .iter()
                .map(|l| l.get(indent..).unwrap_or(l.trim_start()))
                .collect();
            out.push(Block {
                lang: lang.trim().to_string(),
                line: start + 1,
                before,
                body: body.join("\n") + "\n",
            });
            i = end + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// The text outside fenced blocks.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for l in text.lines() {
        if l.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
        } else if !fenced {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// The paragraphs of the prose, each on one line (a code span may wrap), with the line number
/// of its start; a table row is a paragraph of its own.
fn paragraphs(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut open = false;
    for (n, l) in prose(text).lines().enumerate() {
        if l.trim().is_empty() {
            open = false;
        } else if open && !l.starts_with('|') && !l.starts_with('#') {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(l.trim());
            }
        } else {
            out.push((n + 1, l.to_string()));
            open = !l.starts_with('|') && !l.starts_with('#');
        }
    }
    out
}

/// A command shown: where, the subcommand, and the flags shown with it.
#[derive(Debug)]
struct Shown {
    at: String,
    sub: String,
    flags: BTreeSet<String>,
    /// The words after the subcommand, up to a pipe or redirection.
    args: Vec<String>,
    /// Shown in a shell block, to be typed as it is (not a synopsis in prose).
    in_shell: bool,
}

/// The `lagwatch SUB …` commands in one snippet (a shell line or an inline code span).
fn commands_in(snippet: &str, at: &str, in_shell: bool, out: &mut Vec<Shown>) {
    // `\|` separates alternatives inside a table cell.
    let snippet = snippet.replace("\\|", "/");
    if NOT_COMMANDS.iter().any(|n| snippet.trim() == *n) {
        return;
    }
    let words: Vec<&str> = snippet.split_whitespace().collect();
    let mut i = 0;
    while i < words.len() {
        // A command word starts the snippet or follows a separator or an assignment
        // (`RUST_LOG=debug lagwatch …`); elsewhere `lagwatch` is a name (`kubectl -n lagwatch`).
        let at_start = i == 0
            || ["|", "||", ";", "&&", "$", "sudo", "exec", "time"].contains(&words[i - 1])
            || (words[i - 1].contains('=') && !words[i - 1].starts_with('-'));
        let start = if words[i] == "lagwatch" && at_start {
            Some(i + 1)
        } else if words[i..].starts_with(&["cargo", "run"]) {
            // `cargo run [--release] -- SUB`: the binary of this package.
            words[i..]
                .iter()
                .position(|w| *w == "--")
                .map(|p| i + p + 1)
        } else {
            None
        };
        let Some(start) = start else {
            i += 1;
            continue;
        };
        let Some(sub) = words.get(start) else { break };
        if !sub.chars().all(|c| c.is_ascii_lowercase() || c == '-') || sub.starts_with('-') {
            i = start;
            continue;
        }
        let mut flags = BTreeSet::new();
        let mut j = start + 1;
        while j < words.len() && !["|", ">", ";", "&&", "2>&1"].contains(&words[j]) {
            let w = words[j].trim_matches(|c| c == '[' || c == ']' || c == '`');
            for w in w.split('/') {
                let w = w.split('=').next().unwrap_or(w);
                let is_long = w.starts_with("--")
                    && w.len() > 2
                    && w[2..]
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '-' || c == '.');
                let is_short = w.len() == 2
                    && w.starts_with('-')
                    && w.chars().nth(1).is_some_and(|c| c.is_ascii_alphabetic());
                if is_long || is_short {
                    flags.insert(w.to_string());
                }
            }
            j += 1;
        }
        out.push(Shown {
            at: at.to_string(),
            sub: sub.to_string(),
            flags,
            args: words[start + 1..j]
                .iter()
                .map(|w| (*w).to_string())
                .collect(),
            in_shell,
        });
        i = j;
    }
}

fn shown_commands() -> Vec<Shown> {
    let mut out = Vec::new();
    for (page, text) in pages() {
        for b in blocks(&text) {
            if matches!(b.lang.as_str(), "sh" | "shell" | "bash" | "console") {
                // Join continued lines.
                for (n, l) in b.body.replace("\\\n", " ").lines().enumerate() {
                    let l = l.trim_start_matches("$ ");
                    commands_in(l, &format!("{page}:{}", b.line + n), true, &mut out);
                }
            }
        }
        for (n, p) in paragraphs(&text) {
            // Inline code spans: between pairs of backticks.
            for (k, span) in p.split('`').enumerate() {
                if k % 2 == 1 {
                    commands_in(span, &format!("{page}:{n}"), false, &mut out);
                }
            }
        }
    }
    out
}

fn lagwatch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lagwatch"))
        .args(args)
        .output()
        .expect("the lagwatch binary runs")
}

/// What a command printed, stdout then stderr.
fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `lagwatch SUB --help`, or None when SUB is not a subcommand.
fn help(sub: &str) -> Option<String> {
    let out = lagwatch(&[sub, "--help"]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn help_names(help: &str, flag: &str) -> bool {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '=')
        .any(|w| w == flag)
}

/// What failed, each with where it is shown.
#[derive(Default)]
struct Findings {
    failures: Vec<String>,
}

impl Findings {
    fn finish(self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{} {what} failed:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

#[test]
fn every_command_shown_exists_with_the_flags_shown() {
    let shown = shown_commands();
    assert!(
        shown.iter().any(|s| s.sub == "demo") && shown.iter().any(|s| s.sub == "check-config"),
        "the commands were found: {shown:?}"
    );
    let mut helps: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut f = Findings::default();
    for s in &shown {
        let h = helps.entry(s.sub.clone()).or_insert_with(|| help(&s.sub));
        let Some(h) = h.clone() else {
            f.failures.push(format!(
                "{}: `lagwatch {}` is not a subcommand",
                s.at, s.sub
            ));
            continue;
        };
        for flag in &s.flags {
            if flag != "--help" && !help_names(&h, flag) {
                f.failures
                    .push(format!("{}: `lagwatch {}` has no {flag}", s.at, s.sub));
            }
        }
    }
    let runnable: BTreeSet<&str> = shown.iter().map(|s| s.sub.as_str()).collect();
    eprintln!("subcommands shown: {runnable:?}");
    // The front door's path: each `lagwatch init …` shown in a shell block prints a file that
    // passes check-config (without its secrets, as a CI pipeline would check it).
    let dir = common_temp_dir();
    for (n, s) in shown
        .iter()
        .filter(|s| s.sub == "init" && s.in_shell)
        .enumerate()
    {
        let mut args = vec!["init".to_string()];
        args.extend(s.args.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = lagwatch(&args);
        if !out.status.success() {
            f.failures.push(format!(
                "{}: `lagwatch {}` failed: {}",
                s.at,
                args.join(" "),
                said(&out)
            ));
            continue;
        }
        let file = dir.path().join(format!("init-{n}.yaml"));
        std::fs::write(&file, &out.stdout).expect("write init's output");
        let file = file.to_string_lossy().into_owned();
        let check = ["check-config", "--no-resolve", &file];
        let out = lagwatch(&check);
        if !out.status.success() {
            let (init, check) = (args.join(" "), check.join(" "));
            f.failures.push(format!(
                "{}: what `lagwatch {init}` prints fails `lagwatch {check}`: {}",
                s.at,
                said(&out)
            ));
        }
    }
    f.finish("commands");
}

/// The yaml blocks of the documentation, with where each is and the ones before it on its page.
fn yaml_blocks() -> Vec<(String, Block, Vec<String>)> {
    let mut out = Vec::new();
    for (page, text) in pages() {
        let mut earlier: Vec<String> = Vec::new();
        for b in blocks(&text) {
            if b.lang == "yaml" || b.lang == "yml" {
                let body = b.body.clone();
                out.push((page.clone(), b, earlier.clone()));
                earlier.push(body);
            }
        }
    }
    out
}

/// The lines of system `name` (`  name:` and what is indented under it) in a block.
fn system_text(block: &str, name: &str) -> Option<String> {
    let lines: Vec<&str> = block.lines().collect();
    let head = format!("  {name}:");
    let start = lines
        .iter()
        .position(|l| l.split('#').next().is_some_and(|l| l.trim_end() == head))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && !l.starts_with("   "))
        .map_or(lines.len(), |p| start + 1 + p);
    Some(lines[start..end].join("\n") + "\n")
}

/// The block with the systems its `<!-- uses: a, b (…) -->` marker names added under `systems:`.
fn with_used_systems(yaml: &str, marker: &str, earlier: &[String]) -> Result<String, String> {
    let Some(names) = marker.strip_prefix("<!-- uses:") else {
        return Ok(yaml.to_string());
    };
    let names = names
        .split('(')
        .next()
        .unwrap_or(names)
        .trim_end_matches("-->");
    let mut added = String::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let found = earlier.iter().rev().find_map(|b| system_text(b, name));
        added.push_str(&found.ok_or(format!("no earlier block defines the system {name}"))?);
    }
    let (before, after) = yaml
        .split_once("systems:\n")
        .ok_or("a block with `uses:` needs `systems:`")?;
    Ok(format!("{before}systems:\n{added}{after}"))
}

fn is_marked_skip(before: &str) -> bool {
    before.starts_with("<!-- fragment:") || before.starts_with("<!-- not a lagwatch config:")
}

#[test]
fn every_configuration_shown_passes_check_config() {
    let dir = common_temp_dir();
    let mut f = Findings::default();
    let (mut checked, mut skipped) = (0, 0);
    let token = dir.path().join("federated-token");
    std::fs::write(&token, "docs-stand-in-token").expect("write the token file");
    for (n, (page, b, earlier)) in yaml_blocks().into_iter().enumerate() {
        let at = format!("{page}:{}", b.line);
        if is_marked_skip(&b.before) {
            skipped += 1;
            continue;
        }
        let mut yaml = match with_used_systems(&b.body, &b.before, &earlier) {
            Ok(yaml) => yaml,
            Err(e) => {
                f.failures.push(format!("{at}: {e}"));
                continue;
            }
        };
        if !yaml.lines().any(|l| l.starts_with("instance:")) {
            yaml = format!("instance: docs\n{yaml}");
        }
        let file = dir.path().join(format!("block-{n}.yaml"));
        std::fs::write(&file, &yaml).expect("write the block");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lagwatch"));
        cmd.arg("check-config")
            .env("AZURE_TENANT_ID", "11111111-2222-3333-4444-555555555555")
            .env("AZURE_CLIENT_ID", "66666666-7777-8888-9999-000000000000")
            .env("AZURE_FEDERATED_TOKEN_FILE", &token);
        cmd.arg("--no-resolve");
        let out = cmd.arg(&file).output().expect("check-config runs");
        checked += 1;
        if !out.status.success() {
            f.failures.push(format!(
                "{at}: check-config refused it (mark it `<!-- fragment: … -->` if it is one):\n{}",
                said(&out)
            ));
        }
    }
    eprintln!(
        "configuration blocks: {checked} checked, {skipped} marked as fragments or other files"
    );
    assert!(checked >= 5, "only {checked} blocks were checked");
    f.finish("configuration blocks");
}

fn common_temp_dir() -> tempfile::TempDir {
    crate::common::temp_dir("lagwatch-docs-")
}

/// GitHub's anchor for a heading: lowercase, spaces to `-`, punctuation but `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

#[test]
fn every_link_leads_somewhere() {
    let mut f = Findings::default();
    for (page, text) in pages() {
        let base = Path::new(&page).parent().unwrap_or(Path::new(""));
        for (n, l) in prose(&text).lines().enumerate() {
            for part in l.split("](").skip(1) {
                let Some(target) = part.split(')').next() else {
                    continue;
                };
                if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                    continue;
                }
                let (file, frag) = target.split_once('#').unwrap_or((target, ""));
                let at = format!("{page}:{} → {target}", n + 1);
                let path = if file.is_empty() {
                    PathBuf::from(&page)
                } else {
                    normalize(&base.join(file))
                };
                if !root().join(&path).exists() {
                    f.failures.push(format!("{at}: no such file"));
                    continue;
                }
                if !frag.is_empty() && path.extension().is_some_and(|e| e == "md") {
                    let linked = std::fs::read_to_string(root().join(&path)).expect("linked page");
                    if !anchors(&linked).contains(frag) {
                        f.failures
                            .push(format!("{at}: no heading with anchor #{frag}"));
                    }
                }
            }
        }
    }
    f.finish("links");
}

/// `a/b/../c` → `a/c`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The README is a front door: short, with the two commands a fresh machine needs exactly as
/// CI and the tests know them, and the probe outcomes defined in one place it links.
#[test]
fn the_readme_is_a_front_door() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(lines <= 250, "README.md has {lines} lines; at most 250");
    for command in [
        "```sh\ncargo run --release -- demo\n```",
        "```sh\nscripts/test\n```",
    ] {
        assert!(readme.contains(command), "README.md shows {command:?}");
    }
    let defined: Vec<String> = pages()
        .into_iter()
        .filter(|(_, t)| t.lines().any(|l| l.starts_with("| `converged` |")))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        defined,
        ["docs/measurement.md"],
        "the probe outcomes are defined in one place"
    );
    assert!(readme.contains("(docs/measurement.md#outcomes)"));
}

#[test]
fn anchors_are_the_ones_github_makes() {
    assert_eq!(anchor(" `fo_odata`"), "fo_odata");
    assert_eq!(
        anchor(" Read-your-writes and clean-up"),
        "read-your-writes-and-clean-up"
    );
    assert_eq!(
        anchor(" What the platform says, beside the canary"),
        "what-the-platform-says-beside-the-canary"
    );
    assert!(anchors("# A\n```\n# not a heading\n```\n## `state_dir`\n").contains("state_dir"));
    assert!(!anchors("```\n# not a heading\n```\n").contains("not-a-heading"));
}
