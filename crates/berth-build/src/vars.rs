//! Build arguments and their scopes, as Docker has them:
//!
//! - An `ARG` before the first `FROM` is global: visible to `FROM` lines only, until a stage declares it again
//!   (`ARG NAME` without a value then takes the global value).
//! - An `ARG` is visible from its line on, in its stage; `--build-arg NAME=VALUE` overrides its default.
//! - `ENV` beats an `ARG` of the same name; `RUN` sees the ARGs as environment variables (not kept in the image).
//! - The platform arguments (`TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`, `TARGETVARIANT`, and the `BUILD*` ones)
//!   have values when declared without one.

use std::collections::BTreeMap;

use berth_spec::platform::Platform;

use crate::containerfile::expand::{Vars, key_values};

/// The ARGs declared so far in one scope, with their values (`None`: declared, no value).
#[derive(Debug, Clone, Default)]
pub struct Args {
    values: BTreeMap<String, Option<String>>,
}

/// The values the platform arguments get.
pub fn platform_args(platform: &Platform) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let full = platform.to_string();
    for prefix in ["TARGET", "BUILD"] {
        out.insert(format!("{prefix}PLATFORM"), full.clone());
        out.insert(format!("{prefix}OS"), platform.os.clone());
        out.insert(format!("{prefix}ARCH"), platform.architecture.clone());
        out.insert(format!("{prefix}VARIANT"), platform.variant.clone().unwrap_or_default());
    }
    out
}

impl Args {
    /// Declares the ARGs of one `ARG` instruction (`NAME`, `NAME=default`, several per line). Defaults are expanded
    /// with `visible` (what the line can see). `outer` gives values for a bare `NAME` (the global scope's, or the
    /// platform's); `given` are the `--build-arg`s, which win over defaults.
    pub fn declare(
        &mut self,
        text: &str,
        visible: &Vars,
        escape: char,
        given: &BTreeMap<String, String>,
        outer: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, String> {
        let mut declared = Vec::new();
        let words = crate::containerfile::expand::split_raw(text, escape).map_err(|e| e.to_string())?;
        if words.is_empty() {
            return Err("ARG needs a name: ARG NAME[=DEFAULT]".into());
        }
        for word in words {
            let (name, default) = if word.contains('=') {
                let kv = key_values(&word, visible, escape, false)?;
                let (k, v) = kv.into_iter().next().expect("one pair");
                (k, Some(v))
            } else {
                (word.clone(), None)
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid ARG name {name:?}"));
            }
            let value = given.get(&name).cloned().or(default).or_else(|| outer(&name));
            self.values.insert(name.clone(), value);
            declared.push(name);
        }
        Ok(declared)
    }

    /// The value of a declared ARG.
    pub fn get(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned().flatten()
    }

    /// The declared ARGs that have values.
    pub fn with_values(&self) -> impl Iterator<Item = (&String, &String)> {
        self.values.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }

    /// The variables an instruction sees: these ARGs, then `env` over them (ENV wins).
    pub fn visible(&self, env: &[(String, String)]) -> Vars {
        let mut vars: Vars = self.with_values().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (k, v) in env {
            vars.insert(k.clone(), v.clone());
        }
        vars
    }

    /// `KEY=VALUE` entries for a RUN's environment: the ARGs that ENV does not set.
    pub fn run_env(&self, env: &[(String, String)]) -> Vec<String> {
        self.with_values()
            .filter(|(k, _)| !env.iter().any(|(e, _)| e == *k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_override_defaults_and_bare_names_take_outer_values() {
        let given: BTreeMap<String, String> = [("B".to_owned(), "given".to_owned())].into();
        let mut args = Args::default();
        let outer = |n: &str| (n == "G").then(|| "global".to_owned());
        args.declare("A=1 B=2 G C", &Vars::new(), '\\', &given, &outer).unwrap();
        assert_eq!(args.get("A").as_deref(), Some("1"));
        assert_eq!(args.get("B").as_deref(), Some("given"));
        assert_eq!(args.get("G").as_deref(), Some("global"));
        assert_eq!(args.get("C"), None);
        // ENV beats ARG; RUN sees the ARGs ENV does not set.
        let env = vec![("A".to_owned(), "env".to_owned())];
        assert_eq!(args.visible(&env)["A"], "env");
        assert_eq!(args.run_env(&env), vec!["B=given".to_owned(), "G=global".to_owned()]);
        assert!(args.declare("", &Vars::new(), '\\', &given, &outer).is_err());
        assert!(args.declare("bad-name", &Vars::new(), '\\', &given, &outer).is_err());
    }

    #[test]
    fn defaults_expand_with_what_the_line_sees() {
        let mut args = Args::default();
        let visible: Vars = [("V".to_owned(), "1.2".to_owned())].into();
        args.declare("FULL=v${V}-x", &visible, '\\', &BTreeMap::new(), &|_| None)
            .unwrap();
        assert_eq!(args.get("FULL").as_deref(), Some("v1.2-x"));
    }
}
