//! A first end-to-end build: FROM a store image, ARG/ENV scoping, WORKDIR, COPY with owners and modes, RUN in a
//! container, CMD; the result read back with umoci (a peer) and checked file by file.

use crate::{Env, meta};

#[test]
fn build_run_copy_and_config() {
    let env = Env::new();
    env.file("hello.txt", "hello from the context\n")
        .file("dir/a", "a\n")
        .file("dir/sub/b", "b\n")
        .file("skip.log", "ignored\n")
        .file(".dockerignore", "*.log\n");
    let id = env.build_ok(
        r#"ARG BASE=busybox:1
FROM $BASE
ARG WHO=world
ENV GREETING="hello ${WHO}" OLD=$GREETING
WORKDIR /app
COPY hello.txt ./
COPY --chown=1000:1000 --chmod=0640 dir /data/
RUN echo "$GREETING" > /app/greeting && echo "arg:$WHO" > /app/arg && rm /bin/true
LABEL org.example.who=$WHO
EXPOSE 8080 53/udp
CMD ["cat", "/app/greeting"]
"#,
        &["-t", "app:1", "--build-arg", "WHO=berth"],
    );
    assert_eq!(id.len(), 64, "the image id on stdout: {id:?}");
    let (manifest, config) = env.image("app:1");
    assert_eq!(
        format!("sha256:{id}"),
        manifest["config"]["digest"].as_str().unwrap(),
        "the image id is the config digest"
    );
    // WORKDIR creates its directory in the next step's layer.
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        1 + 3,
        "busybox + COPY, COPY, RUN"
    );
    let c = &config["config"];
    let env_list: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env_list.contains(&"GREETING=hello berth"), "{env_list:?}");
    assert!(
        env_list.contains(&"OLD="),
        "ENV sees the values from before the instruction: {env_list:?}"
    );
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["Labels"]["org.example.who"], "berth");
    assert_eq!(c["Cmd"], serde_json::json!(["cat", "/app/greeting"]));
    assert!(c["ExposedPorts"].get("8080/tcp").is_some() && c["ExposedPorts"].get("53/udp").is_some());
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        manifest["layers"].as_array().unwrap().len()
    );

    // Read back by a peer: umoci unpacks the layers (whiteouts included) into a runtime bundle.
    let rootfs = env.unpack("app:1", "bundle");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("app/greeting")).unwrap(),
        "hello berth\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("app/arg")).unwrap(),
        "arg:berth\n",
        "RUN sees the ARGs"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("app/hello.txt")).unwrap(),
        "hello from the context\n"
    );
    assert_eq!(
        meta(&rootfs.join("app/hello.txt")),
        (0o644, 0, 0),
        "context files are 0:0"
    );
    assert_eq!(meta(&rootfs.join("data/a")), (0o640, 1000, 1000));
    assert_eq!(meta(&rootfs.join("data/sub/b")), (0o640, 1000, 1000));
    assert_eq!(std::fs::read_to_string(rootfs.join("data/sub/b")).unwrap(), "b\n");
    assert!(
        !rootfs.join("bin/true").exists(),
        "the RUN step's deletion is a whiteout"
    );
    assert!(rootfs.join("bin/sh").exists());
    assert!(!rootfs.join("app/skip.log").exists());
}

#[test]
fn errors_name_the_line() {
    let env = Env::new();
    env.file("Containerfile", "FROM busybox:1\nRUN exit 3\n");
    let r = env.berth_build(&["build", env.path("ctx").to_str().unwrap()]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("Containerfile:2:1: RUN exit 3"), "{r:?}");
    assert!(r.stderr.contains("exited with status 3"), "{r:?}");
    assert!(r.stdout.is_empty());

    env.file("Containerfile", "FROM busybox:1\nCOPY missing /x\n");
    let r = env.berth_build(&["build", env.path("ctx").to_str().unwrap()]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(
        r.stderr.contains("Containerfile:2:1") && r.stderr.contains("missing"),
        "{r:?}"
    );

    env.file("Containerfile", "FROM busybox:1\nFROBNICATE x\n");
    let r = env.berth_build(&["build", env.path("ctx").to_str().unwrap()]);
    assert!(r.stderr.contains(":2:1: unknown instruction \"FROBNICATE\""), "{r:?}");
}
