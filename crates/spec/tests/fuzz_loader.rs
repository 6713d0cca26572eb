//! Property tests of the loader: no input makes it panic, and every diagnostic points inside the
//! files it was given. Case counts follow PROPTEST_CASES (CI default 256; longer runs in the README).

use proptest::prelude::*;
use spec::{Source, load_sources};
use std::path::PathBuf;

const EXAMPLE: &str = include_str!("../../../clusters/example/cluster.yaml");
const DEFAULTS: &str = include_str!("../../../clusters/defaults.yaml");

fn check(defaults: &str, cluster: &str) {
    let sources = [
        Source {
            path: PathBuf::from("clusters/defaults.yaml"),
            text: defaults.to_string(),
        },
        Source {
            path: PathBuf::from("clusters/f/cluster.yaml"),
            text: cluster.to_string(),
        },
    ];
    if let Err(diags) = load_sources("f", &sources) {
        assert!(!diags.0.is_empty(), "an error without diagnostics");
        for d in &diags.0 {
            let text = if d.loc.file.ends_with("defaults.yaml") {
                defaults
            } else {
                cluster
            };
            let lines = text.lines().count().max(1) as u32 + 1;
            assert!(
                d.loc.line <= lines,
                "line {} beyond the file ({lines} lines): {d}",
                d.loc.line
            );
            assert!(!d.message.is_empty());
        }
    }
}

/// Tokens that YAML and our schema care about, to build inputs near the valid ones.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("kubernetesVersion: v1.33.4".to_string()),
        Just("controlPlane:".to_string()),
        Just("  count: 3".to_string()),
        Just("  flavor: m1".to_string()),
        Just("workers:".to_string()),
        Just("  - name: a".to_string()),
        Just("    count: -1".to_string()),
        Just("network: {podCidr: 10.0.0.0/8}".to_string()),
        Just("- ".to_string()),
        Just(": ".to_string()),
        Just("{".to_string()),
        Just("]".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("<<: *a".to_string()),
        Just("!!binary ".to_string()),
        Just("|".to_string()),
        Just("'".to_string()),
        Just("\"\\u".to_string()),
        Just("~".to_string()),
        Just("\t".to_string()),
        "[a-zA-Z0-9 ./:-]{0,12}",
    ]
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        check("", &text);
        check(&text, "kubernetesVersion: v1.33.4\n");
    }

    #[test]
    fn yaml_token_soup_never_panics(lines in prop::collection::vec(prop::collection::vec(token(), 1..4), 0..30)) {
        let text: String = lines.iter().map(|l| l.concat() + "\n").collect();
        check(DEFAULTS, &text);
    }

    #[test]
    fn mutated_example_never_panics(
        ops in prop::collection::vec((0usize..200, 0u8..4, token()), 1..12)
    ) {
        let mut lines: Vec<String> = EXAMPLE.lines().map(str::to_string).collect();
        for (at, op, tok) in ops {
            if lines.is_empty() { break; }
            let i = at % lines.len();
            match op {
                0 => { lines.remove(i); }
                1 => { let l = lines[i].clone(); lines.insert(i, l); }
                2 => {
                    // Replace the value after the first ': ' with a random token.
                    if let Some(p) = lines[i].find(": ") { lines[i].truncate(p + 2); lines[i].push_str(&tok); }
                }
                _ => lines.insert(i, tok),
            }
        }
        check(DEFAULTS, &(lines.join("\n") + "\n"));
    }
}
