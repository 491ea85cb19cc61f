//! `run docker://…`: images pulled from a real registry (Debian's docker-registry on 127.0.0.1) into the store.

use berth_testkit::registry::TestRegistry;

use crate::support::Env;

fn skopeo_push(env: &Env, image: &str, dest: &str, creds: Option<&str>) {
    let mut cmd = berth_testkit::tools::skopeo().unwrap();
    cmd.args(["copy", "--dest-tls-verify=false"]);
    if let Some(c) = creds {
        cmd.args(["--dest-creds", c]);
    }
    cmd.arg(format!("oci:{}:{image}", env.layout.root().display()))
        .arg(dest);
    berth_testkit::tools::run(&mut cmd).unwrap();
}

#[test]
fn run_pulls_docker_images_into_the_store_once() {
    let env = Env::new();
    let image = env.busybox();
    let reg = TestRegistry::anonymous().unwrap();
    let name = format!("{}/tools/bb:1", reg.host());
    skopeo_push(&env, image, &format!("docker://{name}"), None);
    // Pulled into a fresh store of its own.
    let store = env.path("pulled-store");
    let run = |extra: &[&str]| {
        let mut args = vec!["--store", store.to_str().unwrap(), "run", "--rm"];
        args.extend(extra);
        let reference = format!("docker://{name}");
        args.push(&reference);
        args.extend(["echo", "from-registry"]);
        env.berth_out(&args)
    };
    let ran = run(&[]);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "from-registry\n"), "{ran:?}");
    assert!(ran.stderr.contains("Pulling"), "{ran:?}");
    let layout = berth_spec::layout::Layout::open(&store).unwrap();
    let refs: Vec<String> = layout.refs().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(refs, std::slice::from_ref(&name));
    // The same digest skopeo pushed.
    let pushed = berth_testkit::tools::stdout(
        berth_testkit::tools::skopeo()
            .unwrap()
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(format!("docker://{name}")),
    )
    .unwrap();
    assert_eq!(layout.resolve(Some(&name)).unwrap().digest().to_string(), pushed.trim());

    // Present now: not pulled again (even with the registry gone).
    drop(reg);
    let ran = run(&[]);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "from-registry\n"), "{ran:?}");
    assert!(!ran.stderr.contains("Pulling"), "{ran:?}");
    let ran = run(&["--pull", "always"]);
    assert_eq!(ran.code, 125, "{ran:?}");
    assert!(
        ran.stderr.contains(&format!("docker://{name}")),
        "the error names the image: {ran:?}"
    );
}

#[test]
fn run_pulls_with_credentials() {
    let env = Env::new();
    let image = env.busybox();
    let reg = TestRegistry::basic("alice", "s3cret").unwrap();
    let reference = format!("docker://{}/private:1", reg.host());
    skopeo_push(&env, image, &reference, Some("alice:s3cret"));
    let ran = env.berth_out(&["run", "--rm", &reference, "true"]);
    assert_eq!(ran.code, 125, "no credentials: {ran:?}");
    assert!(
        ran.stderr.contains("401") || ran.stderr.to_lowercase().contains("auth"),
        "{ran:?}"
    );
    let ran = env.berth_out(&["run", "--rm", "--creds", "alice:s3cret", &reference, "echo", "in"]);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "in\n"), "{ran:?}");
}
