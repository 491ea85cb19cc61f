//! Error rendering: one line, the outermost message first, then each cause once. Every Berth error says only
//! its own part and keeps its cause as `source()`, so the chain never repeats itself.

/// `outer: cause: root cause`.
pub fn render(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

/// The registry error behind `e`, if a registry operation failed (also through the transfer engine's
/// `CopyError::Registry`, which is transparent and so not a link of its own in the chain).
pub fn registry_error(e: &anyhow::Error) -> Option<&berth_registry::RegistryError> {
    e.chain().find_map(|c| {
        c.downcast_ref::<berth_registry::RegistryError>().or_else(|| {
            match c.downcast_ref::<berth_transfer::CopyError>() {
                Some(berth_transfer::CopyError::Registry(r)) => Some(r),
                _ => None,
            }
        })
    })
}
