//! What berth-run prints, pinned: the JSON of its read-only commands (`ps --format json`, `inspect`), the `ps`
//! table, and the key errors, as snapshots (insta; `cargo insta review` after a deliberate change). Ids, times,
//! pids and temporary paths are masked in the snapshots; they are checked independently here.

use serde_json::Value;

use crate::support::Env;

fn masked(f: impl FnOnce()) {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("snapshots");
    s.set_prepend_module_to_snapshot(false);
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[digest]");
    s.add_filter(r"\b[0-9a-f]{64}\b", "[id]");
    s.add_filter(r"\b[0-9a-f]{12}\b", "[short-id]");
    s.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", "[time]");
    s.add_filter(r"/tmp/[^\s:\x22]+", "[tmp]");
    s.add_filter(r#"("(?:Pid|pid)":\s?)\d+"#, "${1}[pid]");
    s.add_filter(r#"("(?:Created|StartedAt|ExitedAt)":\s?)\d+"#, "${1}[epoch]");
    // The table's relative times ("2 seconds ago") and the column padding that follows them.
    s.add_filter(r"(Exited \(\d+\)|Created|Up) [^\n]*? ago", "$1 [when]");
    s.add_filter(r"\d+ (second|minute)s? ago", "[when]");
    s.add_filter(r"About a minute ago|Less than a second ago", "[when]");
    s.bind(f);
}

#[test]
fn json_outputs_table_and_key_errors_are_pinned() {
    let env = Env::new();
    let image = env.busybox();
    let ran = env.berth_out(&["run", "--name", "done", image, "sh", "-c", "echo out; exit 3"]);
    assert_eq!(ran.code, 3, "{ran:?}");
    // Progress on stderr: the first use of the image unpacks its layer (plain lines without a terminal).
    assert!(ran.stderr.contains("Unpacking blob sha256:"), "{ran:?}");
    assert_eq!(ran.stdout, "out\n");
    let quiet = env.berth_out(&["run", "--rm", "-q", image, "true"]);
    assert_eq!(
        (quiet.code, quiet.stderr.as_str()),
        (0, ""),
        "cached, and -q: nothing on stderr"
    );
    let bundle = env.berth_out(&["bundle", image, env.path("b").to_str().unwrap(), "true"]);
    assert_eq!(bundle.code, 0, "{bundle:?}");
    assert!(bundle.stderr.contains("Writing bundle"), "{bundle:?}");
    let ps_json = env.berth_ok(&["ps", "-a", "--format", "json"]);
    let ps_table = env.berth_ok(&["ps", "-a"]);
    let inspect = env.berth_ok(&["inspect", "done"]);
    // Independent checks of what the snapshots mask: one container, its full id, exited with 3.
    let list: Value = serde_json::from_str(&ps_json).unwrap();
    let id = list[0]["Id"]
        .as_str()
        .or(list[0]["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    let quiet = env.berth_ok(&["ps", "-a", "-q", "--no-trunc"]);
    assert_eq!(quiet.trim(), id, "{ps_json}");
    assert_eq!(id.len(), 64, "{ps_json}");
    assert!(
        ps_table.contains(&id[..12]) && ps_table.contains("Exited (3)"),
        "{ps_table}"
    );
    let inspected: Value = serde_json::from_str(&inspect).unwrap();
    assert!(inspect.contains(&id), "{inspect}");
    assert!(inspected.is_array() || inspected.is_object(), "{inspect}");

    let errors = [
        ("error-unknown-image", env.berth_out(&["run", "--rm", "nope:1", "true"])),
        ("error-unknown-container", env.berth_out(&["inspect", "nope"])),
        (
            "error-bad-volume",
            env.berth_out(&["run", "--rm", "-v", "relative:/x", image, "true"]),
        ),
        (
            "error-unknown-user",
            env.berth_out(&["run", "--rm", "--user", "nosuchuser", image, "true"]),
        ),
        (
            "error-name-in-use",
            env.berth_out(&["run", "--name", "done", image, "true"]),
        ),
        ("error-kill-stopped", env.berth_out(&["kill", "done"])),
        ("error-rm-missing", env.berth_out(&["rm", "nope"])),
    ];
    for (name, r) in &errors {
        assert_ne!(r.code, 0, "{name}: {r:?}");
        assert!(r.stdout.is_empty(), "{name}: errors go to stderr: {r:?}");
    }
    masked(|| {
        insta::assert_snapshot!("ps-json", ps_json);
        // Columns are padded to their widest value, which masking changes: pinned as cells.
        let cells: Vec<String> = ps_table
            .lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .collect();
        insta::assert_snapshot!("ps-table", cells.join("\n"));
        insta::assert_snapshot!("inspect", inspect);
        for (name, r) in &errors {
            insta::assert_snapshot!(*name, format!("exit {}\n{}", r.code, r.stderr));
        }
    });
}
