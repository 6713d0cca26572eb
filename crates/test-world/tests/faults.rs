//! Smoke test: the fault proxies in front of the mgmt API server inject failures a client sees:
//! an HTTP 503 (our HTTP fault proxy) and TCP latency and a cut (toxiproxy).

use std::process::Command;
use std::time::{Duration, Instant};

use test_world::run;

fn curl(args: &[&str]) -> String {
    run(Command::new("curl").args(["-fsS"]).args(args)).expect("curl")
}

#[tokio::test]
async fn the_http_fault_proxy_injects_a_503() {
    let Some(world) = test_world::world_or_skip(&["WORLD_FAULTPROXY_CONTROL_MGMT"]) else {
        return;
    };
    let faults = world.faults("mgmt").expect("fault proxy");
    let client = test_world::client_from_kubeconfig(&faults.http_kubeconfig)
        .await
        .expect("client");
    client
        .apiserver_version()
        .await
        .expect("passes through without faults");
    // kubectl does not retry a 503 without Retry-After, so it shows the injected answer as is
    let kubectl = || {
        let mut c = Command::new(world.bin("kubectl").expect("kubectl"));
        c.arg("--kubeconfig")
            .arg(&faults.http_kubeconfig)
            .args(["get", "--raw", "/version"]);
        c.output().expect("kubectl")
    };
    let injected = || -> i64 {
        let stats: serde_json::Value =
            serde_json::from_str(&curl(&[&format!("{}/faults", faults.http_control)]))
                .expect("stats");
        stats["injected"].as_i64().expect("injected counter")
    };
    let before = injected();
    curl(&[
        "-X",
        "POST",
        &format!("{}/faults", faults.http_control),
        "-d",
        r#"{"status":503,"path":"^/version","count":1}"#,
    ]);
    let failed = kubectl();
    let stderr = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert!(
        !failed.status.success(),
        "the injected 503 fails the request"
    );
    assert!(
        stderr.contains("ServiceUnavailable") || stderr.contains("503"),
        "expected a 503, got: {stderr}"
    );
    assert_eq!(injected() - before, 1, "one 503 injected");
    curl(&["-X", "DELETE", &format!("{}/faults", faults.http_control)]);
    assert!(
        kubectl().status.success(),
        "healthy again after the rule is used up"
    );
    client
        .apiserver_version()
        .await
        .expect("healthy again for kube clients");
}

#[tokio::test]
async fn toxiproxy_adds_latency_and_cuts_the_connection() {
    let Some(world) =
        test_world::world_or_skip(&["WORLD_TOXIPROXY_API", "WORLD_TOXIPROXY_KUBECONFIG_MGMT"])
    else {
        return;
    };
    let faults = world.faults("mgmt").expect("fault proxy");
    let proxy = format!("{}/proxies/apiserver-mgmt", faults.toxiproxy_api);
    let kubectl = |timeout: &str| {
        let mut c = Command::new(world.bin("kubectl").expect("kubectl"));
        c.arg("--kubeconfig")
            .arg(&faults.toxiproxy_kubeconfig)
            .args(["--request-timeout", timeout, "get", "--raw", "/version"]);
        c.output().expect("kubectl")
    };
    assert!(
        kubectl("10s").status.success(),
        "passes through without toxics"
    );

    curl(&[
        "-X",
        "POST",
        &format!("{proxy}/toxics"),
        "-d",
        r#"{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":1500}}"#,
    ]);
    let t0 = Instant::now();
    let slow = kubectl("20s");
    let took = t0.elapsed();
    curl(&["-X", "DELETE", &format!("{proxy}/toxics/slow")]);
    assert!(slow.status.success(), "slow but served");
    assert!(
        took >= Duration::from_millis(1500),
        "latency toxic applied: took {took:?}"
    );

    curl(&["-X", "POST", &proxy, "-d", r#"{"enabled":false}"#]);
    let cut = kubectl("5s");
    curl(&["-X", "POST", &proxy, "-d", r#"{"enabled":true}"#]);
    assert!(!cut.status.success(), "the cut connection fails");
    assert!(
        kubectl("10s").status.success(),
        "served again after the cut"
    );
}
