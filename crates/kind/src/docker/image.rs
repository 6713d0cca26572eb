//! The node image: present, loaded from a `docker save` tarball (air-gapped), or pulled with
//! progress (kind retries the pull; so do we).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::query_parameters::{CreateImageOptionsBuilder, ImportImageOptionsBuilder};
use futures::StreamExt;

use super::{DockerProvider, server_error};
use crate::provider::Progress;
use crate::{Error, Result};

const PULL_ATTEMPTS: u64 = 3;

pub(super) async fn ensure(
    p: &DockerProvider,
    image: &str,
    archive: Option<&Path>,
    progress: Progress<'_>,
) -> Result<()> {
    if present(p, image).await? {
        tracing::debug!(image, "node image present");
        return Ok(());
    }
    if let Some(archive) = archive {
        return load(p, image, archive, progress).await;
    }
    pull(p, image, progress).await
}

async fn present(p: &DockerProvider, image: &str) -> Result<bool> {
    match p.docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(e) if matches!(server_error(&e), Some((404, _))) => Ok(false),
        Err(e) => Err(p.err(format!("inspect image {image}"), e)),
    }
}

/// `docker load -i archive`, through the API.
async fn load(
    p: &DockerProvider,
    image: &str,
    archive: &Path,
    progress: Progress<'_>,
) -> Result<()> {
    let arch_err = |reason: String| Error::ImageArchive {
        path: archive.to_path_buf(),
        reason,
    };
    let file = tokio::fs::File::open(archive)
        .await
        .map_err(|e| arch_err(e.to_string()))?;
    progress(&format!("Loading node image from {}", archive.display()));
    let body = tokio_util::io::ReaderStream::new(file);
    let opts = ImportImageOptionsBuilder::default().quiet(false).build();
    let mut stream = p.docker.import_image_stream(opts, body, None);
    let mut loaded = Vec::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| match server_error(&e) {
            Some((_, m)) => arch_err(m.to_string()),
            None => arch_err(e.to_string()),
        })?;
        if let Some(s) = info
            .stream
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            progress(s);
            loaded.push(s.to_string());
        }
    }
    if present(p, image).await? {
        Ok(())
    } else {
        Err(arch_err(format!(
            "it does not contain {image} ({})",
            if loaded.is_empty() {
                "it loaded nothing".to_string()
            } else {
                loaded.join("; ")
            }
        )))
    }
}

/// `docker pull image`, reporting each layer's status changes.
async fn pull(p: &DockerProvider, image: &str, progress: Progress<'_>) -> Result<()> {
    let mut reason = String::new();
    for attempt in 0..PULL_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(attempt)).await;
        }
        progress(&format!("Pulling node image {image}"));
        let opts = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut stream = p.docker.create_image(Some(opts), None, None);
        let mut last: HashMap<String, String> = HashMap::new();
        let mut failed = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    let id = info.id.unwrap_or_default();
                    let status = info.status.unwrap_or_default();
                    if last.get(&id) != Some(&status) {
                        progress(format!("{id} {status}").trim());
                        last.insert(id, status);
                    }
                }
                Err(e) => {
                    failed = Some(match server_error(&e) {
                        Some((_, m)) => m.to_string(),
                        None => match crate::error::classify_connection(&p.host, &e) {
                            Some(conn) => return Err(conn),
                            None => e.to_string(),
                        },
                    });
                    break;
                }
            }
        }
        match failed {
            None if present(p, image).await? => return Ok(()),
            None => reason = "the pull finished without the image".into(),
            Some(r) => reason = r,
        }
        tracing::warn!(image, attempt, reason, "pull failed");
    }
    Err(Error::ImageMissing {
        image: image.to_string(),
        reason: one_line(&reason),
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
