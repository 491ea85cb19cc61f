//! Variable expansion and word splitting as Docker's (BuildKit's) shell lexer does them for the instructions that
//! expand (ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ONBUILD, ARG defaults):
//!
//! - `$name`, `${name}`, and the modifiers `${name:-word}` `${name-word}` (default), `${name:+word}` `${name+word}`
//!   (alternative), `${name:?message}` `${name?message}` (error); with `:` an empty value counts as unset. The
//!   `word` is itself expanded.
//! - Single quotes keep everything literal; double quotes keep spaces but still expand; outside single quotes the
//!   escape character (`\`, or `` ` `` after `# escape=`) makes the next character literal (`\$HOME` is `$HOME`).
//!   Inside double quotes it escapes only `"`, `$` and itself.
//! - A `$` not followed by a name or `{` is literal.

use std::collections::HashMap;

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `${` without its `}`.
    #[error("missing '}}' in {word:?}")]
    Unclosed {
        /// The word.
        word: String,
    },
    /// An opening quote without its closing one.
    #[error("unterminated {quote} quote in {word:?}")]
    Unterminated {
        /// `single` or `double`.
        quote: &'static str,
        /// The word.
        word: String,
    },
    /// `${name:?message}` with `name` unset (or empty).
    #[error("{name}: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The message the Containerfile gives (or a default one).
        message: String,
    },
    /// A modifier Berth does not implement (`${name#pattern}`, `${name/a/b}`, …).
    #[error("unsupported modifier {modifier:?} in ${{{name}...}}; use :- - :+ + :? or ?")]
    Modifier {
        /// The variable.
        name: String,
        /// What followed its name.
        modifier: String,
    },
    /// The expansion grew past [`MAX_EXPANSION`] (a runaway chain of self-referring ARGs).
    #[error("the expansion of {word:?} is longer than {MAX_EXPANSION} bytes")]
    TooLong {
        /// The word, shortened.
        word: String,
    },
    /// A `${...}` whose name is not a variable name.
    #[error("bad substitution {text:?}")]
    BadName {
        /// What was inside the braces.
        text: String,
    },
}

/// Longest result of expanding one word or line: ARGs that refer to themselves (`ARG A=$A$A`, repeated) would
/// otherwise double at every line.
pub const MAX_EXPANSION: usize = 1 << 20;

/// The variables visible to one instruction, as they were before it (an instruction never sees its own changes).
pub type Vars = HashMap<String, String>;

/// Expands one word (quotes removed) with `vars`.
pub fn expand_word(word: &str, vars: &Vars, escape: char) -> Result<String, ExpandError> {
    let words = Lexer::new(word, vars, escape).run(false)?;
    let out = words.into_iter().next().unwrap_or_default();
    check_len(word, out.len())?;
    Ok(out)
}

fn check_len(word: &str, len: usize) -> Result<(), ExpandError> {
    if len > MAX_EXPANSION {
        return Err(ExpandError::TooLong {
            word: word.chars().take(60).collect(),
        });
    }
    Ok(())
}

/// Splits `text` into words at unquoted white space, expanding each (quotes removed). An empty quoted word (`""`)
/// is a word.
pub fn expand_words(text: &str, vars: &Vars, escape: char) -> Result<Vec<String>, ExpandError> {
    let words = Lexer::new(text, vars, escape).run(true)?;
    check_len(text, words.iter().map(String::len).sum())?;
    Ok(words)
}

