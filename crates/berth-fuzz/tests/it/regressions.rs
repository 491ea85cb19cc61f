//! Inputs the fuzzer found, minimized, each replayed through its target in a test named after the bug. The fix
//! and its own named test live in the crate at fault; these keep the whole oracle of the target on the input.

use berth_fuzz::document::{Parser, encode};

/// berth-spec `DockerReference::familiar` shortened `docker.io/cker.io/vv` to `cker.io/vv`, which names the
/// registry `cker.io` (and berth-copy wrote such short forms as docker-archive RepoTags). Fixed in berth-spec:
/// `familiar_form_of_a_docker_io_path_that_looks_like_a_host_keeps_docker_io`.
#[test]
fn reference_familiar_form_of_docker_io_path_named_another_registry() {
    berth_fuzz::reference::run(b"docker.io/cker.io/vv");
    berth_fuzz::reference::run(b"docker.io/localhost/x:1");
}

/// berth-registry's token response parser took a JSON array for a token response (`[" "]` gave the token
/// `" "`): serde reads structs from arrays, field by position. Fixed in berth-registry:
/// `token_response_that_is_a_json_array_is_refused`.
#[test]
fn auth_token_response_as_json_array_was_accepted() {
    berth_fuzz::auth::run(b"\x01[\" \"]");
    berth_fuzz::auth::run(b"\x01 [\"\", \"  ,  \" ]");
}

/// The same class in berth-spec's document parser: an image config written as a JSON array parsed, though every
/// other tool refuses it. Fixed in berth-spec: `config_that_is_a_json_array_is_refused`.
#[test]
fn document_config_as_json_array_was_accepted() {
    let doc = br#"[null,null,"amd64","linux",null,null,null,null,["layers",[]],null]"#;
    berth_fuzz::document::run(&encode(Parser::Config, 0, false, false, doc));
    berth_fuzz::document::run(&encode(Parser::Config, 5, true, false, doc));
}
