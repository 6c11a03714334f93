//! The runbooks of lagwatch's alerts (`docs/runbooks/*.md`), embedded in the binary and served
//! at `GET /docs/runbooks/<AlertName>.md`, so that every deployment has the pages its alerts'
//! `runbook_url` points at (the mixin's default, see `alerts/README.md`). Served as the
//! Markdown they are written in, as UTF-8 plain text, which every browser shows as it is.

/// Declares the embedded pages: file name (without `.md`) → text.
macro_rules! pages {
    ($($name:literal),* $(,)?) => {
        /// Every runbook page, by file name without `.md` (`README` is the index).
        pub const PAGES: &[(&str, &str)] = &[
            $(($name, include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"), "/../../docs/runbooks/", $name, ".md"
            )))),*
        ];
    };
}

pages![
    "LagwatchAbsent",
    "LagwatchClockOffsetHigh",
    "LagwatchConfigReloadFailed",
    "LagwatchConflictPolicyViolated",
    "LagwatchContractViolated",
    "LagwatchDeletesNotPropagating",
    "LagwatchDiscrepanciesPersisting",
    "LagwatchDown",
    "LagwatchDualWritePaused",
    "LagwatchInstanceConflict",
    "LagwatchLagAboveObjective",
    "LagwatchLakeStale",
    "LagwatchLedgerDown",
    "LagwatchMemberDown",
    "LagwatchObjectiveBudgetBurn",
    "LagwatchPathNotConverging",
    "LagwatchPlatformHealthyButStuck",
    "LagwatchPlatformStatusStale",
    "LagwatchPlatformStatusUnreadable",
    "LagwatchReadYourWritesViolated",
    "LagwatchReconcileFailing",
    "LagwatchReplicasDiverged",
    "LagwatchRuleInputMissing",
    "LagwatchSentinelWritesFailing",
    "LagwatchSentinelsPilingUp",
    "LagwatchShardMissing",
    "LagwatchShardingMismatch",
    "LagwatchSourceThrottled",
    "README",
];

/// The page for a request path segment such as `LagwatchDown.md`; `None` for anything else.
pub fn page(file: &str) -> Option<&'static str> {
    let name = file.strip_suffix(".md")?;
    PAGES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runbook_in_the_tree_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/runbooks");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("docs/runbooks")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".md").map(str::to_string))
            .collect();
        files.sort();
        let mut embedded: Vec<String> = PAGES.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(
            embedded, files,
            "add new pages to pages![] in web/runbooks.rs"
        );
    }

    #[test]
    fn pages_are_found_by_file_name_only() {
        assert!(page("LagwatchDown.md").is_some_and(|t| t.starts_with("# LagwatchDown")));
        assert!(page("README.md").is_some());
        assert_eq!(page("LagwatchDown"), None);
        assert_eq!(page("../Cargo.toml"), None);
        assert_eq!(page("LagwatchNoSuchAlert.md"), None);
    }
}
