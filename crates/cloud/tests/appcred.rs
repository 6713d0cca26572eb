//! Per-cluster application credentials against the world's Keystone: create, authenticate with the
//! rendered clouds.yaml, idempotent ensure, rotation, revocation (only this cluster's), the hint
//! when a restricted credential tries to mint more, and expiry.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use cloud::appcred::{
    AccessRule, AppCredential, CredentialOptions, Credentials, Ensured, NewCredential, Role,
};
use cloud::{Call, CloudSelector, ClusterIdentity, Error, Service, Session};
use secrecy::ExposeSecret;

/// Writes the credential's clouds.yaml into `dir` and authenticates with it.
async fn connect_with(
    session: &Session,
    dir: &Path,
    new: &NewCredential,
) -> cloud::Result<Session> {
    let entry = format!("cred-{}", new.credential.role);
    let text = new.clouds_yaml(session, &entry).unwrap();
    let file = dir.join(format!("{}.yaml", new.credential.id));
    std::fs::write(&file, text.expose_secret()).unwrap();
    Session::connect(&CloudSelector::in_file(entry, file)).await
}

/// Authenticates with the credential and makes a real call (list networks).
async fn works(session: &Session, dir: &Path, new: &NewCredential) {
    let s = connect_with(session, dir, new)
        .await
        .unwrap_or_else(|e| panic!("{} authenticates: {e}", new.credential.name));
    assert_eq!(
        s.application_credential_id.as_deref(),
        Some(new.credential.id.as_str())
    );
    assert_eq!(s.project_id, session.project_id);
    s.list(Call::get(Service::Network, "networks"), "networks")
        .await
        .unwrap_or_else(|e| panic!("{} lists networks: {e}", new.credential.name));
}

/// Authenticating with the credential is refused at once.
async fn refused(session: &Session, dir: &Path, new: &NewCredential) {
    let t0 = Instant::now();
    let err = connect_with(session, dir, new)
        .await
        .expect_err("a revoked credential must not authenticate");
    assert!(
        matches!(err, Error::Auth { .. }),
        "{}: {err}",
        new.credential.name
    );
    println!(
        "{} refused in {:?}: {err}",
        new.credential.name,
        t0.elapsed()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "{}: refusal took {:?}",
        new.credential.name,
        t0.elapsed()
    );
}

fn created(e: Ensured) -> NewCredential {
    match e {
        Ensured::Created(n) => n,
        Ensured::Existing(c) => panic!("expected a new credential, found {c:?}"),
    }
}

