//! The remaining build options, each observed in the image or the error.

use crate::Env;

#[test]
fn labels_arg_files_ignorefile_timestamp_and_network() {
    let env = Env::new();
    std::fs::write(env.path("args"), "# build args\nFROM_FILE=file-value\nBOTH=from-file\n").unwrap();
    std::fs::write(env.path("my.ignore"), "secret.txt\n").unwrap();
    env.file("secret.txt", "should not be copied\n")
        .file("kept.txt", "kept\n");
    env.build_ok(
        "FROM busybox:1\nARG FROM_FILE\nARG BOTH\nRUN echo \"$FROM_FILE $BOTH\" > /args\n\
COPY . /ctx/\nRUN --network=none cat /proc/net/dev | busybox wc -l > /netdev-lines\n",
        &[
            "-t",
            "opts:1",
            "--label",
            "org.example.from-cli=yes",
            "--build-arg-file",
            env.path("args").to_str().unwrap(),
            "--build-arg",
            "BOTH=from-cli",
            "--ignorefile",
            env.path("my.ignore").to_str().unwrap(),
            "--timestamp",
            "1700000000",
        ],
    );
    let (_, config) = env.image("opts:1");
    assert_eq!(config["config"]["Labels"]["org.example.from-cli"], "yes");
    assert_eq!(
        config["created"], "2023-11-14T22:13:20Z",
        "--timestamp sets the created time"
    );
    let rootfs = env.unpack("opts:1", "o");
    let r = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap();
    assert_eq!(r("args"), "file-value from-cli\n", "--build-arg beats --build-arg-file");
    assert!(
        rootfs.join("ctx/kept.txt").exists() && !rootfs.join("ctx/secret.txt").exists(),
        "--ignorefile"
    );
    // With --network=none the step has only the loopback interface (2 header lines + lo).
    assert_eq!(r("netdev-lines").trim(), "3", "RUN --network=none isolates the step");
}

#[test]
fn platform_and_pull_policy_errors() {
    let env = Env::new();
    env.file("Containerfile", "FROM busybox:1\n");
    let ctx = env.path("ctx");
    let other = if berth_spec::platform::Platform::host().architecture == "arm64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let r = env.berth_build(&["build", "--platform", other, ctx.to_str().unwrap()]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("this host's platform"), "{r:?}");
    env.file("Containerfile", "FROM localhost:1/never/pulled:1\n");
    let r = env.berth_build(&["build", "--pull", "never", ctx.to_str().unwrap()]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("localhost:1/never/pulled:1"), "{r:?}");
    assert!(
        !r.stderr.contains("Pulling"),
        "--pull never does not try the registry: {r:?}"
    );
    let r = env.berth_build(&["build", "--network", "bridge", ctx.to_str().unwrap()]);
    assert!(r.stderr.contains("--network bridge: use host or none"), "{r:?}");
}