/// Splits `text` into words at unquoted white space, keeping quotes and escapes as written (no expansion): for
/// `KEY=VALUE` lists, where the value is then expanded on its own.
pub fn split_raw(text: &str, escape: char) -> Result<Vec<String>, ExpandError> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            '\'' | '"' => {
                in_word = true;
                current.push(c);
                loop {
                    let Some(n) = chars.next() else {
                        return Err(ExpandError::Unterminated {
                            quote: if c == '\'' { "single" } else { "double" },
                            word: text.to_owned(),
                        });
                    };
                    current.push(n);
                    if n == escape && c == '"' {
                        if let Some(m) = chars.next() {
                            current.push(m);
                        }
                    } else if n == c {
                        break;
                    }
                }
            }
            c if c == escape => {
                in_word = true;
                current.push(c);
                if let Some(n) = chars.next() {
                    current.push(n);
                }
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

struct Lexer<'a> {
    text: &'a str,
    chars: Vec<char>,
    pos: usize,
    vars: &'a Vars,
    escape: char,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str, vars: &'a Vars, escape: char) -> Self {
        Lexer {
            text,
            chars: text.chars().collect(),
            pos: 0,
            vars,
            escape,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// The words of the text; with `split`, white space outside quotes separates words, otherwise the whole
    /// text is one word.
    fn run(mut self, split: bool) -> Result<Vec<String>, ExpandError> {
        let mut words = Vec::new();
        let mut current = String::new();
        let mut in_word = false;
        while let Some(c) = self.next() {
            match c {
                c if split && c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut current));
                        in_word = false;
                    }
                }
                '\'' => {
                    in_word = true;
                    self.single_quoted(&mut current)?;
                }
                '"' => {
                    in_word = true;
                    self.double_quoted(&mut current)?;
                }
                '$' => {
                    let value = self.dollar()?;
                    if !split {
                        current.push_str(&value);
                        continue;
                    }
                    // An unquoted value splits into words at its white space (`COPY $files /dst/`).
                    for v in value.chars() {
                        if v.is_whitespace() {
                            if in_word && !current.is_empty() {
                                words.push(std::mem::take(&mut current));
                            }
                            in_word = false;
                        } else {
                            current.push(v);
                            in_word = true;
                        }
                    }
                }
                c if c == self.escape => {
                    in_word = true;
                    // A trailing escape stays as it is.
                    current.push(self.next().unwrap_or(c));
                }
                c => {
                    in_word = true;
                    current.push(c);
                }
            }
        }
        if in_word || !split {
            words.push(current);
        }
        Ok(words)
    }

    fn single_quoted(&mut self, out: &mut String) -> Result<(), ExpandError> {
        loop {
            match self.next() {
                Some('\'') => return Ok(()),
                Some(c) => out.push(c),
                None => {
                    return Err(ExpandError::Unterminated {
                        quote: "single",
                        word: self.text.to_owned(),
                    });
                }
            }
        }
    }

    fn double_quoted(&mut self, out: &mut String) -> Result<(), ExpandError> {
        loop {
            match self.next() {
                Some('"') => return Ok(()),
                Some('$') => {
                    let value = self.dollar()?;
                    out.push_str(&value);
                }
                Some(c) if c == self.escape => match self.peek() {
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        out.push(n);
                        self.pos += 1;
                    }
                    _ => out.push(c),
                },
                Some(c) => out.push(c),
                None => {
                    return Err(ExpandError::Unterminated {
                        quote: "double",
                        word: self.text.to_owned(),
                    });
                }
            }
        }
    }

    /// After a `$`: the value of the variable it starts, or `$` itself.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.braced()
            }
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let name = self.name();
                Ok(self.vars.get(&name).cloned().unwrap_or_default())
            }
            _ => Ok("$".to_owned()),
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c == '_' || c.is_ascii_alphanumeric() {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// `${...}` after the `{`.
    fn braced(&mut self) -> Result<String, ExpandError> {
        let name = self.name();
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            let rest: String = self.chars[self.pos..].iter().take_while(|c| **c != '}').collect();
            return Err(ExpandError::BadName {
                text: format!("{name}{rest}"),
            });
        }
        let value = self.vars.get(&name);
        let Some(c) = self.next() else {
            return Err(ExpandError::Unclosed {
                word: self.text.to_owned(),
            });
        };
        if c == '}' {
            return Ok(value.cloned().unwrap_or_default());
        }
        let colon = c == ':';
        let op = if colon { self.next() } else { Some(c) };
        let Some(op @ ('-' | '+' | '?')) = op else {
            let modifier: String = std::iter::once(c)
                .chain(self.chars[self.pos..].iter().copied().take_while(|c| *c != '}'))
                .collect();
            return Err(ExpandError::Modifier { name, modifier });
        };
        let word = self.modifier_word()?;
        // With ':' an empty value counts as unset.
        let set = match value {
            Some(v) => !(colon && v.is_empty()),
            None => false,
        };
        match op {
            '-' if set => Ok(value.cloned().unwrap_or_default()),
            '-' => Ok(word),
            '+' if set => Ok(word),
            '+' => Ok(String::new()),
            _ if set => Ok(value.cloned().unwrap_or_default()),
            _ => Err(ExpandError::Required {
                message: if word.is_empty() { "is not set".to_owned() } else { word },
                name,
            }),
        }
    }

    /// The word after a modifier, expanded, up to the matching `}`.
    fn modifier_word(&mut self) -> Result<String, ExpandError> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('}') => return Ok(out),
                Some('$') => {
                    let value = self.dollar()?;
                    out.push_str(&value);
                }
                Some('\'') => self.single_quoted(&mut out)?,
                Some('"') => self.double_quoted(&mut out)?,
                Some(c) if c == self.escape => {
                    if let Some(n) = self.next() {
                        out.push(n);
                    }
                }
                Some(c) => out.push(c),
                None => {
                    return Err(ExpandError::Unclosed {
                        word: self.text.to_owned(),
                    });
                }
            }
        }
    }
}

