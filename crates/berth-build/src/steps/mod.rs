//! The instructions that change the file system: `RUN` in a container, `COPY`/`ADD` without one.

pub mod copy;
pub mod download;
pub mod mounts;
pub mod run;
