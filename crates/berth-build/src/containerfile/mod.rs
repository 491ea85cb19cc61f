//! The Containerfile (Dockerfile) syntax: [`parse`] gives the parser directives, the global `ARG`s before the
//! first `FROM`, and the stages with their instructions, each with its line and column so that every later error
//! can say `FILE:LINE:COL: what is wrong`. Semantics (variable scoping, what each instruction does) come later;
//! this module only decides what was written.
//!
//! The rules, as Docker's parser has them:
//! - Parser directives (`# syntax=...`, `# escape=\` or `` ` ``, `# check=...`) count only at the very top: the
//!   first line that is not a directive (a comment, a blank line, an instruction) ends them.
//! - A line ending with the escape character continues on the next; comment lines and blank lines inside a
//!   continued instruction are skipped.
//! - `RUN`, `COPY` and `ADD` take heredocs (`<<EOF`, `<<-EOF` strips leading tabs, `<<"EOF"` / `<<'EOF'` turn
//!   expansion off), several per line, their bodies read verbatim up to the delimiter line.
//! - Leading `--name=value` words are the instruction's flags; a JSON array of strings is the exec form.

pub mod expand;
mod lines;

use std::fmt;

pub use lines::Heredoc;

/// An instruction keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Keyword {
    From,
    Arg,
    Env,
    Label,
    Run,
    Copy,
    Add,
    Workdir,
    User,
    Cmd,
    Entrypoint,
    Expose,
    Volume,
    Stopsignal,
    Shell,
    Healthcheck,
    Onbuild,
    Maintainer,
}

impl Keyword {
    /// Every instruction's name.
    pub const NAMES: &[&str] = &[
        "FROM",
        "ARG",
        "ENV",
        "LABEL",
        "RUN",
        "COPY",
        "ADD",
        "WORKDIR",
        "USER",
        "CMD",
        "ENTRYPOINT",
        "EXPOSE",
        "VOLUME",
        "STOPSIGNAL",
        "SHELL",
        "HEALTHCHECK",
        "ONBUILD",
        "MAINTAINER",
    ];

    /// The keyword of `word`, in any case.
    pub fn parse(word: &str) -> Option<Keyword> {
        Some(match word.to_ascii_uppercase().as_str() {
            "FROM" => Keyword::From,
            "ARG" => Keyword::Arg,
            "ENV" => Keyword::Env,
            "LABEL" => Keyword::Label,
            "RUN" => Keyword::Run,
            "COPY" => Keyword::Copy,
            "ADD" => Keyword::Add,
            "WORKDIR" => Keyword::Workdir,
            "USER" => Keyword::User,
            "CMD" => Keyword::Cmd,
            "ENTRYPOINT" => Keyword::Entrypoint,
            "EXPOSE" => Keyword::Expose,
            "VOLUME" => Keyword::Volume,
            "STOPSIGNAL" => Keyword::Stopsignal,
            "SHELL" => Keyword::Shell,
            "HEALTHCHECK" => Keyword::Healthcheck,
            "ONBUILD" => Keyword::Onbuild,
            "MAINTAINER" => Keyword::Maintainer,
            _ => return None,
        })
    }

    /// Whether `$variables` in its arguments are expanded (not for RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK).
    pub fn expands(self) -> bool {
        !matches!(
            self,
            Keyword::Run | Keyword::Cmd | Keyword::Entrypoint | Keyword::Shell | Keyword::Healthcheck
        )
    }

    /// Whether it takes heredocs.
    pub fn takes_heredocs(self) -> bool {
        matches!(self, Keyword::Run | Keyword::Copy | Keyword::Add)
    }

    /// Whether a JSON array is its exec form.
    fn takes_json(self) -> bool {
        matches!(
            self,
            Keyword::Run
                | Keyword::Cmd
                | Keyword::Entrypoint
                | Keyword::Shell
                | Keyword::Copy
                | Keyword::Add
                | Keyword::Volume
        )
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format!("{self:?}").to_ascii_uppercase())
    }
}

