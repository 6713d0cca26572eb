//! The owners' file encryption (what `manage kubeconfig` will use): a kubeconfig encrypted to an
//! age key and two SSH keys (ed25519, RSA) opens with each owner's private key, not a stranger's.
//! Needs only ssh-keygen.

use std::path::Path;
use std::process::Command;

fn ssh_keygen(dir: &Path, name: &str, kind: &str) -> Option<(String, String)> {
    let path = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .ok()?
        .success();
    ok.then(|| {
        (
            std::fs::read_to_string(path.with_extension("pub")).expect("pub"),
            std::fs::read_to_string(&path).expect("key"),
        )
    })
}

#[test]
fn a_kubeconfig_encrypted_to_owners_opens_for_each_owner_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (Some(ed), Some(rsa), Some(stranger)) = (
        ssh_keygen(dir.path(), "ed", "ed25519"),
        ssh_keygen(dir.path(), "rsa", "rsa"),
        ssh_keygen(dir.path(), "stranger", "ed25519"),
    ) else {
        println!("ssh-keygen absent: skipping");
        return;
    };
    let age_owner = age::x25519::Identity::generate();
    let kubeconfig = b"apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user: {client-key-data: c2VjcmV0}\n";
    let recipients = format!("# owners\n{}\n{}{}", age_owner.to_public(), ed.0, rsa.0);
    let owners = seal::Recipients::parse_text(&recipients).expect("owners");
    assert_eq!(owners.len(), 3);
    let armored = seal::encrypt_to_owners(&owners, kubeconfig).expect("encrypt");
    assert!(!armored.contains("c2VjcmV0"));
    use age::secrecy::ExposeSecret;
    for id in [
        age_owner.to_string().expose_secret().to_owned(),
        ed.1.clone(),
        rsa.1.clone(),
    ] {
        let identity = seal::Identities::parse(&id).expect("identity");
        let plain = seal::decrypt_for_owner(&identity, armored.as_bytes()).expect("owner opens");
        assert_eq!(plain.as_slice(), kubeconfig);
    }
    let other = seal::Identities::parse(&stranger.1).expect("identity");
    assert!(seal::decrypt_for_owner(&other, armored.as_bytes()).is_err());
}
