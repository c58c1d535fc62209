//! One connection from maitred to the MongoDB server: TCP, hello, SCRAM login, and reading
//! whole messages.
//!
//! Spec: <https://github.com/mongodb/specifications/blob/master/source/mongodb-handshake/handshake.md>.

use crate::auth::scram::ScramClient;
use crate::codec::header::decode_frame;
use crate::codec::{op_msg, CodecError, Header, OpCode, DEFAULT_MAX_MESSAGE};
use crate::error::BackendError;
use crate::target::ServerTarget;
use crate::tls::Stream;
use bson::{rawdoc, RawDocument, RawDocumentBuf};
use bytes::BytesMut;
use maitred_frontend::LinkError;
use std::sync::atomic::{AtomicI32, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the server said about itself in hello: maitred advertises it to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub min_wire_version: i32,
    pub max_wire_version: i32,
    pub max_bson_object_size: i32,
    pub max_message_size_bytes: i32,
    pub max_write_batch_size: i32,
    pub logical_session_timeout_minutes: Option<i32>,
}

impl ServerInfo {
    pub fn from_hello(doc: &RawDocument) -> ServerInfo {
        let int = |k: &str, d: i32| -> i32 {
            match doc.get(k) {
                Ok(Some(v)) => v
                    .as_i32()
                    .or_else(|| v.as_i64().map(|x| x as i32))
                    .or_else(|| v.as_f64().map(|x| x as i32))
                    .unwrap_or(d),
                _ => d,
            }
        };
        let lstm = int("logicalSessionTimeoutMinutes", -1);
        ServerInfo {
            min_wire_version: int("minWireVersion", 0),
            max_wire_version: int("maxWireVersion", 6),
            max_bson_object_size: int("maxBsonObjectSize", 16 * 1024 * 1024),
            max_message_size_bytes: int("maxMessageSizeBytes", DEFAULT_MAX_MESSAGE as i32),
            max_write_batch_size: int("maxWriteBatchSize", 100_000),
            logical_session_timeout_minutes: (lstm >= 0).then_some(lstm),
        }
    }
}

static NEXT_REQUEST_ID: AtomicI32 = AtomicI32::new(1);

/// A request id for messages maitred composes itself.
pub fn next_request_id() -> i32 {
    NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed) & 0x3fff_ffff
}

/// A logged-in server connection.
pub struct ServerConn {
    pub stream: Stream,
    pub rbuf: BytesMut,
    pub info: ServerInfo,
    /// The compressor agreed with the server in hello (from the URL's `compressors`).
    pub compressor: Option<crate::codec::compressed::Compressor>,
}

impl std::fmt::Debug for ServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConn")
            .field("peer", &self.stream.tcp().and_then(|t| t.peer_addr().ok()))
            .field("tls", &self.stream.is_tls())
            .finish()
    }
}

impl ServerConn {
    /// Opens a TCP connection (with TLS if the target says so), says hello and logs in if
    /// the target has a user.
    pub async fn connect(target: &ServerTarget) -> Result<ServerConn, BackendError> {
        let stream = match (target.server.connect().await?, &target.tls) {
            (Stream::Plain(tcp), Some(tls)) => {
                tls.connect(tcp).await.map_err(|e| BackendError::Tls {
                    addr: target.server.addr(),
                    reason: e.to_string(),
                })?
            }
            (plain, _) => plain,
        };
        let mut conn = ServerConn {
            stream,
            rbuf: BytesMut::with_capacity(4096),
            info: ServerInfo::from_hello(&rawdoc! {}),
            compressor: None,
        };
        let mut hello = rawdoc! {
            "hello": 1,
            "client": {
                "driver": { "name": "maitred", "version": env!("CARGO_PKG_VERSION") },
                "os": { "type": std::env::consts::OS },
            },
        };
        if !target.compressors.is_empty() {
            let mut a = bson::RawArrayBuf::new();
            for c in &target.compressors {
                a.push(c.name());
            }
            hello.append("compression", a);
        }
        hello.append("$db", "admin");
        let reply = conn.command("hello", &hello).await?;
        conn.info = ServerInfo::from_hello(&reply);
        conn.compressor = reply.get_array("compression").ok().and_then(|a| {
            a.into_iter()
                .filter_map(|v| v.ok().and_then(|v| v.as_str()))
                .find_map(crate::codec::compressed::Compressor::from_name)
                .filter(|c| target.compressors.contains(c))
        });
        if !target.user.is_empty() {
            conn.login(target).await?;
        }
        Ok(conn)
    }

