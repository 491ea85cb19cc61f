//! With the `isal` feature: builds ISA-L's igzip from the copy of its source in `vendor/isa-l` (with ISA-L's own
//! `Makefile.unx`: it needs `make` and `nasm`) into a static library, compiles the small C wrapper over it
//! (`csrc/igzip_block.c`), and links both statically, so the binaries need no ISA-L at run time. Without the
//! feature there is nothing to build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=csrc/igzip_block.c");
    println!("cargo::rerun-if-changed=vendor/isa-l");
    println!("cargo::rerun-if-env-changed=CARGO_FEATURE_ISAL");
    if std::env::var_os("CARGO_FEATURE_ISAL").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // ISA-L's makefile writes its objects beside the sources: it builds a copy in OUT_DIR.
    let src = out.join("isa-l");
    let _ = std::fs::remove_dir_all(&src);
    copy_tree(Path::new("vendor/isa-l"), &src);
    let mut make = Command::new("make");
    make.current_dir(&src).args([
        "-f",
        "Makefile.unx",
        "units=igzip",
        "lib_name=bin/libisal.a",
        "have_threads=n",
        // Position-independent: Rust links PIE executables.
        "CFLAGS_=-Wall -fPIC",
        "lib",
    ]);
    if let Some(flags) = std::env::var_os("CARGO_MAKEFLAGS") {
        make.env("MAKEFLAGS", flags);
    }
    let status = make.status().unwrap_or_else(|e| {
        panic!(
            "berth-layer's `isal` feature builds ISA-L from vendor/isa-l and needs `make` and `nasm` (Debian/Ubuntu: \
             apt-get install make nasm): running make failed: {e}"
        )
    });
    if !status.success() {
        panic!(
            "building ISA-L from vendor/isa-l failed ({status}): it needs `nasm` (Debian/Ubuntu: apt-get install \
             nasm), or build without the `isal` feature (gzip levels 1-3 then use zlib)"
        );
    }
    // The wrapper includes <isa-l/igzip_lib.h>.
    let include = out.join("include");
    std::fs::create_dir_all(include.join("isa-l")).expect("creating the include directory");
    std::fs::copy(src.join("include/igzip_lib.h"), include.join("isa-l/igzip_lib.h")).expect("copying igzip_lib.h");
    cc::Build::new()
        .file("csrc/igzip_block.c")
        .include(&include)
        .warnings(true)
        .extra_warnings(true)
        .compile("berth_igzip");
    // After the wrapper, which needs it.
    println!("cargo::rustc-link-search=native={}", src.join("bin").display());
    println!("cargo::rustc-link-lib=static=isal");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display())) {
        let entry = entry.expect("a directory entry");
        let dst = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_tree(&entry.path(), &dst);
        } else {
            std::fs::copy(entry.path(), &dst).unwrap_or_else(|e| panic!("copying {}: {e}", entry.path().display()));
        }
    }
}
