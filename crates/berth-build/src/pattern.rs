//! Path patterns: Go's `filepath.Match` (what COPY sources use) and Docker's `.dockerignore` rules on top of it.
//!
//! - `*` matches any run of characters except `/`; `?` one character except `/`; `[abc]`, `[a-z]`, `[^a-z]` a
//!   class; `\` makes the next character literal.
//! - In `.dockerignore` (and `.containerignore`), `**` also matches any number of directories (`**/*.go`,
//!   `a/**/b`); patterns are cleaned (`./a//b/` is `a/b`) and rooted at the context; a pattern starting with `!`
//!   re-includes what earlier patterns excluded; the last pattern that matches a path decides; a path is excluded
//!   when it or any of its parent directories is (a matched directory takes its children with it, unless a later
//!   `!` pattern names something inside it).

/// Why a pattern is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern.
    pub pattern: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// Whether `name` matches the Go `filepath.Match` pattern `pattern` (both `/`-separated).
pub fn matches(pattern: &str, name: &str) -> Result<bool, PatternError> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let bad = |reason| PatternError {
        pattern: pattern.to_owned(),
        reason,
    };
    match_at(&p, &n, false).map_err(bad)
}

/// Matches `p` against `n`; with `globstar`, a path element `**` matches any number of elements.
fn match_at(p: &[char], n: &[char], globstar: bool) -> Result<bool, &'static str> {
    if globstar && p.starts_with(&['*', '*']) && (p.len() == 2 || p[2] == '/') {
        // `**` alone, or `**/rest`: try the rest at every element boundary.
        let rest = if p.len() == 2 { &p[2..] } else { &p[3..] };
        if rest.is_empty() {
            return Ok(true);
        }
        if match_at(rest, n, globstar)? {
            return Ok(true);
        }
        for (i, c) in n.iter().enumerate() {
            if *c == '/' && match_at(rest, &n[i + 1..], globstar)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    let Some(&c) = p.first() else {
        return Ok(n.is_empty());
    };
    match c {
        '*' => {
            // A run of stars is one star.
            let mut k = 1;
            while p.get(k) == Some(&'*') {
                k += 1;
            }
            let rest = &p[k..];
            for i in 0..=n.len() {
                if match_at(rest, &n[i..], globstar)? {
                    return Ok(true);
                }
                if i < n.len() && n[i] == '/' {
                    break;
                }
            }
            // Validate the rest of the pattern even when nothing matched, as Go does.
            check(rest)?;
            Ok(false)
        }
        '?' => match n.first() {
            Some(x) if *x != '/' => match_at(&p[1..], &n[1..], globstar),
            _ => check(&p[1..]).map(|()| false),
        },
        '[' => {
            let (matched, len) = class(&p[1..], n.first().copied())?;
            match (matched, n.first()) {
                (true, Some(_)) => match_at(&p[1 + len..], &n[1..], globstar),
                _ => check(&p[1 + len..]).map(|()| false),
            }
        }
        '\\' => {
            let Some(&lit) = p.get(1) else {
                return Err("ends with a backslash");
            };
            match n.first() {
                Some(x) if *x == lit => match_at(&p[2..], &n[1..], globstar),
                _ => check(&p[2..]).map(|()| false),
            }
        }
        _ => match n.first() {
            Some(x) if *x == c => match_at(&p[1..], &n[1..], globstar),
            _ => check(&p[1..]).map(|()| false),
        },
    }
}

/// A character class after its `[`: whether `c` is in it, and how many pattern characters it took (with `]`).
fn class(p: &[char], c: Option<char>) -> Result<(bool, usize), &'static str> {
    let mut i = 0;
    let negated = p.first() == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    // One class character, as Go's getEsc reads it: an unescaped '-' or ']' is an error there.
    let esc = |i: &mut usize| -> Result<char, &'static str> {
        match p.get(*i) {
            None => Err("unclosed character class"),
            Some('-' | ']') => Err("'-' or ']' where a character is expected in a class"),
            Some('\\') => {
                *i += 1;
                let c = *p.get(*i).ok_or("unclosed character class")?;
                *i += 1;
                Ok(c)
            }
            Some(&c) => {
                *i += 1;
                Ok(c)
            }
        }
    };
    loop {
        if p.get(i) == Some(&']') && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = esc(&mut i)?;
        let mut hi = lo;
        if p.get(i) == Some(&'-') {
            i += 1;
            hi = esc(&mut i)?;
            if hi < lo {
                return Err("a character range goes backwards");
            }
        }
        if let Some(c) = c
            && lo <= c
            && c <= hi
        {
            matched = true;
        }
    }
    let is_sep = c == Some('/');
    Ok((!is_sep && matched != negated && c.is_some(), i))
}

