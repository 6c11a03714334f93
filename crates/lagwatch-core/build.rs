// Records the source revision for lagwatch_build_info. A build without git (a source tarball,
// a Docker context without .git) passes LAGWATCH_REVISION or gets "unknown".
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=LAGWATCH_REVISION");
    // HEAD names the branch; a commit changes the branch's ref (loose or packed), not HEAD. In
    // a linked worktree HEAD is the worktree's own and the refs are the common directory's, so
    // git says where both are; a path that does not exist would rebuild this crate every time.
    println!("cargo:rerun-if-changed=build.rs");
    if let Some(dirs) = git(&[
        "rev-parse",
        "--path-format=absolute",
        "--git-dir",
        "--git-common-dir",
    ]) {
        let mut dirs = dirs.lines();
        if let (Some(own), Some(common)) = (dirs.next(), dirs.next()) {
            for f in [
                format!("{own}/HEAD"),
                format!("{common}/refs/heads"),
                format!("{common}/packed-refs"),
            ] {
                if std::path::Path::new(&f).exists() {
                    println!("cargo:rerun-if-changed={f}");
                }
            }
        }
    }
    let rev = std::env::var("LAGWATCH_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=LAGWATCH_REVISION={rev}");
}

/// What git prints for `args`, trimmed; `None` without git or outside a repository.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
}
