use berth_spec::layout::Layout;
use berth_testkit::image::write_image;
use berth_testkit::registry::TestRegistry;
use crate::*;

fn show(env: &Env, args: &[&str]) {
    let out = env.run(args);
    eprintln!("$ {args:?}\n rc={:?}\n stdout: {}\n stderr: {}", out.status.code(), text(&out.stdout), text(&out.stderr));
}

#[test]
fn probe() {
    let env = Env::new();
    let reg = TestRegistry::anonymous().unwrap();
    let reg2 = TestRegistry::anonymous().unwrap();
    let layout = Layout::create(env.path("a")).unwrap();
    let x = write_image(&layout, Some("x:1"), &random_image(1, 1, 1000, "amd64")).unwrap();
    let y = write_image(&layout, Some("y:1"), &random_image(2, 1, 1000, "amd64")).unwrap();
    eprintln!("x={} y={}", x.manifest_digest, y.manifest_digest);
    let arch = env.path("multi.tar");
    show(&env, &["copy", "-q", &env.oci("a", Some("x:1")), &format!("oci-archive:{}:x", arch.display())]);
    show(&env, &["copy", "-q", &env.oci("a", Some("y:1")), &format!("oci-archive:{}:y", arch.display())]);
    show(&env, &["list-tags", &format!("oci-archive:{}", arch.display())]);
    show(&env, &["inspect", "--raw", &format!("oci-archive:{}:x", arch.display())]);
    let d = env.path("multi.docker.tar");
    show(&env, &["copy", "-q", &env.oci("a", Some("x:1")), &format!("docker-archive:{}:x:1", d.display())]);
    show(&env, &["copy", "-q", &env.oci("a", Some("y:1")), &format!("docker-archive:{}:y:1", d.display())]);
    show(&env, &["inspect", &format!("docker-archive:{}:x:1", d.display())]);
    show(&env, &["inspect", &format!("docker-archive:{}:y:1", d.display())]);
    // push by digest
    show(&env, &["copy", "-q", &env.oci("a", Some("x:1")), &format!("docker://{}/dig/x@{}", reg.host(), x.manifest_digest)]);
    show(&env, &["list-tags", &format!("docker://{}/dig/x", reg.host())]);
    show(&env, &["copy", "-q", &format!("docker://{}/dig/x@{}", reg.host(), x.manifest_digest), &env.oci("b", Some("x"))]);
    // registry to registry
    show(&env, &["copy", "-q", &format!("docker://{}/dig/x@{}", reg.host(), x.manifest_digest), &format!("docker://{}/other/x:1", reg2.host())]);
    show(&env, &["copy", &format!("docker://{}/dig/x@{}", reg.host(), x.manifest_digest), &format!("docker://{}/same/x:1", reg.host())]);
    // sync
    show(&env, &["copy", "-q", &env.oci("a", Some("y:1")), &format!("docker://{}/dig/x:2", reg.host())]);
    show(&env, &["sync", &format!("docker://{}/dig/x", reg.host()), &env.oci("synced", None)]);
    show(&env, &["list-tags", &env.oci("synced", None)]);
    show(&env, &["sync", &env.oci("a", None), &format!("docker://{}/mirror", reg2.host())]);
    show(&env, &["delete", &format!("docker://{}/dig/x:2", reg.host())]);
    show(&env, &["list-tags", &format!("docker://{}/dig/x", reg.host())]);
    show(&env, &["delete", &env.oci("a", Some("y:1"))]);
    show(&env, &["list-tags", &env.oci("a", None)]);
    show(&env, &["gc", &env.oci("a", None)]);
    show(&env, &["fsck", &env.oci("a", None)]);
    // zstd to layout then to registry gzip
    show(&env, &["copy", "-q", "--dest-compress-format", "zstd", &env.oci("a", Some("x:1")), &env.oci("z", Some("x"))]);
    show(&env, &["copy", "-q", "--dest-compress-format", "gzip", &env.oci("z", Some("x")), &format!("docker://{}/z/x:1", reg.host())]);
    show(&env, &["copy", "-q", "--format", "v2s2", &env.oci("z", Some("x")), &format!("docker://{}/z/x:2", reg.host())]);
    show(&env, &["inspect", "--config", &env.oci("z", Some("x"))]);
    show(&env, &["copy", &env.oci("a", Some("x:1")), &env.oci("a", Some("x:1"))]);
}
