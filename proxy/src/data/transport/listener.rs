//! The proxy's listeners as one pingora service: accept loops of ringress's
//! own, for the plain and the TLS listener, handing connections to the same
//! [`Front`] on the same worker threads.
//!
//! Why accept loops of our own: pingora's wraps every connection in its own
//! stream type (a write buffer, digests, timestamps) and keeps its handshake's
//! state in the connection's task for as long as the connection lives: about
//! 20 KiB per idle plain keep-alive client, 9 KiB more per TLS one. Here a
//! plain connection is a `PlainStream` and a TLS one a `TlsClientStream`,
//! which hold no buffer between requests; the handshake's state is boxed and
//! freed when it ends.
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ListenFds, ShutdownWatch};
use pingora::services::{ServiceReadyNotifier, ServiceWithDependents};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::data::transport::front::Front;
use crate::data::transport::tls_client::TlsClientStream;

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

pub struct Listeners {
    front: Arc<Front>,
    plain: Option<std::net::TcpListener>,
    tls: Option<(std::net::TcpListener, TlsAcceptor)>,
    /// Worker threads: with more than one, a connection is moved to the
    /// worker that serves it.
    threads: usize,
}

impl Listeners {
    pub fn new(
        front: Arc<Front>,
        plain: std::net::TcpListener,
        tls: Option<(std::net::TcpListener, TlsAcceptor)>,
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
        _fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
        ready: ServiceReadyNotifier,
    ) {
        let move_to_worker = self.threads > 1;
        let listeners = [
            self.plain.take().map(|listener| (listener, None)),
            self.tls
                .take()
                .map(|(listener, acceptor)| (listener, Some(acceptor))),
        ];
        let accepting: Vec<_> = listeners
            .into_iter()
            .flatten()
            .map(|(listener, tls)| {
                tokio::spawn(accept_loop(
                    listener,
                    Arc::clone(&self.front),
                    shutdown.clone(),
                    move_to_worker,
                    tls,
                ))
            })
            .collect();
        ready.notify_ready();
        for accepting in accepting {
            let _ = accepting.await;
        }
        self.front.cleanup().await;
    }

    fn name(&self) -> &str {
        "ringress proxy"
    }
}

/// Accepts connections until shutdown and serves each on its own task: plain
/// HTTP, or TLS when `tls` is given (the handshake on that task too).
async fn accept_loop(
    listener: std::net::TcpListener,
    front: Arc<Front>,
    mut shutdown: ShutdownWatch,
    move_to_worker: bool,
    tls: Option<TlsAcceptor>,
) {
    let which = if tls.is_some() { "TLS" } else { "plain" };
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            log::error!("the {which} listener: {e}; exiting");
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
                let tls = tls.clone();
                let serve = move |tcp: TcpStream| async move {
                    match tls {
                        None => front.serve_plain(tcp, peer, &shutdown).await,
                        Some(acceptor) => {
                            if let Some(stream) = handshake(&acceptor, tcp, peer, &front).await {
                                front.serve_tls(stream, &shutdown).await
                            }
                        }
                    }
                };
                if move_to_worker {
                    // Registered with this thread's reactor: moved, so the
                    // worker that serves it also polls it.
                    let Ok(tcp) = tcp.into_std() else { continue };
                    pingora_runtime::current_handle().spawn(async move {
                        if let Ok(tcp) = TcpStream::from_std(tcp) {
                            serve(tcp).await
                        }
                    });
                } else {
                    tokio::spawn(serve(tcp));
                }
            }
            Err(e) => {
                log::warn!("accept on the {which} listener: {e}");
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

/// The TLS handshake, within the front door's header timeout. Its state
/// (about 5 KiB) is boxed, so the connection's task does not keep room for it
/// once it is done. A failed handshake is the client's business: logged at
/// debug and counted (`ringress_tls_handshake_failures_total{reason}`).
async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    front: &Front,
) -> Option<TlsClientStream> {
    let done =
        tokio::time::timeout(front.handshake_timeout(), Box::pin(acceptor.accept(tcp))).await;
    match done {
        Ok(Ok(tls)) => Some(TlsClientStream::new(tls, peer)),
        Ok(Err(e)) => {
            log::debug!("TLS handshake with {peer}: {e}");
            front.handshake_failed(false);
            None
        }
        Err(_) => {
            log::debug!("TLS handshake with {peer}: timed out");
            front.handshake_failed(true);
            None
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
