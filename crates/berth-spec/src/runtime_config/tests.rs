use std::collections::HashMap;

use oci_spec::image::{Config, ConfigBuilder, ImageConfiguration, ImageConfigurationBuilder};
use oci_spec::runtime::{LinuxCapabilities, Spec};

use super::*;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn image(config: Config) -> ImageConfiguration {
    ImageConfigurationBuilder::default()
        .os("linux")
        .architecture("amd64")
        .config(config)
        .build()
        .unwrap()
}

fn with_command(entrypoint: &[&str], cmd: &[&str]) -> ImageConfiguration {
    let mut builder = ConfigBuilder::default();
    if !entrypoint.is_empty() {
        builder = builder.entrypoint(strings(entrypoint));
    }
    if !cmd.is_empty() {
        builder = builder.cmd(strings(cmd));
    }
    image(builder.build().unwrap())
}

fn runnable() -> ConfigBuilder {
    ConfigBuilder::default().cmd(strings(&["/bin/sh"]))
}

fn convert_config(config: Config, overrides: &Overrides) -> Result<ImageRuntimeConfig, ConversionError> {
    convert(&image(config), overrides)
}

// ---------------------------------------------------------------------------------------------------------------
// Entrypoint / Cmd

/// How an override is given in the table below.
#[derive(Clone, Copy, Debug)]
enum Given {
    Absent,
    Empty,
    Value,
}

impl Given {
    fn apply(self, value: &[&str]) -> Option<Vec<String>> {
        match self {
            Given::Absent => None,
            Given::Empty => Some(Vec::new()),
            Given::Value => Some(strings(value)),
        }
    }
}

/// One row of the Entrypoint/Cmd table: image Entrypoint, image Cmd, `--entrypoint`, COMMAND, expected argv
/// (`None`: [`ConversionError::NoCommand`]).
type CommandCase = (
    &'static [&'static str],
    &'static [&'static str],
    Given,
    Given,
    Option<&'static [&'static str]>,
);

/// Every combination of image Entrypoint/Cmd and user entrypoint/COMMAND, with the argv Docker runs.
#[test]
fn entrypoint_and_cmd_follow_docker() {
    use Given::*;
    const EP: &[&str] = &["/ep", "-x"];
    const CMD: &[&str] = &["cmd", "arg"];
    const USER_EP: &[&str] = &["/user-ep"];
    const USER_CMD: &[&str] = &["user", "cmd"];
    #[rustfmt::skip]
    let table: &[CommandCase] = &[
        // image ep, image cmd, --entrypoint, COMMAND, expected argv (None: NoCommand)
        (EP, CMD, Absent, Absent, Some(&["/ep", "-x", "cmd", "arg"])),
        (EP, CMD, Absent, Empty,  Some(&["/ep", "-x", "cmd", "arg"])),
        (EP, CMD, Absent, Value,  Some(&["/ep", "-x", "user", "cmd"])),
        (EP, CMD, Value,  Absent, Some(&["/user-ep"])),
        (EP, CMD, Value,  Empty,  Some(&["/user-ep"])),
        (EP, CMD, Value,  Value,  Some(&["/user-ep", "user", "cmd"])),
        (EP, CMD, Empty,  Absent, Some(&["cmd", "arg"])),
        (EP, CMD, Empty,  Empty,  Some(&["cmd", "arg"])),
        (EP, CMD, Empty,  Value,  Some(&["user", "cmd"])),

        (EP, &[], Absent, Absent, Some(&["/ep", "-x"])),
        (EP, &[], Absent, Empty,  Some(&["/ep", "-x"])),
        (EP, &[], Absent, Value,  Some(&["/ep", "-x", "user", "cmd"])),
        (EP, &[], Value,  Absent, Some(&["/user-ep"])),
        (EP, &[], Value,  Empty,  Some(&["/user-ep"])),
        (EP, &[], Value,  Value,  Some(&["/user-ep", "user", "cmd"])),
        (EP, &[], Empty,  Absent, None),
        (EP, &[], Empty,  Empty,  None),
        (EP, &[], Empty,  Value,  Some(&["user", "cmd"])),

        (&[], CMD, Absent, Absent, Some(&["cmd", "arg"])),
        (&[], CMD, Absent, Empty,  Some(&["cmd", "arg"])),
        (&[], CMD, Absent, Value,  Some(&["user", "cmd"])),
        (&[], CMD, Value,  Absent, Some(&["/user-ep"])),
        (&[], CMD, Value,  Empty,  Some(&["/user-ep"])),
        (&[], CMD, Value,  Value,  Some(&["/user-ep", "user", "cmd"])),
        (&[], CMD, Empty,  Absent, Some(&["cmd", "arg"])),
        (&[], CMD, Empty,  Empty,  Some(&["cmd", "arg"])),
        (&[], CMD, Empty,  Value,  Some(&["user", "cmd"])),

        (&[], &[], Absent, Absent, None),
        (&[], &[], Absent, Empty,  None),
        (&[], &[], Absent, Value,  Some(&["user", "cmd"])),
        (&[], &[], Value,  Absent, Some(&["/user-ep"])),
        (&[], &[], Value,  Empty,  Some(&["/user-ep"])),
        (&[], &[], Value,  Value,  Some(&["/user-ep", "user", "cmd"])),
        (&[], &[], Empty,  Absent, None),
        (&[], &[], Empty,  Empty,  None),
        (&[], &[], Empty,  Value,  Some(&["user", "cmd"])),
    ];
    for &(entrypoint, cmd, user_ep, user_cmd, expected) in table {
        let overrides = Overrides {
            entrypoint: user_ep.apply(USER_EP),
            cmd: user_cmd.apply(USER_CMD),
            ..Overrides::default()
        };
        let got = convert(&with_command(entrypoint, cmd), &overrides).map(|c| c.args);
        let case = format!("image {entrypoint:?} {cmd:?}, --entrypoint {user_ep:?}, COMMAND {user_cmd:?}");
        match expected {
            Some(args) => assert_eq!(got, Ok(strings(args)), "{case}"),
            None => assert_eq!(got, Err(ConversionError::NoCommand), "{case}"),
        }
    }
}

