//! Injected failures through the world's OpenStack fault proxy (lib/osfaultproxy.py: every API
//! behind it, the catalog rewritten to point back through it): 5xx and timeouts are retried and the
//! work completes; a refused credential fails at once, without a retry storm.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use cloud::sweep::{SweepOptions, sweep};
use cloud::{Call, CloudSelector, ClusterIdentity, Error, RetryPolicy, Service, Session};
use serde_json::{Value, json};

struct Proxy {
    control: String,
    faulty_clouds: std::path::PathBuf,
}

fn proxy() -> Option<Proxy> {
    let world =
        test_world::world_or_skip(&["WORLD_OS_FAULTY_CLOUDS_YAML", "WORLD_OS_FAULTPROXY_CONTROL"])?;
    Some(Proxy {
        control: world.var("WORLD_OS_FAULTPROXY_CONTROL")?.to_string(),
        faulty_clouds: world.var("WORLD_OS_FAULTY_CLOUDS_YAML")?.into(),
    })
}

/// The control API with curl (plain HTTP on 127.0.0.1).
fn control(p: &Proxy, method: &str, body: Option<Value>) -> Value {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-fsS", "-X", method, &format!("{}/faults", p.control)]);
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "-d", &b.to_string()]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The test project's clouds.yaml, pointed at the proxied Keystone.
fn through_proxy(p: &Proxy, project: &common::TestProject) -> std::path::PathBuf {
    let faulty = std::fs::read_to_string(&p.faulty_clouds).unwrap();
    let proxied_auth = faulty
        .lines()
        .find_map(|l| l.trim().strip_prefix("auth_url: "))
        .unwrap()
        .to_string();
    let text = std::fs::read_to_string(&project.clouds_file)
        .unwrap()
        .replace(&project.auth_url, &proxied_auth);
    let file = project.dir.path().join("clouds-proxied.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 8,
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
    }
}

