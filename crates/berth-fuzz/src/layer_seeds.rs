//! Seed inputs of the `layer` target: real layers of every shape HOSTILE-INPUTS.md lists for tar extraction
//! (items 11-19 and 39), each as plain, gzip and zstd, plus compressed streams given as they are.
//!
//! libFuzzer starts from these and mutates them; its comparison tracing then finds the header fields, PAX keys
//! and whiteout prefixes they lead to. Paths meant to climb out of the root end in [`ESCAPE_NAME`] or touch the
//! canary beside the root, so the oracle sees an escape.

use std::io::Write;

use crate::layer::{ESCAPE_NAME, Wrap, encode};
use crate::tar_writer::{Header, Numbers, TarWriter, kind};

/// Every seed, encoded for [`crate::layer::run`].
pub fn seeds() -> Vec<Vec<u8>> {
    let mut tars = vec![
        basic(),
        pax(),
        gnu(),
        nodes_and_modes(),
        sparse(),
        symlink_chain(),
        broken(),
        many(),
    ];
    tars.extend(refused_alone());
    tars.extend(escapes());
    tars.extend(whiteouts());
    tars.extend(type_changes());
    let mut out = Vec::new();
    for tar in &tars {
        for wrap in [Wrap::AsGiven, Wrap::Gzip, Wrap::Zstd] {
            out.push(encode(wrap, false, false, 0, tar));
        }
    }
    for tar in whiteouts() {
        out.push(encode(Wrap::AsGiven, true, false, 0, &tar));
        out.push(encode(Wrap::Gzip, true, true, 0, &tar));
    }
    out.push(encode(Wrap::AsGiven, false, true, 0, &basic()));
    out.push(encode(Wrap::Zstd, false, true, 0, &pax()));
    out.push(encode(Wrap::GzipTwoMembers, false, false, 0, &basic()));
    // Repetition: PAX records, GNU long names and long links of 1 MiB (the cap Go's archive/tar uses) and of
    // 32 MiB (security issue #12 item 4: an extractor that reads them whole trips the memory oracle), and 512
    // entries at one path.
    for (wrap, k, e) in [
        (Wrap::AsGiven, kind::PAX, 10),
        (Wrap::Gzip, kind::GNU_LONG_NAME, 10),
        (Wrap::AsGiven, kind::PAX, 15),
        (Wrap::Zstd, kind::GNU_LONG_NAME, 15),
        (Wrap::AsGiven, kind::GNU_LONG_LINK, 15),
    ] {
        out.push(encode(wrap, false, false, e, &long_record(k, 1 << (e + 10))));
    }
    out.push(encode(Wrap::Zstd, false, false, 8, &repeated_entry()));
    // Compressed bytes given as they are: the decoders see the mutations.
    let b = basic();
    out.push(encode(Wrap::AsGiven, false, false, 0, &gzip(&b)));
    out.push(encode(Wrap::AsGiven, false, false, 0, &zstd(&b)));
    let mut two = gzip(&b[..1024]);
    two.extend_from_slice(&gzip(&b[1024..]));
    out.push(encode(Wrap::AsGiven, false, false, 0, &two));
    let mut trailing = zstd(&b);
    trailing.extend_from_slice(b"trailing garbage after the frame");
    out.push(encode(Wrap::AsGiven, false, false, 0, &trailing));
    out.push(encode(Wrap::AsGiven, false, false, 0, b""));
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("writing to memory");
    e.finish().expect("writing to memory")
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).expect("compressing in memory")
}

/// An ordinary base layer.
fn basic() -> Vec<u8> {
    let mut w = TarWriter::new();
    w.dir("./").dir("etc/").file("etc/hostname", b"berth\n");
    w.dir("bin/").file_mode("bin/busybox", 0o755, b"\x7fELF busybox");
    w.symlink("bin/sh", "busybox").hardlink("bin/ls", "bin/busybox");
    w.entry(
        &Header {
            mode: 0o1777,
            ..Header::new(kind::DIR, b"tmp/")
        },
        b"",
    );
    w.dir("usr/").dir("usr/bin/").file_mode("usr/bin/su", 0o4755, b"setuid");
    w.hardlink("usr/bin/env", "/bin/busybox");
    w.entry(
        &Header {
            uid: 1000,
            gid: 1000,
            mtime: 0,
            ..Header::new(kind::FILE, b"home/user/.profile")
        },
        b"export PS1='$ '\n",
    );
    w.finish()
}

