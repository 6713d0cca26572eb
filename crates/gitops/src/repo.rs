//! The user's repository: commit exactly the cluster's path (guarded), and the tracked remote.

use std::path::{Path, PathBuf};

use git2::{IndexEntry, IndexTime, Oid, Repository, Signature};

use crate::Error;
use crate::flux_url::flux_url;
use crate::plaintext_guard::check_file;

/// A git work tree.
pub struct Repo {
    pub(crate) repo: Repository,
    workdir: PathBuf,
}

/// What a commit of the cluster's path did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// A new commit on the current branch.
    Committed {
        /// Its hex id.
        commit: String,
        /// Files added, changed or removed, relative to the repository.
        files: Vec<String>,
    },
    /// Nothing under the path differs from HEAD: no commit (a rerun is a no-op).
    Unchanged {
        /// HEAD's hex id.
        head: String,
    },
}

impl CommitOutcome {
    /// The commit HEAD points at afterwards.
    pub fn commit(&self) -> &str {
        match self {
            CommitOutcome::Committed { commit, .. } => commit,
            CommitOutcome::Unchanged { head } => head,
        }
    }
}

/// The remote and branch the current branch tracks, and the URL in the form Flux accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedRemote {
    /// Remote name (`origin`).
    pub remote: String,
    /// The remote's URL as configured.
    pub url: String,
    /// The URL for Flux's GitRepository (`ssh://`, `http(s)://`).
    pub flux_url: String,
    /// Local branch.
    pub branch: String,
    /// Branch on the remote (what Flux follows).
    pub remote_branch: String,
}

impl Repo {
    /// Opens the repository containing `path` (searching upwards, like git).
    pub fn open(path: &Path) -> Result<Repo, Error> {
        let repo = Repository::discover(path).map_err(|e| {
            Error::git(format!("opening a git repository at {}", path.display()), e)
        })?;
        let workdir = repo
            .workdir()
            .ok_or_else(|| Error::Repository(format!("{} is a bare repository", path.display())))?
            .to_path_buf();
        Ok(Repo { repo, workdir })
    }

    /// The work tree's root.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// HEAD's commit id, if any commit exists.
    pub fn head_commit(&self) -> Option<String> {
        self.repo
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .map(|c| c.id().to_string())
    }