/// Checks the syntax of a pattern's remainder.
fn check(p: &[char]) -> Result<(), &'static str> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '[' => {
                let (_, len) = class(&p[i + 1..], None)?;
                i += 1 + len;
            }
            '\\' => {
                if i + 1 >= p.len() {
                    return Err("ends with a backslash");
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// `path` cleaned as Go's `filepath.Clean` does for relative paths, without leading `/` or `./`.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !path.starts_with('/') {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// One `.dockerignore` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    pattern: String,
    exclude: bool,
}

/// The rules of a `.dockerignore` (or `.containerignore`) file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

impl IgnoreRules {
    /// Parses the file's text: one pattern per line, `#` comments, blank lines ignored, `!` for exceptions.
    pub fn parse(text: &str) -> Result<IgnoreRules, PatternError> {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclude, pattern) = match line.strip_prefix('!') {
                Some(p) => (false, p.trim()),
                None => (true, line),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                continue;
            }
            // A syntax error is reported now, not on the first path it meets.
            matches_glob(&pattern, "")?;
            rules.push(Rule { pattern, exclude });
        }
        Ok(IgnoreRules { rules })
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded: the last rule that matches the path
    /// or one of its parent directories decides.
    pub fn excluded(&self, path: &str) -> bool {
        let path = clean(path);
        let mut excluded = false;
        for rule in &self.rules {
            if self.rule_matches(rule, &path) {
                excluded = rule.exclude;
            }
        }
        excluded
    }

    fn rule_matches(&self, rule: &Rule, path: &str) -> bool {
        // The path itself, or any parent directory of it.
        let mut prefix = path;
        loop {
            if matches_glob(&rule.pattern, prefix).unwrap_or(false) {
                return true;
            }
            match prefix.rfind('/') {
                Some(i) => prefix = &prefix[..i],
                None => return false,
            }
        }
    }

    /// Whether some exception (`!pattern`) could re-include something below the directory `dir`: then the
    /// directory must be walked even when excluded itself.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let dir = clean(dir);
        self.rules.iter().any(|r| {
            !r.exclude && (r.pattern.starts_with(&format!("{dir}/")) || r.pattern.contains("**") || dir.is_empty())
        })
    }
}

/// [`matches`] with `**` matching any number of directories.
pub fn matches_glob(pattern: &str, name: &str) -> Result<bool, PatternError> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_at(&p, &n, true).map_err(|reason| PatternError {
        pattern: pattern.to_owned(),
        reason,
    })
}

/// Whether `text` has characters that make it a pattern rather than a plain path.
pub fn is_pattern(text: &str) -> bool {
    text.contains(['*', '?', '[', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_filepath_match() {
        for (p, n, want) in [
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("*x", "xxx", true),
        ] {
            assert_eq!(matches(p, n), Ok(want), "{p} ~ {n}");
        }
        for bad in ["[]a]", "[-]", "[x-]", "a[", "[\\", "[a-b-c]", "a\\", "[z-a]"] {
            assert!(
                matches(bad, "a").is_err() || matches(bad, "").is_err(),
                "{bad} is invalid"
            );
        }
    }

    #[test]
    fn globstar_spans_directories() {
        for (p, n, want) in [
            ("**", "a/b/c", true),
            ("**/*.go", "x.go", true),
            ("**/*.go", "a/b/x.go", true),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**", "a/x/y", true),
            ("a/**/b", "a/x/c", false),
            ("**/b/*.txt", "x/b/c.txt", true),
        ] {
            assert_eq!(matches_glob(p, n), Ok(want), "{p} ~ {n}");
        }
    }

    #[test]
    fn ignore_rules_last_match_wins_and_directories_take_children() {
        let rules = IgnoreRules::parse(
            "# comment\n\n./node_modules/\n*.log\n!keep.log\ndocs\n!docs/README.md\n/secret//key\n**/*.tmp\n",
        )
        .unwrap();
        for (path, want) in [
            ("node_modules", true),
            ("node_modules/x/y.js", true),
            ("a.log", true),
            ("keep.log", false),
            ("sub/a.log", false),
            ("docs", true),
            ("docs/guide.md", true),
            ("docs/README.md", false),
            ("secret/key", true),
            ("secret/other", false),
            ("deep/er/x.tmp", true),
            ("src/main.rs", false),
        ] {
            assert_eq!(rules.excluded(path), want, "{path}");
        }
        assert!(rules.may_include_below("docs"));
        assert!(!rules.may_include_below("node_modules"));
        assert!(IgnoreRules::parse("[z-a]\n").is_err());
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean("./a//b/"), "a/b");
        assert_eq!(clean("/a/../../b"), "b");
        assert_eq!(clean("a/../../b"), "../b");
        assert_eq!(clean("."), "");
    }
}