/// PAX local and global headers: long names and link names, times, ids, size override, xattrs, binary names.
fn pax() -> Vec<u8> {
    let long_dir = "d".repeat(120);
    let long = format!("{long_dir}/{}", "n".repeat(140));
    let mut w = TarWriter::new();
    w.pax(true, &[("comment", b"global header")]);
    w.dir(&format!("{long_dir}/"));
    w.pax(
        false,
        &[
            ("path", long.as_bytes()),
            ("mtime", b"1700000000.123456789"),
            ("atime", b"-1.5"),
            ("uid", b"4294967294"),
            ("gid", b"70000"),
            ("uname", b"nobody"),
            (
                "SCHILY.xattr.security.capability",
                // vfs_cap_data revision 2: cap_net_bind_service permitted.
                b"\x00\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            ),
            ("SCHILY.xattr.user.note", b"value"),
            ("LIBARCHIVE.xattr.user.other", b"dmFsdWU="),
        ],
    );
    w.file("short-name-replaced-by-pax", b"pax file");
    w.pax(false, &[("linkpath", long.as_bytes()), ("path", b"link-to-long")]);
    w.symlink("x", "y");
    w.pax(false, &[("path", b"non-utf8-\xff\xfe"), ("hdrcharset", b"BINARY")]);
    w.file("x", b"binary name");
    w.pax(false, &[("size", b"3")]);
    w.entry(
        &Header {
            size: Some(0),
            ..Header::new(kind::FILE, b"size-from-pax")
        },
        b"abc",
    );
    w.finish()
}

/// GNU long names and link names, base-256 numbers, a negative mtime.
fn gnu() -> Vec<u8> {
    let long = format!("gnu/{}/{}", "l".repeat(200), "m".repeat(200));
    let mut w = TarWriter::new();
    w.dir("gnu/").dir(&format!("gnu/{}/", "l".repeat(200)));
    w.gnu_long(kind::GNU_LONG_NAME, long.as_bytes());
    w.file("ignored", b"long gnu name");
    w.gnu_long(kind::GNU_LONG_NAME, b"gnu/long-link");
    w.gnu_long(kind::GNU_LONG_LINK, long.as_bytes());
    w.symlink("ignored", "ignored");
    w.entry(
        &Header {
            gnu: true,
            numbers: Numbers::Base256,
            uid: 1 << 20,
            gid: 1 << 21,
            mtime: 1 << 33,
            ..Header::new(kind::FILE, b"gnu/base256")
        },
        b"base-256 numbers",
    );
    w.entry(
        &Header {
            gnu: true,
            numbers: Numbers::Base256,
            ..Header::new(kind::FILE, b"gnu/size-base256")
        },
        b"x",
    );
    w.finish()
}

/// Layers whose one notable entry is refused, alone so that it is the last thing the extractor sees.
fn refused_alone() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut one = |f: &dyn Fn(&mut TarWriter)| {
        let mut w = TarWriter::new();
        w.file("before", b"an entry before");
        f(&mut w);
        out.push(w.finish());
    };
    one(&|w| {
        w.pax(false, &[("uid", b"4294967296")]).file("uid-2-32", b"");
    });
    one(&|w| {
        w.pax(false, &[("SCHILY.xattr.security.capability", b"\x01\x00")])
            .file("bad-capability", b"");
    });
    one(&|w| {
        let h = Header {
            gnu: true,
            numbers: Numbers::Base256,
            mtime: u64::MAX,
            ..Header::new(kind::FILE, b"negative-mtime")
        };
        w.entry(&h, b"");
    });
    one(&|w| {
        w.pax(false, &[("SCHILY.xattr.trusted.overlay.opaque", b"y")])
            .dir("forged-overlay/");
    });
    one(&|w| {
        w.pax(false, &[("SCHILY.xattr.user.overlay.redirect", b"/etc")])
            .dir("forged-user-overlay/");
    });
    one(&|w| {
        w.gnu_long(kind::GNU_LONG_NAME, "n".repeat(300).as_bytes())
            .file("ignored", b"name too long");
    });
    one(&|w| {
        w.gnu_sparse("sparse-tb", 1 << 40, &[(0, 512)], &[b't'; 512]);
    });
    one(&|w| {
        w.file(".", b"the root as a file");
    });
    one(&|w| {
        w.symlink("./", "/tmp");
    });
    one(&|w| {
        w.dir(".wh.x/").file(".wh.x/real", b"inside a whiteout-named dir");
    });
    one(&|w| {
        w.file(".wh..", b"");
    });
    one(&|w| {
        w.file(".wh...", b"");
    });
    out
}

