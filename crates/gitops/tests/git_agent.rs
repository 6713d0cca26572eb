//! Pushing over SSH with the key held by an ssh-agent (no key file given). Its own test binary:
//! libssh2 finds the agent through SSH_AUTH_SOCK, a process-wide variable.

use std::path::Path;
use std::process::{Command, Stdio};

use gitops::{Auth, Repo};

mod common;

/// The agent this test started, killed by its PID when the test ends.
struct Agent(std::process::Child);
impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn push_over_ssh_with_the_agent() {
    let Some(world) = test_world::world_or_skip(&["WORLD_GIT_SSH_URL_BASE", "WORLD_GIT_SSH_KEY"])
    else {
        return;
    };
    if Command::new("ssh-agent")
        .arg("-h")
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        println!("ssh-agent absent: skipping");
        return;
    }
    let git = world.git().expect("git");
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("agent.sock");
    let agent = Agent(
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent"),
    );
    for _ in 0..50 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let added = Command::new("ssh-add")
        .arg(&git.ssh_key)
        .env("SSH_AUTH_SOCK", &sock)
        .stderr(Stdio::null())
        .status()
        .expect("ssh-add");
    assert!(added.success(), "ssh-add");
    // libssh2 reads SSH_AUTH_SOCK from the environment, and changing this process's environment
    // needs `unsafe` (forbidden here): run the push in a child with the variable set.
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "agent_push", "--ignored", "--nocapture"])
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .expect("the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(agent);
}

#[test]
#[ignore = "run by push_over_ssh_with_the_agent, with SSH_AUTH_SOCK pointing at its agent"]
fn agent_push() {
    let world = test_world::world_or_skip(&["WORLD_GIT_SSH_URL_BASE"]).expect("world");
    assert!(
        std::env::var_os("SSH_AUTH_SOCK").is_some(),
        "needs the agent"
    );
    let git = world.git().expect("git");
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    let (bare, _) = common::fresh_repo(&git, &git.ssh_url_base, &work);
    std::fs::create_dir_all(work.join("clusters/agent")).expect("mkdir");
    std::fs::write(
        work.join("clusters/agent/app.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: agent, namespace: team}\n",
    )
    .expect("write");
    let repo = Repo::open(&work).expect("open");
    let out = repo
        .commit_path(Path::new("clusters/agent"), None)
        .expect("commit");
    let auth = Auth {
        ssh_agent: true,
        known_hosts: Some(git.known_hosts.clone()),
        ..Default::default()
    };
    let pushed = repo.push(&auth).expect("push with the agent's key");
    assert_eq!(pushed.commit, out.commit());
    let b = git2::Repository::open_bare(&bare).expect("bare");
    assert_eq!(
        b.refname_to_id("refs/heads/main")
            .expect("main")
            .to_string(),
        out.commit()
    );
}
