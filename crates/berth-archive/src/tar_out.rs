//! Writing an archive: deterministic tar headers (mtime 0, uid/gid 0, mode 0644 files / 0755 directories, GNU
//! format with long-name headers and base-256 sizes) into a temp file next to the destination, which is fsynced
//! and renamed over the destination only when the archive is complete. A half-written archive never appears at
//! the destination; a dropped, unfinished writer leaves nothing.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};
use tempfile::NamedTempFile;

use berth_spec::io_context::IoContext;

use crate::error::Result;

const BLOCK: u64 = 512;

/// A member whose data is being written.
#[derive(Debug)]
pub(crate) struct OpenMember {
    header: Header,
    header_pos: u64,
    data_start: u64,
    size: Option<u64>,
}

/// An archive being written to a temp file next to its destination.
#[derive(Debug)]
pub(crate) struct TarOut {
    target: PathBuf,
    temp: NamedTempFile,
    out: BufWriter<File>,
    pos: u64,
}

impl TarOut {
    /// Starts an archive that [`TarOut::finish`] will rename to `target`.
    pub(crate) fn create(target: &Path) -> Result<TarOut> {
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let base = target.file_name().map_or("archive".into(), |n| n.to_string_lossy());
        // The archive gets the mode any new file gets (0666 less the umask), or keeps the mode of the archive it
        // replaces (an image added to an existing archive).
        use std::os::unix::fs::PermissionsExt;
        let replaced = std::fs::metadata(target).ok().filter(std::fs::Metadata::is_file);
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{base}."))
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(parent)
            .at("create a temp file for the archive", parent)?;
        if let Some(m) = replaced {
            temp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(m.permissions().mode() & 0o7777))
                .at("set the mode of", temp.path())?;
        }
        let file = temp.as_file().try_clone().at("open temp file", temp.path())?;
        Ok(TarOut {
            target: target.to_owned(),
            temp,
            out: BufWriter::with_capacity(1 << 20, file),
            pos: 0,
        })
    }

    /// The destination.
    pub(crate) fn target(&self) -> &Path {
        &self.target
    }

    fn header(kind: EntryType, mode: u32) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    }

    /// Writes `header` for `name`, preceded by a GNU long-name member when the name does not fit.
    fn write_header(&mut self, name: &str, mut header: Header, size: u64) -> io::Result<(Header, u64)> {
        let bytes = name.as_bytes();
        let field_len = header.as_old().name.len();
        if bytes.len() > field_len {
            let mut long = Self::header(EntryType::GNULongName, 0o644);
            long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            long.set_size(bytes.len() as u64 + 1);
            long.set_cksum();
            self.write_all(long.as_bytes())?;
            self.write_all(bytes)?;
            self.write_all(&[0])?;
            self.pad()?;
        }
        let n = bytes.len().min(field_len);
        header.as_old_mut().name[..n].copy_from_slice(&bytes[..n]);
        header.set_size(size);
        header.set_cksum();
        let pos = self.pos;
        self.write_all(header.as_bytes())?;
        Ok((header, pos))
    }

    fn pad(&mut self) -> io::Result<()> {
        let rem = self.pos % BLOCK;
        if rem != 0 {
            let zeros = [0u8; BLOCK as usize];
            self.write_all(&zeros[..(BLOCK - rem) as usize])?;
        }
        Ok(())
    }

    /// Adds a directory `name` (written with a trailing `/`).
    pub(crate) fn dir(&mut self, name: &str) -> Result<()> {
        let h = Self::header(EntryType::Directory, 0o755);
        self.write_header(&format!("{name}/"), h, 0)
            .at("write archive", &self.target)
            .map(|_| ())
            .map_err(Into::into)
    }

    /// Starts a regular file; write its data through `self`, then call [`TarOut::end_file`]. Without a `size`, the
    /// header is rewritten with the real size at the end.
    pub(crate) fn begin_file(&mut self, name: &str, size: Option<u64>) -> Result<OpenMember> {
        let h = Self::header(EntryType::Regular, 0o644);
        let (header, header_pos) = self
            .write_header(name, h, size.unwrap_or(0))
            .at("write archive", &self.target)?;
        Ok(OpenMember {
            header,
            header_pos,
            data_start: self.pos,
            size,
        })
    }

    /// Ends a file: checks (or records) its size and pads it to a block boundary.
    pub(crate) fn end_file(&mut self, mut member: OpenMember) -> Result<()> {
        let written = self.pos - member.data_start;
        match member.size {
            Some(size) if size != written => {
                let e = io::Error::other(format!("member data is {written} bytes, its header says {size}"));
                return Err(e).at("write archive", &self.target).map_err(Into::into);
            }
            Some(_) => {}
            None => {
                member.header.set_size(written);
                member.header.set_cksum();
                self.out.flush().at("write archive", &self.target)?;
                self.out
                    .get_ref()
                    .write_all_at(member.header.as_bytes(), member.header_pos)
                    .at("write archive", &self.target)?;
            }
        }
        self.pad().at("write archive", &self.target).map_err(Into::into)
    }

    /// Adds a whole regular file from memory.
    pub(crate) fn file_bytes(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let m = self.begin_file(name, Some(data.len() as u64))?;
        self.write_all(data).at("write archive", &self.target)?;
        self.end_file(m)
    }

    /// Writes the end-of-archive blocks, fsyncs, and renames the archive into place (then fsyncs the directory).
    pub(crate) fn finish(mut self) -> Result<()> {
        self.write_all(&[0u8; 2 * BLOCK as usize])
            .at("write archive", &self.target)?;
        self.out.flush().at("write archive", self.temp.path())?;
        self.out.get_ref().sync_all().at("fsync archive", self.temp.path())?;
        let target = self.target.clone();
        self.temp
            .persist(&target)
            .map_err(|e| e.error)
            .at("rename the finished archive into place", &target)?;
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir).and_then(|d| d.sync_all()).at("fsync directory", dir)?;
        tracing::debug!(archive = %target.display(), bytes = self.pos, "archive written");
        Ok(())
    }
}

impl Write for TarOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn members_read_back_with_long_names_and_patched_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.tar");
        let mut t = TarOut::create(&target).unwrap();
        t.dir("blobs").unwrap();
        let long = format!("blobs/sha512/{}", "b".repeat(128));
        t.file_bytes(&long, b"hello").unwrap();
        let m = t.begin_file("streamed", None).unwrap();
        t.write_all(&[7u8; 1000]).unwrap();
        t.end_file(m).unwrap();
        let m = t.begin_file("wrong", Some(3)).unwrap();
        t.write_all(b"ab").unwrap();
        assert!(t.end_file(m).is_err());
        drop(t);
        assert!(!target.exists(), "an unfinished archive appeared");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temp file left behind"
        );

        let mut t = TarOut::create(&target).unwrap();
        t.dir("blobs").unwrap();
        t.file_bytes(&long, b"hello").unwrap();
        let m = t.begin_file("streamed", None).unwrap();
        t.write_all(&[7u8; 1000]).unwrap();
        t.end_file(m).unwrap();
        t.finish().unwrap();
        let mut a = tar::Archive::new(File::open(&target).unwrap());
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            assert_eq!(e.header().mtime().unwrap(), 0);
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            seen.push((e.path().unwrap().to_string_lossy().into_owned(), data.len()));
        }
        assert_eq!(seen, [("blobs/".into(), 0), (long, 5), ("streamed".to_string(), 1000)]);
    }
}
