//! The cluster's kubeconfig, as kind exports it: the node's admin.conf with cluster, user and
//! context renamed `kind-<name>`, the server rewritten to the published host port; written to a
//! private 0600 file, merged into (and removed from) a user's kubeconfig under a `<file>.lock`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::{Error, Result};

/// The name of the cluster, user and context of cluster `name`: `kind-<name>`.
pub fn context_name(cluster: &str) -> String {
    format!("kind-{cluster}")
}

fn kerr(path: &Path, reason: impl Into<String>) -> Error {
    Error::Kubeconfig {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Turns the node's admin.conf into the exported kubeconfig: exactly one cluster, user and
/// context, renamed `kind-<cluster>`, current-context set, server replaced by `server`.
pub fn from_admin_conf(admin_conf: &str, cluster: &str, server: &str) -> Result<Value> {
    let src = Path::new("/etc/kubernetes/admin.conf");
    let mut cfg: Value =
        serde_saphyr::from_str(admin_conf).map_err(|e| kerr(src, format!("not YAML: {e}")))?;
    let name = context_name(cluster);
    for key in ["clusters", "users", "contexts"] {
        let n = cfg[key].as_array().map_or(0, Vec::len);
        if n != 1 {
            return Err(kerr(
                src,
                format!("expected exactly one entry in {key}, found {n}"),
            ));
        }
        cfg[key][0]["name"] = Value::String(name.clone());
    }
    cfg["clusters"][0]["cluster"]["server"] = Value::String(server.to_string());
    cfg["contexts"][0]["context"]["cluster"] = Value::String(name.clone());
    cfg["contexts"][0]["context"]["user"] = Value::String(name.clone());
    cfg["current-context"] = Value::String(name);
    Ok(cfg)
}

/// The API server URL a kubeconfig's current context points at.
pub fn server_of(cfg: &Value) -> Option<&str> {
    cfg["clusters"][0]["cluster"]["server"].as_str()
}

/// Writes `cfg` to `path` with mode 0600 (created with that mode, replaced atomically).
pub fn write_private(path: &Path, cfg: &Value) -> Result<()> {
    let text = serde_saphyr::to_string(cfg).map_err(|e| kerr(path, e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// The kubeconfig kind would merge into: the given path, else the first existing file of
/// `$KUBECONFIG`, else its last entry, else `~/.kube/config`.
pub fn user_kubeconfig(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(list) = std::env::var_os("KUBECONFIG") {
        let paths: Vec<PathBuf> = std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if let Some(p) = paths.iter().find(|p| p.exists()) {
            return p.clone();
        }
        if let Some(p) = paths.last() {
            return p.clone();
        }
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".kube").join("config")
}

/// Every kubeconfig kind would clean on delete: all of `$KUBECONFIG`, else `~/.kube/config`.
pub fn user_kubeconfigs() -> Vec<PathBuf> {
    if let Some(list) = std::env::var_os("KUBECONFIG") {
        let v: Vec<PathBuf> = std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !v.is_empty() {
            return v;
        }
    }
    vec![user_kubeconfig(None)]
}

/// Holds `<file>.lock` (created with O_EXCL, as kind) until dropped.
struct Lock(PathBuf);

impl Lock {
    fn take(path: &Path) -> Result<Lock> {
        let lock = PathBuf::from(format!("{}.lock", path.display()));
        if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        for _ in 0..50 {
            match OpenOptions::new().write(true).create_new(true).open(&lock) {
                Ok(_) => return Ok(Lock(lock)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(Error::io(&lock, e)),
            }
        }
        Err(kerr(
            path,
            format!(
                "locked by {} for 5s; remove that file if no other kind or manage runs",
                lock.display()
            ),
        ))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn read(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(t) if t.trim().is_empty() => Ok(None),
        Ok(t) => serde_saphyr::from_str::<Value>(&t)
            .map(Some)
            .map_err(|e| kerr(path, format!("not a kubeconfig: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn upsert(list: &mut Value, entry: &Value) {
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    if let Some(a) = list.as_array_mut() {
        match a.iter_mut().find(|e| e["name"] == entry["name"]) {
            Some(e) => *e = entry.clone(),
            None => a.push(entry.clone()),
        }
    }
}

/// Merges the exported `cfg` into the kubeconfig at `path` (entries of the same name replaced,
/// others kept) and makes its context current. A new file is created 0600.
pub fn merge_into(path: &Path, cfg: &Value) -> Result<()> {
    let _lock = Lock::take(path)?;
    let mut existing = read(path)?.unwrap_or_else(|| {
        serde_json::json!({"apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [], "users": [], "contexts": [], "current-context": ""})
    });
    for key in ["clusters", "users", "contexts"] {
        for entry in cfg[key].as_array().into_iter().flatten() {
            upsert(&mut existing[key], entry);
        }
    }
    existing["current-context"] = cfg["current-context"].clone();
    write_keeping_mode(path, &existing)
}

/// Removes `kind-<cluster>` entries from the kubeconfig at `path` and unsets current-context when
/// it pointed there. Returns whether anything was removed; a missing file is not an error.
pub fn remove_from(path: &Path, cluster: &str) -> Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let _lock = Lock::take(path)?;
    let Some(mut cfg) = read(path)? else {
        return Ok(false);
    };
    let name = context_name(cluster);
    let mut removed = false;
    for key in ["clusters", "users", "contexts"] {
        if let Some(a) = cfg[key].as_array_mut() {
            let before = a.len();
            a.retain(|e| e["name"] != name.as_str());
            removed |= a.len() != before;
        }
    }
    if cfg["current-context"] == name.as_str() {
        cfg["current-context"] = Value::String(String::new());
        removed = true;
    }
    if removed {
        write_keeping_mode(path, &cfg)?;
    }
    Ok(removed)
}

/// Whether the kubeconfig at `path` has any `kind-<cluster>` entry.
pub fn has_entries(path: &Path, cluster: &str) -> Result<bool> {
    let Some(cfg) = read(path)? else {
        return Ok(false);
    };
    let name = context_name(cluster);
    Ok(["clusters", "users", "contexts"].iter().any(|k| {
        cfg[*k]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["name"] == name.as_str()))
    }))
}

fn write_keeping_mode(path: &Path, cfg: &Value) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok().map(|m| m.permissions().mode());
    write_private(path, cfg)?;
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const ADMIN: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: kind\n  cluster:\n    server: https://kind-control-plane:6443\n    certificate-authority-data: Q0E=\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\ncontexts:\n- name: kubernetes-admin@kind\n  context: {cluster: kind, user: kubernetes-admin}\ncurrent-context: kubernetes-admin@kind\n";

    #[test]
    fn renames_and_rewrites_the_server() {
        let c = from_admin_conf(ADMIN, "t", "https://127.0.0.1:41234").expect("export");
        assert_eq!(c["clusters"][0]["name"], "kind-t");
        assert_eq!(c["users"][0]["name"], "kind-t");
        assert_eq!(c["contexts"][0]["name"], "kind-t");
        assert_eq!(c["contexts"][0]["context"]["cluster"], "kind-t");
        assert_eq!(c["contexts"][0]["context"]["user"], "kind-t");
        assert_eq!(c["current-context"], "kind-t");
        assert_eq!(server_of(&c), Some("https://127.0.0.1:41234"));
        assert_eq!(c["users"][0]["user"]["client-key-data"], "S0VZ");
    }

    #[test]
    fn refuses_more_than_one_entry() {
        let two = ADMIN.replace("users:\n", "users:\n- name: other\n  user: {}\n");
        assert!(from_admin_conf(&two, "t", "https://x").is_err());
    }

    #[test]
    fn private_file_is_0600_and_merge_remove_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let private = dir.path().join("sub/kind-t.kubeconfig");
        let c = from_admin_conf(ADMIN, "t", "https://127.0.0.1:1").expect("export");
        write_private(&private, &c).expect("write");
        let mode = std::fs::metadata(&private)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let user = dir.path().join("config");
        std::fs::write(
            &user,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster: {server: https://o}\nusers: []\ncontexts:\n- name: other\n  context: {cluster: other, user: other}\ncurrent-context: other\n",
        )
        .expect("write user");
        merge_into(&user, &c).expect("merge");
        merge_into(&user, &c).expect("merge twice");
        let merged: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&user).expect("read")).expect("yaml");
        assert_eq!(merged["clusters"].as_array().map(Vec::len), Some(2));
        assert_eq!(merged["current-context"], "kind-t");
        assert!(has_entries(&user, "t").expect("has"));
        assert!(!dir.path().join("config.lock").exists());

        assert!(remove_from(&user, "t").expect("remove"));
        assert!(!has_entries(&user, "t").expect("has"));
        let after: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&user).expect("read")).expect("yaml");
        assert_eq!(after["clusters"][0]["name"], "other");
        assert_eq!(after["current-context"], "");
        assert!(!remove_from(&dir.path().join("absent"), "t").expect("absent ok"));
    }
}
