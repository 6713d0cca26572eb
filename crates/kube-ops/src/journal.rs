//! The durable record of a move: one JSON record per line, appended and written through at once,
//! so a `kill -9` loses at most the line being written (a torn last line is ignored on reading).
//! The plan is fsynced before the first write to either cluster; per-object progress is a hint
//! that saves requests on resume — the truth is re-read from the clusters (AlreadyExists and
//! NotFound are handled idempotently), so a lost progress line costs a request, never an object.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::graph::ObjectId;
use crate::plan::Plan;

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Record {
    /// A move starts.
    Begin {
        /// Source API server URL.
        source: String,
        /// Target API server URL (or `dir:<path>`).
        target: String,
        /// Namespace (`None`: all).
        namespace: Option<String>,
        /// Run id; also the value of the label that marks source objects for deletion.
        run: String,
    },
    /// We are about to pause these objects (written before the first pause request).
    Pausing {
        /// Clusters and ClusterClasses.
        objects: Vec<ObjectId>,
    },
    /// The plan (written before anything is created).
    Plan {
        /// The plan.
        plan: Box<Plan>,
    },
    /// Flux objects on the source are suspended.
    Suspended,
    /// A planned object exists on the target with this UID.
    Created {
        /// Index into the plan's nodes.
        node: usize,
        /// UID on the target.
        uid: String,
    },
    /// Planned objects are gone from the source.
    Deleted {
        /// Indices into the plan's nodes.
        nodes: Vec<usize>,
    },
    /// Clusters and ClusterClasses on the target are unpaused.
    Unpaused,
    /// Finished.
    Done,
}

/// What a journal says so far.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Run id.
    pub run: Option<String>,
    /// (source, target, namespace) of the run.
    pub begin: Option<(String, String, Option<String>)>,
    /// Objects we paused (or were about to): `Kind namespace/name`.
    pub paused: BTreeSet<String>,
    /// The plan.
    pub plan: Option<Plan>,
    /// Flux suspended.
    pub suspended: bool,
    /// Target UIDs of created nodes.
    pub created: BTreeMap<usize, String>,
    /// Nodes gone from the source.
    pub deleted: BTreeSet<usize>,
    /// Target unpaused.
    pub unpaused: bool,
    /// Finished.
    pub done: bool,
}

impl State {
    fn apply(&mut self, r: Record) {
        match r {
            Record::Begin {
                source,
                target,
                namespace,
                run,
            } => {
                *self = State::default();
                self.run = Some(run);
                self.begin = Some((source, target, namespace));
            }
            Record::Pausing { objects } => {
                self.paused.extend(objects.iter().map(pause_key));
            }
            Record::Plan { plan } => self.plan = Some(*plan),
            Record::Suspended => self.suspended = true,
            Record::Created { node, uid } => {
                self.created.insert(node, uid);
            }
            Record::Deleted { nodes } => self.deleted.extend(nodes),
            Record::Unpaused => self.unpaused = true,
            Record::Done => self.done = true,
        }
    }
}

/// The key under which a paused object is remembered.
pub fn pause_key(id: &ObjectId) -> String {
    format!("{} {}/{}", id.kind, id.namespace, id.name)
}

/// An open journal file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<std::fs::File>,
    /// What it held when opened, plus what was recorded since.
    pub state: State,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The journal file of a move between two clusters (named by their
/// [`Cluster::identity`](crate::cluster::Cluster::identity)): `<dir>/move-<namespace>-<hash>.jsonl`.
pub fn path_for(dir: &Path, source: &str, target: &str, namespace: Option<&str>) -> PathBuf {
    // FNV-1a: stable across runs and Rust versions (unlike DefaultHasher).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{source}|{target}|{}", namespace.unwrap_or("*")).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    dir.join(format!(
        "move-{}-{h:016x}.jsonl",
        namespace.unwrap_or("all")
    ))
}

