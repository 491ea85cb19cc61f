use proptest::prelude::*;

use super::*;

fn id(n: u32) -> UserPart {
    UserPart::Id(n)
}

fn name(n: &str) -> UserPart {
    UserPart::Name(n.to_owned())
}

fn spec(user: UserPart, group: Option<UserPart>) -> UserSpec {
    UserSpec { user, group }
}

#[test]
fn parses_every_form() {
    for (input, expected) in [
        ("", spec(id(0), None)),
        ("0", spec(id(0), None)),
        ("1000", spec(id(1000), None)),
        ("0001000", spec(id(1000), None)),
        ("4294967294", spec(id(4_294_967_294), None)),
        ("app", spec(name("app"), None)),
        ("app:staff", spec(name("app"), Some(name("staff")))),
        ("1000:1000", spec(id(1000), Some(id(1000)))),
        ("1000:staff", spec(id(1000), Some(name("staff")))),
        ("app:50", spec(name("app"), Some(id(50)))),
        ("0:0", spec(id(0), Some(id(0)))),
        ("www-data", spec(name("www-data"), None)),
        ("1abc", spec(name("1abc"), None)),
    ] {
        assert_eq!(UserSpec::parse(input), Ok(expected.clone()), "{input:?}");
        assert_eq!(input.parse::<UserSpec>(), Ok(expected), "{input:?}");
    }
}

#[test]
fn display_round_trips() {
    for input in ["0", "app", "app:staff", "1000:1000", "1000:staff", "app:50"] {
        assert_eq!(UserSpec::parse(input).unwrap().to_string(), input);
    }
}

/// containerd CVE-2024-40635: ids that overflow, wrap or equal `(uid_t)-1` must not turn into root or "no change".
#[test]
fn cve_2024_40635_out_of_range_ids_are_refused() {
    for input in [
        "4294967295",
        "4294967296",
        "-1",
        "+1",
        "18446744073709551616",
        "99999999999999999999999999",
        "1000:4294967295",
        "1000:-1",
        "4294967296:0",
        "app:4294967296",
    ] {
        match UserSpec::parse(input) {
            Err(ConversionError::IdOutOfRange { input: got, .. }) => assert_eq!(got, input),
            other => panic!("{input:?} gave {other:?}"),
        }
    }
}

#[test]
fn malformed_users_are_refused() {
    for input in [
        ":", ":0", "0:", "app:", ":staff", "a:b:c", "a/b", "app:../g", "ro\0ot", "app\n", "\t",
    ] {
        match UserSpec::parse(input) {
            Err(ConversionError::InvalidUser { input: got, .. }) => assert_eq!(got, input),
            other => panic!("{input:?} gave {other:?}"),
        }
    }
}

const PASSWD: &str = "\
# comment line
root:x:0:0:root:/root:/bin/sh

daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1001:App:/home/app:/bin/sh
broken line without colons
short:x:5
badid:x:notanumber:1::/:/bin/sh
toobig:x:4294967295:0::/:/bin/sh
+nisuser::::::
alias:x:1000:77:same uid as app, listed later:/:/bin/sh
";

const GROUP: &str = "\
root:x:0:root
daemon:x:1:
# comment
appgroup:x:1001:
wheel:x:10:root, app
audio:x:29:app,app
video:x:44:other
primary-dup:x:1001:app
malformed
users:x:100:nobody,app
dupname:x:100:app
";

#[test]
fn name_resolves_to_uid_gid_and_supplementary_groups() {
    let resolved = resolve_user(&spec(name("app"), None), PASSWD, GROUP).unwrap();
    assert_eq!(
        resolved,
        ResolvedUser {
            uid: 1000,
            gid: 1001,
            additional_gids: vec![10, 29, 100]
        }
    );
}

#[test]
fn root_gets_its_groups() {
    let resolved = resolve_user(&UserSpec::root(), PASSWD, GROUP).unwrap();
    assert_eq!(
        resolved,
        ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![10]
        }
    );
}

#[test]
fn empty_files_mean_root_is_0_0() {
    assert_eq!(
        resolve_user(&UserSpec::root(), "", "").unwrap(),
        ResolvedUser::default()
    );
}

#[test]
fn numeric_uid_uses_first_passwd_entry() {
    let resolved = resolve_user(&spec(id(1000), None), PASSWD, GROUP).unwrap();
    assert_eq!(
        resolved,
        ResolvedUser {
            uid: 1000,
            gid: 1001,
            additional_gids: vec![10, 29, 100]
        }
    );
}

#[test]
fn numeric_uid_without_entry_gets_gid_0() {
    let resolved = resolve_user(&spec(id(4242), None), PASSWD, GROUP).unwrap();
    assert_eq!(
        resolved,
        ResolvedUser {
            uid: 4242,
            gid: 0,
            additional_gids: vec![]
        }
    );
    let resolved = resolve_user(&spec(id(4242), Some(id(7))), PASSWD, GROUP).unwrap();
    assert_eq!(
        resolved,
        ResolvedUser {
            uid: 4242,
            gid: 7,
            additional_gids: vec![]
        }
    );
}

#[test]
fn explicit_group_replaces_primary_and_drops_supplementary() {
    let resolved = resolve_user(&spec(name("app"), Some(name("video"))), PASSWD, GROUP).unwrap();
    assert_eq!(
        resolved,
        ResolvedUser {
            uid: 1000,
            gid: 44,
            additional_gids: vec![]
        }
    );
    let resolved = resolve_user(&spec(name("app"), Some(id(5555))), PASSWD, GROUP).unwrap();
    assert_eq!(
        resolved,
        ResolvedUser {
            uid: 1000,
            gid: 5555,
            additional_gids: vec![]
        }
    );
    let resolved = resolve_user(&spec(id(4242), Some(name("wheel"))), PASSWD, GROUP).unwrap();
    assert_eq!(
        resolved,
        ResolvedUser {
            uid: 4242,
            gid: 10,
            additional_gids: vec![]
        }
    );
}

