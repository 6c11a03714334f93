//! The `client_certificate` credential: the app proves who it is with a JWT signed by the key
//! of a certificate uploaded to its app registration (Microsoft identity platform,
//! "certificate credentials"; OpenID Connect `private_key_jwt`).
//!
//! The token request is the client-credentials grant of [`super::entra`] with
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
//! `client_assertion=<JWT>`. A new assertion is made for every token request:
//!
//! ```text
//! header  {"alg":"RS256","typ":"JWT","x5t":<b64url SHA-1 of the DER certificate>,
//!          "x5t#S256":<b64url SHA-256 of the DER certificate>}
//! claims  {"aud":<the token URL>,"iss":<client_id>,"sub":<client_id>,"jti":<fresh UUID>,
//!          "nbf":now,"iat":now,"exp":now+600}
//! ```
//!
//! signed RSASSA-PKCS1-v1_5 with SHA-256 (RS256) and base64url-encoded without padding. Both
//! thumbprints are sent: Entra's newer documentation names `x5t#S256`, while `x5t` (SHA-1) is
//! what older tenants, ADFS and most of today's MSAL versions send. The times are wall-clock
//! Unix seconds, since Entra compares them with its own clock.
//!
//! The certificate and its key come from one PEM text (`certificate: file:/path.pem`, or
//! `env:NAME`), read and checked when the configuration is loaded: one RSA private key,
//! unencrypted, PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`), and the
//! certificate it belongs to (a chain may follow; the certificate whose public key is the
//! key's is used). Anything else is refused with a sentence that says what is needed: an
//! encrypted key, an EC key, a `.pfx`, a key that belongs to no certificate in the file, an
//! expired certificate.
//!
//! The signature and digests are `aws-lc-rs`, which reqwest's rustls already builds; the small
//! amount of DER reading (the certificate's public key and validity, a PKCS#8 key's algorithm)
//! is done here rather than with an X.509 crate.
//!
//! # Secrets
//!
//! The private key lives only inside `aws-lc-rs`'s key object; `Debug` shows the certificate's
//! thumbprint and expiry, never the key. Parse errors name PEM labels, never content.
//! The assertion is held in a redacting type (`Debug` prints `<redacted>`) and goes into the
//! form body and nowhere else.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer};

use super::{AuthError, Redacted};
use crate::config::Secret;

/// Lifetime of an assertion: the documentation asks for "5-10 minutes after nbf at most".
pub const ASSERTION_LIFETIME_SECS: i64 = 600;

/// What to do with a certificate in another format, for error messages.
const NEEDS: &str = "lagwatch needs one PEM file with the certificate and its unencrypted RSA private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)";
const FROM_PFX: &str = "convert a .pfx/.p12 with: openssl pkcs12 -in app.pfx -out app.pem -nodes (OpenSSL 3: add -legacy if it refuses the file)";

/// An app registration's certificate with its RSA private key, ready to sign assertions.
pub struct ClientCertificate {
    key: RsaKeyPair,
    /// Base64url SHA-1 of the DER certificate (`x5t`).
    x5t: String,
    /// Base64url SHA-256 of the DER certificate (`x5t#S256`).
    x5t_s256: String,
    /// Upper-case hex SHA-1, as the Entra portal shows certificate thumbprints.
    thumbprint: String,
    not_after: i64,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("thumbprint", &self.thumbprint)
            .field("not_after", &format_time(self.not_after))
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ClientCertificate {
    /// Reads the certificate and its private key from PEM text and checks that they belong
    /// together and that the certificate has not expired.
    ///
    /// # Errors
    /// A sentence (without the reference; never any key material) saying what is missing or
    /// unusable and what is needed instead.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        Self::from_pem_at(pem, Utc::now().timestamp())
    }

