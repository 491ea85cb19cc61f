//! One module per verb: its options (clap) and a short function over the library.

pub(crate) mod build;