/// Reads the records of a journal file; a torn or unparsable last line is ignored.
pub fn read(path: &Path) -> Result<State> {
    let mut state = State::default();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(state),
        Err(e) => return Err(io("reading journal", path)(e)),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Record>(line) {
            Ok(r) => state.apply(r),
            // Only a kill in the middle of a write makes a line unreadable; it was the last line of
            // that run (the next run starts on a fresh line), and losing it costs one request.
            Err(e) => {
                tracing::info!(path = %path.display(), line = i + 1, %e, "ignoring a torn journal line");
            }
        }
    }
    Ok(state)
}

impl Journal {
    /// Opens (creating the directory and file if needed) and reads the journal at `path`.
    pub fn open(path: &Path) -> Result<Journal> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("creating state directory", dir))?;
        }
        let state = read(path)?;
        // A torn last line must not glue onto the next record: start on a fresh line.
        let needs_newline = std::fs::read(path)
            .map(|b| !b.is_empty() && b.last() != Some(&b'\n'))
            .unwrap_or(false);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io("opening journal", path))?;
        if needs_newline {
            file.write_all(b"\n").map_err(io("writing journal", path))?;
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            state,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record (one `write` of the whole line); `sync` also fsyncs it.
    pub fn record(&self, r: &Record, sync: bool) -> Result<()> {
        let mut line = serde_json::to_vec(r).map_err(|e| Error::Journal {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        let mut f = self.file.lock().map_err(|_| Error::Journal {
            path: self.path.clone(),
            message: "journal lock poisoned".into(),
        })?;
        f.write_all(&line)
            .map_err(io("writing journal", &self.path))?;
        if sync {
            f.sync_data().map_err(io("syncing journal", &self.path))?;
        }
        Ok(())
    }

    /// Starts a new run: truncates the file and writes `Begin`.
    pub fn begin(&mut self, source: &str, target: &str, namespace: Option<&str>) -> Result<String> {
        let run = run_id();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)
            .map_err(io("truncating journal", &self.path))?;
        drop(file);
        let r = Record::Begin {
            source: source.into(),
            target: target.into(),
            namespace: namespace.map(str::to_owned),
            run: run.clone(),
        };
        self.record(&r, true)?;
        self.state.apply(r);
        Ok(run)
    }

    /// Records and applies to [`Journal::state`].
    pub fn push(&mut self, r: Record, sync: bool) -> Result<()> {
        self.record(&r, sync)?;
        self.state.apply(r);
        Ok(())
    }

    /// Renames a finished journal to `<name>.done` (the next move starts afresh).
    pub fn archive(self) -> Result<()> {
        let done = self.path.with_extension("jsonl.done");
        std::fs::rename(&self.path, &done).map_err(io("archiving journal", &self.path))
    }
}

/// A run id: a DNS-label-safe value from the clock and the process id.
fn run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("m{:x}{:x}", now % 0xffff_ffff_ffff, std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_last_line_is_ignored_and_next_record_starts_fresh() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.jsonl");
        let mut j = Journal::open(&path).expect("open");
        j.begin("a", "b", Some("ns")).expect("begin");
        j.push(
            Record::Created {
                node: 3,
                uid: "u3".into(),
            },
            false,
        )
        .expect("created");
        drop(j);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("append");
        f.write_all(b"{\"t\":\"created\",\"node\":4,\"ui")
            .expect("torn");
        drop(f);
        let mut j = Journal::open(&path).expect("reopen");
        assert_eq!(j.state.created.get(&3).map(String::as_str), Some("u3"));
        assert!(!j.state.created.contains_key(&4));
        j.push(Record::Deleted { nodes: vec![3] }, false)
            .expect("deleted");
        let s = read(&path).expect("read");
        assert!(s.deleted.contains(&3));
        assert_eq!(s.begin.map(|b| b.2), Some(Some("ns".to_owned())));
    }

    #[test]
    fn journal_path_depends_on_both_clusters_and_namespace() {
        let d = Path::new("/s");
        assert_ne!(
            path_for(d, "a", "b", Some("n")),
            path_for(d, "a", "c", Some("n"))
        );
        assert_eq!(
            path_for(d, "a", "b", Some("n")),
            path_for(d, "a", "b", Some("n"))
        );
    }
}
