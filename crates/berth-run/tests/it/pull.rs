//! `run docker://…`: images pulled from a real registry (Debian's docker-registry on 127.0.0.1) into the store.

use berth_testkit::faultproxy::{Fault, FaultProxy};
use berth_testkit::image::{ImageSpec, TarBuilder, write_image};
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

/// `pull` fetches blobs in parallel (several requests in flight at the proxy while blobs trickle), resumes a
/// download cut midway with `Range` from where it stopped, and names the image; the pulled image then runs.
#[test]
fn pull_downloads_in_parallel_and_resumes_a_cut_download() {
    let env = Env::new();
    let mut rng = berth_testkit::rng::Rng::new(13);
    let mut layers = vec![berth_testkit::busybox::rootfs_tar().unwrap()];
    for i in 0..3 {
        let mut data = vec![0u8; 300_000];
        rng.fill(&mut data);
        layers.push(
            TarBuilder::new()
                .dir("big", 0o755)
                .file(&format!("big/l{i}"), 0o644, &data)
                .finish(),
        );
    }
    let spec = ImageSpec {
        layers,
        config: serde_json::json!({"Cmd": ["sh"]}),
        architecture: berth_spec::platform::Platform::host().architecture,
    };
    let written = write_image(&env.layout, Some("multi:1"), &spec).unwrap();
    let reg = TestRegistry::anonymous().unwrap();
    skopeo_push(&env, "multi:1", &format!("docker://{}/multi:1", reg.host()), None);
    let proxy = FaultProxy::start(&reg.host()).unwrap();
    let cut = &written.layers[0];
    proxy.add("GET", &format!("/blobs/{cut}"), 1, Fault::CutBody(65_536));
    proxy.add("GET", "/blobs/", 100, Fault::Trickle(1_000_000));
    let name = format!("{}/multi:1", proxy.addr);
    let store = env.path("pulled");
    let store_arg = store.to_str().unwrap();

    let out = env.berth_out(&["--store", store_arg, "pull", &format!("docker://{name}")]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, format!("{name}\n").as_str()),
        "{out:?}"
    );
    assert!(out.stderr.contains("Pulling"), "progress on stderr: {out:?}");
    assert!(
        proxy.peak_in_flight() >= 2,
        "blobs are fetched in parallel (at most {} request(s) were in flight)",
        proxy.peak_in_flight()
    );
    let seen = proxy.seen();
    let gets: Vec<_> = seen
        .iter()
        .filter(|r| r.method == "GET" && r.target.contains(&format!("/blobs/{cut}")))
        .collect();
    assert_eq!(gets.len(), 2, "one cut request, one resumed: {gets:?}");
    let range = gets[1]
        .headers
        .iter()
        .find(|(k, _)| k == "range")
        .map(|(_, v)| v.as_str());
    assert_eq!(range, Some("bytes=65536-"), "the download resumes where it was cut");
    let layout = berth_spec::layout::Layout::open(&store).unwrap();
    assert_eq!(
        layout.resolve(Some(&name)).unwrap().digest().to_string(),
        written.manifest_digest.to_string()
    );
    let fsck = layout.fsck().unwrap();
    assert!(fsck.problems.is_empty(), "{:?}", fsck.problems);

    // In the store now: it runs without the registry.
    drop(proxy);
    drop(reg);
    let ran = env.berth_out(&[
        "--store",
        store_arg,
        "run",
        "--rm",
        "--pull",
        "never",
        &format!("docker://{name}"),
        "sh",
        "-c",
        "wc -c < /big/l2",
    ]);
    assert_eq!((ran.code, ran.stdout.trim()), (0, "300000"), "{ran:?}");
}

/// A registry that wants credentials the user did not give: an authentication error naming the image, with
/// the flags that fix it, and nothing stored.
#[test]
fn pull_reports_401_as_an_authentication_error() {
    let env = Env::new();
    let image = env.busybox();
    let reg = TestRegistry::basic("alice", "s3cret").unwrap();
    let reference = format!("docker://{}/private:1", reg.host());
    skopeo_push(&env, image, &reference, Some("alice:s3cret"));
    let store = env.path("pulled");
    let out = env.berth_out(&["--store", store.to_str().unwrap(), "pull", &reference]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains(&format!("pulling {reference}")), "{out:?}");
    assert!(out.stderr.contains("401 Unauthorized"), "{out:?}");
    assert!(out.stderr.contains("--creds"), "says what to do: {out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let layout = berth_spec::layout::Layout::open(&store).unwrap();
    assert!(layout.refs().unwrap().is_empty());
    let out = env.berth_out(&[
        "--store",
        store.to_str().unwrap(),
        "pull",
        "--creds",
        "alice:s3cret",
        &reference,
    ]);
    assert_eq!(out.code, 0, "{out:?}");
}
