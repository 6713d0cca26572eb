//! The controller's sealing certificate: its RSA public key, validity and fingerprint.

use base64::Engine as _;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;

/// A parsed sealing certificate (the first `CERTIFICATE` block of the controller's `cert.pem`).
#[derive(Debug, Clone)]
pub struct Certificate {
    key: RsaPublicKey,
    not_before: i64,
    not_after: i64,
    subject: String,
    pem: String,
}

impl Certificate {
    /// Parses the first PEM `CERTIFICATE` block; it must carry an RSA key. The expiry is not
    /// checked here (see [`Certificate::check_not_expired`]).
    pub fn from_pem(pem: &[u8]) -> Result<Certificate, Error> {
        let block = x509_parser::pem::Pem::iter_from_buffer(pem)
            .filter_map(Result::ok)
            .find(|p| p.label == "CERTIFICATE")
            .ok_or_else(|| Error::Certificate("no PEM CERTIFICATE block found".into()))?;
        let cert = block
            .parse_x509()
            .map_err(|e| Error::Certificate(format!("not an X.509 certificate: {e}")))?;
        let key = RsaPublicKey::from_public_key_der(cert.public_key().raw).map_err(|e| {
            Error::Certificate(format!("the certificate's key is not an RSA key: {e}"))
        })?;
        let validity = cert.validity();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&block.contents);
        let mut pem_text = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem_text.push_str(&String::from_utf8_lossy(chunk));
            pem_text.push('\n');
        }
        pem_text.push_str("-----END CERTIFICATE-----\n");
        Ok(Certificate {
            key,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            subject: cert.subject().to_string(),
            pem: pem_text,
        })
    }

    /// The RSA public key sealed values are encrypted to.
    pub fn public_key(&self) -> &RsaPublicKey {
        &self.key
    }

    /// NotAfter as seconds since the Unix epoch.
    pub fn not_after_unix(&self) -> i64 {
        self.not_after
    }

    /// NotBefore as seconds since the Unix epoch (upstream orders keys by it).
    pub fn not_before_unix(&self) -> i64 {
        self.not_before
    }

    /// The subject DN (the controller's `--my-cn`, often empty).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The certificate, re-encoded as one PEM block.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Fails when the certificate is past NotAfter, as kubeseal does ("failed to encrypt using an
    /// expired certificate"); NotBefore is not checked, as upstream.
    pub fn check_not_expired(&self) -> Result<(), Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(i64::MAX);
        if now > self.not_after {
            return Err(Error::CertificateExpired {
                not_after: rfc3339(self.not_after),
                fingerprint: self.fingerprint(),
            });
        }
        Ok(())
    }

    /// NotAfter in RFC 3339 (UTC).
    pub fn not_after(&self) -> String {
        rfc3339(self.not_after)
    }

    /// The key's fingerprint as the controller computes it for its key registry: SSH
    /// `SHA256:<base64 without padding>` of the public key's SSH wire encoding.
    pub fn fingerprint(&self) -> String {
        public_key_fingerprint(&self.key)
    }
}

/// SSH SHA256 fingerprint of an RSA public key (`ssh.FingerprintSHA256(ssh.NewPublicKey(k))`).
pub(crate) fn public_key_fingerprint(key: &RsaPublicKey) -> String {
    let mut wire = Vec::new();
    ssh_string(&mut wire, b"ssh-rsa");
    ssh_mpint(&mut wire, key.e());
    ssh_mpint(&mut wire, key.n());
    let digest = Sha256::digest(&wire);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

fn ssh_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn ssh_mpint(out: &mut Vec<u8>, n: &BigUint) {
    let mut bytes = n.to_bytes_be();
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        bytes.insert(0, 0);
    }
    ssh_string(out, &bytes);
}

fn rfc3339(unix: i64) -> String {
    // Civil date from days (Howard Hinnant's algorithm), to avoid a date dependency here.
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::private_keys::test_key;
    use rsa::pkcs8::EncodePrivateKey;

    /// A self-signed certificate for `key` valid between the two dates (year, month, day).
    pub(crate) fn cert_for(
        key: &rsa::RsaPrivateKey,
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> String {
        let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).expect("pkcs8");
        let kp = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)
            .expect("rcgen key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.self_signed(&kp).expect("self-signed").pem()
    }

    #[test]
    fn parses_a_certificate_and_its_key() {
        let key = test_key();
        let pem = cert_for(&key, (2020, 1, 1), (2099, 1, 1));
        let cert = Certificate::from_pem(pem.as_bytes()).expect("parse");
        assert_eq!(cert.public_key(), &key.to_public_key());
        cert.check_not_expired().expect("valid");
        assert_eq!(cert.not_after(), "2099-01-01T00:00:00Z");
        assert!(cert.fingerprint().starts_with("SHA256:"));
        assert_eq!(cert.fingerprint().len(), 7 + 43);
    }

    #[test]
    fn an_expired_certificate_is_refused() {
        let key = test_key();
        let pem = cert_for(&key, (2019, 1, 1), (2020, 1, 1));
        let cert = Certificate::from_pem(pem.as_bytes()).expect("parse");
        let err = cert.check_not_expired().expect_err("expired");
        assert!(
            err.to_string().contains("expired at 2020-01-01T00:00:00Z"),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(Certificate::from_pem(b"hello").is_err());
    }
}
