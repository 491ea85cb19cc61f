use std::io::Read;

use tar::{EntryType, Header};

use super::*;

/// A tar stream written block by block.
#[derive(Default)]
struct Blocks(Vec<u8>);

impl Blocks {
    fn header(&mut self, name: &[u8], kind: EntryType, size: u64) -> &mut Self {
        let mut h = Header::new_gnu();
        h.as_mut_bytes()[..name.len()].copy_from_slice(name);
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        self.raw(h)
    }

    fn raw(&mut self, mut h: Header) -> &mut Self {
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self
    }

    fn data(&mut self, data: &[u8]) -> &mut Self {
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }

    fn entry(&mut self, name: &[u8], kind: EntryType, data: &[u8]) -> &mut Self {
        self.header(name, kind, data.len() as u64).data(data)
    }

    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self.entry(b"PaxHeader", EntryType::XHeader, &body)
    }

    fn end(&mut self) -> Vec<u8> {
        let mut b = self.0.clone();
        b.resize(b.len() + 1024, 0);
        b
    }
}

/// An entry's name, link target and data.
type Found = (String, Option<String>, Vec<u8>);

/// Every entry, or the first error.
fn walk(bytes: &[u8]) -> Result<Vec<Found>, WalkError> {
    let mut w = TarWalker::new(bytes);
    let mut out = Vec::new();
    while let Some(e) = w.next_entry()? {
        let mut data = Vec::new();
        w.data().read_to_end(&mut data).map_err(|source| WalkError::Read {
            entries: w.entries(),
            source,
        })?;
        let link = e.link_bytes().map(|l| String::from_utf8_lossy(l).into_owned());
        out.push((e.path_lossy().into_owned(), link, data));
    }
    Ok(out)
}

#[test]
fn pax_path_beats_gnu_long_name_and_a_later_x_header_replaces_an_earlier_one() {
    let long = "l".repeat(300);
    let bytes = Blocks::default()
        .entry(b"././@LongLink", EntryType::GNULongName, format!("{long}\0").as_bytes())
        .entry(b"././@LongLink", EntryType::GNULongLink, b"/target\0junk")
        .entry(b"short", EntryType::Symlink, b"")
        .entry(b"././@LongLink", EntryType::GNULongName, b"gnu-name\0")
        .pax(&[("path", b"first")])
        .pax(&[("linkpath", b"second-link")])
        .entry(b"header-name", EntryType::Symlink, b"")
        .pax(&[("path", b"a"), ("path", b"b")])
        .entry(b"x", EntryType::Regular, b"data")
        .end();
    let found = walk(&bytes).unwrap();
    assert_eq!(found[0], (long, Some("/target".into()), vec![]));
    // The second x header replaced the first, so its path is gone and the GNU long name applies.
    assert_eq!(found[1], ("gnu-name".into(), Some("second-link".into()), vec![]));
    assert_eq!(found[2], ("b".into(), None, b"data".to_vec()));
}

#[test]
fn pax_size_wins_over_the_header_size_as_go_writes_files_over_8_gib() {
    // Header size 0, PAX size 5: the data is 5 bytes and the next header follows them.
    let bytes = Blocks::default()
        .pax(&[("size", b"5")])
        .header(b"big", EntryType::Regular, 0)
        .data(b"12345")
        .entry(b"next", EntryType::Regular, b"n")
        .end();
    let found = walk(&bytes).unwrap();
    assert_eq!(found[0].2, b"12345");
    assert_eq!(found[1].0, "next");

    // A 9 GiB member as Go writes it: the walker reports its size; the stream here is cut short.
    let nine = (9u64 << 30).to_string();
    let bytes = Blocks::default()
        .pax(&[("size", nine.as_bytes())])
        .header(b"huge", EntryType::Regular, 0)
        .data(&[7u8; 1024])
        .0
        .clone();
    let mut w = TarWalker::new(&bytes[..]);
    let e = w.next_entry().unwrap().unwrap();
    assert_eq!((e.size(), e.header_size(), e.pax_size()), (9 << 30, 0, Some(9 << 30)));
    match w.next_entry().unwrap_err() {
        WalkError::Read { entries: 1, source } => assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof),
        other => panic!("{other}"),
    }

    let bytes = Blocks::default()
        .pax(&[("size", b"-1")])
        .entry(b"f", EntryType::Regular, b"")
        .end();
    assert_eq!(
        walk(&bytes).unwrap_err().to_string(),
        "f: its PAX size \"-1\" is not a number"
    );
}