/// Every way out of the root HOSTILE-INPUTS.md items 11-13 name, one layer each.
fn escapes() -> Vec<Vec<u8>> {
    let e = ESCAPE_NAME;
    let mut out = Vec::new();
    let mut one = |f: &dyn Fn(&mut TarWriter)| {
        let mut w = TarWriter::new();
        f(&mut w);
        out.push(w.finish());
    };
    one(&|w| {
        w.file(&format!("../{e}"), b"dot-dot");
    });
    one(&|w| {
        w.file(&format!("/../{e}"), b"absolute dot-dot");
    });
    one(&|w| {
        w.file(&format!("../../../../../../{e}"), b"deep")
            .file("/abs-file", b"absolute name");
    });
    one(&|w| {
        w.symlink("esc", &format!("../{e}"))
            .file("esc/x", b"through a relative link");
    });
    one(&|w| {
        w.symlink("esc-dir", "..")
            .file(&format!("esc-dir/{e}"), b"through a link to ..");
    });
    one(&|w| {
        w.symlink("esc-abs", "/")
            .file(&format!("esc-abs/tmp/{e}"), b"through an absolute link");
    });
    one(&|w| {
        w.symlink("dotdot", "..")
            .dir(&format!("dotdot/{e}/"))
            .file(&format!("dotdot/{e}/a"), b"x");
    });
    one(&|w| {
        w.file(&format!("up/{e}"), b"through the lower tree's link up");
    });
    one(&|w| {
        w.file(&format!("abs/tmp/{e}"), b"through the lower tree's link to /");
    });
    one(&|w| {
        w.file("canary-rel/keep", b"overwrite through a lower link");
    });
    one(&|w| {
        w.file("canary-file", b"replace a lower link to the canary");
    });
    one(&|w| {
        w.hardlink("h-out", "../canary/keep");
    });
    one(&|w| {
        w.hardlink("h-lower", "canary-file");
    });
    one(&|w| {
        // containerd CVE-2021-32760: a hard link to an escaping symlink, then metadata applied to it.
        w.symlink("s-out", "../canary/keep").hardlink("hl", "s-out");
        w.entry(
            &Header {
                mode: 0o777,
                ..Header::new(kind::FILE, b"hl")
            },
            b"",
        );
    });
    one(&|w| {
        w.dir("canary-rel/");
        w.entry(
            &Header {
                mode: 0o777,
                uid: 1234,
                ..Header::new(kind::DIR, b"canary-rel/sub/")
            },
            b"",
        );
    });
    one(&|w| {
        w.symlink("chain1", "chain2")
            .symlink("chain2", "../canary")
            .file("chain1/keep", b"through a chain");
    });
    one(&|w| {
        w.symlink("d", "up")
            .dir("d/canary/")
            .file("d/canary/sub/x", b"through two links");
    });
    out
}

/// Whiteouts of HOSTILE-INPUTS.md item 15.
fn whiteouts() -> Vec<Vec<u8>> {
    let mut w = TarWriter::new();
    w.file("etc/.wh.passwd", b"");
    w.file(".wh.bin", b"");
    w.file("opaque/.wh..wh..opq", b"").file("opaque/new", b"new");
    w.file(".wh.missing", b"");
    w.file("lib/.wh.libc.so", b"");
    w.file("dir/.wh.keep", b"").file("dir/keep", b"same layer");
    w.file("dir/sub/.wh..wh..opq", b"");
    let all = w.finish();
    let mut through = TarWriter::new();
    through
        .file("up/.wh.canary", b"")
        .file("abs/.wh.tmp", b"")
        .file("canary-rel/.wh.keep", b"");
    let mut root_opaque = TarWriter::new();
    root_opaque.file(".wh..wh..opq", b"").file("new-root-file", b"x");
    vec![all, through.finish(), root_opaque.finish()]
}

