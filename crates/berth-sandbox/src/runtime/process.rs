//! What runs in and around a container's process: the executor that starts its program (signals reset, seccomp
//! for `exec`), and the network set-up done from outside (the loopback interface).

use std::path::Path;

use libcontainer::workload::default::get_executor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};

/// libcontainer's default executor, after giving every signal its default action and unblocking them all.
///
/// The container's first process is cloned from the caller, and ignored signals stay ignored across `exec`: a
/// berth-run started from a script (SIGINT and SIGQUIT ignored) or by Rust (SIGPIPE ignored) would hand that on
/// to the container. Docker's and containerd's containers start with every signal at its default.
#[derive(Clone, Default)]
pub(super) struct CleanSignalsExecutor {
    /// For `exec`: the container's seccomp filter, which libcontainer does not give processes it adds to a running
    /// container; loaded here, last thing before the program runs.
    pub(super) seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
}

impl Executor for CleanSignalsExecutor {
    fn exec(&self, spec: &oci_spec::runtime::Spec) -> Result<(), ExecutorError> {
        reset_signals();
        if let Some(seccomp) = &self.seccomp {
            libcontainer::seccomp::initialize_seccomp(seccomp)
                .map_err(|e| ExecutorError::Other(format!("cannot load the container's seccomp filter: {e}")))?;
        }
        get_executor().exec(spec)
    }

    fn validate(&self, spec: &oci_spec::runtime::Spec) -> Result<(), ExecutorValidationError> {
        get_executor().validate(spec)
    }
}

/// The bundle's spec, if it can be read (libcontainer reads it again, and reports what is wrong with it).
pub(super) fn bundle_spec(bundle: &Path) -> Option<oci_spec::runtime::Spec> {
    oci_spec::runtime::Spec::load(bundle.join("config.json")).ok()
}

/// Whether the spec gives the container a new network namespace (not the host's, not a path).
pub(super) fn own_network_namespace(spec: Option<&oci_spec::runtime::Spec>) -> bool {
    spec.and_then(|s| s.linux().as_ref())
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|list| {
            list.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network && n.path().is_none())
        })
}

/// Sets `lo` up in the network namespace of process `pid`, from a thread that enters it (and then ends).
pub(super) fn loopback_up(pid: i32) -> std::io::Result<()> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| -> std::io::Result<()> {
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&ns),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                let socket =
                    rustix::net::socket(rustix::net::AddressFamily::INET, rustix::net::SocketType::DGRAM, None)?;
                set_interface_up(std::os::fd::AsRawFd::as_raw_fd(&socket), b"lo")
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the thread setting up lo panicked")))
    })
}

#[allow(unsafe_code)]
fn set_interface_up(socket: i32, name: &[u8]) -> std::io::Result<()> {
    // SAFETY: `ifreq` is plain old data, valid when zeroed; the name fits with its NUL (at most 15 bytes here), and
    // both ioctls only read and write that one struct, which outlives them.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(name) {
            *dst = *src as libc::c_char;
        }
        if libc::ioctl(socket, libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(socket, libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[allow(unsafe_code)]
fn reset_signals() {
    // The kernel's `struct sigaction` with SIG_DFL (0), no flags, no restorer and an empty mask: all zeros, and
    // four words cover every architecture's layout. The raw system call, because glibc's signal() refuses its two
    // internal real-time signals (32, 33), which a parent may have left ignored too.
    let default_action = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: the process is single-threaded and about to exec; the action points to a live, fully initialized
        // buffer of the kernel's size; no old action is requested.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                default_action.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            );
        }
    }
    // SAFETY: an empty set, initialized by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}