/// A position in the file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// Line.
    pub line: usize,
    /// Column (in characters).
    pub col: usize,
}

/// A `--name[=value]` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The name without `--`.
    pub name: String,
    /// The value after `=`, as written (unexpanded); `None` for a bare `--name`.
    pub value: Option<String>,
}

/// What follows the keyword and flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// The exec form: a JSON array of strings.
    Json(Vec<String>),
    /// Anything else, as written (continuations joined, unexpanded).
    Text(String),
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Its keyword.
    pub keyword: Keyword,
    /// Where the keyword is.
    pub pos: Pos,
    /// Its flags, in order.
    pub flags: Vec<Flag>,
    /// Its arguments.
    pub args: Args,
    /// Its heredocs, in the order their markers appear.
    pub heredocs: Vec<Heredoc>,
    /// For `ONBUILD`: the instruction it registers.
    pub onbuild: Option<Box<Instruction>>,
}

impl Instruction {
    /// The value of flag `name` (the last one given), if present.
    pub fn flag(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().rev().find(|f| f.name == name)
    }

    /// The arguments as text (the exec form's words joined by spaces).
    pub fn text(&self) -> String {
        match &self.args {
            Args::Text(t) => t.clone(),
            Args::Json(words) => words.join(" "),
        }
    }
}

/// A `FROM` and the instructions up to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The `FROM` line.
    pub from: Instruction,
    /// The base image as written (unexpanded).
    pub base: String,
    /// The name after `AS`, lowercased as Docker does.
    pub name: Option<String>,
    /// The instructions after `FROM`.
    pub instructions: Vec<Instruction>,
}

/// A parsed Containerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containerfile {
    /// The file name, for messages.
    pub file: String,
    /// Parser directives (`syntax`, `escape`, `check`), names lowercased.
    pub directives: Vec<(String, String)>,
    /// The escape character (`\` unless `# escape=` said otherwise).
    pub escape: char,
    /// `ARG`s before the first `FROM`: visible only to `FROM` lines (and to stages that declare them again).
    pub global_args: Vec<Instruction>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

/// A syntax error: `FILE:LINE:COL: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{}:{}: {message}", pos.line, pos.col)]
pub struct ParseError {
    /// The file.
    pub file: String,
    /// Where.
    pub pos: Pos,
    /// What is wrong, and what to do.
    pub message: String,
}

/// Parses the Containerfile `text`, named `file` in messages.
pub fn parse(file: &str, text: &str) -> Result<Containerfile, ParseError> {
    let err = |pos: Pos, message: String| ParseError {
        file: file.to_owned(),
        pos,
        message,
    };
    // A UTF-8 byte order mark is not part of the first instruction.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let logical = lines::split(text).map_err(|(pos, m)| err(pos, m))?;
    let mut out = Containerfile {
        file: file.to_owned(),
        directives: logical.directives,
        escape: logical.escape,
        global_args: Vec::new(),
        stages: Vec::new(),
    };
    for line in logical.lines {
        let inst = instruction(&line).map_err(|(pos, m)| err(pos, m))?;
        match (inst.keyword, out.stages.last_mut()) {
            (Keyword::From, _) => {
                let (base, name) = from_args(&inst).map_err(|m| err(inst.pos, m))?;
                out.stages.push(Stage {
                    from: inst,
                    base,
                    name,
                    instructions: Vec::new(),
                });
            }
            (Keyword::Arg, None) => out.global_args.push(inst),
            (k, None) => {
                return Err(err(
                    inst.pos,
                    format!("{k} before the first FROM: only ARG may come before FROM"),
                ));
            }
            (_, Some(stage)) => stage.instructions.push(inst),
        }
    }
    if out.stages.is_empty() {
        return Err(err(
            Pos { line: 1, col: 1 },
            "no FROM instruction: a Containerfile starts with FROM IMAGE (or FROM scratch)".into(),
        ));
    }
    Ok(out)
}

