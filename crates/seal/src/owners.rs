//! Encryption to the cluster's owners with age: X25519 recipients (`age1…`) and SSH public keys
//! (`ssh-ed25519 …`, `ssh-rsa …`), ASCII-armored so the result can live in git or a terminal.

use std::io::{Read, Write};

use zeroize::Zeroizing;

use crate::Error;

/// The owners' public keys.
pub struct Recipients {
    keys: Vec<Box<dyn age::Recipient + Send>>,
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipients({})", self.keys.len())
    }
}

impl Recipients {
    /// Parses public keys, one per entry: `age1…` or an OpenSSH public key line. Blank entries
    /// and `#` comments are skipped; at least one key is required.
    pub fn parse<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Recipients, Error> {
        let mut out: Vec<Box<dyn age::Recipient + Send>> = Vec::new();
        for raw in keys {
            let k = raw.trim();
            if k.is_empty() || k.starts_with('#') {
                continue;
            }
            if k.starts_with("age1") {
                let r: age::x25519::Recipient = k
                    .parse()
                    .map_err(|e: &str| Error::OwnerKey(format!("{}: {e}", short(k))))?;
                out.push(Box::new(r));
            } else if k.starts_with("ssh-") {
                let r: age::ssh::Recipient = k
                    .parse()
                    .map_err(|e| Error::OwnerKey(format!("{}: {e:?}", short(k))))?;
                out.push(Box::new(r));
            } else {
                return Err(Error::OwnerKey(format!(
                    "{}: not an age (age1…) or SSH (ssh-ed25519/ssh-rsa) public key",
                    short(k)
                )));
            }
        }
        if out.is_empty() {
            return Err(Error::OwnerKey("no owner public key given".into()));
        }
        Ok(Recipients { keys: out })
    }

    /// Parses the public keys in a file's text (one per line, as in `authorized_keys`).
    pub fn parse_text(text: &str) -> Result<Recipients, Error> {
        Recipients::parse(text.lines())
    }

    /// How many owners.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none (never true for a parsed value).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// An owner's private key(s), to decrypt.
pub struct Identities {
    keys: Vec<Box<dyn age::Identity>>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities({})", self.keys.len())
    }
}

impl Identities {
    /// Parses an identity file: age secret keys (`AGE-SECRET-KEY-1…`, comments allowed) or one
    /// unencrypted OpenSSH private key (ed25519 or RSA). Passphrase-protected SSH keys are refused.
    pub fn parse(text: &str) -> Result<Identities, Error> {
        let mut keys: Vec<Box<dyn age::Identity>> = Vec::new();
        if text.contains("-----BEGIN") {
            let id = age::ssh::Identity::from_buffer(text.as_bytes(), None)
                .map_err(|e| Error::OwnerKey(format!("SSH private key: {e}")))?;
            match id {
                age::ssh::Identity::Unencrypted(_) => keys.push(Box::new(id)),
                age::ssh::Identity::Encrypted(_) => {
                    return Err(Error::OwnerKey(
                        "the SSH private key is passphrase-protected; decrypt a copy or use an age key".into(),
                    ));
                }
                age::ssh::Identity::Unsupported(_) => {
                    return Err(Error::OwnerKey(
                        "unsupported SSH key type (use ed25519 or RSA)".into(),
                    ));
                }
            }
        } else {
            for line in text.lines().map(str::trim) {
                if line.starts_with("AGE-SECRET-KEY-") {
                    let id: age::x25519::Identity = line
                        .parse()
                        .map_err(|e: &str| Error::OwnerKey(format!("age secret key: {e}")))?;
                    keys.push(Box::new(id));
                }
            }
        }
        if keys.is_empty() {
            return Err(Error::OwnerKey("no age or SSH private key found".into()));
        }
        Ok(Identities { keys })
    }
}

/// Encrypts `plaintext` so that any one of the owners can decrypt it; ASCII-armored age.
pub fn encrypt_to_owners(recipients: &Recipients, plaintext: &[u8]) -> Result<String, Error> {
    let encryptor = age::Encryptor::with_recipients(
        recipients
            .keys
            .iter()
            .map(|r| r.as_ref() as &dyn age::Recipient),
    )
    .map_err(|e| Error::Age(e.to_string()))?;
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|e| Error::Age(e.to_string()))?;
    let mut writer = encryptor
        .wrap_output(armor)
        .map_err(|e| Error::Age(e.to_string()))?;
    writer
        .write_all(plaintext)
        .map_err(|e| Error::Age(e.to_string()))?;
    writer
        .finish()
        .and_then(|a| a.finish())
        .map_err(|e| Error::Age(e.to_string()))?;
    String::from_utf8(out).map_err(|e| Error::Age(e.to_string()))
}

/// Decrypts an age file (armored or binary) with an owner's identity.
pub fn decrypt_for_owner(
    identities: &Identities,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(ciphertext))
        .map_err(|e| Error::Age(format!("not an age file: {e}")))?;
    let mut reader = decryptor
        .decrypt(identities.keys.iter().map(|i| i.as_ref()))
        .map_err(|e| Error::Age(format!("{e} (is this key one of the owners'?)")))?;
    let mut plain = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut plain)
        .map_err(|e| Error::Age(e.to_string()))?;
    Ok(plain)
}

fn short(k: &str) -> String {
    let mut s: String = k.chars().take(24).collect();
    if k.len() > 24 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn x25519_round_trip_and_a_stranger_cannot_open() {
        let owner = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let recipients =
            Recipients::parse([owner.to_public().to_string().as_str()]).expect("recipients");
        let ct = encrypt_to_owners(&recipients, b"kubeconfig").expect("encrypt");
        assert!(ct.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        let ids = Identities::parse(&format!(
            "# created: now\n{}\n",
            owner.to_string().expose_secret()
        ))
        .expect("ids");
        assert_eq!(
            decrypt_for_owner(&ids, ct.as_bytes())
                .expect("decrypt")
                .as_slice(),
            b"kubeconfig"
        );
        let stranger = Identities::parse(other.to_string().expose_secret()).expect("stranger");
        assert!(decrypt_for_owner(&stranger, ct.as_bytes()).is_err());
    }

    #[test]
    fn bad_keys_are_named() {
        let err = Recipients::parse(["pgp-something"]).expect_err("bad");
        assert!(err.to_string().contains("pgp-something"), "{err}");
        assert!(Recipients::parse(["", "# only a comment"]).is_err());
    }
}
