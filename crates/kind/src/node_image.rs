//! Which node image a cluster uses by default: the kindest/node image pinned (tag and digest)
//! for a Kubernetes version, as kind v0.32.0 pins it.

use crate::{Error, Result};

/// Pinned node images, newest first: (Kubernetes version, image reference with digest).
/// Only images whose full digest we have verified are listed.
pub const PINNED_NODE_IMAGES: &[(&str, &str)] = &[(
    "v1.36.1",
    "kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5",
)];

/// The default node image (kind v0.32.0's default).
pub const DEFAULT_NODE_IMAGE: &str = PINNED_NODE_IMAGES[0].1;

/// The pinned node image for Kubernetes `version` (`v1.36.1` or `1.36.1`), or the default when
/// `None`.
pub fn node_image_for(version: Option<&str>) -> Result<&'static str> {
    let Some(version) = version else {
        return Ok(DEFAULT_NODE_IMAGE);
    };
    let want = format!("v{}", version.trim().trim_start_matches('v'));
    PINNED_NODE_IMAGES
        .iter()
        .find(|(v, _)| *v == want)
        .map(|(_, image)| *image)
        .ok_or_else(|| Error::NoPinnedImage {
            version: want,
            pinned: PINNED_NODE_IMAGES
                .iter()
                .map(|(v, _)| *v)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_with_digest() {
        assert_eq!(node_image_for(None).expect("default"), DEFAULT_NODE_IMAGE);
        assert!(
            node_image_for(Some("1.36.1"))
                .expect("pinned")
                .contains("@sha256:")
        );
        let e = node_image_for(Some("v1.20.0")).expect_err("unpinned");
        assert!(e.to_string().contains("--image"), "{e}");
    }
}