#[test]
fn unknown_names_are_errors_naming_them() {
    let err = resolve_user(&spec(name("ghost"), None), PASSWD, GROUP).unwrap_err();
    assert_eq!(err, ConversionError::UnknownUser { name: "ghost".into() });
    assert!(err.to_string().contains("\"ghost\""), "{err}");
    assert!(err.to_string().contains("/etc/passwd"), "{err}");

    let err = resolve_user(&spec(name("app"), Some(name("nogroup"))), PASSWD, GROUP).unwrap_err();
    assert_eq!(err, ConversionError::UnknownGroup { name: "nogroup".into() });
    assert!(err.to_string().contains("/etc/group"), "{err}");

    // Malformed, comment and NIS lines never match.
    for ghost in [
        "broken line without colons",
        "short",
        "badid",
        "toobig",
        "+nisuser",
        "nisuser",
        "# comment line",
    ] {
        let err = resolve_user(&spec(name(ghost), None), PASSWD, GROUP).unwrap_err();
        assert!(matches!(err, ConversionError::UnknownUser { .. }), "{ghost}: {err:?}");
    }
    let err = resolve_user(&spec(name("app"), Some(name("malformed"))), PASSWD, GROUP).unwrap_err();
    assert!(matches!(err, ConversionError::UnknownGroup { .. }), "{err:?}");
}

#[test]
fn crlf_files_are_tolerated() {
    let passwd = PASSWD.replace('\n', "\r\n");
    let group = GROUP.replace('\n', "\r\n");
    let resolved = resolve_user(&spec(name("app"), None), &passwd, &group).unwrap();
    assert_eq!(resolved.additional_gids, vec![10, 29, 100]);
}

#[test]
fn huge_files_resolve_in_linear_time() {
    let mut passwd = String::new();
    let mut group = String::new();
    for i in 0..100_000u32 {
        passwd.push_str(&format!(
            "user{i}:x:{}:{}::/home/user{i}:/bin/sh\n",
            10_000 + i,
            10_000 + i
        ));
        group.push_str(&format!("group{i}:x:{}:user{},target\n", 10_000 + i, i));
    }
    passwd.push_str("target:x:5:5::/:/bin/sh\n");
    let members: Vec<String> = (0..100_000).map(|i| format!("m{i}")).collect();
    group.push_str(&format!("big:x:6:{},target\n", members.join(",")));

    let start = std::time::Instant::now();
    let resolved = resolve_user(&spec(name("target"), None), &passwd, &group).unwrap();
    assert_eq!(resolved.uid, 5);
    assert_eq!(resolved.additional_gids.len(), 100_001);
    assert_eq!(resolved.additional_gids[0], 6);
    assert!(resolved.additional_gids.windows(2).all(|w| w[0] < w[1]));
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

proptest! {
    #[test]
    fn any_user_string_never_panics(input in any::<String>()) {
        let _ = UserSpec::parse(&input);
    }

    #[test]
    fn any_user_and_files_never_panic(user in "[a-z0-9:+-]{0,12}", passwd in any::<String>(), group in any::<String>()) {
        if let Ok(spec) = UserSpec::parse(&user) {
            let _ = resolve_user(&spec, &passwd, &group);
        }
    }

    #[test]
    fn uid_parse_accepts_exactly_the_valid_range(n in prop_oneof![
        0u64..=10_000,
        4_294_960_000u64..=4_294_970_000,
        any::<u64>(),
    ]) {
        let parsed = UserSpec::parse(&n.to_string());
        if n <= 4_294_967_294 {
            prop_assert_eq!(parsed, Ok(UserSpec { user: UserPart::Id(n as u32), group: None }));
        } else {
            let is_out_of_range = matches!(parsed, Err(ConversionError::IdOutOfRange { .. }));
            prop_assert!(is_out_of_range);
        }
    }

    #[test]
    fn long_digit_strings_are_refused_not_wrapped(digits in "[1-9][0-9]{10,40}") {
        let is_out_of_range = matches!(UserSpec::parse(&digits), Err(ConversionError::IdOutOfRange { .. }));
        prop_assert!(is_out_of_range);
    }

    #[test]
    fn gid_parse_accepts_exactly_the_valid_range(n in any::<u64>()) {
        let parsed = UserSpec::parse(&format!("0:{n}"));
        prop_assert_eq!(parsed.is_ok(), n <= 4_294_967_294);
    }
}

#[test]
fn home_comes_from_the_passwd_entry_or_is_the_root() {
    let passwd = "# comment\nroot:x:0:0:root:/root:/bin/sh\ntoor:x:0:0:alias:/toor:/bin/sh\n\
                  app:x:1000:1000::/home/app:/bin/sh\nshort:x:7:7\nrel:x:8:8::relative:/bin/sh\n";
    assert_eq!(home_of(passwd, &id(0)), "/root");
    assert_eq!(
        home_of(passwd, &name("toor")),
        "/toor",
        "a named user: its own entry, as runc"
    );
    assert_eq!(home_of(passwd, &id(1000)), "/home/app");
    assert_eq!(home_of(passwd, &name("app")), "/home/app");
    assert_eq!(home_of(passwd, &id(4242)), "/", "no entry");
    assert_eq!(home_of(passwd, &id(7)), "/", "no home field");
    assert_eq!(home_of(passwd, &id(8)), "/", "a relative home is not used");
    assert_eq!(home_of("", &id(0)), "/");
}