#[test]
fn extension_headers_over_the_cap_are_refused_from_their_header() {
    for (kind, what) in [
        (EntryType::GNULongName, "GNU long name"),
        (EntryType::GNULongLink, "GNU long link"),
        (EntryType::XHeader, "PAX header"),
        (EntryType::XGlobalHeader, "PAX global header"),
    ] {
        // Nothing follows the header: the claim alone is refused, before any data is read.
        let bytes = Blocks::default().header(b"claims-a-gigabyte", kind, 1 << 30).0.clone();
        let e = walk(&bytes).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "claims-a-gigabyte: its {what} is 1073741824 bytes, over the 1048576-byte limit; the archive is \
                 malformed or hostile"
            )
        );
    }
    // Exactly at the cap is fine.
    let name = vec![b'n'; MAX_EXTENSION as usize];
    let bytes = Blocks::default()
        .entry(b"././@LongLink", EntryType::GNULongName, &name)
        .entry(b"x", EntryType::Regular, b"")
        .end();
    assert_eq!(walk(&bytes).unwrap()[0].0.len(), name.len());
}

#[test]
fn global_pax_headers_are_skipped() {
    let bytes = Blocks::default()
        .entry(
            b"pax_global_header",
            EntryType::XGlobalHeader,
            b"22 comment=abcdefghij\n",
        )
        .entry(b"f", EntryType::Regular, b"x")
        .end();
    assert_eq!(walk(&bytes).unwrap(), vec![("f".into(), None, b"x".to_vec())]);
}

#[test]
fn truncated_streams_and_dangling_extensions_are_errors() {
    let full = Blocks::default()
        .entry(b"a", EntryType::Regular, b"a")
        .entry(b"b", EntryType::Regular, &[1u8; 2000])
        .end();
    // Inside b's data, inside b's header, and at a block boundary without the end marker (accepted, as GNU tar).
    let e = walk(&full[..2048]).unwrap_err();
    assert!(
        berth_spec::error_chain(&e).starts_with("malformed or truncated tar stream after 2 entries:"),
        "{e}"
    );
    let e = walk(&full[..1100]).unwrap_err();
    assert_eq!(
        berth_spec::error_chain(&e),
        "malformed or truncated tar stream after 1 entries: the stream ends inside a tar header"
    );
    assert_eq!(walk(&full[..1024]).unwrap().len(), 1);

    let bytes = Blocks::default()
        .entry(b"f", EntryType::Regular, b"x")
        .pax(&[("path", b"nothing-follows")])
        .end();
    let e = walk(&bytes).unwrap_err();
    assert!(
        matches!(
            e,
            WalkError::DanglingExtension {
                entries: 1,
                what: "PAX header"
            }
        ),
        "{e}"
    );
}

