//! TEST ONLY: RSA keys and self-signed certificates made at test time with `aws-lc-rs`, so no
//! private key is ever committed. Used by the unit tests of `auth::certificate` and, through
//! `#[path]`, by `tests/it/auth_client_certificate.rs`; it depends on nothing but external crates.
//!
//! The DER written and read here is deliberately independent of the parser in
//! `certificate.rs`, so that a test comparing the two can fail.
#![allow(dead_code)]

use std::sync::OnceLock;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A test key: PKCS#8 DER of a fresh RSA-2048 key.
pub struct TestKey {
    pub pkcs8: Vec<u8>,
}

impl TestKey {
    pub fn generate() -> TestKey {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).expect("generate an RSA key");
        let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&key).expect("PKCS#8");
        TestKey {
            pkcs8: pkcs8.as_ref().to_vec(),
        }
    }

    /// The first test key of this process (key generation takes a moment at -O0).
    pub fn shared() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(TestKey::generate)
    }

    /// A second, different key of this process.
    pub fn other() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(TestKey::generate)
    }

    pub fn pair(&self) -> RsaKeyPair {
        RsaKeyPair::from_pkcs8(&self.pkcs8).expect("own PKCS#8")
    }

    /// The PKCS#1 `RSAPrivateKey` inside the PKCS#8 `PrivateKeyInfo` (its OCTET STRING).
    pub fn pkcs1(&self) -> Vec<u8> {
        let info = content(&self.pkcs8, 0x30);
        let mut rest = info;
        let _version = next(&mut rest, 0x02);
        let _algorithm = next(&mut rest, 0x30);
        next(&mut rest, 0x04).to_vec()
    }

    pub fn pkcs8_pem(&self) -> String {
        pem("PRIVATE KEY", &self.pkcs8)
    }

    pub fn pkcs1_pem(&self) -> String {
        pem("RSA PRIVATE KEY", &self.pkcs1())
    }

    /// A self-signed certificate for this key, valid between the two Unix times.
    pub fn certificate(&self, cn: &str, not_before: i64, not_after: i64) -> Vec<u8> {
        self.certificate_with_extensions(cn, not_before, not_after, None)
    }

    /// A self-signed certificate valid from a day ago for a year, for TLS servers and clients:
    /// a subjectAltName with `localhost` and 127.0.0.1, which TLS clients match the host
    /// against (they ignore the CN). Trusted as its own root, it verifies as a server or
    /// client certificate.
    pub fn localhost_certificate(&self) -> Vec<u8> {
        let now = chrono::Utc::now().timestamp();
        let names = [tlv(0x82, b"localhost"), tlv(0x87, &[127, 0, 0, 1])].concat();
        let san = seq(&[
            &tlv(0x06, &[0x55, 0x1D, 0x11]),
            &tlv(0x04, &tlv(0x30, &names)),
        ]);
        self.certificate_with_extensions(
            "localhost",
            now - 86_400,
            now + 365 * 86_400,
            Some(tlv(0xA3, &seq(&[&san]))),
        )
    }

    /// A private CA's root certificate for this key (`CN=<cn>`, basicConstraints CA, key
    /// usage keyCertSign), valid from a day ago for a year; see [`TestKey::issue_localhost`].
    pub fn ca_certificate(&self, cn: &str) -> Vec<u8> {
        let now = chrono::Utc::now().timestamp();
        let critical = tlv(0x01, &[0xFF]);
        let basic_constraints = seq(&[
            &tlv(0x06, &[0x55, 0x1D, 0x13]),
            &critical,
            &tlv(0x04, &seq(&[&tlv(0x01, &[0xFF])])),
        ]);
        let key_usage = seq(&[
            &tlv(0x06, &[0x55, 0x1D, 0x0F]),
            &critical,
            &tlv(0x04, &tlv(0x03, &[0x01, 0x06])),
        ]);
        self.certificate_with_extensions(
            cn,
            now - 86_400,
            now + 365 * 86_400,
            Some(tlv(0xA3, &seq(&[&basic_constraints, &key_usage]))),
        )
    }

    /// A server certificate for `localhost` and 127.0.0.1 with this key, issued (signed) by
    /// `ca`, whose root certificate is `ca.ca_certificate(ca_cn)`: what an internal PKI hands
    /// out, trusted only by clients that trust that CA.
    pub fn issue_localhost(&self, ca: &TestKey, ca_cn: &str) -> Vec<u8> {
        let now = chrono::Utc::now().timestamp();
        let names = [tlv(0x82, b"localhost"), tlv(0x87, &[127, 0, 0, 1])].concat();
        let san = seq(&[
            &tlv(0x06, &[0x55, 0x1D, 0x11]),
            &tlv(0x04, &tlv(0x30, &names)),
        ]);
        build_certificate(
            self,
            "localhost",
            ca,
            ca_cn,
            (now - 86_400, now + 365 * 86_400),
            Some(tlv(0xA3, &seq(&[&san]))),
        )
    }

    fn certificate_with_extensions(
        &self,
        cn: &str,
        not_before: i64,
        not_after: i64,
        extensions: Option<Vec<u8>>,
    ) -> Vec<u8> {
        build_certificate(self, cn, self, cn, (not_before, not_after), extensions)
    }
}

