// Records the source revision for lagwatch_build_info. A build without git (a source tarball,
// a Docker context without .git) passes LAGWATCH_REVISION or gets "unknown".
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=LAGWATCH_REVISION");
    // HEAD names the branch; a commit changes the branch's ref (loose or packed), not HEAD.
    // This crate sits two levels below the repository's root.
    for f in [
        "../../.git/HEAD",
        "../../.git/refs/heads",
        "../../.git/packed-refs",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    let rev = std::env::var("LAGWATCH_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=LAGWATCH_REVISION={rev}");
}