fn ids(list: &[AppCredential]) -> Vec<&str> {
    let mut v: Vec<&str> = list.iter().map(|c| c.id.as_str()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn create_ensure_rotate_revoke_one_cluster_only() {
    let Some(clouds) = common::world_clouds() else {
        return;
    };
    let admin = common::admin(&clouds).await;
    let project = common::TestProject::create(&admin, "appcred").await;
    let s = project.session().await;
    let dir = project.dir.path();
    let opts = CredentialOptions::default();

    // cluster B first; its name starts like A's CAPO credentials (`a-capo`)
    let b = ClusterIdentity::new("a-capo", "fleet");
    let creds_b = Credentials::new(&s, &b);
    let b_capo = created(creds_b.ensure(Role::Capo, &opts).await.unwrap());
    let b_cp = created(creds_b.ensure(Role::CloudProvider, &opts).await.unwrap());
    assert_eq!(b_capo.credential.name, "manage-fleet-a-capo-capo-1");

    let a = ClusterIdentity::new("a", "fleet");
    let creds = Credentials::new(&s, &a);
    let t0 = Instant::now();
    let capo = created(creds.ensure(Role::Capo, &opts).await.unwrap());
    let cp = created(creds.ensure(Role::CloudProvider, &opts).await.unwrap());
    println!("create both: {:?}", t0.elapsed());
    assert_eq!(capo.credential.name, "manage-fleet-a-capo-1");
    assert_eq!(cp.credential.name, "manage-fleet-a-cloud-provider-1");
    assert_eq!(capo.credential.role, Role::Capo);
    assert_eq!(capo.credential.generation, 1);
    // the caller's roles on the project, by default
    assert!(
        capo.credential.roles.iter().any(|r| r == "member"),
        "{:?}",
        capo.credential.roles
    );
    // the secret never shows in Debug
    assert!(!format!("{capo:?}").contains(capo.secret.expose_secret()));

    let t0 = Instant::now();
    works(&s, dir, &capo).await;
    works(&s, dir, &cp).await;
    println!("authenticate both: {:?}", t0.elapsed());

    // idempotent: nothing new
    for role in Role::ALL {
        match creds.ensure(role, &opts).await.unwrap() {
            Ensured::Existing(c) => {
                let want = if role == Role::Capo { &capo } else { &cp };
                assert_eq!(c.id, want.credential.id);
            }
            Ensured::Created(n) => panic!("ensure duplicated {role}: {}", n.credential.name),
        }
    }
    let listed = creds.list().await.unwrap();
    assert_eq!(
        ids(&listed),
        ids(&[capo.credential.clone(), cp.credential.clone()])
    );
    assert_eq!(creds_b.list().await.unwrap().len(), 2);

    // rotation: the next generation works, then the old one is revoked
    let capo2 = creds.rotate(Role::Capo, &opts).await.unwrap();
    assert_eq!(capo2.credential.name, "manage-fleet-a-capo-2");
    works(&s, dir, &capo2).await;
    assert_eq!(creds.list().await.unwrap().len(), 3);
    // a newer generation is what ensure finds
    match creds.ensure(Role::Capo, &opts).await.unwrap() {
        Ensured::Existing(c) => assert_eq!(c.id, capo2.credential.id),
        Ensured::Created(n) => panic!("ensure created {}", n.credential.name),
    }
    // keep_id must be ours
    let err = creds
        .revoke_old(Role::Capo, &b_capo.credential.id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    let revoked = creds
        .revoke_old(Role::Capo, &capo2.credential.id)
        .await
        .unwrap();
    assert_eq!(ids(&revoked), vec![capo.credential.id.as_str()]);
    refused(&s, dir, &capo).await;
    works(&s, dir, &capo2).await;
    works(&s, dir, &cp).await;

    // cleanup of A: both gone, B untouched
    let revoked = creds.revoke_all().await.unwrap();
    assert_eq!(revoked.len(), 2);
    refused(&s, dir, &capo2).await;
    refused(&s, dir, &cp).await;
    assert!(creds.list().await.unwrap().is_empty());
    // again: nothing left, nothing fails
    assert!(creds.revoke_all().await.unwrap().is_empty());
    works(&s, dir, &b_capo).await;
    works(&s, dir, &b_cp).await;
    assert_eq!(creds_b.list().await.unwrap().len(), 2);

    // after a full cleanup, ensure starts over
    let again = created(creds.ensure(Role::Capo, &opts).await.unwrap());
    assert_eq!(again.credential.name, "manage-fleet-a-capo-1");

    creds.revoke_all().await.unwrap();
    creds_b.revoke_all().await.unwrap();
    project.delete(&admin).await;
}

#[tokio::test]
async fn a_restricted_credential_cannot_mint_more() {
    let Some(clouds) = common::world_clouds() else {
        return;
    };
    let admin = common::admin(&clouds).await;
    let project = common::TestProject::create(&admin, "appcred-r").await;
    let s = project.session().await;
    let cluster = ClusterIdentity::new("prod", "fleet");
    let creds = Credentials::new(&s, &cluster);
    let opts = CredentialOptions::default();
    let capo = created(creds.ensure(Role::Capo, &opts).await.unwrap());

    let entry = "capo";
    let file = project.dir.path().join("capo.yaml");
    std::fs::write(&file, capo.clouds_yaml(&s, entry).unwrap().expose_secret()).unwrap();
    let restricted = Session::connect(&CloudSelector::in_file(entry, &file))
        .await
        .unwrap();
    assert!(restricted.application_credential_id.is_some());

    let as_cred = Credentials::new(&restricted, &cluster);
    // listing is allowed and sees the same credential
    assert_eq!(as_cred.list().await.unwrap().len(), 1);
    let err = as_cred
        .ensure(Role::CloudProvider, &opts)
        .await
        .unwrap_err();
    let text = err.to_string();
    println!("{text}");
    assert!(matches!(err, Error::Forbidden { .. }), "{text}");
    assert!(text.contains("--unrestricted"), "{text}");
    assert!(text.contains("password"), "{text}");
    assert!(text.contains(&capo.credential.id), "{text}");
    let err = as_cred.rotate(Role::Capo, &opts).await.unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err}");
    // nor delete: revocation is the password login's job
    let err = as_cred.revoke_all().await.unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err}");
    assert_eq!(creds.list().await.unwrap().len(), 1);

    creds.revoke_all().await.unwrap();
    project.delete(&admin).await;
}

#[tokio::test]
async fn expiry_roles_and_access_rules() {
    let Some(clouds) = common::world_clouds() else {
        return;
    };
    let admin = common::admin(&clouds).await;
    let project = common::TestProject::create(&admin, "appcred-x").await;
    let s = project.session().await;
    let cluster = ClusterIdentity::new("exp", "fleet");
    let creds = Credentials::new(&s, &cluster);

    // an expiry in the past is refused before Keystone is asked
    let past = CredentialOptions {
        expires_at: Some(chrono::Utc::now() - chrono::TimeDelta::minutes(1)),
        ..CredentialOptions::default()
    };
    let err = creds.ensure(Role::Capo, &past).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");

    let at = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    let opts = CredentialOptions {
        expires_at: Some(at),
        roles: vec!["reader".into()],
        ..CredentialOptions::default()
    };
    let capo = created(creds.ensure(Role::Capo, &opts).await.unwrap());
    let listed = creds.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    let expires = listed[0].expires_at.expect("expiry listed");
    assert!((expires - at).num_seconds().abs() <= 1, "{expires} vs {at}");
    assert_eq!(listed[0].roles, vec!["reader".to_string()]);
    assert_eq!(listed[0].id, capo.credential.id);
    // (not authenticated with: Keystone caps the token at the credential's expiry, 1 h, and then
    // writes the token's expires_at without a time zone, which openstack_sdk cannot parse)

    // a role the user does not have is a clear error
    let err = creds
        .rotate(
            Role::Capo,
            &CredentialOptions {
                roles: vec!["admin".into()],
                ..CredentialOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");

    // access rules: sent only when asked; this Keystone (Zed) takes them
    let in_two_days = chrono::Utc::now() + chrono::TimeDelta::days(2);
    let rules = CredentialOptions {
        expires_at: Some(in_two_days),
        access_rules: vec![AccessRule {
            service: "network".into(),
            method: "GET".into(),
            path: "/v2.0/networks".into(),
        }],
        ..CredentialOptions::default()
    };
    let cp = created(creds.ensure(Role::CloudProvider, &rules).await.unwrap());
    let listed = creds.list().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|c| c.expires_at.is_some()));
    let s2 = connect_with(&s, project.dir.path(), &cp).await.unwrap();
    assert_eq!(
        s2.application_credential_id.as_deref(),
        Some(cp.credential.id.as_str())
    );

    creds.revoke_all().await.unwrap();
    assert!(creds.list().await.unwrap().is_empty());
    project.delete(&admin).await;
}
