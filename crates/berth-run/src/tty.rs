//! Terminals: the console socket through which libcontainer hands over a container's pty master, raw mode for
//! the user's terminal, window sizes, and the copy loops between them.

use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use rustix::termios::{OptionalActions, Termios};

use crate::RunError;
use berth_spec::io_context::IoContext;

/// A listening Unix socket in a private temporary directory (short path: socket paths are limited to 107 bytes).
#[derive(Debug)]
pub struct ConsoleSocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    listener: OwnedFd,
}

impl ConsoleSocket {
    /// Creates and listens.
    pub fn new() -> Result<ConsoleSocket, RunError> {
        let dir = tempfile::Builder::new()
            .prefix("berth-tty-")
            .tempdir()
            .at("create a temporary directory in", std::env::temp_dir())?;
        let path = dir.path().join("console.sock");
        let listener = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)
            .at("create a socket for", &path)?;
        let addr = SocketAddrUnix::new(&path).at("name a socket", &path)?;
        rustix::net::bind(&listener, &addr).at("bind", &path)?;
        rustix::net::listen(&listener, 1).at("listen on", &path)?;
        Ok(ConsoleSocket {
            _dir: dir,
            path,
            listener,
        })
    }

    /// The socket's path, for libcontainer.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts libcontainer's connection and receives the pty master it sends.
    pub fn receive(&self) -> Result<OwnedFd, RunError> {
        let conn = rustix::net::accept_with(&self.listener, SocketFlags::CLOEXEC).at("accept on", &self.path)?;
        let mut name = [0u8; 4096];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut ancillary = RecvAncillaryBuffer::new(&mut space);
        rustix::net::recvmsg(
            &conn,
            &mut [std::io::IoSliceMut::new(&mut name)],
            &mut ancillary,
            RecvFlags::CMSG_CLOEXEC,
        )
        .at("receive the terminal from", &self.path)?;
        for message in ancillary.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = message
                && let Some(fd) = fds.next()
            {
                return Ok(fd);
            }
        }
        Err(std::io::Error::other("the runtime sent no terminal"))
            .at("receive the terminal from", &self.path)
            .map_err(Into::into)
    }
}

/// The user's terminal in raw mode; restored on drop.
#[derive(Debug)]
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Puts standard input in raw mode when it is a terminal.
    pub fn enable() -> Option<RawMode> {
        let stdin = rustix::stdio::stdin();
        if !rustix::termios::isatty(stdin) {
            return None;
        }
        let saved = rustix::termios::tcgetattr(stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(stdin, OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// Gives the container's terminal the size of the user's (when standard output is a terminal).
pub fn copy_window_size(master: BorrowedFd<'_>) {
    let stdout = rustix::stdio::stdout();
    if let Ok(size) = rustix::termios::tcgetwinsize(stdout) {
        let _ = rustix::termios::tcsetwinsize(master, size);
    }
}

/// When the container last wrote to its terminal, in milliseconds since [`START`]; read by the input copy.
static LAST_OUTPUT_MS: AtomicU64 = AtomicU64::new(0);
static START: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    u64::try_from(START.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Copies the terminal's output to standard output until the container side closes; returns when done.
pub fn spawn_output_copy(master: &OwnedFd) -> Result<std::thread::JoinHandle<()>, RunError> {
    let reader = master.try_clone().at("duplicate", "the terminal")?;
    LAST_OUTPUT_MS.store(now_ms(), Ordering::Relaxed);
    Ok(std::thread::spawn(move || {
        let mut reader = std::fs::File::from(reader);
        let mut out = std::io::stdout().lock();
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                // EIO: every process holding the terminal's other side has exited.
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    LAST_OUTPUT_MS.store(now_ms(), Ordering::Relaxed);
                    if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                        break;
                    }
                }
            }
        }
    }))
}

/// Copies standard input to the terminal (in the background, for as long as the process lives). When input that
/// is not a terminal (a pipe, a file) ends, the end reaches the container as a terminal's end of input: the EOF
/// character (Ctrl-D), as a user would type it — otherwise `echo hi | berth-run run -it IMAGE cat` never ends.
pub fn spawn_input_copy(master: &OwnedFd) -> Result<(), RunError> {
    let writer = master.try_clone().at("duplicate", "the terminal")?;
    std::thread::spawn(move || {
        let mut writer = std::fs::File::from(writer);
        let mut input = std::io::stdin().lock();
        let mut buf = [0u8; 8192];
        let mut last = b'\n';
        loop {
            match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if writer.write_all(&buf[..n]).is_err() {
                        return;
                    }
                    last = buf[n - 1];
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
        if is_terminal(rustix::stdio::stdin()) {
            return;
        }
        wait_for_a_reader(&writer);
        let Ok(termios) = rustix::termios::tcgetattr(&writer) else {
            return;
        };
        let eof = termios.special_codes[rustix::termios::SpecialCodeIndex::VEOF];
        // In canonical mode one EOF at the start of a line ends the input, and after a partial line the first one
        // only sends the line. A line editor (readline, ash) keeps the terminal raw and reads Ctrl-D itself: once.
        let canonical = termios.local_modes.contains(rustix::termios::LocalModes::ICANON);
        let times = if canonical && last != b'\n' { 2 } else { 1 };
        let _ = writer.write_all(&vec![eof; times]);
    });
    Ok(())
}

/// Waits, before an end of input is typed, until the container has read everything sent so far and its terminal
/// has been quiet for a moment: a program waiting for input then, in the terminal mode it reads in.
///
/// The EOF character means different things in the two modes, and a shell switches between them: its line editor
/// reads in raw mode and runs commands in canonical mode. An EOF typed while the terminal is canonical but read
/// by a line editor that comes next arrives as a NUL byte, and the shell never ends; a user typing Ctrl-D waits for
/// the prompt, and so does this. Gives up waiting after a few seconds of output or unread input.
fn wait_for_a_reader(master: &std::fs::File) {
    const QUIET_MS: u64 = 150;
    const GIVE_UP: std::time::Duration = std::time::Duration::from_secs(5);
    let started = Instant::now();
    while started.elapsed() < GIVE_UP {
        let quiet = now_ms().saturating_sub(LAST_OUTPUT_MS.load(Ordering::Relaxed)) >= QUIET_MS;
        // The container's side of the terminal, opened for a moment to see how much input it has not read yet
        // (kept open, it would stop the output copy from seeing the container's end).
        let unread = rustix::pty::ioctl_tiocgptpeer(
            master,
            rustix::pty::OpenptFlags::NOCTTY | rustix::pty::OpenptFlags::CLOEXEC,
        )
        .and_then(|peer| rustix::io::ioctl_fionread(&peer))
        .unwrap_or(0);
        if quiet && unread == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: impl AsFd) -> bool {
    rustix::termios::isatty(fd)
}
