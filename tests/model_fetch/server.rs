//! A small HTTPS server on 127.0.0.1 with a test CA made by rcgen: serves bodies whole, in
//! slow drips, with a true, lying or missing Content-Length, and counts what it sent.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub enum Body {
    Bytes(Vec<u8>),
    Zeros(u64),
}

#[derive(Clone, Copy)]
pub enum Length {
    True,
    Lie(u64),
    Omit,
}

#[derive(Clone)]
pub struct Route {
    pub body: Body,
    pub length: Length,
    /// Write this many bytes, then sleep this long, until done.
    pub drip: Option<(usize, Duration)>,
}

impl Route {
    pub fn bytes(b: Vec<u8>) -> Route {
        Route {
            body: Body::Bytes(b),
            length: Length::True,
            drip: None,
        }
    }
}

pub struct Server {
    pub port: u16,
    pub ca_pem: String,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    /// Body bytes written to sockets, over all requests.
    pub sent: Arc<AtomicU64>,
    pub requests: Arc<AtomicU64>,
}

impl Server {
    pub fn start() -> Server {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "edgelens fetch test CA");
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap();
        let cfg = Arc::new(cfg);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = Server {
            port,
            ca_pem: ca.pem(),
            routes: Arc::default(),
            sent: Arc::default(),
            requests: Arc::default(),
        };
        let (routes, sent, requests) = (
            server.routes.clone(),
            server.sent.clone(),
            server.requests.clone(),
        );
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (cfg, routes, sent) = (cfg.clone(), routes.clone(), sent.clone());
                requests.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let _ = serve(tcp, cfg, &routes, &sent);
                });
            }
        });
        server
    }

    pub fn route(&self, path: &str, r: Route) {
        self.routes.lock().unwrap().insert(path.to_string(), r);
    }

    /// A URL with a SAS-like secret that must never show up in an error.
    pub fn url(&self, path: &str) -> String {
        format!(
            "https://127.0.0.1:{}{path}?sv=2022-11-02&sig=SECRET%2Fsig",
            self.port
        )
    }
}

fn serve(
    tcp: TcpStream,
    cfg: Arc<rustls::ServerConfig>,
    routes: &Mutex<HashMap<String, Route>>,
    sent: &AtomicU64,
) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(cfg).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut req = Vec::new();
    let mut byte = [0u8; 1];
    while !req.ends_with(b"\r\n\r\n") && req.len() < 16 * 1024 {
        tls.read_exact(&mut byte)?;
        req.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&req).to_string();
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or(target);
    let Some(route) = routes.lock().unwrap().get(path).cloned() else {
        tls.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return tls.flush();
    };
    let total = match &route.body {
        Body::Bytes(b) => b.len() as u64,
        Body::Zeros(n) => *n,
    };
    let mut head = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n",
    );
    match route.length {
        Length::True => head.push_str(&format!("Content-Length: {total}\r\n")),
        Length::Lie(n) => head.push_str(&format!("Content-Length: {n}\r\n")),
        Length::Omit => {}
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes())?;
    tls.flush()?;
    let (chunk, pause) = route.drip.unwrap_or((64 * 1024, Duration::ZERO));
    let zeros = vec![0u8; chunk];
    let mut off = 0u64;
    while off < total {
        let n = chunk.min((total - off) as usize);
        let data = match &route.body {
            Body::Bytes(b) => &b[off as usize..off as usize + n],
            Body::Zeros(_) => &zeros[..n],
        };
        tls.write_all(data)?;
        tls.flush()?;
        off += n as u64;
        sent.fetch_add(n as u64, Ordering::SeqCst);
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    tls.conn.send_close_notify();
    tls.flush()
}
