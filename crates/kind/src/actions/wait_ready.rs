//! Action "wait for ready": until the deadline, the API server must answer `/readyz` and the
//! control-plane node must report `Ready=True` (kind's jsonpath query on the last condition).
//! kind only warns on timeout; we fail, because the bootstrap cannot go on without the API.

use std::time::{Duration, Instant};

use super::ActionContext;
use crate::provider::Provider;
use crate::{Error, Result};

/// kind's query: the status of each control-plane node's last condition.
const NODES_READY_JSONPATH: &str = "-o=jsonpath={.items..status.conditions[-1:].status}";

/// Waits until the API server is ready and the control-plane node is Ready.
pub async fn execute<P: Provider>(ctx: &ActionContext<'_, P>) -> Result<()> {
    let start = Instant::now();
    let mut api_ready = false;
    let mut last = String::new();
    while start.elapsed() < ctx.wait {
        if !api_ready {
            match ctx.kubectl(&["get", "--raw", "/readyz"], None).await {
                Ok(_) => {
                    api_ready = true;
                    tracing::info!(node = ctx.node, elapsed = ?start.elapsed(), "API server ready");
                }
                Err(e) => last = e.to_string(),
            }
        }
        if api_ready {
            match ctx
                .kubectl(
                    &[
                        "get",
                        "nodes",
                        "--selector=node-role.kubernetes.io/control-plane",
                        NODES_READY_JSONPATH,
                    ],
                    None,
                )
                .await
            {
                Ok(out) if nodes_ready(&out.stdout_text()) => return Ok(()),
                Ok(out) => last = format!("node conditions: {:?}", out.stdout_text()),
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(Error::Timeout {
        what: format!(
            "{} in {} (last: {last})",
            if api_ready {
                "the control-plane node to be Ready"
            } else {
                "the API server to answer /readyz"
            },
            ctx.node
        ),
        seconds: ctx.wait.as_secs(),
    })
}

/// kind's check: every field of the jsonpath output contains "True".
pub fn nodes_ready(out: &str) -> bool {
    let fields: Vec<&str> = out.split_whitespace().collect();
    !fields.is_empty() && fields.iter().all(|f| f.contains("True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_node_is() {
        assert!(nodes_ready("True"));
        assert!(nodes_ready("True True"));
        assert!(!nodes_ready("True False"));
        assert!(!nodes_ready(""));
    }
}
