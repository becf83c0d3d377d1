//! Reading UDP datagrams in batches: one `recvmmsg(2)` system call takes up to [`BATCH`]
//! datagrams on Linux (one `recvfrom` per datagram elsewhere). At 100k netconsole lines/s the
//! per-datagram system call is a noticeable part of the receiver's time.

use std::io;
use std::net::IpAddr;

/// Datagrams taken per system call.
pub const BATCH: usize = 32;
/// Largest datagram kept whole (the UDP maximum); longer ones do not exist on IPv4/IPv6 without
/// jumbograms.
const SLOT: usize = 65536;

/// Reusable receive buffers for [`Batch::recv`].
pub struct Batch {
    bufs: Vec<u8>,
    lens: Vec<usize>,
    from: Vec<Option<IpAddr>>,
    n: usize,
    #[cfg(target_os = "linux")]
    addrs: Vec<libc::sockaddr_storage>,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    pub fn new() -> Self {
        Batch {
            bufs: vec![0; BATCH * SLOT],
            lens: vec![0; BATCH],
            from: vec![None; BATCH],
            n: 0,
            #[cfg(target_os = "linux")]
            // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
            addrs: vec![unsafe { std::mem::zeroed() }; BATCH],
        }
    }

    /// Datagrams received by the last [`Batch::recv`]: (sender, bytes).
    pub fn iter(&self) -> impl Iterator<Item = (Option<IpAddr>, &[u8])> {
        (0..self.n).map(move |i| (self.from[i], &self.bufs[i * SLOT..i * SLOT + self.lens[i]]))
    }

    /// Wait for a datagram (up to the socket's read timeout; then `WouldBlock`/`TimedOut`),
    /// and take it with whatever else is queued, up to [`BATCH`] datagrams (`MSG_WAITFORONE`).
    /// Returns how many.
    #[cfg(target_os = "linux")]
    pub fn recv_blocking(&mut self, sock: &std::net::UdpSocket) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        self.n = 0;
        let fd = sock.as_raw_fd();
        let base = self.bufs.as_mut_ptr();
        let mut iov: [libc::iovec; BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: mmsghdr is plain data; all-zero is a valid (empty) header.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            // SAFETY: slot i lies inside `bufs` (BATCH * SLOT bytes).
            iov[i].iov_base = unsafe { base.add(i * SLOT) }.cast();
            iov[i].iov_len = SLOT;
            hdrs[i].msg_hdr.msg_iov = &mut iov[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
            hdrs[i].msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdrs[i].msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: every header points at live buffers of the lengths it states, which outlive
        // the call; the kernel writes at most that much.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = r as usize;
        for (i, h) in hdrs.iter().enumerate().take(n) {
            self.lens[i] = (h.msg_len as usize).min(SLOT);
            self.from[i] = ip_of(&self.addrs[i]);
        }
        self.n = n;
        Ok(n)
    }

    #[cfg(not(target_os = "linux"))]
    pub fn recv_blocking(&mut self, sock: &std::net::UdpSocket) -> io::Result<usize> {
        self.n = 0;
        let (len, from) = sock.recv_from(&mut self.bufs[..SLOT])?;
        self.lens[0] = len;
        self.from[0] = Some(from.ip());
        self.n = 1;
        Ok(1)
    }
}

#[cfg(target_os = "linux")]
fn ip_of(a: &libc::sockaddr_storage) -> Option<IpAddr> {
    match i32::from(a.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let v4 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(std::net::Ipv4Addr::from(u32::from_be(
                v4.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let v6 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(IpAddr::V6(std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}
