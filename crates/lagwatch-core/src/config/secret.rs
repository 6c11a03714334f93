//! Secrets referenced from configuration: `env:NAME` or `file:/path`.
//!
//! A literal secret in a YAML file ends up in Git, in tickets and in `check-config` output, so
//! only references are accepted. The resolved value is held by [`Secret`], whose `Debug` and
//! `Display` never print it.
//!
//! `check-config --no-resolve` loads a file where the secrets are not at hand (a CI pipeline):
//! inside [`without_resolving`], a reference is checked for its shape only and the [`Secret`]
//! holds no value ([`Secret::is_resolved`] is false); checks of a secret's value are skipped.

use std::cell::Cell;
use std::fmt;

use serde::{Deserialize, Deserializer};

/// A resolved secret value. Only [`Secret::expose`] reveals it, so every use is greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    reference: String,
    /// False for a reference loaded by [`without_resolving`]: `value` is empty.
    resolved: bool,
}

thread_local! {
    /// Whether references met while deserializing on this thread are resolved.
    static RESOLVE: Cell<bool> = const { Cell::new(true) };
}

/// Whether references are resolved on this thread now (false inside [`without_resolving`]).
pub(crate) fn resolving() -> bool {
    RESOLVE.with(Cell::get)
}

/// Runs `f` (a configuration load) with secret references checked for their shape but not
/// resolved: no environment variable or file is read. The previous mode is restored after.
pub fn without_resolving<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            RESOLVE.with(|r| r.set(self.0));
        }
    }
    let _restore = Restore(RESOLVE.with(|r| r.replace(false)));
    f()
}

impl Secret {
    /// The secret itself, for the one place that must send it (an auth header, a token request).
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Where the secret came from (`env:NAME`), safe to print.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// Wraps a secret obtained at run time (an access token); `origin` says where it came from
    /// and is the only part ever printed.
    pub fn runtime(value: impl Into<String>, origin: &str) -> Self {
        Secret {
            value: value.into(),
            reference: origin.to_string(),
            resolved: true,
        }
    }

    /// Whether the value was read; false for a reference loaded by [`without_resolving`].
    pub fn is_resolved(&self) -> bool {
        self.resolved
    }

    /// Checks the shape of a reference (`env:NAME`, `file:/path`) without reading it.
    ///
    /// # Errors
    /// As [`Secret::resolve`] for a literal or an empty name.
    pub fn unresolved(reference: &str) -> Result<Self, String> {
        let name = reference
            .strip_prefix("env:")
            .or_else(|| reference.strip_prefix("file:"))
            .ok_or_else(|| {
                "secrets must be references, \"env:NAME\" or \"file:/path\", never literal values"
                    .to_string()
            })?;
        if name.trim().is_empty() {
            return Err(format!(
                "\"{reference}\" names no environment variable or file"
            ));
        }
        Ok(Secret {
            value: String::new(),
            reference: reference.to_string(),
            resolved: false,
        })
    }

    /// [`Secret::resolve`], or [`Secret::unresolved`] inside [`without_resolving`].
    ///
    /// # Errors
    /// As those.
    pub fn from_reference(reference: &str) -> Result<Self, String> {
        if resolving() {
            Secret::resolve(reference)
        } else {
            Secret::unresolved(reference)
        }
    }

    /// Resolves an `env:` or `file:` reference.
    ///
    /// # Errors
    /// A sentence saying which reference failed and why; never the value.
    pub fn resolve(reference: &str) -> Result<Self, String> {
        let value = if let Some(name) = reference.strip_prefix("env:") {
            std::env::var(name).map_err(|_| {
                format!("environment variable {name} is not set (from \"{reference}\")")
            })?
        } else if let Some(path) = reference.strip_prefix("file:") {
            let raw = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read secret file {path}: {e}"))?;
            raw.trim_end_matches(['\r', '\n']).to_string()
        } else {
            return Err(
                "secrets must be references, \"env:NAME\" or \"file:/path\", never literal values"
                    .to_string(),
            );
        };
        if value.is_empty() {
            return Err(format!("secret from \"{reference}\" is empty"));
        }
        Ok(Secret {
            value,
            reference: reference.to_string(),
            resolved: true,
        })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}, <redacted>)", self.reference)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted secret from {}>", self.reference)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let reference = String::deserialize(d)?;
        Secret::from_reference(&reference).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_reference_resolves_and_never_prints() {
        // SAFETY: test-only variable with a name no other test uses.
        unsafe { std::env::set_var("LAGWATCH_TEST_SECRET_A", "hunter2") };
        let s = Secret::resolve("env:LAGWATCH_TEST_SECRET_A").unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert!(format!("{s:?}").contains("env:LAGWATCH_TEST_SECRET_A"));
    }

    #[test]
    fn file_reference_trims_the_newline() {
        let dir = std::env::temp_dir().join(format!("lagwatch-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("s");
        std::fs::write(&f, "abc\n").unwrap();
        let s = Secret::resolve(&format!("file:{}", f.display())).unwrap();
        assert_eq!(s.expose(), "abc");
    }

    #[test]
    fn without_resolving_checks_the_shape_only_and_restores_the_mode() {
        let s: Secret = without_resolving(|| {
            serde_json::from_value(serde_json::json!("env:LAGWATCH_SURELY_UNSET_VAR"))
        })
        .unwrap();
        assert!(!s.is_resolved());
        assert_eq!(s.reference(), "env:LAGWATCH_SURELY_UNSET_VAR");
        let literal: Result<Secret, _> =
            without_resolving(|| serde_json::from_value(serde_json::json!("hunter2")));
        assert!(literal.is_err());
        assert!(without_resolving(|| Secret::from_reference("env:")).is_err());
        // Outside, references are resolved again.
        let e: Result<Secret, _> =
            serde_json::from_value(serde_json::json!("env:LAGWATCH_SURELY_UNSET_VAR"));
        assert!(e.unwrap_err().to_string().contains("not set"));
    }

    #[test]
    fn literals_and_missing_values_are_rejected_without_echo() {
        let e = Secret::resolve("hunter2").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(
            Secret::resolve("env:LAGWATCH_SURELY_UNSET_VAR")
                .unwrap_err()
                .contains("not set")
        );
    }
}