// One test: the proxy's rules are global, so the scenarios must not overlap in time.
#[tokio::test]
async fn transient_failures_are_retried_and_refusals_are_not() {
    let Some(p) = proxy() else { return };
    let Some(clouds) = common::world_clouds() else {
        return;
    };
    let admin = common::admin(&clouds).await;
    let project = common::TestProject::create(&admin, "faults").await;
    let file = through_proxy(&p, &project);
    control(&p, "DELETE", None);

    // --- 5xx on every service, and timeouts, while creating and sweeping a cluster's resources
    let selector = CloudSelector {
        timeout: Some(Duration::from_secs(2)),
        ..CloudSelector::in_file("test", &file)
    };
    // the first token request fails twice with 503: authentication retries transient answers
    control(
        &p,
        "POST",
        Some(json!({"status": 503, "count": 2, "method": "POST", "path": "/v3/auth/tokens"})),
    );
    let s = Session::connect(&selector)
        .await
        .unwrap()
        .with_retry(quick_retry());
    for rule in [
        json!({"status": 503, "count": 4, "path": "/v2.0/(networks|security-groups|ports)"}),
        json!({"status": 502, "count": 2, "method": "GET", "path": "os-server-groups"}),
        json!({"status": 500, "count": 2, "method": "GET", "path": "/volumes"}),
        json!({"status": 504, "count": 2, "method": "GET", "path": "lbaas"}),
        json!({"status": 429, "count": 2, "path": "/v2.0/routers"}),
        // slower than the client's 2 s timeout: no answer at all, on reads only (a timed-out
        // POST may have been carried out; creates are made idempotent by find-before-create)
        json!({"delay_ms": 3000, "count": 2, "method": "GET", "path": "/v2.0/(security-groups|subnets)"}),
    ] {
        control(&p, "POST", Some(rule));
    }
    let c = ClusterIdentity::new("faulty", "fleet");
    let tags = json!(["managed-by=manage", c.tag()]);
    let net = s
        .request(&Call::post(
            Service::Network,
            "networks",
            json!({"network": {"name": c.capo_network(), "description": c.capo_description()}}),
        ))
        .await
        .unwrap();
    let net_id = net["network"]["id"].as_str().unwrap().to_string();
    s.request(&Call::put(
        Service::Network,
        format!("networks/{net_id}/tags"),
        json!({"tags": tags}),
    ))
    .await
    .unwrap();
    let sg = s
        .request(&Call::post(
            Service::Network,
            "security-groups",
            json!({"security_group": {"name": c.cni_security_group()}}),
        ))
        .await
        .unwrap();
    let sg_id = sg["security_group"]["id"].as_str().unwrap().to_string();
    s.request(&Call::put(
        Service::Network,
        format!("security-groups/{sg_id}/tags"),
        json!({"tags": tags}),
    ))
    .await
    .unwrap();
    common::server_group(
        &s,
        &spec::render::names::control_plane(&c.name),
        "anti-affinity",
    )
    .await;
    s.request(&Call::post(
        Service::BlockStorage,
        "volumes",
        json!({"volume": {"size": 1, "name": "pvc-x", "metadata": {"cinder.csi.openstack.org/cluster": c.name}}}),
    ))
    .await
    .unwrap();
    let opts = SweepOptions {
        server_groups: vec![spec::render::names::control_plane(&c.name)],
        wait: Duration::from_secs(120),
        ..SweepOptions::default()
    };
    let report = sweep(&s, &c, &opts).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.failed);
    assert_eq!(report.deleted.len(), 4, "{:?}", report.deleted);
    let stats = control(&p, "GET", None);
    let rules = stats["rules"].as_array().unwrap();
    for r in rules {
        let want = r["count"].as_u64().unwrap();
        assert_eq!(
            r["hits"].as_u64().unwrap(),
            want,
            "rule not (fully) exercised: {r}"
        );
    }
    println!(
        "faults: {} requests through the proxy, {} injected answers, 2 timeouts",
        stats["requests"], stats["injected"]
    );
    // nothing was created twice despite the retries
    let direct = project.session().await;
    assert!(
        sweep(
            &direct,
            &c,
            &SweepOptions {
                dry_run: true,
                ..opts.clone()
            }
        )
        .await
        .unwrap()
        .found
        .is_empty()
    );

    // --- a POST answered 502 may have been carried out: reported, not sent again
    control(&p, "DELETE", None);
    control(
        &p,
        "POST",
        Some(json!({"status": 502, "count": 1, "method": "POST", "path": "/v2.0/security-groups"})),
    );
    let err = s
        .request(&Call::post(
            Service::Network,
            "security-groups",
            json!({"security_group": {"name": "never-twice"}}),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(502), "{err}");
    assert_eq!(control(&p, "GET", None)["rules"][0]["hits"], 1);

    // --- a wrong password: one refusal, no retries
    control(&p, "DELETE", None);
    let bad = project.dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace(&project.password, "wrong"),
    )
    .unwrap();
    let before = control(&p, "GET", None)["requests"].as_u64().unwrap();
    let t0 = Instant::now();
    let err = Session::connect(&CloudSelector::in_file("test", &bad))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    assert!(err.to_string().contains("check the credentials"), "{err}");
    let requests = control(&p, "GET", None)["requests"].as_u64().unwrap() - before;
    assert!(requests <= 3, "{requests} requests for one refused login");
    assert!(t0.elapsed() < Duration::from_secs(3));

    // --- a 401 on an ordinary call (token revoked underneath us): reported, not retried
    control(
        &p,
        "POST",
        Some(json!({"status": 401, "path": "/v2.0/networks"})),
    );
    let err = s
        .list(Call::get(Service::Network, "networks"), "networks")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    let hits = control(&p, "GET", None)["rules"][0]["hits"]
        .as_u64()
        .unwrap();
    assert_eq!(hits, 1, "a 401 was retried");
    control(&p, "DELETE", None);
    project.delete(&admin).await;
}
