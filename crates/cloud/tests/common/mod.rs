//! Shared setup of the cloud crate's world tests: a fresh Keystone project and user per test on the
//! world's OpenStack (so tests never see each other's resources), with a clouds.yaml of its own.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::path::PathBuf;

use cloud::{Call, CloudSelector, Service, Session};
use serde_json::{Value, json};

/// The world's clouds.yaml, or None (test skipped, or failed under WORLD_REQUIRED=1).
pub fn world_clouds() -> Option<PathBuf> {
    let world = test_world::world_or_skip(&["WORLD_OS_CLOUDS_YAML"])?;
    Some(PathBuf::from(world.var("WORLD_OS_CLOUDS_YAML")?))
}

/// The world's admin (project-scoped) session.
pub async fn admin(clouds: &PathBuf) -> Session {
    Session::connect(&CloudSelector::in_file("admin", clouds))
        .await
        .expect("admin authenticates")
}

/// A throw-away project with a member user; `clouds_file` has one entry, `test`.
pub struct TestProject {
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    pub password: String,
    pub dir: tempfile::TempDir,
    pub clouds_file: PathBuf,
    pub auth_url: String,
}

fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{:x}", std::process::id(), n % 0xffffff)
}

async fn id_of(admin: &Session, path: &str, key: &str, name: &str) -> String {
    let v = admin
        .request(&Call::get(Service::Identity, path).query("name", name))
        .await
        .unwrap();
    v[key][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{key} {name} not found"))
        .to_string()
}

impl TestProject {
    /// Creates the project, the user and grants `member` (and `load-balancer_member` when Keystone
    /// has it) on the project.
    pub async fn create(admin: &Session, prefix: &str) -> TestProject {
        let name = unique(prefix);
        let password = format!("pw-{}", unique("x"));
        let p = admin
            .request(&Call::post(
                Service::Identity,
                "projects",
                json!({"project": {"name": name, "domain_id": "default"}}),
            ))
            .await
            .unwrap();
        let project_id = p["project"]["id"].as_str().unwrap().to_string();
        let u = admin
            .request(&Call::post(
                Service::Identity,
                "users",
                json!({"user": {"name": name, "password": password, "domain_id": "default", "default_project_id": project_id}}),
            ))
            .await
            .unwrap();
        let user_id = u["user"]["id"].as_str().unwrap().to_string();
        for role in ["member", "load-balancer_member"] {
            let roles = admin
                .request(&Call::get(Service::Identity, "roles").query("name", role))
                .await
                .unwrap();
            if let Some(rid) = roles["roles"][0]["id"].as_str() {
                admin
                    .request_raw(&Call::new(
                        http::Method::PUT,
                        Service::Identity,
                        format!("projects/{project_id}/users/{user_id}/roles/{rid}"),
                    ))
                    .await
                    .unwrap();
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let clouds_file = dir.path().join("clouds.yaml");
        let auth_url = admin.auth_url.clone();
        std::fs::write(
            &clouds_file,
            format!(
                "clouds:\n  test:\n    auth:\n      auth_url: {auth_url}\n      username: {name}\n      password: {password}\n      project_name: {name}\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n"
            ),
        )
        .unwrap();
        TestProject {
            name,
            project_id,
            user_id,
            password,
            dir,
            clouds_file,
            auth_url,
        }
    }

    pub fn selector(&self) -> CloudSelector {
        CloudSelector::in_file("test", &self.clouds_file)
    }

    pub async fn session(&self) -> Session {
        Session::connect(&self.selector())
            .await
            .expect("test project authenticates")
    }

    /// Sets Nova/Neutron/Cinder quotas of the project (admin only).
    pub async fn set_quotas(&self, admin: &Session, compute: Value, network: Value, volume: Value) {
        if compute.as_object().is_some_and(|m| !m.is_empty()) {
            admin
                .request(&Call::put(
                    Service::Compute,
                    format!("os-quota-sets/{}", self.project_id),
                    json!({"quota_set": compute}),
                ))
                .await
                .unwrap();
        }
        if network.as_object().is_some_and(|m| !m.is_empty()) {
            admin
                .request(&Call::put(
                    Service::Network,
                    format!("quotas/{}", self.project_id),
                    json!({"quota": network}),
                ))
                .await
                .unwrap();
        }
        if volume.as_object().is_some_and(|m| !m.is_empty()) {
            admin
                .request(&Call::put(
                    Service::BlockStorage,
                    format!("os-quota-sets/{}", self.project_id),
                    json!({"quota_set": volume}),
                ))
                .await
                .unwrap();
        }
    }

    /// Deletes the user and the project (resources inside are the test's to sweep).
    pub async fn delete(self, admin: &Session) {
        let _ = admin
            .delete_if_exists(Service::Identity, &format!("users/{}", self.user_id))
            .await;
        let _ = admin
            .delete_if_exists(Service::Identity, &format!("projects/{}", self.project_id))
            .await;
    }
}

pub async fn role_id(admin: &Session, name: &str) -> String {
    id_of(admin, "roles", "roles", name).await
}

/// Creates a Nova server group as CAPO's users do (microversion 2.64); returns its id.
pub async fn server_group(s: &Session, name: &str, policy: &str) -> String {
    let v = s
        .request(
            &Call::post(
                Service::Compute,
                "os-server-groups",
                json!({"server_group": {"name": name, "policy": policy}}),
            )
            .microversion(2, 64),
        )
        .await
        .unwrap();
    v["server_group"]["id"].as_str().unwrap().to_string()
}
