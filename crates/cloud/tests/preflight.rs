//! Pre-flight against the world's OpenStack: a good definition in a fresh project passes; a bad
//! cloud (small quotas) with a bad definition (missing flavor and external network) yields one
//! report with every problem; a missing image is a problem unless it can be registered.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use cloud::preflight::{PreflightOptions, Report, preflight};
use serde_json::json;
use spec::model::ClusterDefinition;

/// A definition the world's cloud can hold with its default quotas: 1 + 2 + 1 machines (+3 surge),
/// one worker group booting from a volume, the API server behind Octavia.
const GOOD: &str = r#"
kubernetesVersion: v1.33.4
cloud:
  externalNetwork: public
  availabilityZones: [nova]
image:
  name: fake-image
controlPlane:
  count: 1
  flavor: m1.tiny
workers:
  - name: md-0
    count: 2
    flavor: m1.small
  - name: vol
    autoscale: {min: 0, max: 1}
    flavor: m1.nano
    rootVolume:
      sizeGib: 2
network:
  apiServerLoadBalancer: true
"#;

fn definition(yaml: &str) -> ClusterDefinition {
    spec::load_sources(
        "pf",
        &[spec::Source {
            path: "clusters/pf/cluster.yaml".into(),
            text: yaml.to_string(),
        }],
    )
    .unwrap_or_else(|d| panic!("definition loads: {d:?}"))
    .definition
}

fn fields(report: &Report) -> Vec<&str> {
    report.problems.iter().map(|p| p.field.as_str()).collect()
}

