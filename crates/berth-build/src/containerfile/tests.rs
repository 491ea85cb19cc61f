use super::*;

fn one(text: &str) -> Containerfile {
    parse("Containerfile", text).unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str) -> String {
    parse("Containerfile", text).unwrap_err().to_string()
}

#[test]
fn stages_names_and_global_args() {
    let f = one("ARG BASE=scratch\nFROM $BASE AS Build\nRUN make\nfrom build as final\ncopy --from=build /a /b\n");
    assert_eq!(f.global_args.len(), 1);
    assert_eq!(f.stages.len(), 2);
    assert_eq!(
        (f.stages[0].base.as_str(), f.stages[0].name.as_deref()),
        ("$BASE", Some("build"))
    );
    assert_eq!(f.stages[1].name.as_deref(), Some("final"));
    let copy = &f.stages[1].instructions[0];
    assert_eq!(copy.keyword, Keyword::Copy);
    assert_eq!(copy.flag("from").and_then(|f| f.value.as_deref()), Some("build"));
    assert_eq!(copy.args, Args::Text("/a /b".into()));
    assert_eq!(copy.pos, Pos { line: 5, col: 1 });
}

#[test]
fn errors_name_file_line_and_column() {
    assert_eq!(
        error("FROM scratch\n  FOO bar\n"),
        "Containerfile:2:3: unknown instruction \"FOO\""
    );
    assert_eq!(
        error("# a comment\nRUN x\n"),
        "Containerfile:2:1: RUN before the first FROM: only ARG may come before FROM"
    );
    assert!(error("ARG x\n").contains("no FROM instruction"));
    assert!(error("FROM a AS 1bad\n").starts_with("Containerfile:1:1: invalid stage name"));
    assert!(error("FROM a b c d\n").contains("FROM takes IMAGE [AS NAME]"));
    assert!(error("FROM --pull=always a\n").contains("takes --platform"));
    assert!(error("FROM a\nRUN\n").contains("RUN needs a command"));
}

#[test]
fn directives_only_at_the_top() {
    let f = one("# syntax=docker/dockerfile:1\n# escape=`\nFROM scratch\nCOPY a `\n  b /c\n");
    assert_eq!(f.escape, '`');
    assert_eq!(f.directives[0], ("syntax".into(), "docker/dockerfile:1".into()));
    assert_eq!(f.stages[0].instructions[0].args, Args::Text("a   b /c".into()));
    // After a comment, a blank line or an instruction, `# escape=` is a comment.
    for late in ["# hello\n# escape=`\n", "\n# escape=`\n"] {
        let f = one(&format!("{late}FROM scratch\nCOPY a \\\n b /c\n"));
        assert_eq!(f.escape, '\\', "{late:?}");
        assert!(f.directives.is_empty());
    }
    let f = one("FROM scratch\n# escape=`\nCOPY a \\\n b /c\n");
    assert_eq!(f.escape, '\\');
    // Unknown directive names are comments and end the directive block.
    let f = one("# foo=bar\n# escape=`\nFROM scratch\n");
    assert_eq!(f.escape, '\\');
    assert!(error("# escape=x\nFROM a\n").starts_with("Containerfile:1:1: invalid escape character"));
    assert!(error("# escape=\\\n# escape=`\nFROM a\n").contains("given twice"));
}

#[test]
fn continuations_skip_comments_and_blank_lines() {
    let f = one("FROM a\nRUN echo one \\\n# a comment inside\n\n    two \\\n  three\nENV X=1\n");
    let run = &f.stages[0].instructions[0];
    assert_eq!(run.args, Args::Text("echo one     two   three".into()));
    assert_eq!(run.pos.line, 2);
    assert_eq!(f.stages[0].instructions[1].pos.line, 7);
    // A continuation on the last line ends the instruction.
    let f = one("FROM a\nRUN echo \\");
    assert_eq!(f.stages[0].instructions[0].args, Args::Text("echo".into()));
    // CRLF line ends.
    let f = one("FROM a\r\nRUN echo \\\r\n  b\r\n");
    assert_eq!(f.stages[0].instructions[0].args, Args::Text("echo   b".into()));
}