/// One path changing type (item 14).
fn type_changes() -> Vec<Vec<u8>> {
    let mut w = TarWriter::new();
    w.file("t", b"file")
        .symlink("t", "/etc/passwd")
        .file("t", b"file again");
    w.dir("d/").file("d/child", b"c").file("d", b"dir became a file");
    w.file("f", b"x").dir("f/").file("f/inner", b"file became a dir");
    w.file("etc", b"lower dir replaced by a file");
    w.symlink("bin", "/").file("bin/sh", b"through the new link");
    w.dir("./").dir("/");
    w.hardlink("hd", "usr").hardlink("hs", "lib");
    vec![w.finish()]
}

/// Devices, FIFOs, odd modes and unknown types (item 16).
fn nodes_and_modes() -> Vec<u8> {
    let mut w = TarWriter::new();
    w.dir("dev/");
    w.node(kind::CHAR, "dev/null", 1, 3).node(kind::BLOCK, "dev/sda", 8, 0);
    w.node(kind::FIFO, "dev/fifo", 0, 0);
    w.file_mode("all-bits", 0o177_777, b"mode above 07777");
    w.entry(
        &Header {
            mode: 0o2775,
            ..Header::new(kind::DIR, b"setgid/")
        },
        b"",
    );
    w.entry(&Header::new(b'7', b"contiguous"), b"contiguous file");
    w.entry(&Header::new(b'Z', b"unknown-type"), b"?");
    w.entry(&Header::new(b'V', b"volume-label"), b"");
    w.finish()
}

/// Old-GNU sparse files: ordinary, with a map beyond the size, overlapping (item 18).
fn sparse() -> Vec<u8> {
    let mut w = TarWriter::new();
    w.gnu_sparse("sparse", 1 << 30, &[(0, 512), (1 << 29, 512)], &[b's'; 1024]);
    w.gnu_sparse("sparse-beyond", 1024, &[(0, 512), (4096, 512)], &[b'b'; 1024]);
    w.gnu_sparse("sparse-overlap", 4096, &[(512, 512), (0, 1024)], &[b'o'; 1536]);
    w.finish()
}

/// A small instance of the chained-symlink layer of security issue #12 item 3 (`lk -> l(k-1)/l(k-1)`).
fn symlink_chain() -> Vec<u8> {
    let mut w = TarWriter::new();
    w.symlink("l0", ".");
    for k in 1..=8 {
        w.symlink(&format!("l{k}"), &format!("l{}/l{}", k - 1, k - 1));
    }
    w.file("nonexistent/../l8/x", b"resolved through 2^8 links");
    w.finish()
}

/// Malformed archives (item 19).
fn broken() -> Vec<u8> {
    let mut w = TarWriter::new();
    w.file("ok", b"fine");
    // A header promising more data than follows, then a header whose checksum is broken by hand.
    w.entry(
        &Header {
            size: Some(1000),
            ..Header::new(kind::FILE, b"truncated")
        },
        b"only a few bytes",
    );
    let mut bytes = w.bytes().to_vec();
    let mut bad = TarWriter::new();
    bad.file("bad-checksum", b"x");
    let mut block = bad.bytes().to_vec();
    block[148] = b'9';
    bytes.extend_from_slice(&block);
    bytes.extend_from_slice(b"trailing garbage without end blocks");
    bytes
}

/// Many small entries in nested directories.
fn many() -> Vec<u8> {
    let mut w = TarWriter::new();
    for d in 0..4 {
        w.dir(&format!("m{d}/"));
        for f in 0..12 {
            w.file(&format!("m{d}/f{f}"), format!("{d}-{f}").as_bytes());
        }
    }
    w.finish()
}

/// A PAX, GNU long-name or GNU long-link header of `size` + 512 bytes: its first data block is in the input, the
/// repetition supplies the rest (with `e` such that 2^(e+10) = `size`).
fn long_record(k: u8, size: u64) -> Vec<u8> {
    let mut w = TarWriter::new();
    w.file("before", b"an entry before the long record");
    let h = Header {
        size: Some(size + 512),
        gnu: k != kind::PAX,
        ..Header::new(k, b"././@LongRecord")
    };
    w.entry(&h, &[b'a'; 512]);
    w.bytes().to_vec()
}

/// A layer ending in an empty file's header, which the repetition turns into thousands of entries.
fn repeated_entry() -> Vec<u8> {
    let mut w = TarWriter::new();
    w.dir("r/").file("r/same", b"");
    w.bytes().to_vec()
}
