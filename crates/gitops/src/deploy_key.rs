//! Flux's SSH deploy key: a fresh ed25519 key as PKCS#8 PEM (`identity`, what `flux bootstrap`
//! writes) and its OpenSSH public line (`identity.pub`, what the git host must authorize).

use base64::Engine as _;
use curve25519_dalek::edwards::EdwardsPoint;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::Error;

/// DER prefix of a PKCS#8 ed25519 private key (RFC 8410); the 32-byte seed follows.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// An ed25519 deploy key.
pub struct DeployKey {
    /// The private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub identity: Zeroizing<String>,
    /// `ssh-ed25519 AAAA… <comment>`.
    pub public: String,
}

impl std::fmt::Debug for DeployKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl DeployKey {
    /// Generates a key from the operating system's randomness.
    pub fn generate(comment: &str) -> Result<DeployKey, Error> {
        let mut seed = Zeroizing::new([0u8; 32]);
        {
            use std::io::Read;
            let path = std::path::Path::new("/dev/urandom");
            std::fs::File::open(path)
                .and_then(|mut f| f.read_exact(seed.as_mut_slice()))
                .map_err(|e| Error::io(path, e))?;
        }
        Ok(DeployKey::from_seed(&seed, comment))
    }

    /// The key for a 32-byte ed25519 seed.
    pub fn from_seed(seed: &[u8; 32], comment: &str) -> DeployKey {
        let hash = Sha512::digest(seed);
        let mut scalar = [0u8; 32];
        scalar.copy_from_slice(&hash[..32]);
        let public = EdwardsPoint::mul_base_clamped(scalar).compress().to_bytes();
        let mut der = Zeroizing::new(Vec::with_capacity(48));
        der.extend_from_slice(&PKCS8_ED25519_PREFIX);
        der.extend_from_slice(seed);
        let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der.as_slice()));
        let identity = Zeroizing::new(format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            b64.as_str()
        ));
        let mut wire = Vec::new();
        for part in [&b"ssh-ed25519"[..], &public[..]] {
            wire.extend_from_slice(&(part.len() as u32).to_be_bytes());
            wire.extend_from_slice(part);
        }
        let public = format!(
            "ssh-ed25519 {} {comment}",
            base64::engine::general_purpose::STANDARD.encode(wire)
        );
        DeployKey {
            identity,
            public: public.trim_end().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 §7.1 TEST 1: secret 9d61b1…7f60 → public d75a98…511a.
        let seed: [u8; 32] =
            hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let key = DeployKey::from_seed(&seed, "flux");
        let b64 = key.public.split_whitespace().nth(1).expect("key field");
        let wire = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("b64");
        assert_eq!(
            &wire[wire.len() - 32..],
            &hex::<32>("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        assert!(
            key.identity
                .starts_with("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI")
        );
    }

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }
}