#[tokio::test]
async fn a_good_cloud_passes() {
    let Some(clouds) = common::world_clouds() else {
        return;
    };
    let admin = common::admin(&clouds).await;
    let project = common::TestProject::create(&admin, "preflight-ok").await;
    let session = project.session().await;
    let def = definition(GOOD);

    let t0 = std::time::Instant::now();
    let report = preflight(&session, &def, &PreflightOptions::default())
        .await
        .unwrap();
    eprintln!("preflight took {:?}\n{report}", t0.elapsed());
    assert!(report.is_ok(), "{report}");
    assert!(!report.checked.is_empty());
    let text = report.checked.join("\n");
    for expected in [
        "flavor m1.tiny",
        "flavor m1.small",
        "flavor m1.nano",
        "image fake-image",
        "external network public",
        "availability zone nova",
        "instances: needs 7",
        "cores: needs 7",
        "volumes: needs 2",
        "load_balancer: needs 1",
        "security_group:",
        "port:",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
    project.delete(&admin).await;
}

#[tokio::test]
async fn a_bad_cloud_gets_one_report_with_every_problem() {
    let Some(clouds) = common::world_clouds() else {
        return;
    };
    let admin = common::admin(&clouds).await;
    let project = common::TestProject::create(&admin, "preflight-bad").await;
    project
        .set_quotas(
            &admin,
            json!({"instances": 2, "cores": 2}),
            json!({"security_group": 1}),
            json!({"volumes": 1}),
        )
        .await;
    admin
        .request(&cloud::Call::put(
            cloud::Service::LoadBalancer,
            format!("lbaas/quotas/{}", project.project_id),
            json!({"quota": {"load_balancer": 0}}),
        ))
        .await
        .unwrap();
    let session = project.session().await;
    let yaml = GOOD
        .replace("externalNetwork: public", "externalNetwork: nope")
        .replace("flavor: m1.small", "flavor: m9.huge");
    let def = definition(&yaml);

    let report = preflight(&session, &def, &PreflightOptions::default())
        .await
        .unwrap();
    eprintln!("{report}");
    let found = fields(&report);
    assert!(report.problems.len() >= 7, "{report}");
    for field in [
        "workers[0].flavor",
        "cloud.externalNetwork",
        "quota.instances",
        "quota.cores",
        "quota.security_group",
        "quota.volumes",
        "quota.load_balancer",
    ] {
        assert_eq!(
            report.problems_of(field).count(),
            1,
            "{field} once in {found:?}\n{report}"
        );
    }
    let flavor = report.problems_of("workers[0].flavor").next().unwrap();
    assert!(flavor.message.contains("m9.huge"), "{flavor}");
    assert!(flavor.hint.contains("m1.small"), "{flavor}");
    let network = report.problems_of("cloud.externalNetwork").next().unwrap();
    assert!(network.message.contains("nope"), "{network}");
    assert!(network.hint.contains("public"), "{network}");
    let instances = report.problems_of("quota.instances").next().unwrap();
    assert!(
        instances.message.starts_with(
            "instances: needs 7 (1 control plane + 3 workers + 3 rolling-update surge), 2 left of 2"
        ),
        "{instances}"
    );
    // cores of the known flavors only: m9.huge cannot be counted, and says so
    let cores = report.problems_of("quota.cores").next().unwrap();
    assert!(
        cores.message.contains("needs 4") && cores.message.contains("not counting workers[0]"),
        "{cores}"
    );
    // one line per problem, after the heading
    assert_eq!(
        report.to_string().lines().count(),
        report.problems.len() + 1,
        "{report}"
    );
    // fine things are still reported as checked
    assert!(
        report
            .checked
            .iter()
            .any(|c| c.contains("image fake-image")),
        "{:?}",
        report.checked
    );

    // without the surge, 4 instances are needed
    let report = preflight(
        &session,
        &def,
        &PreflightOptions {
            rolling_update_surge: false,
        },
    )
    .await
    .unwrap();
    let instances = report.problems_of("quota.instances").next().unwrap();
    assert!(
        instances
            .message
            .starts_with("instances: needs 4 (1 control plane + 3 workers), 2 left"),
        "{instances}"
    );
    // Octavia keeps a project's quota record after the project is gone
    admin
        .delete_if_exists(
            cloud::Service::LoadBalancer,
            &format!("lbaas/quotas/{}", project.project_id),
        )
        .await
        .unwrap();
    project.delete(&admin).await;
}

#[tokio::test]
async fn a_missing_image_is_a_problem_unless_it_can_be_registered() {
    let Some(clouds) = common::world_clouds() else {
        return;
    };
    let admin = common::admin(&clouds).await;
    let project = common::TestProject::create(&admin, "preflight-img").await;
    let session = project.session().await;
    let missing = GOOD.replace("name: fake-image", "name: no-such-image-pf");
    let report = preflight(
        &session,
        &definition(&missing),
        &PreflightOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(fields(&report), vec!["image.name"], "{report}");
    assert!(
        report.problems[0].message.contains("no-such-image-pf"),
        "{report}"
    );

    let with_url = missing.replace(
        "name: no-such-image-pf",
        "name: no-such-image-pf\n  url: https://images.example.org/no-such-image-pf.qcow2",
    );
    let report = preflight(
        &session,
        &definition(&with_url),
        &PreflightOptions::default(),
    )
    .await
    .unwrap();
    assert!(report.is_ok(), "{report}");
    assert!(
        report
            .checked
            .iter()
            .any(|c| c.contains("no-such-image-pf") && c.contains("registered")),
        "{:?}",
        report.checked
    );

    // a flavor given by id is a problem too: machines select flavors by name
    let by_id = GOOD.replace("flavor: m1.tiny", "flavor: '1'");
    let report = preflight(&session, &definition(&by_id), &PreflightOptions::default())
        .await
        .unwrap();
    assert_eq!(fields(&report), vec!["controlPlane.flavor"], "{report}");
    assert!(report.problems[0].hint.contains("m1.tiny"), "{report}");
    project.delete(&admin).await;
}

#[tokio::test]
async fn a_token_without_project_is_a_problem_not_an_error() {
    let Some(clouds) = common::world_clouds() else {
        return;
    };
    let system = cloud::Session::connect(&cloud::CloudSelector::in_file("admin-system", &clouds))
        .await
        .expect("system-scoped admin authenticates");
    assert!(system.project_id.is_none());
    let report = preflight(&system, &definition(GOOD), &PreflightOptions::default()).await;
    match report {
        Ok(report) => {
            eprintln!("{report}");
            assert_eq!(report.problems_of("cloud.name").count(), 1, "{report}");
        }
        // some services refuse system-scoped reads outright; that is an error, clearly worded
        Err(e) => panic!("system-scoped preflight failed: {e}"),
    }
}