    async fn login(&mut self, target: &ServerTarget) -> Result<(), BackendError> {
        let password = target.password.as_ref().map_or("", |p| p.expose());
        let mut scram = ScramClient::new(target.mechanism, &target.user, password);
        let start = rawdoc! {
            "saslStart": 1,
            "mechanism": target.mechanism.name(),
            "payload": binary(scram.client_first().into_bytes()),
            "options": { "skipEmptyExchange": true },
            "$db": target.auth_source.as_str(),
        };
        let reply = self.command("saslStart", &start).await?;
        let conversation = reply
            .get("conversationId")
            .ok()
            .flatten()
            .map(|v| v.to_raw_bson())
            .unwrap_or(bson::RawBson::Int32(1));
        let server_first = payload(&reply)?;
        // PBKDF2 (10000-15000 rounds, up to the accepted maximum) stays off the reactor.
        let (scram, fin) = tokio::task::spawn_blocking(move || {
            let fin = scram.client_final(&server_first);
            (scram, fin)
        })
        .await
        .map_err(|e| BackendError::from(std::io::Error::other(e)))?;
        let fin = fin?;
        let mut cont = RawDocumentBuf::new();
        cont.append("saslContinue", 1);
        cont.append("conversationId", conversation.clone());
        cont.append("payload", binary(fin.into_bytes()));
        cont.append("$db", target.auth_source.as_str());
        let mut reply = self.command("saslContinue", &cont).await?;
        scram.verify(&payload(&reply)?)?;
        while !reply.get_bool("done").unwrap_or(true) {
            let mut more = RawDocumentBuf::new();
            more.append("saslContinue", 1);
            more.append("conversationId", conversation.clone());
            more.append("payload", binary(Vec::new()));
            more.append("$db", target.auth_source.as_str());
            reply = self.command("saslContinue", &more).await?;
        }
        Ok(())
    }

    /// Sends one command as OP_MSG and returns the reply body; `ok: 0` is an error.
    pub async fn command(
        &mut self,
        name: &'static str,
        body: &RawDocument,
    ) -> Result<RawDocumentBuf, BackendError> {
        let mut out = BytesMut::new();
        op_msg::encode(&mut out, next_request_id(), 0, 0, body.as_bytes());
        self.stream.write_all(&out).await?;
        let msg = self.read_message(DEFAULT_MAX_MESSAGE).await?;
        let reply = reply_body(&msg)?;
        if !is_ok(&reply) {
            let message = reply.get_str("errmsg").unwrap_or("no errmsg").to_owned();
            return Err(BackendError::Command {
                command: name,
                message,
            });
        }
        Ok(reply)
    }

    /// Reads one whole message (header included).
    pub async fn read_message(&mut self, max: usize) -> Result<BytesMut, BackendError> {
        loop {
            if let Some((_, msg)) = decode_frame(&mut self.rbuf, max)? {
                return Ok(msg);
            }
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(LinkError::Closed.into());
            }
        }
    }

    /// Reads one whole reply, decompressed if the server sent OP_COMPRESSED.
    pub async fn read_reply(&mut self, max: usize) -> Result<BytesMut, BackendError> {
        let msg = self.read_message(max).await?;
        if crate::codec::header::i32_at(&msg, 12) == OpCode::Compressed.as_i32() {
            return Ok(crate::codec::compressed::decompress(&msg, max)?);
        }
        Ok(msg)
    }

    /// An idle connection is usable if nothing is buffered and the socket has nothing to
    /// read (no EOF, no unsolicited bytes). Under TLS the probe reads the TCP socket
    /// beneath: a byte there (a close_notify, say) means the connection is discarded anyway.
    pub fn is_idle_and_open(&mut self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        self.stream.is_quiet()
    }
}

/// The body document of a reply (OP_MSG or OP_REPLY), owned.
pub fn reply_body(msg: &[u8]) -> Result<RawDocumentBuf, BackendError> {
    let h = Header::peek(msg, usize::MAX)?.ok_or(CodecError::Malformed("reply"))?;
    let doc = match h.op_code {
        OpCode::Msg => op_msg::parse(msg)?.body,
        OpCode::Reply => {
            let at = crate::codec::HEADER_LEN + 20;
            RawDocument::from_bytes(msg.get(at..).unwrap_or_default())
                .map_err(|_| CodecError::Bson("OP_REPLY"))?
        }
        OpCode::Query | OpCode::Compressed | OpCode::Other(_) => {
            return Err(CodecError::UnsupportedOpCode(h.op_code.as_i32()).into())
        }
    };
    Ok(doc.to_raw_document_buf())
}

/// `ok` is 1 (as a double, int or bool).
pub fn is_ok(doc: &RawDocument) -> bool {
    match doc.get("ok") {
        Ok(Some(v)) => {
            v.as_f64() == Some(1.0)
                || v.as_i32() == Some(1)
                || v.as_i64() == Some(1)
                || v.as_bool() == Some(true)
        }
        _ => false,
    }
}

fn binary(bytes: Vec<u8>) -> bson::RawBson {
    bson::RawBson::Binary(bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes,
    })
}

fn payload(doc: &RawDocument) -> Result<Vec<u8>, BackendError> {
    match doc.get_binary("payload") {
        Ok(b) => Ok(b.bytes.to_vec()),
        Err(_) => Err(BackendError::Command {
            command: "sasl",
            message: "reply without a payload".to_owned(),
        }),
    }
}
