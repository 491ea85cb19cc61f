//! HOSTILE-INPUTS 33-36: build input that tries to read outside the context, block the build, or blow it up.

use crate::Env;

fn fails(env: &Env, containerfile: &str, says: &str) {
    env.file("Containerfile", containerfile);
    let r = env.berth_build(&["build", env.path("ctx").to_str().unwrap()]);
    assert_eq!(r.code, 125, "{containerfile}: {r:?}");
    assert!(r.stderr.contains(says), "{containerfile}: expected {says:?} in {r:?}");
}

/// 33: sources escaping the context, absolute sources (context-relative), globs that try to climb out.
#[test]
fn hostile_33_sources_stay_in_the_context() {
    let env = Env::new();
    std::fs::write(env.path("outside"), "outside the context\n").unwrap();
    env.file("inside", "inside\n");
    fails(
        &env,
        "FROM busybox:1\nCOPY ../outside /x\n",
        "outside the build context",
    );
    fails(&env, "FROM busybox:1\nCOPY ../* /x/\n", "outside the build context");
    fails(
        &env,
        "FROM busybox:1\nCOPY sub/../../outside /x\n",
        "outside the build context",
    );
    // An absolute source is a path in the context.
    env.build_ok("FROM busybox:1\nCOPY /inside /abs\n", &["-t", "abs:1"]);
    let rootfs = env.unpack("abs:1", "a");
    assert_eq!(std::fs::read_to_string(rootfs.join("abs")).unwrap(), "inside\n");
}

/// 34: a Containerfile or .dockerignore that is a symlink out of the context is not followed out of it.
#[test]
fn hostile_34_containerfile_and_ignore_symlinks_resolve_in_the_context() {
    let env = Env::new();
    std::fs::write(env.path("host-secret"), "FROM busybox:1\nLABEL leaked=yes\n").unwrap();
    std::os::unix::fs::symlink(env.path("host-secret"), env.path("ctx/Containerfile")).unwrap();
    let r = env.berth_build(&["build", env.path("ctx").to_str().unwrap()]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("no Containerfile or Dockerfile"), "{r:?}");
    // The same for .dockerignore: its target outside is not read (here it would have excluded everything).
    std::fs::remove_file(env.path("ctx/Containerfile")).unwrap();
    std::fs::write(env.path("outside-ignore"), "*\n").unwrap();
    std::os::unix::fs::symlink(env.path("outside-ignore"), env.path("ctx/.dockerignore")).unwrap();
    env.file("kept", "kept\n");
    env.build_ok("FROM busybox:1\nCOPY kept /kept\n", &["-t", "ign:1"]);
}

/// 35: FIFOs and devices in the context never block or break the build.
#[test]
fn hostile_35_fifos_and_devices_in_the_context() {
    let env = Env::new();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        env.path("ctx/fifo").as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        env.path("ctx/null").as_path(),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o644),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    env.file("regular", "regular\n");
    let started = std::time::Instant::now();
    env.build_ok("FROM busybox:1\nCOPY . /ctx/\nADD fifo /added/\n", &["-t", "fifo:1"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    let rootfs = env.unpack("fifo:1", "f");
    assert!(rootfs.join("ctx/regular").is_file());
    assert!(
        !rootfs.join("ctx/fifo").exists() && !rootfs.join("ctx/null").exists(),
        "specials are left out"
    );
}

/// 36: syntax that is hostile or merely unusual.
#[test]
fn hostile_36_syntax() {
    let env = Env::new();
    // A byte order mark and CRLF line ends are accepted.
    env.build_ok(
        "\u{feff}FROM busybox:1\r\nRUN echo crlf \\\r\n  ok > /crlf\r\n",
        &["-t", "crlf:1"],
    );
    let rootfs = env.unpack("crlf:1", "c");
    assert_eq!(std::fs::read_to_string(rootfs.join("crlf")).unwrap(), "crlf ok\n");
    fails(
        &env,
        "FROM busybox:1\nRUN <<EOF\necho never closed\n",
        "Containerfile:2:1: heredoc <<EOF is not closed",
    );
    fails(
        &env,
        "FROM busybox:1\n  WHATEVER x\n",
        "Containerfile:2:3: unknown instruction",
    );
    // Self-referring ARGs double at each line: refused before they eat memory.
    let mut runaway = String::from("FROM busybox:1\nARG A=0123456789abcdef0123456789abcdef\n");
    for _ in 0..20 {
        runaway.push_str("ARG A=$A$A\n");
    }
    fails(&env, &runaway, "longer than");
    // A cache id that tries to climb out of the cache directory stays inside it.
    env.build_ok(
        "FROM busybox:1\nRUN --mount=type=cache,id=../../../../escape,target=/c echo x > /c/f\n",
        &["-t", "cache:1"],
    );
    assert!(!env.path("escape").exists() && !std::path::Path::new("/escape").exists());
    let caches = std::fs::read_dir(env.path("cache/cache-mounts")).unwrap();
    assert!(
        caches
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".._.._.._.._escape-"))
    );
    // FROM with a digest that no image in the store has.
    fails(
        &env,
        &format!("FROM busybox@{}\n", berth_spec::Digest::sha256(b"no such image")),
        "busybox@sha256:",
    );
}

