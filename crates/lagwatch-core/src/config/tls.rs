//! `tls:` — trust for outgoing HTTPS beyond the system's trust store.
//!
//! Verification of every server lagwatch calls is always on; there is deliberately no switch to
//! turn it off. What a deployment behind a TLS-inspecting proxy, or talking to an on-premises
//! F&O or Elasticsearch with an internal PKI, needs instead is to *add* its private CA:
//! `ca_files` lists PEM files whose certificates are trusted in addition to the platform's
//! roots, for every HTTP system and the token endpoints alike (one shared client). The files
//! are read and checked when the configuration loads, so a wrong path or a file without a
//! certificate is a [`ConfigError`](super::ConfigError) at `tls.ca_files[i]`, never a
//! handshake failure at 3 a.m.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::{PemObject, SectionKind};
use serde::Deserialize;

use super::Issue;

/// The `tls:` block as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    #[serde(default)]
    ca_files: Vec<PathBuf>,
}

/// Resolved trust for outgoing HTTPS: the configured CA files and the certificates in them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OutgoingTls {
    /// The files as configured (relative paths are relative to the working directory, as
    /// `file:` secret references are).
    pub ca_files: Vec<PathBuf>,
    /// Every certificate of every file, in order, each checked to be usable as a trust anchor.
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for OutgoingTls {
    /// The files, not kilobytes of DER.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingTls")
            .field("ca_files", &self.ca_files)
            .field("extra_roots", &self.extra_roots.len())
            .finish()
    }
}

impl OutgoingTls {
    /// Reads and checks every CA file of `raw`.
    ///
    /// # Errors
    /// An [`Issue`] at `tls.ca_files[i]` naming the file and what is wrong with it.
    pub(super) fn load(raw: RawTls) -> Result<OutgoingTls, Issue> {
        let mut extra_roots = Vec::new();
        for (i, path) in raw.ca_files.iter().enumerate() {
            let key = format!("tls.ca_files[{i}]");
            extra_roots.extend(read_ca_file(path).map_err(|reason| Issue::new(key, reason))?);
        }
        Ok(OutgoingTls {
            ca_files: raw.ca_files,
            extra_roots,
        })
    }

    /// One line for `check-config`.
    pub fn describe(&self) -> Option<String> {
        if self.ca_files.is_empty() {
            return None;
        }
        let files: Vec<String> = self
            .ca_files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        Some(format!(
            "outgoing TLS: verified; {} extra CA certificate(s) trusted from {}",
            self.extra_roots.len(),
            files.join(", ")
        ))
    }
}

/// The certificates of one CA file, or a sentence saying why it is unusable.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut certs = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes) {
        let (kind, der) = section.map_err(|e| format!("{shown}: not valid PEM ({e})"))?;
        match kind {
            SectionKind::Certificate => certs.push(CertificateDer::from(der)),
            // A CA's key has no business on a monitor: refuse rather than ignore it, so it is
            // noticed and removed.
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                return Err(format!(
                    "{shown}: holds a private key; a CA file needs only the CA's certificates (keep the key off this machine)"
                ));
            }
            _ => {}
        }
    }
    if certs.is_empty() {
        return Err(format!(
            "{shown}: no certificate in it (expected one or more PEM blocks \"-----BEGIN CERTIFICATE-----\")"
        ));
    }
    for (n, cert) in certs.iter().enumerate() {
        rustls::RootCertStore::empty()
            .add(cert.clone())
            .map_err(|e| {
                format!(
                    "{shown}: certificate {} of {} is not a usable CA certificate ({e})",
                    n + 1,
                    certs.len()
                )
            })?;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[&Path]) -> Result<OutgoingTls, Issue> {
        OutgoingTls::load(RawTls {
            ca_files: files.iter().map(|p| p.to_path_buf()).collect(),
        })
    }

    #[test]
    fn nothing_configured_trusts_nothing_extra() {
        let tls = load(&[]).unwrap();
        assert!(tls.extra_roots.is_empty());
        assert_eq!(tls.describe(), None);
    }

    #[test]
    fn unusable_files_are_named_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = load(&[&missing]).unwrap_err();
        assert_eq!(e.key, "tls.ca_files[0]");
        assert!(e.reason.contains("missing.pem") && e.reason.contains("cannot read"));

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = load(&[&empty]).unwrap_err();
        assert!(e.reason.contains("no certificate"), "{}", e.reason);

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = load(&[&empty, &garbage]).unwrap_err();
        assert_eq!(e.key, "tls.ca_files[0]");
        let e = load(&[&garbage]).unwrap_err();
        assert!(
            e.reason.contains("not a usable CA certificate"),
            "{}",
            e.reason
        );

        let key = dir.path().join("key.pem");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = load(&[&key]).unwrap_err();
        assert!(e.reason.contains("private key"), "{}", e.reason);
    }
}
