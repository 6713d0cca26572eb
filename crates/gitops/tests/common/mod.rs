//! Helpers shared by the world tests of the gitops crate.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A fresh bare repository on the server (pushable over HTTP too) and an empty work tree whose
/// `main` tracks it at `url_base/<name>.git`.
pub fn fresh_repo(git: &test_world::GitServer, url_base: &str, work: &Path) -> (PathBuf, String) {
    let name = test_world::unique_name("gitops");
    let bare = git.repos_dir.join(format!("{name}.git"));
    let b = git2::Repository::init_opts(
        &bare,
        git2::RepositoryInitOptions::new()
            .bare(true)
            .initial_head("main"),
    )
    .expect("bare repo");
    b.config()
        .expect("config")
        .set_bool("http.receivepack", true)
        .expect("receivepack");
    let url = format!("{url_base}/{name}.git");
    let r = git2::Repository::init_opts(
        work,
        git2::RepositoryInitOptions::new().initial_head("main"),
    )
    .expect("work tree");
    r.remote("origin", &url).expect("remote");
    let mut c = r.config().expect("config");
    c.set_str("branch.main.remote", "origin").expect("cfg");
    c.set_str("branch.main.merge", "refs/heads/main")
        .expect("cfg");
    c.set_str("user.name", "test").expect("cfg");
    c.set_str("user.email", "test@example.invalid")
        .expect("cfg");
    (bare, url)
}