#[test]
fn image_without_config_needs_a_command() {
    let bare = ImageConfigurationBuilder::default().build().unwrap();
    let err = convert(&bare, &Overrides::default()).unwrap_err();
    assert_eq!(err, ConversionError::NoCommand);
    assert!(err.to_string().contains("neither Entrypoint nor Cmd"), "{err}");
    let overrides = Overrides {
        cmd: Some(strings(&["/bin/true"])),
        ..Overrides::default()
    };
    let converted = convert(&bare, &overrides).unwrap();
    assert_eq!(converted.args, ["/bin/true"]);
    assert_eq!(converted.cwd, "/");
    assert_eq!(converted.user, UserSpec::root());
    assert_eq!(converted.env, [format!("PATH={DEFAULT_PATH}")]);
}

#[test]
fn nul_in_argument_is_refused() {
    let overrides = Overrides {
        cmd: Some(strings(&["/bin/echo", "a\0b"])),
        ..Overrides::default()
    };
    let err = convert(&with_command(&[], &["x"]), &overrides).unwrap_err();
    assert_eq!(
        err,
        ConversionError::ArgNul {
            index: 1,
            arg: "a\0b".into()
        }
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Environment

fn env_of(image_env: &[&str], overrides: &[&str]) -> Result<Vec<String>, ConversionError> {
    let config = runnable().env(strings(image_env)).build().unwrap();
    let overrides = Overrides {
        env: strings(overrides),
        ..Overrides::default()
    };
    convert_config(config, &overrides).map(|c| c.env)
}

#[test]
fn env_overrides_replace_in_place_and_append() {
    let env = env_of(
        &["PATH=/bin", "A=1", "B=2", "A=3"],
        &["B=override", "C=new", "A=last", "EMPTY="],
    )
    .unwrap();
    assert_eq!(env, ["PATH=/bin", "A=last", "B=override", "C=new", "EMPTY="]);
}

#[test]
fn env_values_may_contain_equals() {
    let env = env_of(&["PATH=/bin", "OPTS=a=b=c"], &[]).unwrap();
    assert_eq!(env, ["PATH=/bin", "OPTS=a=b=c"]);
}

#[test]
fn path_defaults_only_when_absent() {
    assert_eq!(
        env_of(&["A=1"], &[]).unwrap(),
        [format!("PATH={DEFAULT_PATH}"), "A=1".into()]
    );
    assert_eq!(env_of(&["A=1", "PATH=/x"], &[]).unwrap(), ["A=1", "PATH=/x"]);
    assert_eq!(env_of(&["A=1"], &["PATH=/y"]).unwrap(), ["A=1", "PATH=/y"]);
    // An explicitly empty PATH is the image's choice and is kept.
    assert_eq!(env_of(&["PATH="], &[]).unwrap(), ["PATH="]);
}

#[test]
fn image_env_without_equals_is_refused() {
    let err = env_of(&["PATH=/bin", "JUSTAKEY"], &[]).unwrap_err();
    assert_eq!(
        err,
        ConversionError::EnvMissingEquals {
            entry: "JUSTAKEY".into()
        }
    );
    assert!(err.to_string().contains("\"JUSTAKEY\""), "{err}");
}

#[test]
fn empty_keys_are_refused() {
    assert_eq!(
        env_of(&["=x"], &[]),
        Err(ConversionError::EnvEmptyKey { entry: "=x".into() })
    );
    assert_eq!(
        env_of(&[], &["=x"]),
        Err(ConversionError::EnvEmptyKey { entry: "=x".into() })
    );
    assert_eq!(
        env_of(&[], &[""]),
        Err(ConversionError::EnvEmptyKey { entry: "".into() })
    );
}

#[test]
fn nul_bytes_in_env_are_refused() {
    for (image_env, overrides) in [
        (&["A=b\0c"][..], &[][..]),
        (&["A\0B=c"], &[]),
        (&["NOEQ\0"], &[]),
        (&[], &["A=\0"]),
    ] {
        let err = env_of(image_env, overrides).unwrap_err();
        assert!(
            matches!(err, ConversionError::EnvNul { .. }),
            "{image_env:?} {overrides:?}: {err:?}"
        );
    }
}

#[test]
fn bare_keys_take_host_values() {
    let config = image(runnable().env(strings(&["PATH=/bin", "KEEP=image"])).build().unwrap());
    let overrides = Overrides {
        env: strings(&["FROM_HOST", "MISSING", "KEEP", "X=1"]),
        ..Overrides::default()
    };
    let host = |key: &str| match key {
        "FROM_HOST" => Some("h=v".to_string()),
        "KEEP" => Some("host".to_string()),
        _ => None,
    };
    let converted = convert_with_host_env(&config, &overrides, host).unwrap();
    assert_eq!(converted.env, ["PATH=/bin", "KEEP=host", "FROM_HOST=h=v", "X=1"]);

    // Without a host lookup a bare key is an error, not a silent drop.
    let err = convert(&config, &overrides).unwrap_err();
    assert_eq!(
        err,
        ConversionError::EnvNeedsValue {
            key: "FROM_HOST".into()
        }
    );

    // A host value with a NUL byte is refused too.
    let err = convert_with_host_env(&config, &overrides, |_| Some("a\0".into())).unwrap_err();
    assert!(matches!(err, ConversionError::EnvNul { .. }), "{err:?}");
}

#[test]
fn oversized_env_is_refused_with_sizes() {
    let big = format!("BIG={}", "x".repeat(MAX_ARGS_AND_ENV_BYTES));
    let err = env_of(&["PATH=/bin", &big], &[]).unwrap_err();
    let ConversionError::TooLarge {
        args_bytes,
        env_bytes,
        limit,
    } = err.clone()
    else {
        panic!("{err:?}");
    };
    assert_eq!(args_bytes, "/bin/sh".len() + 1);
    assert_eq!(env_bytes, "PATH=/bin".len() + 1 + big.len() + 1);
    assert_eq!(limit, MAX_ARGS_AND_ENV_BYTES);
    let message = err.to_string();
    assert!(
        message.contains(&env_bytes.to_string()) && message.contains(&limit.to_string()),
        "{message}"
    );
}

#[test]
fn env_just_under_the_limit_passes() {
    // args: "/bin/sh\0" = 8 bytes; env: "PATH=/bin\0" = 10 bytes; fill the rest exactly.
    let room = MAX_ARGS_AND_ENV_BYTES - 8 - 10 - 1;
    let fits = format!("F={}", "x".repeat(room - 2));
    assert!(env_of(&["PATH=/bin", &fits], &[]).is_ok());
    let too_big = format!("F={}", "x".repeat(room - 1));
    assert!(matches!(
        env_of(&["PATH=/bin", &too_big], &[]),
        Err(ConversionError::TooLarge { .. })
    ));
}

#[test]
fn many_duplicate_env_entries_merge_quickly() {
    let entries: Vec<String> = (0..50_000).map(|i| format!("K{}={i}", i % 100)).collect();
    let config = runnable().env(entries).build().unwrap();
    let env = convert_config(config, &Overrides::default()).unwrap().env;
    assert_eq!(env.len(), 101);
    assert_eq!(env[1], "K0=49900");
}

// ---------------------------------------------------------------------------------------------------------------
// Working directory

fn cwd_of(image_dir: Option<&str>, user_dir: Option<&str>) -> Result<String, ConversionError> {
    let mut builder = runnable();
    if let Some(dir) = image_dir {
        builder = builder.working_dir(dir);
    }
    let overrides = Overrides {
        workdir: user_dir.map(str::to_owned),
        ..Overrides::default()
    };
    convert_config(builder.build().unwrap(), &overrides).map(|c| c.cwd)
}

#[test]
fn workdir_defaults_and_normalizes() {
    for (image_dir, user_dir, expected) in [
        (None, None, "/"),
        (Some(""), None, "/"),
        (Some("/app"), None, "/app"),
        (Some("app"), None, "/app"),
        (Some("./app/"), None, "/app"),
        (Some("../../x"), None, "/x"),
        (Some("/a/b/../../../x/./y"), None, "/x/y"),
        (Some("/app"), Some("/srv"), "/srv"),
        (Some("/app"), Some(""), "/app"),
        (None, Some("/srv/../../x"), "/x"),
    ] {
        assert_eq!(
            cwd_of(image_dir, user_dir).as_deref(),
            Ok(expected),
            "{image_dir:?} {user_dir:?}"
        );
    }
}

#[test]
fn relative_workdir_override_is_refused() {
    assert_eq!(
        cwd_of(None, Some("srv")),
        Err(ConversionError::WorkdirNotAbsolute { workdir: "srv".into() })
    );
}

#[test]
fn workdir_with_nul_is_refused() {
    assert_eq!(
        cwd_of(Some("/a\0b"), None),
        Err(ConversionError::WorkdirNul {
            workdir: "/a\0b".into()
        })
    );
    assert_eq!(
        cwd_of(None, Some("/a\0")),
        Err(ConversionError::WorkdirNul { workdir: "/a\0".into() })
    );
}

/// runc CVE-2024-21626: a WorkingDir of `/proc/self/fd/N` could land the process in a leaked host directory.
#[test]
fn cve_2024_21626_proc_fd_workdir_is_refused() {
    for (dir, normalized) in [
        ("/proc/self/fd/7", "/proc/self/fd/7"),
        ("/proc/self/fd", "/proc/self/fd"),
        ("/proc/1/fd/8", "/proc/1/fd/8"),
        ("/proc/thread-self/fd/3", "/proc/thread-self/fd/3"),
        ("/proc/1/task/1/fd/3", "/proc/1/task/1/fd/3"),
        ("proc/self/fd/7", "/proc/self/fd/7"),
        ("/x/../proc/./self/fd/7/", "/proc/self/fd/7"),
        ("../../proc/self/fd/9", "/proc/self/fd/9"),
    ] {
        let err = cwd_of(Some(dir), None).unwrap_err();
        assert_eq!(
            err,
            ConversionError::WorkdirProcFd {
                workdir: dir.into(),
                normalized: normalized.into()
            }
        );
        assert!(err.to_string().contains("CVE-2024-21626"), "{err}");
    }
    assert!(matches!(
        cwd_of(None, Some("/proc/self/fd/5")),
        Err(ConversionError::WorkdirProcFd { .. })
    ));
    assert_eq!(cwd_of(Some("/proc/self"), None).as_deref(), Ok("/proc/self"));
}

// ---------------------------------------------------------------------------------------------------------------
// User

#[test]
fn user_comes_from_image_unless_overridden() {
    let config = || runnable().user("app:staff").build().unwrap();
    let converted = convert_config(config(), &Overrides::default()).unwrap();
    assert_eq!(converted.user.to_string(), "app:staff");

    let overrides = Overrides {
        user: Some("1000".into()),
        ..Overrides::default()
    };
    assert_eq!(convert_config(config(), &overrides).unwrap().user.to_string(), "1000");

    let overrides = Overrides {
        user: Some(String::new()),
        ..Overrides::default()
    };
    assert_eq!(
        convert_config(config(), &overrides).unwrap().user.to_string(),
        "app:staff"
    );

    let converted = convert_config(runnable().build().unwrap(), &Overrides::default()).unwrap();
    assert_eq!(converted.user, UserSpec::root());
}

#[test]
fn invalid_image_user_is_refused() {
    let err = convert_config(runnable().user("4294967296").build().unwrap(), &Overrides::default()).unwrap_err();
    assert!(matches!(err, ConversionError::IdOutOfRange { .. }), "{err:?}");
    let overrides = Overrides {
        user: Some("-1".into()),
        ..Overrides::default()
    };
    let err = convert_config(runnable().build().unwrap(), &overrides).unwrap_err();
    assert!(matches!(err, ConversionError::IdOutOfRange { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// Annotations

fn full_image(labels: &[(&str, &str)]) -> ImageConfiguration {
    let labels: HashMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let config = runnable()
        .labels(labels)
        .stop_signal("SIGRTMIN+3")
        .exposed_ports(strings(&["8080/tcp", "53/udp", "443"]))
        .build()
        .unwrap();
    ImageConfigurationBuilder::default()
        .os("linux")
        .architecture("arm64")
        .variant("v8")
        .os_version("10.0.1")
        .os_features(strings(&["win32k", "extra"]))
        .author("Jane <jane@example.com>")
        .created("2024-01-02T03:04:05.123456789Z")
        .config(config)
        .build()
        .unwrap()
}

#[test]
fn annotations_map_every_field() {
    let converted = convert(&full_image(&[("com.example.team", "blue")]), &Overrides::default()).unwrap();
    let expected: BTreeMap<String, String> = [
        (ANNOTATION_OS, "linux"),
        (ANNOTATION_ARCHITECTURE, "arm64"),
        (ANNOTATION_VARIANT, "v8"),
        (ANNOTATION_OS_VERSION, "10.0.1"),
        (ANNOTATION_OS_FEATURES, "win32k,extra"),
        (ANNOTATION_AUTHOR, "Jane <jane@example.com>"),
        (ANNOTATION_CREATED, "2024-01-02T03:04:05.123456789Z"),
        (ANNOTATION_STOP_SIGNAL, "SIGRTMIN+3"),
        (ANNOTATION_EXPOSED_PORTS, "443,53/udp,8080/tcp"),
        ("com.example.team", "blue"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(converted.annotations, expected);
    assert_eq!(converted.exposed_ports, ["443", "53/udp", "8080/tcp"]);
    assert_eq!(converted.stop_signal.as_deref(), Some("SIGRTMIN+3"));
}

#[test]
fn optional_annotations_are_absent_when_unset() {
    let converted = convert(&with_command(&[], &["x"]), &Overrides::default()).unwrap();
    let keys: Vec<&str> = converted.annotations.keys().map(String::as_str).collect();
    assert_eq!(keys, [ANNOTATION_ARCHITECTURE, ANNOTATION_OS]);
    assert!(converted.exposed_ports.is_empty());
    assert_eq!(converted.stop_signal, None);
}

/// conversion.md: on a conflict between an implicit annotation and `Config.Labels`, the label MUST win.
#[test]
fn labels_take_precedence_over_implicit_annotations() {
    let converted = convert(
        &full_image(&[
            (ANNOTATION_OS, "from-label"),
            (ANNOTATION_EXPOSED_PORTS, "1"),
            (ANNOTATION_CREATED, "x"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(converted.annotations[ANNOTATION_OS], "from-label");
    assert_eq!(converted.annotations[ANNOTATION_EXPOSED_PORTS], "1");
    assert_eq!(converted.annotations[ANNOTATION_CREATED], "x");
    assert_eq!(converted.annotations[ANNOTATION_ARCHITECTURE], "arm64");
}

// ---------------------------------------------------------------------------------------------------------------
// Volumes

fn volumes_of(volumes: &[&str]) -> Result<Vec<String>, ConversionError> {
    convert_config(
        runnable().volumes(strings(volumes)).build().unwrap(),
        &Overrides::default(),
    )
    .map(|c| c.volumes)
}

/// containerd CVE-2022-23648: `..` in a volume path must not reach outside the rootfs.
#[test]
fn cve_2022_23648_volumes_cannot_escape() {
    let got = volumes_of(&[
        "/../../../../../../etc",
        "/data/../../../var/lib/x",
        "/data/",
        "/data",
        "/a/./b",
    ])
    .unwrap();
    assert_eq!(got, ["/a/b", "/data", "/etc", "/var/lib/x"]);
}

#[test]
fn bad_volumes_are_refused() {
    assert_eq!(
        volumes_of(&["data"]),
        Err(ConversionError::VolumeNotAbsolute { volume: "data".into() })
    );
    assert_eq!(
        volumes_of(&["../../etc"]),
        Err(ConversionError::VolumeNotAbsolute {
            volume: "../../etc".into()
        })
    );
    assert_eq!(
        volumes_of(&["/"]),
        Err(ConversionError::VolumeIsRoot { volume: "/".into() })
    );
    assert_eq!(
        volumes_of(&["/a/.."]),
        Err(ConversionError::VolumeIsRoot { volume: "/a/..".into() })
    );
    assert_eq!(
        volumes_of(&["/../.."]),
        Err(ConversionError::VolumeIsRoot {
            volume: "/../..".into()
        })
    );
    assert_eq!(volumes_of(&[""]), Err(ConversionError::VolumeEmpty));
    assert_eq!(
        volumes_of(&["/a\0b"]),
        Err(ConversionError::VolumeNul { volume: "/a\0b".into() })
    );
}

#[test]
fn volumes_parse_from_image_json() {
    let json = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
        "config":{"Cmd":["sh"],"Volumes":{"/b":{},"/a/../c":{}},"ExposedPorts":{"80/tcp":{}}}}"#;
    let config = ImageConfiguration::from_reader(json.as_bytes()).unwrap();
    let converted = convert(&config, &Overrides::default()).unwrap();
    assert_eq!(converted.volumes, ["/b", "/c"]);
    assert_eq!(converted.annotations[ANNOTATION_EXPOSED_PORTS], "80/tcp");
}

// ---------------------------------------------------------------------------------------------------------------
// Process and spec

fn sample() -> ImageRuntimeConfig {
    let config = runnable()
        .env(strings(&["PATH=/bin", "A=1"]))
        .working_dir("/w")
        .build()
        .unwrap();
    convert_config(config, &Overrides::default()).unwrap()
}

#[test]
fn process_carries_the_conversion_and_decides_no_privileges() {
    let resolved = ResolvedUser {
        uid: 1000,
        gid: 1001,
        additional_gids: vec![10, 20],
    };
    let process = sample().process(&resolved, true);
    assert_eq!(process.args().as_deref(), Some(&strings(&["/bin/sh"])[..]));
    assert_eq!(process.env().as_deref(), Some(&strings(&["PATH=/bin", "A=1"])[..]));
    assert_eq!(process.cwd().to_str(), Some("/w"));
    assert_eq!(process.terminal(), Some(true));
    assert_eq!(process.user().uid(), 1000);
    assert_eq!(process.user().gid(), 1001);
    assert_eq!(process.user().additional_gids().as_deref(), Some(&[10, 20][..]));
    assert_eq!(process.capabilities(), &None);
    assert_eq!(process.rlimits(), &None);
    assert_eq!(process.no_new_privileges(), None);

    let process = sample().process(&ResolvedUser::default(), false);
    assert_eq!(process.terminal(), Some(false));
    assert_eq!(process.user().additional_gids(), &None);
}

#[test]
fn apply_to_spec_keeps_caller_decisions() {
    let mut spec = Spec::default();
    spec.annotations_mut()
        .get_or_insert_with(Default::default)
        .insert(ANNOTATION_OS.into(), "caller".into());
    let caps = spec.process().as_ref().unwrap().capabilities().clone();
    assert!(caps.is_some());

    let converted = sample();
    converted.apply_to_spec(
        &mut spec,
        &ResolvedUser {
            uid: 5,
            gid: 6,
            additional_gids: vec![],
        },
        false,
    );
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.args().as_deref(), Some(&strings(&["/bin/sh"])[..]));
    assert_eq!(process.cwd().to_str(), Some("/w"));
    assert_eq!((process.user().uid(), process.user().gid()), (5, 6));
    assert_eq!(process.capabilities(), &caps);
    let annotations = spec.annotations().as_ref().unwrap();
    assert_eq!(annotations[ANNOTATION_OS], "caller");
    assert_eq!(annotations[ANNOTATION_ARCHITECTURE], "amd64");

    let mut bare = Spec::default();
    bare.set_process(None);
    converted.apply_to_spec(&mut bare, &ResolvedUser::default(), false);
    let process = bare.process().as_ref().unwrap();
    assert_eq!(process.capabilities(), &None::<LinuxCapabilities>);
    assert_eq!(process.env().as_deref(), Some(&strings(&["PATH=/bin", "A=1"])[..]));
}
