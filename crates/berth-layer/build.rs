//! With the `isal` feature, compiles the small C wrapper over ISA-L's igzip (`csrc/igzip_block.c`) and links
//! `libisal`. Without it there is nothing to build.

fn main() {
    println!("cargo::rerun-if-changed=csrc/igzip_block.c");
    println!("cargo::rerun-if-env-changed=CARGO_FEATURE_ISAL");
    if std::env::var_os("CARGO_FEATURE_ISAL").is_none() {
        return;
    }
    let built = cc::Build::new()
        .file("csrc/igzip_block.c")
        .warnings(true)
        .extra_warnings(true)
        .try_compile("berth_igzip");
    if let Err(e) = built {
        panic!(
            "berth-layer's `isal` feature needs ISA-L's development files (isa-l/igzip_lib.h and libisal.so): \
             install Debian/Ubuntu's `libisal-dev`, Fedora's `isa-l-devel` or Alpine's `isa-l-dev`, or build \
             without the feature (gzip levels 1-3 then use zlib). The compiler said: {e}"
        );
    }
    println!("cargo::rustc-link-lib=dylib=isal");
}