#[test]
fn header_checksums_are_checked_signed_or_unsigned() {
    let mut bytes = Blocks::default().entry(b"f", EntryType::Regular, b"x").end();
    bytes[0] = b'g';
    assert!(matches!(
        walk(&bytes).unwrap_err(),
        WalkError::Checksum { entries: 0, offset: 0 }
    ));
    // A name byte >= 0x80, with the checksum some old tars wrote: summed as signed bytes.
    let mut h = Header::new_gnu();
    h.as_mut_bytes()[..2].copy_from_slice(b"\xe9x");
    h.set_size(0);
    h.set_entry_type(EntryType::Regular);
    let b = h.as_bytes();
    let signed: i64 = 256
        + b.iter()
            .enumerate()
            .filter(|(i, _)| !(148..156).contains(i))
            .map(|(_, &c)| i64::from(c as i8))
            .sum::<i64>();
    let mut bytes = h.as_bytes().to_vec();
    bytes[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
    bytes.resize(bytes.len() + 1024, 0);
    assert_eq!(walk(&bytes).unwrap()[0].0.as_bytes(), "\u{fffd}x".as_bytes());
}

#[test]
fn malformed_pax_records_are_refused() {
    for (body, reason) in [
        (
            &b"99 path=x\n"[..],
            "a record claims 99 bytes but 10 remain in the header",
        ),
        (b"10 path=x\nx a=b\n", "a record's length is not a number"),
        (b"7 path\n", "a record has no `=`"),
        (b"12 path=xy\n", "a record claims 12 bytes but 11 remain in the header"),
        (
            b"10 path=xyz",
            "a record does not end with a newline where its length says",
        ),
        (b"6 =xy\n", "a record has an empty key or a NUL in its key"),
        (b"path=x\n", "a record does not start with its length"),
    ] {
        let bytes = Blocks::default()
            .entry(b"PaxHeader", EntryType::XHeader, body)
            .entry(b"f", EntryType::Regular, b"")
            .end();
        let e = walk(&bytes).unwrap_err().to_string();
        assert_eq!(e, format!("PaxHeader: malformed PAX header: {reason}"), "{body:?}");
    }
    let bytes = Blocks::default()
        .pax(&[("path", b"a\0b")])
        .entry(b"f", EntryType::Regular, b"")
        .end();
    assert_eq!(
        walk(&bytes).unwrap_err().to_string(),
        "f: its PAX path contains a NUL byte"
    );
}

#[test]
fn numbers_times_and_xattrs() {
    assert_eq!(numeric(b"0000644\0"), Ok(0o644));
    assert_eq!(numeric(b"  644 \0"), Ok(0o644));
    assert_eq!(numeric(b"\0\0\0\0"), Ok(0));
    assert_eq!(numeric(&[0x80, 0, 0, 0, 0, 0, 0x03, 0xe8]), Ok(1000));
    assert!(numeric(&[0xff; 8]).is_err());
    assert!(numeric(b"09").is_err());
    assert!(numeric(&[0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());

    assert_eq!(pax::time(b"1700000000.123456789"), Some((1_700_000_000, 123_456_789)));
    assert_eq!(pax::time(b"-1.5"), Some((-2, 500_000_000)));
    assert_eq!(pax::time(b"-3"), Some((-3, 0)));
    assert_eq!(pax::time(b"5.1234567891"), Some((5, 123_456_789)));
    for bad in [&b""[..], b".5", b"1e9", b"--1", b"1.-5"] {
        assert_eq!(pax::time(bad), None, "{bad:?}");
    }

    assert_eq!(pax::base64_decode(b"aGVsbG8"), Some(b"hello".to_vec()));
    assert_eq!(pax::base64_decode(b"aGVsbG8="), Some(b"hello".to_vec()));
    assert_eq!(pax::base64_decode(b"AAEC/w"), Some(vec![0, 1, 2, 255]));
    assert_eq!(pax::base64_decode(b"a"), None);
    assert_eq!(pax::base64_decode(b"a*bc"), None);
    assert_eq!(pax::url_decode(b"user.a%3Db%25"), Some(b"user.a=b%".to_vec()));
    assert_eq!(pax::url_decode(b"x%4"), None);

    let bytes = Blocks::default()
        .pax(&[
            ("SCHILY.xattr.user.raw", b"\x00\x01"),
            ("LIBARCHIVE.xattr.user.enc%20oded", b"aGk"),
            ("uid", b"1000"),
            ("gid", b"x"),
            ("mtime", b"12.5"),
        ])
        .entry(b"f", EntryType::Regular, b"")
        .end();
    let mut w = TarWalker::new(&bytes[..]);
    let e = w.next_entry().unwrap().unwrap();
    assert_eq!(
        e.xattrs().unwrap(),
        vec![
            (b"user.raw".to_vec(), b"\x00\x01".to_vec()),
            (b"user.enc oded".to_vec(), b"hi".to_vec())
        ]
    );
    assert_eq!(e.uid().unwrap(), 1000);
    assert_eq!(e.gid().unwrap_err().to_string(), "f: bad PAX gid \"x\"");
    assert_eq!(e.mtime().unwrap(), (12, 500_000_000));
}

/// A GNU sparse header with the given segments (the first four in the header, the rest in extended headers).
fn sparse(blocks: &mut Blocks, real_size: u64, segments: &[(u64, u64)], stored: u64) {
    let mut h = Header::new_gnu();
    h.as_mut_bytes()[..6].copy_from_slice(b"sparse");
    h.set_entry_type(EntryType::GNUSparse);
    h.set_size(stored);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.set_real_size(real_size);
    let (first, rest) = segments.split_at(segments.len().min(4));
    for (slot, &(off, len)) in gnu.sparse.iter_mut().zip(first) {
        slot.set_offset(off);
        slot.set_length(len);
    }
    gnu.set_is_extended(!rest.is_empty());
    blocks.raw(h);
    let chunks: Vec<_> = rest.chunks(21).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut ext = tar::GnuExtSparseHeader::new();
        for (slot, &(off, len)) in ext.sparse_mut().iter_mut().zip(chunk.iter()) {
            slot.set_offset(off);
            slot.set_length(len);
        }
        ext.set_is_extended(i + 1 < chunks.len());
        blocks.0.extend_from_slice(ext.as_bytes());
    }
}

#[test]
fn gnu_sparse_maps_are_read_from_extended_headers_and_validated() {
    let segments: Vec<(u64, u64)> = (0..30).map(|i| (i * 4096, 512)).collect();
    let mut b = Blocks::default();
    sparse(&mut b, 30 * 4096, &segments, 30 * 512);
    let bytes = b
        .data(&vec![9u8; 30 * 512])
        .entry(b"after", EntryType::Regular, b"a")
        .end();
    let mut w = TarWalker::new(&bytes[..]);
    let e = w.next_entry().unwrap().unwrap();
    let map = e.sparse().unwrap();
    assert_eq!(map.real_size, 30 * 4096);
    assert_eq!(map.segments.len(), 30);
    assert_eq!(
        map.segments[29],
        SparseSegment {
            offset: 29 * 4096,
            len: 512
        }
    );
    assert_eq!(e.data_offset(), 3 * 512, "data follows the two extended headers");
    assert_eq!(w.next_entry().unwrap().unwrap().path_bytes(), b"after");

    for (segments, real, stored, reason) in [
        (
            vec![(4096, 512), (0, 512)],
            8192,
            1024,
            "sparse segment at 0 overlaps or precedes the previous one (which ends at 4608)",
        ),
        (
            vec![(0, 1024), (512, 512)],
            8192,
            1536,
            "sparse segment at 512 overlaps or precedes the previous one (which ends at 1024)",
        ),
        (
            vec![(8000, 512)],
            8192,
            512,
            "sparse segment at 8000 of 512 bytes ends past the file's size 8192",
        ),
        (
            vec![(0, 512)],
            8192,
            1024,
            "its sparse segments hold 512 bytes but the entry stores 1024",
        ),
    ] {
        let mut b = Blocks::default();
        sparse(&mut b, real, &segments, stored);
        let bytes = b.data(&vec![0u8; stored as usize]).end();
        assert_eq!(walk(&bytes).unwrap_err().to_string(), format!("sparse: {reason}"));
    }

    // Extended headers without end: refused once they pass the cap, not read forever.
    let mut h = Header::new_gnu();
    h.as_mut_bytes()[..6].copy_from_slice(b"sparse");
    h.set_entry_type(EntryType::GNUSparse);
    h.set_size(0);
    h.as_gnu_mut().unwrap().set_is_extended(true);
    let mut b = Blocks::default();
    b.raw(h);
    let mut ext = tar::GnuExtSparseHeader::new();
    ext.set_is_extended(true);
    for _ in 0..(MAX_SPARSE_HEADERS / 512 + 1) {
        b.0.extend_from_slice(ext.as_bytes());
    }
    let e = walk(&b.end()).unwrap_err().to_string();
    assert!(
        e.starts_with("sparse: its GNU sparse map runs over 1048576 bytes"),
        "{e}"
    );
}

#[test]
fn a_seekable_walk_sees_the_same_entries_and_offsets() {
    let bytes = Blocks::default()
        .entry(b"././@LongLink", EntryType::GNULongName, b"long-name\0")
        .entry(b"a", EntryType::Regular, &[1u8; 700])
        .pax(&[("path", b"b")])
        .entry(b"x", EntryType::Regular, b"bb")
        .end();
    let offsets = |mut w: TarWalker<_>| {
        let mut out = Vec::new();
        while let Some(e) = w.next_entry().unwrap() {
            out.push((
                e.path_lossy().into_owned(),
                e.header_offset(),
                e.data_offset(),
                e.size(),
            ));
        }
        out
    };
    let streamed = offsets(TarWalker::new(io::Cursor::new(&bytes)));
    let seeked = offsets(TarWalker::seekable(io::Cursor::new(&bytes)));
    assert_eq!(streamed, seeked);
    assert_eq!(
        streamed,
        vec![("long-name".into(), 0, 1536, 700), ("b".into(), 2560, 4096, 2)]
    );
}