/// `FROM [--platform=P] IMAGE [AS NAME]`.
fn from_args(inst: &Instruction) -> Result<(String, Option<String>), String> {
    for f in &inst.flags {
        if f.name != "platform" {
            return Err(format!("FROM does not take --{}; it takes --platform", f.name));
        }
    }
    let text = inst.text();
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [base] => Ok(((*base).to_owned(), None)),
        [base, as_, name] if as_.eq_ignore_ascii_case("as") => {
            let name = name.to_ascii_lowercase();
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !valid {
                return Err(format!(
                    "invalid stage name {name:?}: use letters, digits, '_', '-' and '.', starting with a letter"
                ));
            }
            Ok(((*base).to_owned(), Some(name)))
        }
        [] => Err("FROM needs an image: FROM IMAGE [AS NAME], or FROM scratch".into()),
        _ => Err(format!("FROM takes IMAGE [AS NAME], not {text:?}")),
    }
}

/// One logical line into an instruction.
fn instruction(line: &lines::Logical) -> Result<Instruction, (Pos, String)> {
    let text = line.text.as_str();
    let trimmed = text.trim_start();
    let indent = text.len() - trimmed.len();
    let word_end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
    let word = &trimmed[..word_end];
    let pos = Pos {
        line: line.line,
        col: indent + 1,
    };
    let keyword = Keyword::parse(word).ok_or_else(|| {
        let hint = crate::naming::closest(&word.to_ascii_uppercase(), Keyword::NAMES)
            .map(|k| format!("; did you mean {k}?"))
            .unwrap_or_default();
        (pos, format!("unknown instruction {word:?}{hint}"))
    })?;
    let mut rest = trimmed[word_end..].trim_start();
    let mut flags = Vec::new();
    if keyword != Keyword::Onbuild {
        while let Some(flag) = rest.strip_prefix("--") {
            let end = flag.find(char::is_whitespace).unwrap_or(flag.len());
            let (name, value) = match flag[..end].split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (flag[..end].to_owned(), None),
            };
            if name.is_empty() {
                return Err((pos, format!("{keyword}: a flag without a name ('--')")));
            }
            flags.push(Flag { name, value });
            rest = flag[end..].trim_start();
        }
    }
    let rest = rest.trim_end();
    let args = if keyword.takes_json() && rest.starts_with('[') {
        match serde_json::from_str::<Vec<String>>(rest) {
            Ok(words) => Args::Json(words),
            // Not valid JSON: the shell form, as Docker does.
            Err(_) => Args::Text(rest.to_owned()),
        }
    } else {
        Args::Text(rest.to_owned())
    };
    let mut inst = Instruction {
        keyword,
        pos,
        flags,
        args,
        heredocs: line.heredocs.clone(),
        onbuild: None,
    };
    if !line.heredocs.is_empty() && !keyword.takes_heredocs() && keyword != Keyword::Onbuild {
        return Err((
            pos,
            format!("{keyword} does not take heredocs (only RUN, COPY and ADD do)"),
        ));
    }
    if keyword == Keyword::Onbuild {
        let inner_text = rest.to_owned();
        if inner_text.is_empty() {
            return Err((pos, "ONBUILD needs an instruction to register".into()));
        }
        let inner_line = lines::Logical {
            line: line.line,
            text: inner_text,
            heredocs: line.heredocs.clone(),
        };
        let inner = instruction(&inner_line)?;
        if matches!(inner.keyword, Keyword::Onbuild | Keyword::From | Keyword::Maintainer) {
            return Err((pos, format!("ONBUILD {} is not allowed", inner.keyword)));
        }
        inst.heredocs = Vec::new();
        inst.onbuild = Some(Box::new(inner));
    }
    if matches!(keyword, Keyword::Run | Keyword::Cmd | Keyword::Entrypoint)
        && matches!(&inst.args, Args::Text(t) if t.is_empty())
        && inst.heredocs.is_empty()
    {
        return Err((pos, format!("{keyword} needs a command")));
    }
    Ok(inst)
}

#[cfg(test)]
mod tests;
