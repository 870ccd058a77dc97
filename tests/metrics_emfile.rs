//! Issue 9 item 11: the `/metrics` accept loop must not spin when accept fails at once and
//! again and again (EMFILE: the process is out of file descriptors), and must serve again
//! once descriptors are free. Its own test binary: it lowers this process's fd limit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `stat` file of the thread named `name`, opened now: once fds run out, nothing opens.
fn thread_stat(name: &str) -> std::fs::File {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        for task in std::fs::read_dir("/proc/self/task")
            .expect("tasks")
            .flatten()
        {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim() == name {
                return std::fs::File::open(task.path().join("stat")).expect("stat");
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no thread named {name}");
}

/// CPU clock ticks (user + system) from a thread's `stat` file.
fn ticks(stat: &mut std::fs::File) -> u64 {
    use std::io::Seek;
    let mut s = String::new();
    stat.rewind().expect("rewind");
    stat.read_to_string(&mut s).expect("read stat");
    // Fields after the ")" that closes the command: state is field 3, utime 14, stime 15.
    let rest = &s[s.rfind(')').expect("comm") + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    f[11] + f[12]
}

/// Opens /dev/null until the process hits its descriptor limit; the files hold the fds.
fn exhaust_fds() -> Vec<std::fs::File> {
    let mut held = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        held.push(f);
        assert!(held.len() < 100_000, "fd limit not lowered");
    }
    held
}

#[test]
fn metrics_accept_loop_backs_off_on_emfile_and_recovers() {
    // A low soft limit, so exhausting it is quick.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = lim.rlim_cur.min(512);
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);

    let addr = edgelens::metrics::serve(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(|| "edgelens_up 1\n".to_string()),
    )
    .expect("bind");
    let mut stat = thread_stat("metrics");
    let mut held = exhaust_fds();
    // The client takes the one fd freed here; the server then has none to accept it with,
    // and the connection waits in the backlog, so accept fails again and again.
    held.pop();
    let mut client = TcpStream::connect(addr).expect("connect");
    client
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = ticks(&mut stat);
    std::thread::sleep(Duration::from_secs(3));
    let spent = ticks(&mut stat) - before;
    // A spinning loop burns a core (100 ticks/s, ~20/s even on a crowded box); backing off
    // makes a handful of accept calls in 3 s.
    assert!(
        spent < 10,
        "metrics thread used {spent} ticks in 3 s while accept failed: it spins"
    );

    drop(held);
    client
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    let mut reply = String::new();
    client
        .read_to_string(&mut reply)
        .expect("reply after fds freed");
    assert!(reply.starts_with("HTTP/1.1 200"), "got: {reply}");
    assert!(reply.contains("edgelens_up 1"), "got: {reply}");
    assert!(started.elapsed() < Duration::from_secs(15));
}
