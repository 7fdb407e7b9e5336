//! A fake plugin's HTTP side: a small HTTP/1.1 server on a unix socket (or a TCP port) that
//! hands every request to a handler and answers what it says, a thread per connection. It
//! records every request (method, path, headers, body). The handler can make it answer
//! garbage, hang, close a connection without answering, or die (stop listening and remove its
//! socket), which is how the tests script a broken plugin.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request as the server read it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        if self.body.is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: the body is not JSON ({e}): {}",
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// What the server does with a request.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// This status and JSON body.
    Json(u16, serde_json::Value),
    /// These bytes, as they are (no HTTP framing added).
    Raw(Vec<u8>),
    /// Nothing for this long (or until the server stops), then the reply.
    Hang(Duration, Box<Reply>),
    /// Closes the connection without answering.
    Close,
    /// Closes the connection without answering, stops listening and removes the socket: the
    /// plugin process is gone.
    Die,
}

pub(crate) type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

struct Shared {
    handler: Handler,
    requests: Mutex<Vec<Request>>,
    stopped: AtomicBool,
}

/// A running fake plugin server; stopped (and its socket removed) on drop.
pub(crate) struct Server {
    shared: Arc<Shared>,
    socket: Option<PathBuf>,
    tcp: Option<SocketAddr>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on the unix socket `path` (its directory is made).
    pub(crate) fn unix(path: &Path, handler: Handler) -> Server {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).unwrap();
        Self::start(Listener::Unix(listener, path.to_owned()), handler)
    }

    /// Listens on a TCP port of 127.0.0.1 in the calling thread's network namespace.
    pub(crate) fn tcp(handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Self::start(Listener::Tcp(listener), handler)
    }

    fn start(listener: Listener, handler: Handler) -> Server {
        let shared = Arc::new(Shared {
            handler,
            requests: Mutex::default(),
            stopped: AtomicBool::new(false),
        });
        let (socket, tcp) = match &listener {
            Listener::Unix(l, p) => {
                l.set_nonblocking(true).unwrap();
                (Some(p.clone()), None)
            }
            Listener::Tcp(l) => {
                l.set_nonblocking(true).unwrap();
                (None, Some(l.local_addr().unwrap()))
            }
        };
        let s = shared.clone();
        let accept = std::thread::spawn(move || accept_loop(listener, s));
        Server {
            shared,
            socket,
            tcp,
            accept: Some(accept),
        }
    }

    /// The TCP address, for a TCP server.
    pub(crate) fn tcp_addr(&self) -> SocketAddr {
        self.tcp.expect("a TCP server")
    }

    /// Every request so far.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The paths of the requests so far.
    pub(crate) fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.path).collect()
    }

    /// The requests to `path` so far.
    pub(crate) fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Whether the server died (a [`Reply::Die`]).
    pub(crate) fn is_dead(&self) -> bool {
        self.shared.stopped.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        if let Some(p) = &self.socket {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn accept_loop(listener: Listener, shared: Arc<Shared>) {
    loop {
        if shared.stopped.load(Ordering::SeqCst) {
            break;
        }
        let conn: Option<Box<dyn ReadWrite>> = match &listener {
            Listener::Unix(l, _) => l.accept().ok().map(|(s, _)| {
                s.set_nonblocking(false).unwrap();
                Box::new(s) as Box<dyn ReadWrite>
            }),
            Listener::Tcp(l) => l.accept().ok().map(|(s, _)| {
                s.set_nonblocking(false).unwrap();
                Box::new(s) as Box<dyn ReadWrite>
            }),
        };
        match conn {
            Some(c) => {
                let s = shared.clone();
                std::thread::spawn(move || serve(c, &s));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    // Dying: the socket goes with the listener.
    if let Listener::Unix(_, p) = &listener {
        let _ = std::fs::remove_file(p);
    }
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

fn serve(mut conn: Box<dyn ReadWrite>, shared: &Shared) {
    let Some(req) = read_request(&mut *conn) else {
        return;
    };
    shared.requests.lock().unwrap().push(req.clone());
    let mut reply = (shared.handler)(&req);
    loop {
        match reply {
            Reply::Hang(d, then) => {
                let until = Instant::now() + d;
                while Instant::now() < until && !shared.stopped.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                reply = *then;
            }
            Reply::Json(status, body) => {
                let body = body.to_string();
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/vnd.docker.plugins.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(body.as_bytes());
                return;
            }
            Reply::Raw(bytes) => {
                let _ = conn.write_all(&bytes);
                return;
            }
            Reply::Close => return,
            Reply::Die => {
                shared.stopped.store(true, Ordering::SeqCst);
                return;
            }
        }
    }
}

fn read_request(conn: &mut dyn ReadWrite) -> Option<Request> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(end)) = req.parse(&raw) {
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_owned(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let len = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(0);
            let method = req.method.unwrap_or_default().to_owned();
            let path = req.path.unwrap_or_default().to_owned();
            while raw.len() < end + len {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
            }
            return Some(Request {
                method,
                path,
                headers,
                body: raw[end..end + len].to_vec(),
            });
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}