/// Parses `KEY=VALUE ...` (ENV, LABEL, ARG) or the legacy `KEY VALUE` form (ENV and LABEL with one pair: the
/// value is the rest of the line). Values are expanded with `vars` as they were before the instruction, when
/// `expand` is set; keys are expanded too (as BuildKit does for LABEL and ENV keys).
pub fn key_values(text: &str, vars: &Vars, escape: char, legacy: bool) -> Result<Vec<(String, String)>, String> {
    let words = split_raw(text, escape).map_err(|e| e.to_string())?;
    let Some(first) = words.first() else {
        return Err("needs KEY=VALUE".to_owned());
    };
    if !first.contains('=') {
        if !legacy {
            return Err(format!("{first:?} is not KEY=VALUE"));
        }
        // `ENV KEY value with spaces`: the key, then the rest of the line as written.
        let rest = text.trim_start()[first.len()..].trim();
        if rest.is_empty() {
            return Err(format!("{first} needs a value: write {first}=VALUE"));
        }
        let key = expand_word(first, vars, escape).map_err(|e| e.to_string())?;
        let value = expand_word(rest, vars, escape).map_err(|e| e.to_string())?;
        return Ok(vec![(key, value)]);
    }
    let mut out = Vec::new();
    for word in &words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!("{word:?} is not KEY=VALUE (a value with spaces needs quotes)"));
        };
        let key = expand_word(k, vars, escape).map_err(|e| e.to_string())?;
        if key.is_empty() {
            return Err(format!("{word:?} has an empty key"));
        }
        let value = expand_word(v, vars, escape).map_err(|e| e.to_string())?;
        out.push((key, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn x(word: &str, v: &Vars) -> String {
        expand_word(word, v, '\\').unwrap()
    }

    #[test]
    fn names_braces_and_literal_dollars() {
        let v = vars(&[("a", "1"), ("ab", "2"), ("empty", "")]);
        assert_eq!(x("$a", &v), "1");
        assert_eq!(x("$ab", &v), "2");
        assert_eq!(x("${a}b", &v), "1b");
        assert_eq!(x("$a-b", &v), "1-b");
        assert_eq!(x("$missing.x", &v), ".x");
        assert_eq!(x("cost: $5 $", &v), "cost: $5 $");
        assert_eq!(x("\\$a", &v), "$a");
        assert_eq!(x("'$a'", &v), "$a");
        assert_eq!(x("\"$a\"", &v), "1");
        assert_eq!(x("\"\\$a \\\" \\\\ \\n\"", &v), "$a \" \\ \\n");
        assert_eq!(x("a\\ b", &v), "a b");
    }

    #[test]
    fn modifiers_follow_posix_with_and_without_colon() {
        let v = vars(&[("set", "v"), ("empty", "")]);
        for (word, want) in [
            ("${set:-d}", "v"),
            ("${empty:-d}", "d"),
            ("${unset:-d}", "d"),
            ("${set-d}", "v"),
            ("${empty-d}", ""),
            ("${unset-d}", "d"),
            ("${set:+alt}", "alt"),
            ("${empty:+alt}", ""),
            ("${unset:+alt}", ""),
            ("${empty+alt}", "alt"),
            ("${unset+alt}", ""),
            ("${set:?boom}", "v"),
            ("${empty?boom}", ""),
            ("${unset:-$set}", "v"),
            ("${unset:-${set}x}", "vx"),
            ("${unset:-a b}", "a b"),
        ] {
            assert_eq!(x(word, &v), want, "{word}");
        }
        let e = expand_word("${empty:?must be set}", &v, '\\').unwrap_err();
        assert_eq!(e.to_string(), "empty: must be set");
        let e = expand_word("${unset?}", &v, '\\').unwrap_err();
        assert_eq!(e.to_string(), "unset: is not set");
        assert!(matches!(
            expand_word("${set#v}", &v, '\\'),
            Err(ExpandError::Modifier { .. })
        ));
        assert!(matches!(
            expand_word("${set", &v, '\\'),
            Err(ExpandError::Unclosed { .. })
        ));
        assert!(matches!(expand_word("${}", &v, '\\'), Err(ExpandError::BadName { .. })));
        assert!(matches!(
            expand_word("'open", &v, '\\'),
            Err(ExpandError::Unterminated { .. })
        ));
    }

    #[test]
    fn words_split_outside_quotes_only() {
        let v = vars(&[("two", "a b")]);
        let w = expand_words("x \"y z\" '' $two \"$two\" c\\ d $unset", &v, '\\').unwrap();
        // An unquoted value splits into words; a quoted one stays one word; an empty unquoted one is no word.
        assert_eq!(w, ["x", "y z", "", "a", "b", "a b", "c d"]);
    }

    #[test]
    fn backtick_escape() {
        let v = vars(&[("a", "1")]);
        assert_eq!(expand_word("`$a C:\\dir", &v, '`').unwrap(), "$a C:\\dir");
    }

    #[test]
    fn key_values_use_the_values_before_the_instruction() {
        // ENV a=bye b=$a: b takes the old a.
        let v = vars(&[("a", "hi")]);
        let kv = key_values("a=bye b=$a c=\"x y\" d='$a'", &v, '\\', true).unwrap();
        let want = [("a", "bye"), ("b", "hi"), ("c", "x y"), ("d", "$a")];
        assert_eq!(kv, want.map(|(k, v)| (k.to_owned(), v.to_owned())));
        let kv = key_values("NAME some value $a", &v, '\\', true).unwrap();
        assert_eq!(kv, [("NAME".to_owned(), "some value hi".to_owned())]);
        assert!(key_values("NAME", &v, '\\', true).is_err());
        assert!(key_values("a=1 b", &v, '\\', true).is_err());
        assert!(key_values("a b", &v, '\\', false).is_err());
        assert!(key_values("=x", &v, '\\', true).is_err());
    }
}
