//! From text to logical lines: parser directives, comments, continuations and heredoc bodies.

use super::Pos;

/// A heredoc: `<<NAME` on an instruction line, its body on the lines after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter.
    pub name: String,
    /// The body, each line ending in `\n` (leading tabs removed for `<<-`).
    pub body: String,
    /// Whether `$variables` in the body are expanded (not when the delimiter was quoted).
    pub expand: bool,
}

/// One instruction's text with the line it starts on.
#[derive(Debug, Clone)]
pub(super) struct Logical {
    pub line: usize,
    pub text: String,
    pub heredocs: Vec<Heredoc>,
}

pub(super) struct Split {
    pub directives: Vec<(String, String)>,
    pub escape: char,
    pub lines: Vec<Logical>,
}

/// Directive names Berth knows; others are plain comments, as in Docker.
const DIRECTIVES: [&str; 3] = ["syntax", "escape", "check"];

/// `# name = value` at the top of the file.
fn directive(line: &str) -> Option<(String, String)> {
    let body = line.trim().strip_prefix('#')?;
    let (name, value) = body.split_once('=')?;
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((name, value.trim().to_owned()))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

pub(super) fn split(text: &str) -> Result<Split, (Pos, String)> {
    let raw: Vec<&str> = text.lines().collect();
    let mut directives: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    // Directives: only an unbroken run of them at the very top.
    while let Some(line) = raw.get(i) {
        let Some((name, value)) = directive(line) else { break };
        if !DIRECTIVES.contains(&name.as_str()) {
            break;
        }
        let pos = Pos { line: i + 1, col: 1 };
        if directives.iter().any(|(n, _)| *n == name) {
            return Err((pos, format!("the {name} directive is given twice")));
        }
        directives.push((name, value));
        i += 1;
    }
    let escape = match directives.iter().find(|(n, _)| n == "escape") {
        None => '\\',
        Some((_, v)) if v == "\\" => '\\',
        Some((_, v)) if v == "`" => '`',
        Some((_, v)) => {
            let line = directives.iter().position(|(n, _)| n == "escape").unwrap_or(0) + 1;
            return Err((
                Pos { line, col: 1 },
                format!("invalid escape character {v:?}: use \\ or `"),
            ));
        }
    };
    let mut lines = Vec::new();
    while i < raw.len() {
        let line = raw[i];
        if line.trim().is_empty() || is_comment(line) {
            i += 1;
            continue;
        }
        let start = i;
        let mut text = String::new();
        let mut current = line;
        loop {
            let trimmed = current.trim_end();
            match trimmed.strip_suffix(escape) {
                Some(head) => {
                    text.push_str(head);
                    i += 1;
                    // Comment and blank lines inside a continued instruction are skipped.
                    while i < raw.len() && (is_comment(raw[i]) || raw[i].trim().is_empty()) {
                        i += 1;
                    }
                    match raw.get(i) {
                        Some(next) => current = next,
                        // A continuation at the end of the file ends the instruction.
                        None => break,
                    }
                }
                None => {
                    text.push_str(current);
                    i += 1;
                    break;
                }
            }
        }
        let markers = heredoc_markers(&text, escape);
        let mut heredocs = Vec::new();
        if !markers.is_empty() && takes_heredocs(&text) {
            for (name, strip_tabs, expand) in markers {
                let mut body = String::new();
                loop {
                    let Some(l) = raw.get(i) else {
                        return Err((
                            Pos {
                                line: start + 1,
                                col: 1,
                            },
                            format!("heredoc <<{name} is not closed: add a line with {name} alone after its body"),
                        ));
                    };
                    i += 1;
                    let l = if strip_tabs { l.trim_start_matches('\t') } else { l };
                    if l == name {
                        break;
                    }
                    body.push_str(l);
                    body.push('\n');
                }
                heredocs.push(Heredoc { name, body, expand });
            }
        }
        lines.push(Logical {
            line: start + 1,
            text,
            heredocs,
        });
    }
    Ok(Split {
        directives,
        escape,
        lines,
    })
}

fn takes_heredocs(text: &str) -> bool {
    let word = text.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
    matches!(word.as_str(), "RUN" | "COPY" | "ADD" | "ONBUILD")
}

/// The heredoc markers of an instruction line, outside quotes: `(name, strip tabs, expand)`.
fn heredoc_markers(text: &str, escape: char) -> Vec<(String, bool, bool)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    let mut k = 0;
    while k < chars.len() {
        let c = chars[k];
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == escape => k += 1,
            Some(_) => {}
            None if c == escape => k += 1,
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '<' && chars.get(k + 1) == Some(&'<') && chars.get(k + 2) != Some(&'<') => {
                // `<<<` is a here-string, not a heredoc; `<<` must start a word.
                let at_word_start = k == 0 || chars[k - 1].is_whitespace();
                let mut j = k + 2;
                let strip_tabs = chars.get(j) == Some(&'-');
                if strip_tabs {
                    j += 1;
                }
                let (name, end, quoted) = match chars.get(j) {
                    Some(&q @ ('"' | '\'')) => {
                        let close = chars[j + 1..].iter().position(|&c| c == q).map(|p| j + 1 + p);
                        match close {
                            Some(e) => (chars[j + 1..e].iter().collect::<String>(), e + 1, true),
                            None => (String::new(), j, true),
                        }
                    }
                    _ => {
                        let e = chars[j..]
                            .iter()
                            .position(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
                            .map_or(chars.len(), |p| j + p);
                        (chars[j..e].iter().collect::<String>(), e, false)
                    }
                };
                if at_word_start && !name.is_empty() {
                    out.push((name, strip_tabs, !quoted));
                    k = end;
                    continue;
                }
                k += 1;
            }
            None => {}
        }
        k += 1;
    }
    out
}
