//! The live view in a real browser (Debian's headless chromium through chromedriver, driven
//! by fantoccini), and the HTTP side under hostile input. Every process listens on a free
//! loopback port chosen at run time. Helpers here; tests in `server.rs` and `browser.rs`.

mod browser;
#[path = "../common/mod.rs"]
mod common;
mod server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// An edgelens `run --ui` child process; killed on drop.
pub struct Edgelens {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Edgelens {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `edgelens run --ui 127.0.0.1:0 ...` and reads the bound address from its log.
pub fn edgelens(extra: &[&str]) -> Edgelens {
    let mut cmd = common::bin();
    cmd.current_dir(common::root())
        .args([
            "run",
            "--no-module",
            "--ui",
            "127.0.0.1:0",
            "--metrics-addr",
            "off",
        ])
        .args(["--output-mode", "events", "--name", "cam1"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("edgelens starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(rest) = line.split("url=http://").nth(1) {
                    let addr: String = rest.chars().take_while(|c| *c != '/').collect();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
            if line.contains("ERROR") || line.contains("panicked") {
                eprintln!("edgelens: {line}");
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("edgelens logs the live view address");
    Edgelens {
        child,
        addr: addr.parse().unwrap(),
    }
}

pub fn still_image_source() -> String {
    format!(
        "filesrc location={} ! pngdec ! imagefreeze is-live=true ! video/x-raw,framerate=10/1",
        common::data("vtest-frame.png").display()
    )
}

/// One HTTP/1.1 request on a fresh connection; (status, headers, body).
pub fn http(addr: SocketAddr, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = buf.get(split + 4..).unwrap_or_default().to_vec();
    (status, head, body)
}

pub fn get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Pixels within `tol` of `c` in each channel.
pub fn near(img: &image::RgbImage, c: [u8; 3], tol: i32) -> usize {
    img.pixels()
        .filter(|p| (0..3).all(|i| (p.0[i] as i32 - c[i] as i32).abs() <= tol))
        .count()
}

pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// annotate's colour for class 0 (`person` in ssdlite-person).
pub const PERSON: [u8; 3] = [255, 56, 56];
