//! The proxy's listeners as one pingora service: the plain listener's accept
//! loop is ringress's own, the TLS listener is pingora's, and both hand
//! connections to the same [`Front`] on the same worker threads.
//!
//! Why an accept loop of our own: pingora's wraps every connection in its own
//! stream type (a write buffer, digests, timestamps, its task) for as long as
//! the connection lives, about 20 KiB per idle keep-alive client. A plain
//! connection here is a [`PlainStream`], which holds no buffer between
//! requests.
use std::io;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::{ListenFds, ShutdownWatch};
use pingora::services::listening::Service as PingoraListeners;
use pingora::services::{ServiceReadyNotifier, ServiceWithDependents};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};

use crate::data::transport::front::Front;

/// Connections waiting to be accepted (the kernel caps it at `somaxconn`),
/// as pingora's listeners.
const BACKLOG: i32 = 65535;

/// Binds `listen` (`host:port`) for the plain listener: a clear start-up
/// error if the address is taken, and nothing can take it after.
pub fn bind(listen: &str) -> io::Result<std::net::TcpListener> {
    let addr = listen
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// [`Front`] shared by the plain accept loop and pingora's TLS listener.
pub struct SharedFront(pub Arc<Front>);

#[async_trait]
impl ServerApp for SharedFront {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.0.process_new(stream, shutdown).await
    }
    // Cleaned up once, by `Listeners`.
}

pub struct Listeners {
    front: Arc<Front>,
    plain: Option<std::net::TcpListener>,
    tls: Option<PingoraListeners<SharedFront>>,
    /// Worker threads: with more than one, a connection is moved to the
    /// worker that serves it.
    threads: usize,
}

impl Listeners {
    pub fn new(
        front: Arc<Front>,
        plain: std::net::TcpListener,
        tls: Option<PingoraListeners<SharedFront>>,
        threads: usize,
    ) -> Self {
        Self {
            front,
            plain: Some(plain),
            tls,
            threads,
        }
    }
}

#[async_trait]
impl ServiceWithDependents for Listeners {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
        ready: ServiceReadyNotifier,
    ) {
        let plain = self.plain.take().map(|listener| {
            let front = Arc::clone(&self.front);
            let move_to_worker = self.threads > 1;
            tokio::spawn(accept_loop(
                listener,
                front,
                shutdown.clone(),
                move_to_worker,
            ))
        });
        match self.tls.as_mut() {
            Some(tls) => {
                tls.start_service(fds, shutdown, listeners_per_fd, ready)
                    .await
            }
            None => ready.notify_ready(),
        }
        if let Some(plain) = plain {
            let _ = plain.await;
        }
        self.front.cleanup().await;
    }

    fn name(&self) -> &str {
        "ringress proxy"
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    front: Arc<Front>,
    mut shutdown: ShutdownWatch,
    move_to_worker: bool,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            log::error!("the plain listener: {e}; exiting");
            std::process::exit(1);
        }
    };
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            changed = shutdown.changed() => match changed {
                Ok(()) if !*shutdown.borrow() => continue,
                // Shutting down: no new connections; open ones finish
                // their request (the front door sees the same watch).
                _ => return,
            },
        };
        match accepted {
            Ok((tcp, peer)) => {
                let Ok(tcp) = client_socket(tcp) else {
                    continue;
                };
                let front = Arc::clone(&front);
                let shutdown = shutdown.clone();
                if move_to_worker {
                    // Registered with this thread's reactor: moved, so the
                    // worker that serves it also polls it.
                    let Ok(tcp) = tcp.into_std() else { continue };
                    pingora_runtime::current_handle().spawn(async move {
                        if let Ok(tcp) = TcpStream::from_std(tcp) {
                            front.serve_plain(tcp, peer, &shutdown).await
                        }
                    });
                } else {
                    tokio::spawn(async move { front.serve_plain(tcp, peer, &shutdown).await });
                }
            }
            Err(e) => {
                log::warn!("accept on the plain listener: {e}");
                // Out of descriptors or memory (ENFILE, EMFILE, ENOBUFS,
                // ENOMEM): accept would fail again at once; let connections
                // close first.
                if matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// A client connection as the front door gets it. `TCP_NODELAY`, as
/// pingora's listener and NGINX's `tcp_nodelay` set it: a response streamed
/// in several writes must not have its last small segment held back until
/// the client acknowledges the previous one (with a delayed ACK, 40 ms per
/// response on a keep-alive connection).
fn client_socket(tcp: TcpStream) -> io::Result<TcpStream> {
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_send_small_segments_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        assert!(!tcp.nodelay().unwrap(), "the kernel's default");
        assert!(client_socket(tcp).unwrap().nodelay().unwrap());
    }

    #[test]
    fn binds_with_a_clear_error_when_the_address_is_taken() {
        let first = bind("127.0.0.1:0").unwrap();
        let taken = first.local_addr().unwrap().to_string();
        let err = bind(&taken).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(bind("not an address").is_err());
    }
}
