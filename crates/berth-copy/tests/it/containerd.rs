//! containerd's `ctr images pull` of what Berth pushed, with a private containerd.

use berth_testkit::containerd::Containerd;
use berth_testkit::registry::TestRegistry;
use berth_testkit::tools::{run, stdout};

use crate::{Env, busybox_layout};

#[test]
fn ctr_pulls_what_berth_pushed() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let img = busybox_layout(&env, "a", "bb:1");
    // v2s2 as well: containerd reads both formats.
    let oci = format!("{}/ctr/busybox:oci", reg.host());
    let v2s2 = format!("{}/ctr/busybox:v2s2", reg.host());
    env.ok(&["copy", "-q", &env.oci("a", Some("bb:1")), &format!("docker://{oci}")]);
    env.ok(&[
        "copy",
        "-q",
        "--format",
        "v2s2",
        &env.oci("a", Some("bb:1")),
        &format!("docker://{v2s2}"),
    ]);
    let v2s2_digest = crate::registry_digest(&reg.host(), "ctr/busybox", "v2s2");

    let containerd = Containerd::start().unwrap();
    for name in [&oci, &v2s2] {
        let pulled = containerd
            .ctr()
            .unwrap()
            .args(["images", "pull", "--plain-http", name])
            .output()
            .unwrap();
        assert!(
            pulled.status.success(),
            "ctr images pull {name} failed:\n{}\n{}\n--- containerd log ---\n{}",
            crate::text(&pulled.stdout),
            crate::text(&pulled.stderr),
            containerd.log()
        );
    }
    let list = stdout(containerd.ctr().unwrap().args(["images", "ls"])).unwrap();
    let line = |name: &str| {
        list.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{list}"))
            .to_owned()
    };
    assert!(line(&oci).contains(&img.manifest_digest.to_string()), "{list}");
    assert!(line(&v2s2).contains(&v2s2_digest), "{list}");
    // containerd checked every blob against its digest while pulling; its content store agrees.
    run(containerd
        .ctr()
        .unwrap()
        .args(["content", "get", &img.layers[0].to_string()])
        .stdout(std::process::Stdio::null()))
    .unwrap();
}
