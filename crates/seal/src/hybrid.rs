//! sealed-secrets' hybrid encryption (`pkg/crypto.HybridEncrypt`), bit for bit:
//! `u16_be(len(rsa_ct)) || rsa_ct || AES-256-GCM(zero nonce, no AAD)(plaintext)`, where `rsa_ct`
//! is the 32-byte session key under RSA-OAEP(SHA-256, MGF1-SHA-256, label).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rsa::rand_core::{OsRng, RngCore};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::Error;

const SESSION_KEY_LEN: usize = 32;
// Safe because every session key encrypts exactly one message (as upstream argues).
const ZERO_NONCE: [u8; 12] = [0u8; 12];

/// Encrypts `plaintext` for the holder of `key`'s private half, bound to `label` (the scope label,
/// see [`crate::Scope::label`]). The output is non-deterministic (a fresh session key each time).
pub fn hybrid_encrypt(key: &RsaPublicKey, plaintext: &[u8], label: &str) -> Result<Vec<u8>, Error> {
    let mut session = Zeroizing::new([0u8; SESSION_KEY_LEN]);
    OsRng.fill_bytes(session.as_mut_slice());
    let rsa_ct = key
        .encrypt(
            &mut OsRng,
            Oaep::new_with_label::<Sha256, _>(label),
            session.as_slice(),
        )
        .map_err(|e| Error::Encrypt(format!("RSA-OAEP: {e}")))?;
    let aes = Aes256Gcm::new_from_slice(session.as_slice())
        .map_err(|e| Error::Encrypt(format!("AES key: {e}")))?;
    let aes_ct = aes
        .encrypt(Nonce::from_slice(&ZERO_NONCE), plaintext)
        .map_err(|e| Error::Encrypt(format!("AES-GCM: {e}")))?;
    let len = u16::try_from(rsa_ct.len())
        .map_err(|_| Error::Encrypt(format!("RSA ciphertext of {} bytes", rsa_ct.len())))?;
    let mut out = Vec::with_capacity(2 + rsa_ct.len() + aes_ct.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&rsa_ct);
    out.extend_from_slice(&aes_ct);
    Ok(out)
}

/// Opens a [`hybrid_encrypt`] ciphertext (or one made by kubeseal) with any of `keys`, as the
/// controller does: each key in turn until one succeeds.
pub fn hybrid_decrypt<'a>(
    keys: impl IntoIterator<Item = &'a RsaPrivateKey>,
    ciphertext: &[u8],
    label: &str,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    if ciphertext.len() < 2 {
        return Err(Error::TooShort);
    }
    let rsa_len = usize::from(u16::from_be_bytes([ciphertext[0], ciphertext[1]]));
    if rsa_len + 2 > ciphertext.len() {
        return Err(Error::TooShort);
    }
    let (rsa_ct, aes_ct) = ciphertext[2..].split_at(rsa_len);
    for key in keys {
        let Ok(session) = key.decrypt(Oaep::new_with_label::<Sha256, _>(label), rsa_ct) else {
            continue;
        };
        let session = Zeroizing::new(session);
        let Ok(aes) = Aes256Gcm::new_from_slice(&session) else {
            continue;
        };
        if let Ok(plain) = aes.decrypt(Nonce::from_slice(&ZERO_NONCE), aes_ct) {
            return Ok(Zeroizing::new(plain));
        }
    }
    Err(Error::NoKeyCouldDecrypt(String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::private_keys::test_key;

    #[test]
    fn layout_is_length_prefix_rsa_then_gcm() {
        let key = test_key();
        let ct = hybrid_encrypt(&key.to_public_key(), b"hello", "ns/name").expect("encrypt");
        // 2048-bit test key: 256-byte RSA block; GCM adds a 16-byte tag.
        assert_eq!(&ct[..2], &[0x01, 0x00]);
        assert_eq!(ct.len(), 2 + 256 + 5 + 16);
        let plain = hybrid_decrypt([&key], &ct, "ns/name").expect("decrypt");
        assert_eq!(plain.as_slice(), b"hello");
    }

    #[test]
    fn a_different_label_does_not_open() {
        let key = test_key();
        let ct = hybrid_encrypt(&key.to_public_key(), b"x", "ns/name").expect("encrypt");
        for wrong in ["ns/other", "other/name", "ns", ""] {
            assert!(matches!(
                hybrid_decrypt([&key], &ct, wrong),
                Err(Error::NoKeyCouldDecrypt(_))
            ));
        }
    }

    #[test]
    fn short_input_is_rejected() {
        let key = test_key();
        assert!(matches!(
            hybrid_decrypt([&key], &[1], ""),
            Err(Error::TooShort)
        ));
        assert!(matches!(
            hybrid_decrypt([&key], &[0x02, 0x00, 1, 2], ""),
            Err(Error::TooShort)
        ));
    }

    #[test]
    fn every_encryption_uses_a_fresh_session_key() {
        let key = test_key().to_public_key();
        let a = hybrid_encrypt(&key, b"same", "").expect("a");
        let b = hybrid_encrypt(&key, b"same", "").expect("b");
        assert_ne!(a, b);
    }
}