    fn from_pem_at(pem: &[u8], now: i64) -> Result<Self, String> {
        let Ok(text) = std::str::from_utf8(pem) else {
            return Err(format!(
                "is not PEM text (a binary .pfx/.p12 or DER file?); {NEEDS}; {FROM_PFX}"
            ));
        };
        let blocks = pem_blocks(text)?;
        if blocks.is_empty() {
            let base64_only = !text.trim().is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+/=\r\n ".contains(c));
            let hint = if base64_only {
                " (it looks like base64: a .pfx as Key Vault exports it? decode it with base64 -d, then convert it)"
            } else {
                ""
            };
            return Err(format!(
                "holds no PEM block (-----BEGIN …-----){hint}; {NEEDS}; {FROM_PFX}"
            ));
        }

        let mut keys = Vec::new();
        let mut certificates = Vec::new();
        for block in &blocks {
            match block.label.as_str() {
                "CERTIFICATE" => certificates.push(&block.der),
                "PRIVATE KEY" | "RSA PRIVATE KEY" if block.encrypted => {
                    return Err(encrypted());
                }
                "PRIVATE KEY" => keys.push((&block.label, &block.der)),
                "RSA PRIVATE KEY" => keys.push((&block.label, &block.der)),
                "ENCRYPTED PRIVATE KEY" => return Err(encrypted()),
                "EC PRIVATE KEY" => return Err(not_rsa("an EC key (BEGIN EC PRIVATE KEY)")),
                other if other.ends_with("PRIVATE KEY") => {
                    return Err(format!(
                        "holds a key in a format lagwatch does not read (BEGIN {other}); {NEEDS}"
                    ));
                }
                // Public keys, requests, CRLs, parameters: not ours to use, and harmless.
                _ => {}
            }
        }
        let (label, der) = match keys.as_slice() {
            [] => {
                return Err(format!(
                    "holds no private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY); {NEEDS}"
                ));
            }
            [one] => *one,
            more => {
                return Err(format!(
                    "holds {} private keys; keep only the key of the certificate",
                    more.len()
                ));
            }
        };
        let key = if label == "PRIVATE KEY" {
            RsaKeyPair::from_pkcs8(der).map_err(|e| match pkcs8_algorithm(der) {
                Some(alg) if alg != OID_RSA_ENCRYPTION => not_rsa(&key_kind(alg)),
                _ => unusable(e),
            })?
        } else {
            RsaKeyPair::from_der(der).map_err(unusable)?
        };
        if certificates.is_empty() {
            return Err(format!(
                "holds no certificate (BEGIN CERTIFICATE); {NEEDS}; the certificate is the one uploaded to the app registration"
            ));
        }

        let mut parsed = Vec::new();
        for der in &certificates {
            parsed.push((*der, parse_certificate(der)?));
        }
        let public = key.public_key().as_ref();
        let Some((der, cert)) = parsed
            .iter()
            .find(|(_, c)| c.rsa_public_key.as_deref() == Some(public))
        else {
            if parsed.iter().all(|(_, c)| c.rsa_public_key.is_none()) {
                return Err(not_rsa("a certificate whose public key is not RSA"));
            }
            let which = if parsed.len() == 1 {
                "the certificate".to_string()
            } else {
                format!("any of the {} certificates", parsed.len())
            };
            return Err(format!(
                "the private key does not belong to {which} in it (their public keys differ); put the certificate and its own key together"
            ));
        };
        let thumbprint = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der);
        let certificate = ClientCertificate {
            x5t: URL_SAFE_NO_PAD.encode(thumbprint.as_ref()),
            x5t_s256: URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, der).as_ref()),
            thumbprint: thumbprint
                .as_ref()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect(),
            not_after: cert.not_after,
            key,
        };
        certificate.check_validity(now)?;
        Ok(certificate)
    }

    /// The SHA-1 thumbprint in upper-case hex, as the Entra portal lists certificates.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// When the certificate stops being valid.
    pub fn not_after(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.not_after, 0)
    }

    fn check_validity(&self, now: i64) -> Result<(), String> {
        if now >= self.not_after {
            return Err(format!(
                "the certificate (thumbprint {}) expired at {}; create a new one, upload it to the app registration and replace this file",
                self.thumbprint,
                format_time(self.not_after)
            ));
        }
        Ok(())
    }

    /// A fresh client assertion for the token endpoint `audience`, valid from now for
    /// [`ASSERTION_LIFETIME_SECS`].
    ///
    /// # Errors
    /// [`AuthError::Config`] if the certificate has expired since it was loaded, or if signing
    /// fails; the message never carries the key or the assertion.
    pub(crate) fn assertion(&self, audience: &str, client_id: &str) -> Result<Redacted, AuthError> {
        let now = Utc::now().timestamp();
        self.check_validity(now).map_err(AuthError::Config)?;
        self.assertion_at(audience, client_id, now, &uuid::Uuid::now_v7().to_string())
    }

    pub(crate) fn assertion_at(
        &self,
        audience: &str,
        client_id: &str,
        now: i64,
        jti: &str,
    ) -> Result<Redacted, AuthError> {
        let header = serde_json::json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t": self.x5t,
            "x5t#S256": self.x5t_s256,
        });
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": jti,
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| {
                AuthError::Config(format!(
                    "cannot sign a client assertion with the key of certificate {}",
                    self.thumbprint
                ))
            })?;
        Ok(Redacted::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(&sig)
        )))
    }
}

