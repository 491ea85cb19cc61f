//! Error rendering: one line, the outermost message first, then each cause once. Every Berth error says only
//! its own part and keeps its cause as `source()`, so the chain never repeats itself.

/// `outer: cause: root cause`.
pub fn render(e: &anyhow::Error) -> String {
    format!("{e:#}")
}
