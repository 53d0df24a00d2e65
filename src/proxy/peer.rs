//! Whose a loopback connection to the proxy is: the owner (uid) of the client's socket, asked of
//! the kernel by the connection's two addresses (netlink `sock_diag`, as `ss -e` does). The gate
//! closes another local user's connections without credentials before this user's own, so a
//! neighbour's flood of silent connections closes its own and not the program's new ones (round
//! 102 F1). Linux only; elsewhere, and when the kernel does not say, the owner is unknown.

use std::net::SocketAddr;

/// The uid owning the client end of the accepted connection `local` ← `peer`, if the kernel says.
#[cfg(target_os = "linux")]
pub(crate) fn owner(local: SocketAddr, peer: SocketAddr) -> Option<u32> {
    use rustix::net::{netlink, AddressFamily, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::SOCK_DIAG),
    )
    .ok()?;
    // The kernel answers at once; a bound keeps a stuck answer from holding the accept loop.
    let bound = Some(std::time::Duration::from_millis(100));
    rustix::net::sockopt::set_socket_timeout(&fd, rustix::net::sockopt::Timeout::Recv, bound).ok()?;
    let kernel = netlink::SocketAddrNetlink::new(0, 0);
    rustix::net::sendto(&fd, &request(local, peer)?, rustix::net::SendFlags::empty(), &kernel).ok()?;
    let mut answer = [0u8; 512];
    let (n, _) = rustix::net::recv(&fd, &mut answer, rustix::net::RecvFlags::empty()).ok()?;
    uid_in(&answer[..n.min(answer.len())])
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn owner(_local: SocketAddr, _peer: SocketAddr) -> Option<u32> {
    None
}

/// `SOCK_DIAG_BY_FAMILY`, the message type of the request and of its answer.
const SOCK_DIAG_BY_FAMILY: u16 = 20;

/// A `nlmsghdr` + `inet_diag_req_v2` asking for the TCP socket whose own address is `peer` and
/// whose other end is `local` (the client's socket): 72 bytes, native byte order but for the
/// ports and addresses.
fn request(local: SocketAddr, peer: SocketAddr) -> Option<Vec<u8>> {
    let family: u8 = match (local, peer) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) => 2,
        (SocketAddr::V6(_), SocketAddr::V6(_)) => 10,
        _ => return None,
    };
    let addr = |a: SocketAddr| -> [u8; 16] {
        let mut out = [0u8; 16];
        match a {
            SocketAddr::V4(v4) => out[..4].copy_from_slice(&v4.ip().octets()),
            SocketAddr::V6(v6) => out = v6.ip().octets(),
        }
        out
    };
    let mut m = Vec::with_capacity(72);
    m.extend_from_slice(&72u32.to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&1u16.to_ne_bytes()); // NLM_F_REQUEST
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    m.extend_from_slice(&[family, 6, 0, 0]); // TCP, no extensions
    m.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    m.extend_from_slice(&peer.port().to_be_bytes());
    m.extend_from_slice(&local.port().to_be_bytes());
    m.extend_from_slice(&addr(peer));
    m.extend_from_slice(&addr(local));
    m.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    m.extend_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE
    Some(m)
}

/// The uid of an `inet_diag_msg` answer (after its 16-byte header: family, state, timer,
/// retransmits, the 48-byte socket id, expires, read and write queues, then the uid); `None` for
/// an error answer (no such socket).
fn uid_in(answer: &[u8]) -> Option<u32> {
    let kind = u16::from_ne_bytes(answer.get(4..6)?.try_into().ok()?);
    (kind == SOCK_DIAG_BY_FAMILY).then_some(())?;
    Some(u32::from_ne_bytes(answer.get(80..84)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn the_owner_of_a_loopback_connection_is_this_process_user() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        let me = rustix::process::getuid().as_raw();
        assert_eq!(owner(accepted.local_addr().unwrap(), peer), Some(me));
        // A connection that is not there: unknown, not anyone's.
        let gone: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(owner(accepted.local_addr().unwrap(), gone), None);
    }

    #[test]
    fn requests_and_answers_are_laid_out_as_the_kernel_reads_them() {
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let m = request(local, peer).unwrap();
        assert_eq!(m.len(), 72);
        assert_eq!(&m[24..28], &[0x9c, 0x40, 0x1f, 0x90], "ports: the client's, then the proxy's");
        assert_eq!(&m[28..32], &[127, 0, 0, 1]);
        assert_eq!(request(local, "[::1]:1".parse().unwrap()), None);
        let mut answer = vec![0u8; 96];
        answer[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        answer[80..84].copy_from_slice(&1001u32.to_ne_bytes());
        assert_eq!(uid_in(&answer), Some(1001));
        answer[4..6].copy_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
        assert_eq!(uid_in(&answer), None);
    }
}
