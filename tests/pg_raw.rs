//! Raw PostgreSQL protocol sessions for the end-to-end tests that look at what a client
//! library hides: ParameterStatus, BackendKeyData, NotificationResponse, FATAL errors at
//! login. (tokio-postgres always sends its own client_encoding and does not show the pid.)

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use maitred_testkit as kit;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

/// The fields of an ErrorResponse that a client reads (severity, SQLSTATE, message, detail,
/// hint), by field type.
pub type ErrorFields = BTreeMap<char, String>;

/// A logged-in raw connection and the ParameterStatus values of its greeting.
pub struct Session {
    pub stream: TcpStream,
    /// ParameterStatus values, as last reported.
    pub status: BTreeMap<String, String>,
    /// BackendKeyData: the process id and secret key the client was told.
    pub key: (i32, i32),
    /// NotificationResponses received so far: (process id, channel, payload).
    pub notifications: Vec<(i32, String, String)>,
}

pub fn read_message(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).expect("message header");
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).expect("message body");
    (head[0], body)
}

pub fn send(s: &mut TcpStream, tag: u8, body: &[u8]) {
    let mut msg = vec![tag];
    msg.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    msg.extend_from_slice(body);
    s.write_all(&msg).expect("send");
}

pub fn cstrings(body: &[u8]) -> Vec<String> {
    body.split(|b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

pub fn error_fields(body: &[u8]) -> ErrorFields {
    cstrings(body)
        .into_iter()
        .filter_map(|f| {
            let mut chars = f.chars();
            let t = chars.next()?;
            "VCMDH".contains(t).then(|| (t, chars.as_str().to_owned()))
        })
        .collect()
}

/// Logs in to `addr` (straight or through maitred) as the test URL's user, sending `params`
/// after user and database. `Err`: the ErrorResponse that ended the login.
pub fn login(
    addr: SocketAddr,
    url: &kit::PgUrl,
    params: &[(&str, &str)],
) -> Result<Session, ErrorFields> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let user = url.user.clone().expect("user in MAITRED_TEST_PG_URL");
    let password = url.password.clone().unwrap_or_default();
    let mut body = 196_608u32.to_be_bytes().to_vec();
    let database = if url.database.is_empty() {
        user.clone()
    } else {
        url.database.clone()
    };
    let mut all = vec![("user", user.as_str()), ("database", database.as_str())];
    all.extend_from_slice(params);
    for (k, v) in all {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    s.write_all(&msg).expect("startup");
    let mut scram: Option<ScramSha256> = None;
    let mut status = BTreeMap::new();
    let mut key = (0, 0);
    loop {
        let (tag, body) = read_message(&mut s);
        match tag {
            b'R' => {
                let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                match code {
                    0 => {}
                    3 => {
                        let mut pw = password.as_bytes().to_vec();
                        pw.push(0);
                        send(&mut s, b'p', &pw);
                    }
                    10 => {
                        let sc =
                            ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                        let first = sc.message().to_vec();
                        let mut b = b"SCRAM-SHA-256\0".to_vec();
                        b.extend_from_slice(&(first.len() as u32).to_be_bytes());
                        b.extend_from_slice(&first);
                        send(&mut s, b'p', &b);
                        scram = Some(sc);
                    }
                    11 => {
                        let sc = scram.as_mut().expect("SASL continue without SASL");
                        sc.update(&body[4..]).expect("server-first");
                        let answer = sc.message().to_vec();
                        send(&mut s, b'p', &answer);
                    }
                    12 => {
                        let sc = scram.as_mut().expect("SASL final without SASL");
                        sc.finish(&body[4..]).expect("server signature");
                    }
                    other => panic!("authentication request {other} not handled"),
                }
            }
            b'S' => {
                let parts = cstrings(&body);
                status.insert(parts[0].clone(), parts[1].clone());
            }
            b'K' => {
                let pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                key = (
                    pid,
                    i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                );
            }
            b'E' => return Err(error_fields(&body)),
            b'Z' => {
                return Ok(Session {
                    stream: s,
                    status,
                    key,
                    notifications: Vec::new(),
                })
            }
            _ => {}
        }
    }
}

impl Session {
    /// The first column of each row of a simple query, or its error.
    pub fn query(&mut self, sql: &str) -> Result<Vec<String>, ErrorFields> {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        send(&mut self.stream, b'Q', &body);
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (tag, body) = read_message(&mut self.stream);
            match tag {
                b'D' => {
                    let len = i32::from_be_bytes([body[2], body[3], body[4], body[5]]);
                    let value = usize::try_from(len)
                        .map(|n| String::from_utf8_lossy(&body[6..6 + n]).into_owned())
                        .unwrap_or_default();
                    rows.push(value);
                }
                b'S' => {
                    let parts = cstrings(&body);
                    self.status.insert(parts[0].clone(), parts[1].clone());
                }
                b'A' => self.notifications.push(notification(&body)),
                b'E' => error = Some(error_fields(&body)),
                b'Z' => return error.map_or(Ok(rows), Err),
                _ => {}
            }
        }
    }
}

/// A NotificationResponse's (process id, channel, payload).
pub fn notification(body: &[u8]) -> (i32, String, String) {
    let pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let parts = cstrings(&body[4..]);
    (pid, parts[0].clone(), parts[1].clone())
}

impl Session {
    /// Waits up to `wait` for the next NotificationResponse (or returns one already read).
    pub fn next_notification(&mut self, wait: Duration) -> Option<(i32, String, String)> {
        if !self.notifications.is_empty() {
            return Some(self.notifications.remove(0));
        }
        self.stream.set_read_timeout(Some(wait)).expect("timeout");
        let mut head = [0u8; 1];
        let got = self.stream.peek(&mut head).map(|n| n > 0).unwrap_or(false);
        self.stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        if !got {
            return None;
        }
        match read_message(&mut self.stream) {
            (b'A', body) => Some(notification(&body)),
            (tag, _) => panic!("expected a notification, got message {:?}", tag as char),
        }
    }

    /// Sends a CancelRequest for this session to `addr` on a new connection.
    pub fn cancel_at(&self, addr: SocketAddr) {
        send_cancel(addr, self.key);
    }
}

/// Sends a CancelRequest with `key` (process id, secret) to `addr`, and waits until the
/// other side closes the connection.
pub fn send_cancel(addr: SocketAddr, key: (i32, i32)) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    let mut msg = 16u32.to_be_bytes().to_vec();
    msg.extend_from_slice(&80_877_102u32.to_be_bytes());
    msg.extend_from_slice(&key.0.to_be_bytes());
    msg.extend_from_slice(&key.1.to_be_bytes());
    s.write_all(&msg).expect("cancel request");
    let mut sink = [0u8; 16];
    let _ = s.read(&mut sink);
}