/// A build killed in the middle of a RUN leaves mounts, scratch and the RUN's container behind; the next build
/// removes them: the container's processes are killed and its cgroup is removed.
#[test]
fn a_killed_build_is_cleaned_up_by_the_next() {
    let env = Env::new();
    let marker = format!(
        "marker-{}-{}",
        std::process::id(),
        env.path("").display().to_string().len()
    );
    env.file(
        "Containerfile",
        &format!("FROM busybox:1\nRUN echo running-now > /dev/stderr && sleep 30 && echo {marker}\n"),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth-build"))
        .args(["build", env.path("ctx").to_str().unwrap()])
        .env("BERTH_STORE", env.store.root())
        .env("BERTH_BUILD_CACHE", env.path("cache"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the RUN to start (its line on stderr), then kill the builder outright.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0 && line.trim() != "running-now" {
        line.clear();
    }
    let builder = child.id();
    // Not reaped yet: a zombie is not a running build (nor is another program given its pid later).
    child.kill().unwrap();
    // SIGKILL takes effect asynchronously: until the process is a zombie it is still (ending) a running build.
    let zombie = || {
        std::fs::read_to_string(format!("/proc/{builder}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !zombie() {
        assert!(std::time::Instant::now() < deadline, "the killed builder did not end");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Processes whose command line holds the marker: the RUN's shell.
    let running = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
            .filter(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
            })
            .count()
    };
    // Cgroup directories of the build's containers (`berth-build-PID-N`), in any hierarchy.
    let cgroups = || {
        let needle = format!("berth-build-{builder}-");
        let mut dirs = vec![std::path::PathBuf::from("/sys/fs/cgroup")];
        dirs.extend(std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten().map(|e| e.path()));
        dirs.iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|r| r.flatten())
            .filter(|e| e.file_name().to_string_lossy().contains(&needle))
            .count()
    };
    assert!(running() > 0, "the killed build's RUN outlived it");
    assert!(cgroups() > 0, "its container has a cgroup");
    let steps = env.path("cache/steps");
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(steps.to_str().unwrap()))
            .count()
    };
    assert!(mounted() > 0, "the killed build left its overlay mounted");
    env.build_ok("FROM busybox:1\nRUN true\n", &[]);
    assert_eq!(mounted(), 0, "the next build unmounted the leftovers");
    assert_eq!(std::fs::read_dir(&steps).unwrap().count(), 0, "and removed them");
    let containers = std::fs::read_dir(env.path("cache/runtime")).unwrap().count();
    assert_eq!(containers, 0, "and deleted the orphaned RUN container");
    assert_eq!(running(), 0, "whose processes were killed");
    assert_eq!(cgroups(), 0, "and whose cgroup was removed");
    child.wait().unwrap();
}