/// Resolves the `certificate:` reference at load time, as [`Secret`] does for other secrets,
/// but reading the file as bytes so that a binary `.pfx` gets a useful message.
pub(crate) fn pem_reference<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    let reference = String::deserialize(d)?;
    if !crate::config::secret::resolving() {
        return Secret::unresolved(&reference)
            .map(Some)
            .map_err(serde::de::Error::custom);
    }
    resolve_pem(&reference)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn resolve_pem(reference: &str) -> Result<Secret, String> {
    if let Some(path) = reference.strip_prefix("file:") {
        let raw =
            std::fs::read(path).map_err(|e| format!("cannot read certificate file {path}: {e}"))?;
        let Ok(text) = String::from_utf8(raw) else {
            return Err(format!(
                "{path} is not PEM text (a binary .pfx/.p12 or DER file?); {NEEDS}; {FROM_PFX}"
            ));
        };
        if text.trim().is_empty() {
            return Err(format!("certificate file {path} is empty"));
        }
        return Ok(Secret::runtime(text, reference));
    }
    if reference.contains("-----BEGIN") || reference.contains("PRIVATE KEY") {
        return Err(
            "write a reference, file:/path/to/cert-and-key.pem or env:NAME, never the PEM itself: the private key would end up in the configuration"
                .to_string(),
        );
    }
    Secret::resolve(reference)
}

fn encrypted() -> String {
    format!(
        "holds an encrypted private key; {NEEDS}: decrypt it into a file only lagwatch can read with openssl pkey -in key.pem -out key-plain.pem"
    )
}

fn not_rsa(what: &str) -> String {
    format!(
        "holds {what}; Entra certificate credentials are signed with RS256 here, so lagwatch needs an RSA certificate and key"
    )
}

fn unusable(e: aws_lc_rs::error::KeyRejected) -> String {
    format!(
        "holds an RSA private key that cannot be used ({}); lagwatch needs an RSA key of 2048 to 8192 bits",
        e.description_()
    )
}

fn format_time(unix: i64) -> String {
    DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| unix.to_string())
}

/// One `-----BEGIN label-----` … `-----END label-----` block (RFC 7468), decoded.
struct PemBlock {
    label: String,
    /// RFC 1421 headers with `Proc-Type: 4,ENCRYPTED` (legacy OpenSSL key encryption).
    encrypted: bool,
    der: Vec<u8>,
}

/// The blocks of a PEM text; text between blocks (`Bag Attributes` from `openssl pkcs12`,
/// comments) is ignored.
fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, String> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut encrypted = false;
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            if line.starts_with("-----") {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                encrypted |= name.trim().eq_ignore_ascii_case("Proc-Type")
                    && value.to_ascii_uppercase().contains("ENCRYPTED");
                continue;
            }
            body.push_str(line);
        }
        if !closed {
            return Err(format!(
                "has a BEGIN {label} block without its END {label} line"
            ));
        }
        let der = if encrypted {
            Vec::new()
        } else {
            STANDARD
                .decode(body.as_bytes())
                .map_err(|_| format!("has a BEGIN {label} block that is not valid base64"))?
        };
        blocks.push(PemBlock {
            label: label.to_string(),
            encrypted,
            der,
        });
    }
    Ok(blocks)
}

// --- A little DER: just enough of X.509 and PKCS#8 ---------------------------------------

const OID_RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_RSASSA_PSS: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_ED25519: &[u8] = &[0x2B, 0x65, 0x70];

fn key_kind(oid: &[u8]) -> String {
    match oid {
        OID_EC_PUBLIC_KEY => "an EC key".to_string(),
        OID_ED25519 => "an Ed25519 key".to_string(),
        OID_RSASSA_PSS => "an RSASSA-PSS-only key".to_string(),
        _ => "a private key that is not RSA".to_string(),
    }
}

/// Splits one DER element off `input`: (tag, content, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The algorithm OID of a PKCS#8 `PrivateKeyInfo`.
fn pkcs8_algorithm(der: &[u8]) -> Option<&[u8]> {
    let (0x30, info, _) = tlv(der)? else {
        return None;
    };
    let (0x02, _version, rest) = tlv(info)? else {
        return None;
    };
    let (0x30, alg, _) = tlv(rest)? else {
        return None;
    };
    let (0x06, oid, _) = tlv(alg)? else {
        return None;
    };
    Some(oid)
}

