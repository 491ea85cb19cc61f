//! Signal names and numbers as `kill -s`, `--stop-signal` and an image's `StopSignal` spell them.

/// Linux signal names, numbered from 1.
const NAMES: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM",
    "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO",
    "PWR", "SYS",
];

/// Parses `SIGTERM`, `TERM`, `term`, `15`, `RTMIN+3`.
pub fn parse_signal(text: &str) -> Option<i32> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(i) = NAMES.iter().position(|n| *n == name) {
        return Some(i as i32 + 1);
    }
    match name {
        "IOT" => Some(6),
        "CLD" => Some(17),
        "POLL" => Some(29),
        "RTMIN" => Some(34),
        "RTMAX" => Some(64),
        _ => {
            let (base, offset) = name.split_once(['+', '-'])?;
            let offset: i32 = offset.parse().ok()?;
            let n = match (base, name.contains('+')) {
                ("RTMIN", true) => 34 + offset,
                ("RTMAX", false) => 64 - offset,
                _ => return None,
            };
            (34..=64).contains(&n).then_some(n)
        }
    }
}

/// The name of a signal, `SIGTERM`, or its number when it has no classic name.
pub fn signal_name(n: i32) -> String {
    match usize::try_from(n - 1).ok().and_then(|i| NAMES.get(i)) {
        Some(name) => format!("SIG{name}"),
        None => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("kill"), Some(9));
        assert_eq!(parse_signal("10"), Some(10));
        assert_eq!(parse_signal("SIGRTMIN+3"), Some(37));
        assert_eq!(parse_signal("RTMAX-1"), Some(63));
        assert_eq!(parse_signal("SIGWINCH"), Some(28));
        for bad in ["", "0", "65", "SIGNOPE", "RTMIN+40"] {
            assert_eq!(parse_signal(bad), None, "{bad}");
        }
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(40), "40");
    }
}
