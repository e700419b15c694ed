//! A tiny HTTP/1.1 server on 127.0.0.1 for tests: it answers a fixed set of routes and stops
//! with the test process. Only loopback, only what the tests send.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
};

pub struct Server {
    pub port: u16,
    /// Request lines and bodies seen, for assertions.
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Routes: `/hello` (200, "hello world", header `X-Test: yes`), `/status/N` (status N, body
    /// "status N"), `/bytes/N` (N bytes of 'a'), `/redirect?to=URL` (302 to URL), `/echo`
    /// (200, the request body), `/slow` (waits 2 s, then 200 "slow"), `/testdata/REL` (a file
    /// of testdata/).
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = handle(stream, &log);
                });
            }
        });
        Server { port, seen }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
}

fn handle(stream: TcpStream, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body)?;
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    log.lock().unwrap().push(format!(
        "{} {}",
        request_line.trim(),
        String::from_utf8_lossy(&body)
    ));

    let (status, headers, payload): (u16, Vec<(String, String)>, Vec<u8>) = if target == "/hello" {
        (
            200,
            vec![("X-Test".into(), "yes".into())],
            b"hello world".to_vec(),
        )
    } else if let Some(code) = target.strip_prefix("/status/") {
        let code: u16 = code.parse().unwrap_or(500);
        (code, vec![], format!("status {code}").into_bytes())
    } else if let Some(n) = target.strip_prefix("/bytes/") {
        (200, vec![], vec![b'a'; n.parse().unwrap_or(0)])
    } else if let Some(to) = target.strip_prefix("/redirect?to=") {
        (302, vec![("Location".into(), to.to_string())], Vec::new())
    } else if let Some(rel) = target.strip_prefix("/testdata/") {
        match std::fs::read(super::testdata(rel)) {
            Ok(bytes) => (200, vec![], bytes),
            Err(_) => (404, vec![], b"no such file".to_vec()),
        }
    } else if target == "/echo" {
        (200, vec![], body)
    } else if target == "/slow" {
        std::thread::sleep(std::time::Duration::from_secs(2));
        (200, vec![], b"slow".to_vec())
    } else {
        (404, vec![], b"not found".to_vec())
    };
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        payload.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(&payload)?;
    out.flush()
}