struct ParsedCertificate {
    /// The PKCS#1 `RSAPublicKey` of an RSA certificate.
    rsa_public_key: Option<Vec<u8>>,
    not_after: i64,
}

fn parse_certificate(der: &[u8]) -> Result<ParsedCertificate, String> {
    parse_certificate_der(der)
        .ok_or_else(|| "has a CERTIFICATE block that is not an X.509 certificate".to_string())
}

fn parse_certificate_der(der: &[u8]) -> Option<ParsedCertificate> {
    let (0x30, cert, _) = tlv(der)? else {
        return None;
    };
    let (0x30, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut rest = tbs;
    if let Some((0xA0, _, after)) = tlv(rest) {
        rest = after; // [0] version
    }
    let mut next = |want: u8| -> Option<&[u8]> {
        let (tag, content, after) = tlv(rest)?;
        (tag == want).then(|| {
            rest = after;
            content
        })
    };
    next(0x02)?; // serialNumber
    next(0x30)?; // signature algorithm
    next(0x30)?; // issuer
    let validity = next(0x30)?;
    next(0x30)?; // subject
    let spki = next(0x30)?;

    let (_, _, after) = tlv(validity)?;
    let (tag, not_after, _) = tlv(after)?;
    let not_after = der_time(tag, not_after)?;

    let (0x30, alg, after) = tlv(spki)? else {
        return None;
    };
    let (0x06, oid, _) = tlv(alg)? else {
        return None;
    };
    let (0x03, bits, _) = tlv(after)? else {
        return None;
    };
    let rsa_public_key = match bits.split_first() {
        Some((0, key)) if oid == OID_RSA_ENCRYPTION => Some(key.to_vec()),
        _ => None,
    };
    Some(ParsedCertificate {
        rsa_public_key,
        not_after,
    })
}

/// `UTCTime` (`YYMMDDHHMMSSZ`) or `GeneralizedTime` (`YYYYMMDDHHMMSSZ`) as Unix seconds.
fn der_time(tag: u8, value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?.strip_suffix('Z')?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, text.len()) {
        (0x17, 12) => {
            let yy: i32 = text[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        (0x18, 14) => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let n = |i: usize| rest[i..i + 2].parse::<u32>().ok();
    let t = NaiveDate::from_ymd_opt(year, n(0)?, n(2)?)?.and_hms_opt(n(4)?, n(6)?, n(8)?)?;
    Some(t.and_utc().timestamp())
}

#[cfg(test)]
#[path = "test_pki.rs"]
pub(super) mod test_pki;

#[cfg(test)]
mod tests {
    use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256};
    use serde_json::json;

    use super::test_pki::{
        TestKey, certificate_public_key, ec_pkcs8_pem, pem, thumbprint, verify_rs256,
    };
    use super::*;

    const AUD: &str = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
    const CLIENT: &str = "3d9a0c55-1111-4222-8333-444455556666";

    fn now() -> i64 {
        Utc::now().timestamp()
    }

    #[test]
    fn the_assertion_has_the_documented_shape_and_verifies_with_the_certificate() {
        let key = TestKey::shared();
        let cert = key.current_certificate();
        let bundle = format!("{}{}", pem("CERTIFICATE", &cert), key.pkcs8_pem());
        let c = ClientCertificate::from_pem(bundle.as_bytes()).unwrap();
        let t = 1_767_225_600; // 2026-01-01T00:00:00Z
        let jwt = c.assertion_at(AUD, CLIENT, t, "jti-1").unwrap();
        let (header, claims) = verify_rs256(jwt.expose(), &certificate_public_key(&cert));
        assert_eq!(
            header,
            json!({
                "alg": "RS256",
                "typ": "JWT",
                "x5t": thumbprint(&SHA1_FOR_LEGACY_USE_ONLY, &cert),
                "x5t#S256": thumbprint(&SHA256, &cert),
            })
        );
        assert_eq!(header["x5t"].as_str().unwrap().len(), 27, "20 bytes");
        assert_eq!(header["x5t#S256"].as_str().unwrap().len(), 43, "32 bytes");
        assert_eq!(
            claims,
            json!({
                "aud": AUD, "iss": CLIENT, "sub": CLIENT, "jti": "jti-1",
                "nbf": t, "iat": t, "exp": t + 600,
            })
        );
        // The thumbprint shown to operators is the portal's: upper-case hex SHA-1.
        let sha1 = aws_lc_rs::digest::digest(&SHA1_FOR_LEGACY_USE_ONLY, &cert);
        let hex: String = sha1.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(c.thumbprint(), hex);
    }

    #[test]
    fn every_assertion_is_new_and_another_key_does_not_verify_it() {
        let key = TestKey::shared();
        let cert = key.current_certificate();
        let bundle = format!("{}{}", key.pkcs8_pem(), pem("CERTIFICATE", &cert));
        let c = ClientCertificate::from_pem(bundle.as_bytes()).unwrap();
        let a = c.assertion(AUD, CLIENT).unwrap();
        let b = c.assertion(AUD, CLIENT).unwrap();
        let (_, ca) = verify_rs256(a.expose(), &certificate_public_key(&cert));
        let (_, cb) = verify_rs256(b.expose(), &certificate_public_key(&cert));
        assert_ne!(ca["jti"], cb["jti"]);
        assert!(uuid::Uuid::parse_str(ca["jti"].as_str().unwrap()).is_ok());
        let iat = ca["iat"].as_i64().unwrap();
        assert!((iat - now()).abs() <= 5, "iat is now");
        assert_eq!(ca["exp"].as_i64().unwrap(), iat + ASSERTION_LIFETIME_SECS);

        let other = TestKey::other().current_certificate();
        let parts: Vec<&str> = a.expose().split('.').collect();
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let wrong = signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            certificate_public_key(&other),
        );
        assert!(
            wrong
                .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
                .is_err()
        );
    }

    #[test]
    fn pkcs1_keys_chains_crlf_and_bag_attributes_are_read() {
        let key = TestKey::shared();
        let cert = key.current_certificate();
        let intermediate = TestKey::other().current_certificate();
        // As `openssl pkcs12 -nodes` writes it, with Windows line ends.
        let bundle = format!(
            "Bag Attributes\n    localKeyID: 01 00 00 00\nsubject=CN = x\n{}Bag Attributes\n{}{}",
            pem("CERTIFICATE", &intermediate),
            pem("CERTIFICATE", &cert),
            key.pkcs1_pem()
        )
        .replace('\n', "\r\n");
        let c = ClientCertificate::from_pem(bundle.as_bytes()).unwrap();
        let jwt = c.assertion_at(AUD, CLIENT, now(), "j").unwrap();
        let (header, _) = verify_rs256(jwt.expose(), &certificate_public_key(&cert));
        assert_eq!(
            header["x5t#S256"],
            thumbprint(&SHA256, &cert),
            "the key's own certificate is used, not the first one"
        );
    }

    #[test]
    fn unusable_pem_says_what_is_needed_and_never_shows_the_key() {
        let key = TestKey::shared();
        let t = now();
        let cert = pem("CERTIFICATE", &key.current_certificate());
        let other_cert = pem("CERTIFICATE", &TestKey::other().current_certificate());
        let expired = pem(
            "CERTIFICATE",
            &key.certificate("old", t - 400 * 86_400, t - 86_400),
        );
        let k8 = key.pkcs8_pem();
        let encrypted_pkcs1 = key
            .pkcs1_pem()
            .replacen(
                "KEY-----\n",
                "KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\n",
                1,
            )
            .replacen("MII", "xyz", 1);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                vec![0x30, 0x82, 0x0A, 0x1F, 0x02, 0x01, 0x03, 0xFF],
                "binary .pfx",
            ),
            (b"just text\n".to_vec(), "holds no PEM block"),
            (
                b"MIIKHwIBAzCCCdUGCSqGSIb3DQEHAaCCCcYEggnCMIIJvjCC\n".to_vec(),
                "looks like base64",
            ),
            (cert.clone().into_bytes(), "holds no private key"),
            (k8.clone().into_bytes(), "holds no certificate"),
            (
                format!("{cert}{}", pem("ENCRYPTED PRIVATE KEY", &[0x30, 0x00])).into_bytes(),
                "encrypted private key",
            ),
            (
                format!("{cert}{encrypted_pkcs1}").into_bytes(),
                "encrypted private key",
            ),
            (
                format!("{cert}{}", ec_pkcs8_pem()).into_bytes(),
                "an EC key",
            ),
            (
                format!("{cert}{}", pem("EC PRIVATE KEY", &[0x30, 0x00])).into_bytes(),
                "an EC key",
            ),
            (
                format!("{cert}{}", pem("OPENSSH PRIVATE KEY", &[0x30, 0x00])).into_bytes(),
                "does not read (BEGIN OPENSSH PRIVATE KEY)",
            ),
            (
                format!("{cert}{k8}{}", key.pkcs1_pem()).into_bytes(),
                "holds 2 private keys",
            ),
            (
                format!("{other_cert}{k8}").into_bytes(),
                "does not belong to the certificate",
            ),
            (
                format!("{other_cert}{other_cert}{k8}").into_bytes(),
                "any of the 2 certificates",
            ),
            (format!("{expired}{k8}").into_bytes(), "expired at"),
            (
                format!(
                    "{cert}{}",
                    pem("PRIVATE KEY", &[0x30, 0x03, 0x02, 0x01, 0x00])
                )
                .into_bytes(),
                "cannot be used",
            ),
            (
                format!(
                    "{}{k8}",
                    pem("CERTIFICATE", &[0x30, 0x03, 0x02, 0x01, 0x00])
                )
                .into_bytes(),
                "not an X.509 certificate",
            ),
            (
                format!("{k8}-----BEGIN CERTIFICATE-----\nMIIB\n").into_bytes(),
                "without its END",
            ),
            (
                format!("{k8}-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n")
                    .into_bytes(),
                "not valid base64",
            ),
        ];
        let key_lines: Vec<&str> = k8.lines().filter(|l| !l.starts_with("-----")).collect();
        for (input, want) in cases {
            let e = ClientCertificate::from_pem(&input).unwrap_err();
            assert!(e.contains(want), "want {want:?} in: {e}");
            for line in &key_lines {
                assert!(!e.contains(line), "key material in: {e}");
            }
        }
    }

    #[test]
    fn debug_shows_the_thumbprint_and_expiry_only() {
        let key = TestKey::shared();
        let cert = key.certificate("dbg", 0, 4_102_444_800); // until 2100 (GeneralizedTime)
        let bundle = format!("{}{}", pem("CERTIFICATE", &cert), key.pkcs8_pem());
        let c = ClientCertificate::from_pem(bundle.as_bytes()).unwrap();
        assert_eq!(c.not_after().unwrap().timestamp(), 4_102_444_800);
        let debug = format!("{c:?}");
        assert!(debug.contains(c.thumbprint()), "{debug}");
        assert!(debug.contains("2100-01-01T00:00:00Z"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        let jwt = c.assertion_at(AUD, CLIENT, now(), "j").unwrap();
        assert_eq!(format!("{jwt:?}"), "<redacted>");
    }

    #[test]
    fn der_times_cover_both_encodings() {
        assert_eq!(der_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(der_time(0x17, b"500101000000Z"), Some(-631_152_000));
        assert_eq!(der_time(0x18, b"21000101000000Z"), Some(4_102_444_800));
        for bad in [&b"4912312359Z"[..], b"491231235959", b"49123123595+Z"] {
            assert_eq!(der_time(0x17, bad), None);
        }
    }

    #[test]
    fn references_are_read_at_load_and_literals_refused() {
        let dir = std::env::temp_dir().join(format!("lagwatch-cert-ref-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pfx = dir.join("app.pfx");
        std::fs::write(&pfx, [0x30, 0x82, 0xFF, 0xFE, 0x00]).unwrap();
        let e = resolve_pem(&format!("file:{}", pfx.display())).unwrap_err();
        assert!(e.contains("openssl pkcs12"), "{e}");
        let e = resolve_pem(&format!("file:{}", dir.join("missing.pem").display())).unwrap_err();
        assert!(e.contains("cannot read certificate file"), "{e}");
        let e = resolve_pem("-----BEGIN PRIVATE KEY-----\nMIIE\n").unwrap_err();
        assert!(
            e.contains("never the PEM itself") && !e.contains("MIIE"),
            "{e}"
        );
        let e = resolve_pem("cert.pem").unwrap_err();
        assert!(e.contains("never literal"), "{e}");
        let ok = dir.join("ok.pem");
        std::fs::write(&ok, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let s = resolve_pem(&format!("file:{}", ok.display())).unwrap();
        assert!(!format!("{s:?}").contains("BEGIN"));
        assert_eq!(s.reference(), format!("file:{}", ok.display()));
    }
}