/// A certificate for `subject`'s key named `subject_cn`, issued by `issuer_cn` and signed with
/// `issuer`'s key (the same key and name: self-signed).
fn build_certificate(
    subject: &TestKey,
    subject_cn: &str,
    issuer: &TestKey,
    issuer_cn: &str,
    (not_before, not_after): (i64, i64),
    extensions: Option<Vec<u8>>,
) -> Vec<u8> {
    let key = issuer.pair();
    let subject_key = subject.pair();
    let spki = AsDer::<PublicKeyX509Der>::as_der(subject_key.public_key()).expect("SPKI");
    let sha256_with_rsa = seq(&[
        &tlv(
            0x06,
            &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B],
        ),
        &tlv(0x05, &[]),
    ]);
    let name = |cn: &str| {
        seq(&[&tlv(
            0x31,
            &seq(&[&tlv(0x06, &[0x55, 0x04, 0x03]), &tlv(0x0C, cn.as_bytes())]),
        )])
    };
    let serial = if subject_cn == issuer_cn {
        [0x01, 0x23, 0x45]
    } else {
        [0x01, 0x23, 0x46]
    };
    let tbs = seq(&[
        &tlv(0xA0, &tlv(0x02, &[2])),
        &tlv(0x02, &serial),
        &sha256_with_rsa,
        &name(issuer_cn),
        &seq(&[&time(not_before), &time(not_after)]),
        &name(subject_cn),
        spki.as_ref(),
        extensions.as_deref().unwrap_or_default(),
    ]);
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        &tbs,
        &mut sig,
    )
    .expect("sign");
    let mut bits = vec![0u8];
    bits.extend_from_slice(&sig);
    seq(&[&tbs, &sha256_with_rsa, &tlv(0x03, &bits)])
}

impl TestKey {
    /// A certificate valid from a day ago for a year.
    pub fn current_certificate(&self) -> Vec<u8> {
        let now = chrono::Utc::now().timestamp();
        self.certificate("lagwatch test", now - 86_400, now + 365 * 86_400)
    }
}

/// An EC P-256 key in PKCS#8 (`BEGIN PRIVATE KEY`), to be refused.
pub fn ec_pkcs8_pem() -> String {
    let doc = signature::EcdsaKeyPair::generate_pkcs8(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &SystemRandom::new(),
    )
    .expect("EC key");
    pem("PRIVATE KEY", doc.as_ref())
}

/// The PKCS#1 `RSAPublicKey` from a certificate's SubjectPublicKeyInfo, read independently of
/// the code under test.
pub fn certificate_public_key(cert: &[u8]) -> Vec<u8> {
    let cert = content(cert, 0x30);
    let mut tbs = content(cert, 0x30);
    if tbs[0] == 0xA0 {
        next(&mut tbs, 0xA0);
    }
    for tag in [0x02, 0x30, 0x30, 0x30, 0x30] {
        next(&mut tbs, tag);
    }
    let mut spki = next(&mut tbs, 0x30);
    let _algorithm = next(&mut spki, 0x30);
    let bits = next(&mut spki, 0x03);
    assert_eq!(bits[0], 0, "no unused bits");
    bits[1..].to_vec()
}

/// Verifies an RS256 JWT with a PKCS#1 RSA public key; returns (header, claims).
pub fn verify_rs256(jwt: &str, rsa_public_key: &[u8]) -> (serde_json::Value, serde_json::Value) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts");
    for p in &parts {
        assert!(
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "base64url without padding"
        );
    }
    let sig = URL_SAFE_NO_PAD
        .decode(parts[2])
        .expect("signature base64url");
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, rsa_public_key)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("the RS256 signature verifies with the certificate's public key");
    let json = |p: &str| -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("base64url")).expect("JSON")
    };
    (json(parts[0]), json(parts[1]))
}

/// Base64url (no padding) of a digest of `data`, as `x5t` / `x5t#S256` are.
pub fn thumbprint(alg: &'static aws_lc_rs::digest::Algorithm, data: &[u8]) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(alg, data).as_ref())
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(body);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn time(unix: i64) -> Vec<u8> {
    let t = chrono::DateTime::from_timestamp(unix, 0).expect("time");
    if (1950..2050).contains(&chrono::Datelike::year(&t)) {
        tlv(0x17, t.format("%y%m%d%H%M%SZ").to_string().as_bytes())
    } else {
        tlv(0x18, t.format("%Y%m%d%H%M%SZ").to_string().as_bytes())
    }
}

/// Reads one element with `tag` off the front of `input`, panicking otherwise.
fn next<'a>(input: &mut &'a [u8], tag: u8) -> &'a [u8] {
    assert_eq!(input[0], tag, "DER tag");
    let (len, header) = match input[1] {
        n if n < 0x80 => (usize::from(n), 2),
        n => {
            let k = usize::from(n & 0x7F);
            let len = input[2..2 + k]
                .iter()
                .fold(0usize, |a, b| (a << 8) | usize::from(*b));
            (len, 2 + k)
        }
    };
    let body = &input[header..header + len];
    *input = &input[header + len..];
    body
}

fn content(input: &[u8], tag: u8) -> &[u8] {
    let mut rest = input;
    next(&mut rest, tag)
}