#[test]
fn exec_form_is_a_json_array_of_strings() {
    let f = one("FROM a\nCMD [\"sh\", \"-c\", \"echo hi\"]\nENTRYPOINT [not json\nRUN [\"a\", 1]\nENV X [\"y\"]\n");
    let i = &f.stages[0].instructions;
    assert_eq!(i[0].args, Args::Json(vec!["sh".into(), "-c".into(), "echo hi".into()]));
    assert_eq!(i[1].args, Args::Text("[not json".into()));
    assert_eq!(i[2].args, Args::Text("[\"a\", 1]".into()));
    assert_eq!(i[3].args, Args::Text("X [\"y\"]".into()), "ENV has no exec form");
}

#[test]
fn flags_come_before_arguments() {
    let f = one("FROM a\nRUN --mount=type=cache,target=/c --network=none make --jobs=2\nCOPY --link --chmod=644 a b\n");
    let run = &f.stages[0].instructions[0];
    let names: Vec<&str> = run.flags.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["mount", "network"]);
    assert_eq!(run.args, Args::Text("make --jobs=2".into()));
    let copy = &f.stages[0].instructions[1];
    assert_eq!(copy.flag("link").map(|f| f.value.clone()), Some(None));
    assert_eq!(copy.flag("chmod").and_then(|f| f.value.as_deref()), Some("644"));
}

#[test]
fn heredocs() {
    let text = "FROM a\nRUN <<EOF\necho $HOME\n  indented\nEOF\nRUN <<-'END' cat >/x && cat <<TWO\n\t\tliteral $x\n\tEND\nsecond\nTWO\nCOPY <<\"file\" /etc/conf\nkey=$v\nfile\nRUN echo \"<<NOT\" 'a<<B' 1<<<here\n";
    let f = one(text);
    let i = &f.stages[0].instructions;
    assert_eq!(
        i[0].heredocs,
        [Heredoc {
            name: "EOF".into(),
            body: "echo $HOME\n  indented\n".into(),
            expand: true
        }]
    );
    assert_eq!(i[0].args, Args::Text("<<EOF".into()));
    assert_eq!(i[1].heredocs.len(), 2);
    assert_eq!(
        i[1].heredocs[0],
        Heredoc {
            name: "END".into(),
            body: "literal $x\n".into(),
            expand: false
        }
    );
    assert_eq!(
        i[1].heredocs[1],
        Heredoc {
            name: "TWO".into(),
            body: "second\n".into(),
            expand: true
        }
    );
    assert_eq!(
        i[2].heredocs[0],
        Heredoc {
            name: "file".into(),
            body: "key=$v\n".into(),
            expand: false
        }
    );
    assert!(
        i[3].heredocs.is_empty(),
        "quoted markers and here-strings are not heredocs"
    );
    assert_eq!(i[3].pos.line, 14);
    assert!(error("FROM a\nRUN <<EOF\necho\n").contains("heredoc <<EOF is not closed"));
    // Only RUN, COPY and ADD read a body: after ENV, the next line is an instruction again.
    assert_eq!(
        error("FROM a\nENV <<EOF\nx\nEOF\n"),
        "Containerfile:3:1: unknown instruction \"x\""
    );
}

#[test]
fn onbuild_wraps_an_instruction() {
    let f = one("FROM a\nONBUILD RUN --network=none echo hi\nonbuild copy <<EOF /f\nbody\nEOF\n");
    let i = &f.stages[0].instructions;
    let inner = i[0].onbuild.as_ref().unwrap();
    assert_eq!(inner.keyword, Keyword::Run);
    assert_eq!(inner.flag("network").and_then(|f| f.value.as_deref()), Some("none"));
    assert_eq!(i[1].onbuild.as_ref().unwrap().heredocs[0].body, "body\n");
    for bad in ["ONBUILD ONBUILD RUN x", "ONBUILD FROM b", "ONBUILD MAINTAINER me"] {
        assert!(error(&format!("FROM a\n{bad}\n")).contains("is not allowed"), "{bad}");
    }
    assert!(error("FROM a\nONBUILD\n").contains("needs an instruction"));
}
