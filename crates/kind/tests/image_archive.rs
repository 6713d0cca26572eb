//! `--image-archive FILE`: an absent node image is loaded from a `docker save` tarball through the
//! Docker API (air-gapped hosts), and an archive without the image is a clear error.

mod common;

use std::io::Write;

use bollard::query_parameters::{RemoveImageOptionsBuilder, TagImageOptionsBuilder};
use futures::StreamExt;
use kind::{Error, Provider};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_an_absent_image_from_an_archive() {
    let Some(d) = common::docker_or_skip().await else {
        return;
    };
    let docker = d.provider.client();
    let repo = "manage-kind-test/node-archive";
    let tag = test_world::unique_name("t");
    let image = format!("{repo}:{tag}");
    docker
        .tag_image(
            &d.image,
            Some(
                TagImageOptionsBuilder::default()
                    .repo(repo)
                    .tag(&tag)
                    .build(),
            ),
        )
        .await
        .expect("tag");
    // docker save, then drop the tag: the image is absent under that name, the archive has it.
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("node.tar");
    {
        let mut f = std::fs::File::create(&archive).expect("create archive");
        let mut stream = docker.export_image(&image);
        while let Some(chunk) = stream.next().await {
            f.write_all(&chunk.expect("save")).expect("write");
        }
    }
    let untag = || async {
        let _ = docker
            .remove_image(
                &image,
                Some(RemoveImageOptionsBuilder::default().noprune(true).build()),
                None,
            )
            .await;
    };
    untag().await;
    assert!(docker.inspect_image(&image).await.is_err(), "absent before");

    let lines = std::sync::Mutex::new(Vec::new());
    let progress = |l: &str| lines.lock().expect("lock").push(l.to_string());
    d.provider
        .ensure_image(&image, Some(&archive), &progress)
        .await
        .expect("loaded from the archive");
    assert!(docker.inspect_image(&image).await.is_ok(), "present after");
    println!("{:?}", lines.lock().expect("lock"));

    // an archive that does not hold the image asked for
    let other = format!("{repo}:not-in-archive");
    let e = d
        .provider
        .ensure_image(&other, Some(&archive), &progress)
        .await
        .expect_err("not in archive");
    assert!(matches!(e, Error::ImageArchive { .. }), "{e:?}");
    assert!(e.to_string().contains("does not contain"), "{e}");
    untag().await;
}