    /// Commits the files under `path` (relative to the work tree; git-ignored files are left
    /// out) and nothing else, after the plaintext guard has checked every added or changed file:
    /// one refusal and nothing is committed. `message` defaults to a generated one.
    pub fn commit_path(&self, path: &Path, message: Option<&str>) -> Result<CommitOutcome, Error> {
        let rel = path
            .strip_prefix(&self.workdir)
            .unwrap_or(path)
            .to_string_lossy()
            .trim_end_matches('/')
            .to_owned();
        let head = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let mut index = git2::Index::new().map_err(|e| Error::git("creating an index", e))?;
        if let Some(c) = &head {
            let tree = c.tree().map_err(|e| Error::git("reading HEAD's tree", e))?;
            index
                .read_tree(&tree)
                .map_err(|e| Error::git("reading HEAD's tree", e))?;
        }
        let prefix = format!("{rel}/");
        let before: Vec<(String, Oid)> = index
            .iter()
            .filter_map(|e| {
                let p = String::from_utf8(e.path.clone()).ok()?;
                (p == rel || p.starts_with(&prefix)).then_some((p, e.id))
            })
            .collect();
        for (p, _) in &before {
            index
                .remove_path(Path::new(p))
                .map_err(|e| Error::git(format!("unstaging {p}"), e))?;
        }

        let mut files = Vec::new();
        let mut refusals = Vec::new();
        let mut current = Vec::new();
        self.collect_files(&self.workdir.join(&rel), &mut current)?;
        for file in current {
            let relp = file
                .strip_prefix(&self.workdir)
                .unwrap_or(&file)
                .to_string_lossy()
                .into_owned();
            let content = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
            let oid = self
                .repo
                .blob(&content)
                .map_err(|e| Error::git(format!("storing {relp}"), e))?;
            let unchanged = before.iter().any(|(p, o)| *p == relp && *o == oid);
            if !unchanged {
                refusals.extend(check_file(&relp, &content));
                files.push(relp.clone());
            }
            let mode = file_mode(&file);
            index
                .add(&entry(&relp, oid, mode, content.len()))
                .map_err(|e| Error::git(format!("staging {relp}"), e))?;
        }
        if !refusals.is_empty() {
            return Err(Error::PlaintextSecret(refusals));
        }
        for (p, _) in &before {
            if index.get_path(Path::new(p), 0).is_none() {
                files.push(p.clone());
            }
        }
        let tree_id = index
            .write_tree_to(&self.repo)
            .map_err(|e| Error::git("writing the tree", e))?;
        if let Some(c) = &head
            && c.tree_id() == tree_id
        {
            return Ok(CommitOutcome::Unchanged {
                head: c.id().to_string(),
            });
        }
        let tree = self
            .repo
            .find_tree(tree_id)
            .map_err(|e| Error::git("reading the new tree", e))?;
        files.sort();
        let generated = format!(
            "{rel}: update by manage\n\n{}",
            files
                .iter()
                .map(|f| format!("- {f}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let message = message.map(str::to_owned).unwrap_or(generated);
        let sig = self
            .repo
            .signature()
            .or_else(|_| Signature::now("manage", "manage@localhost"))
            .map_err(|e| Error::git("making the commit signature", e))?;
        let parents: Vec<&git2::Commit<'_>> = head.iter().collect();
        let id = self
            .repo
            .commit(Some("HEAD"), &sig, &sig, &message, &tree, &parents)
            .map_err(|e| Error::git("committing", e))?;
        self.sync_index(&rel)?;
        tracing::info!(commit = %id, files = files.len(), path = %rel, "committed");
        Ok(CommitOutcome::Committed {
            commit: id.to_string(),
            files,
        })
    }

    /// Makes the on-disk index agree with the new HEAD for `rel`, so `git status` is clean there.
    fn sync_index(&self, rel: &str) -> Result<(), Error> {
        let mut index = self
            .repo
            .index()
            .map_err(|e| Error::git("opening the index", e))?;
        index
            .add_all([rel], git2::IndexAddOption::DEFAULT, None)
            .and_then(|()| index.update_all([rel], None))
            .and_then(|()| index.write())
            .map_err(|e| Error::git("updating the index", e))
    }

    fn collect_files(&self, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
        let meta = match std::fs::symlink_metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(dir, e)),
        };
        let rel = dir.strip_prefix(&self.workdir).unwrap_or(dir);
        if rel.as_os_str().is_empty() || rel.starts_with(".git") {
            if rel.starts_with(".git") {
                return Ok(());
            }
        } else if self.repo.is_path_ignored(rel).unwrap_or(false) {
            return Ok(());
        }
        if meta.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, e))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .collect();
            entries.sort();
            for e in entries {
                self.collect_files(&e, out)?;
            }
        } else if meta.is_file() {
            out.push(dir.to_path_buf());
        }
        Ok(())
    }

    /// The remote and branch HEAD's branch tracks (`branch.<b>.remote`/`merge`, defaulting to
    /// `origin` and the same branch name).
    pub fn tracked_remote(&self) -> Result<TrackedRemote, Error> {
        let branch = self.current_branch()?;
        let config = self
            .repo
            .config()
            .map_err(|e| Error::git("reading git config", e))?;
        let remote = config
            .get_string(&format!("branch.{branch}.remote"))
            .unwrap_or_else(|_| "origin".into());
        let remote_branch = config
            .get_string(&format!("branch.{branch}.merge"))
            .map(|m| m.trim_start_matches("refs/heads/").to_owned())
            .unwrap_or_else(|_| branch.clone());
        let r = self.repo.find_remote(&remote).map_err(|e| {
            Error::git(format!("branch {branch} tracks remote {remote}, which does not exist (git remote add {remote} <url>)"), e)
        })?;
        let url = r
            .url()
            .map_err(|_| Error::Repository(format!("remote {remote} has no usable URL")))?
            .to_owned();
        let flux = flux_url(&url).ok_or_else(|| {
            Error::Repository(format!(
                "remote {remote} URL {url} is not one Flux can fetch (ssh://, http(s):// or scp-like user@host:path)"
            ))
        })?;
        Ok(TrackedRemote {
            remote,
            url,
            flux_url: flux,
            branch,
            remote_branch,
        })
    }
}

impl Repo {
    /// The branch HEAD names, also before its first commit (an unborn branch).
    fn current_branch(&self) -> Result<String, Error> {
        let head = self
            .repo
            .find_reference("HEAD")
            .map_err(|e| Error::git("reading HEAD", e))?;
        match head.symbolic_target() {
            Ok(Some(target)) => Ok(target.trim_start_matches("refs/heads/").to_owned()),
            Ok(None) => Err(Error::Repository(
                "HEAD is detached; check out the branch Flux should follow".into(),
            )),
            Err(e) => Err(Error::git("reading HEAD's branch name", e)),
        }
    }
}

fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o111 != 0 => 0o100755,
        _ => 0o100644,
    }
}

fn entry(path: &str, id: Oid, mode: u32, size: usize) -> IndexEntry {
    IndexEntry {
        ctime: IndexTime::new(0, 0),
        mtime: IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode,
        uid: 0,
        gid: 0,
        file_size: u32::try_from(size).unwrap_or(u32::MAX),
        id,
        flags: 0,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}
