//! Error rendering: one line, the outermost message first, then each cause.

/// The error and its causes, each once: many messages already quote their cause, and `{:#}` would repeat it.
pub fn render(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    let mut previous = out.clone();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !previous.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        previous = text;
    }
    out
}
