//! A client's login: the handshake response, TLS, authentication against the pool's users,
//! the pool picked by database, and a database of the client's checked with the server.

use super::*;

/// Learns what the server looks like (version, capabilities), opening a connection the
/// first time.
async fn server_info(pool: &MysqlPool) -> Result<Arc<ServerInfo>, BytesMut> {
    if let Some(info) = pool.pool.manager().server_info() {
        return Ok(info);
    }
    match pool.pool.checkout().await {
        Ok(lease) => Ok(Arc::new(lease.info.clone())),
        Err(e) => {
            let mut o = BytesMut::new();
            checkout_error(&mut o, 0, &e);
            Err(o)
        }
    }
}

pub(super) async fn login(
    conn: &mut Option<Stream>,
    buf: &mut BytesMut,
    router: &Router,
    connection_id: u32,
    peer: SocketAddr,
    slot: &mut Option<maitred_pool::ClientSlot>,
) -> Result<Option<ClientSession>, SessionError> {
    let Some(first_pool) = router.pools.first() else {
        return Ok(None);
    };
    let Some(stream) = conn.as_mut() else {
        return Ok(None);
    };
    let info = match server_info(first_pool).await {
        Ok(i) => i,
        Err(o) => {
            let _ = stream.write_all(&o).await;
            return Ok(None);
        }
    };
    let mut caps = cap::SUPPORTED & info.capabilities;
    if router.tls.is_some() {
        caps |= cap::SSL;
    }
    let scramble = auth::new_scramble();
    let collation = if info.collation == 0 {
        DEFAULT_COLLATION
    } else {
        info.collation
    };
    let version = if info.version.is_empty() {
        FALLBACK_VERSION
    } else {
        info.version.as_str()
    };
    let greeting = packets::greeting(
        version,
        connection_id,
        &scramble,
        caps,
        collation,
        auth::NATIVE,
    );
    let mut o = BytesMut::new();
    frame::write_packet(&mut o, 0, &greeting);
    write(stream, &o).await?;

    let (mut seq, mut payload) = read_first_packet(stream, buf).await?;
    if packets::is_ssl_request(&payload) {
        // The TLS handshake follows at once (clients send it without waiting); the real
        // handshake response comes inside.
        let (Some(tls), true) = (&router.tls, buf.is_empty()) else {
            return reject(
                stream,
                2,
                1043,
                "08S01",
                "maitred: bad handshake: TLS is not offered",
            )
            .await;
        };
        let Some(Stream::Plain(tcp)) = conn.take() else {
            return Ok(None);
        };
        *conn = Some(tls.accept(tcp).await.map_err(SessionError::ClientIo)?);
        let Some(s) = conn.as_mut() else {
            return Ok(None);
        };
        (seq, payload) = read_packet(s, buf, 2).await?;
    }
    let Some(stream) = conn.as_mut() else {
        return Ok(None);
    };
    if router.tls.as_ref().is_some_and(|t| t.required) && !stream.is_tls() {
        let msg = "Connections using insecure transport are prohibited: this maitred listener requires TLS (tls_required); connect with SSL";
        return reject(
            stream,
            seq.wrapping_add(1),
            SECURE_TRANSPORT_REQUIRED,
            "HY000",
            msg,
        )
        .await;
    }
    let hello = match packets::parse_client_hello(&payload) {
        Ok(h) => h,
        Err(e) => {
            let mut o = BytesMut::new();
            packets::write_err(
                &mut o,
                seq.wrapping_add(1),
                1043,
                "08S01",
                &format!("maitred: bad handshake: {e}"),
            );
            let _ = stream.write_all(&o).await;
            return Err(e.into());
        }
    };
    let Some(pool) = router.find(hello.database.as_deref()).cloned() else {
        let msg = format!(
            "Unknown database '{}'",
            hello.database.as_deref().unwrap_or("")
        );
        return reject(stream, seq.wrapping_add(1), code::BAD_DB, "42000", &msg).await;
    };
    tracing::Span::current().record("pool", pool.name.as_str());
    let Some(admitted) = admission::admit(&pool.client_count, &pool.name, &pool.limits) else {
        let mut o = BytesMut::new();
        crate::limits::too_many_clients(
            &mut o,
            seq.wrapping_add(1),
            &pool.name,
            pool.limits.max_clients,
        );
        let _ = stream.write_all(&o).await;
        return Ok(None);
    };
    *slot = Some(admitted);
    pool.counters
        .clients_accepted
        .fetch_add(1, Ordering::Relaxed);
    let mut next = seq.wrapping_add(1);
    let client_plugin = hello
        .auth_plugin
        .clone()
        .unwrap_or_else(|| auth::NATIVE.to_vec());
    let password = pool.password(&hello.user);
    let check = |plugin: &[u8], answer: &[u8]| -> Result<(), AuthError> {
        if !pool.check_passwords {
            return if pool.has_users() && password.is_none() {
                Err(AuthError::WrongPassword)
            } else {
                Ok(())
            };
        }
        // Unknown users go through the same check with a password nobody has.
        let (pw, known) = match password.as_deref() {
            Some(p) => (p.as_bytes(), true),
            None => (&b"\x01maitred-unknown-user"[..], false),
        };
        let r = auth::verify(plugin, &scramble, pw, answer);
        if r.is_ok() && !known {
            return Err(AuthError::WrongPassword);
        }
        r
    };
    let result = if client_plugin == auth::NATIVE {
        check(auth::NATIVE, &hello.auth_response)
    } else if client_plugin == auth::CACHING_SHA2 {
        let sha2 = caching_sha2::Sha2Login {
            pool: &pool,
            user: &hello.user,
            password: password.as_deref().map(str::as_bytes),
            scramble: &scramble,
            answer: &hello.auth_response,
        };
        let (r, n) = sha2
            .run(stream, buf, next, |answer| {
                check(auth::CACHING_SHA2, answer)
            })
            .await?;
        next = n;
        r
    } else {
        // Any other plugin: switch the client to mysql_native_password.
        let mut o = BytesMut::new();
        frame::write_packet(&mut o, next, &packets::auth_switch(auth::NATIVE, &scramble));
        write(stream, &o).await?;
        let (s, answer) = read_packet(stream, buf, next.wrapping_add(1)).await?;
        next = s.wrapping_add(1);
        check(auth::NATIVE, &answer)
    };
    if let Err(e) = result {
        pool.counters.login_failures.fetch_add(1, Ordering::Relaxed);
        tracing::info!(pool = %pool.name, user = %hello.user, error = %e, "client authentication failed");
        let using = if hello.auth_response.is_empty() {
            "NO"
        } else {
            "YES"
        };
        let msg = format!(
            "Access denied for user '{}'@'{}' (using password: {using})",
            hello.user,
            peer.ip()
        );
        return reject(stream, next, code::ACCESS_DENIED, "28000", &msg).await;
    }
    if let Some(db) = hello.database.as_deref() {
        if pool.database.as_deref() != Some(db) {
            if let Some(refused) = check_database(&pool, db).await {
                let mut o = BytesMut::new();
                match refused {
                    Refused::Server(e) => {
                        packets::write_err(&mut o, next, e.code, &e.sqlstate, &e.message)
                    }
                    Refused::Checkout(e) => checkout_error(&mut o, next, &e),
                }
                let _ = stream.write_all(&o).await;
                return Ok(None);
            }
        }
    }
    let database = hello.database.clone().or_else(|| pool.database.clone());
    let mut o = BytesMut::new();
    packets::write_ok(
        &mut o,
        next,
        &OkInfo {
            affected_rows: 0,
            last_insert_id: 0,
            status: status::AUTOCOMMIT,
            warnings: 0,
        },
    );
    write(stream, &o).await?;
    let ticket = pool.clients.register(ClientIdentity {
        user: hello.user.clone(),
        database: database.clone().unwrap_or_default(),
        addr: Some(peer),
        tls: stream.is_tls(),
    });
    let handle = router
        .clients
        .register(connection_id, &pool.name, &hello.user);
    Ok(Some(ClientSession {
        ticket,
        pool,
        connection_id,
        capabilities: hello.capabilities & caps,
        collation: hello.collation,
        database,
        handle,
        clients: router.clients.clone(),
    }))
}

/// Why a client's database was refused at login.
enum Refused {
    /// The server's ERR (1049 Unknown database, 1044 access denied...).
    Server(packets::ErrInfo),
    Checkout(maitred_pool::CheckoutError<crate::error::BackendError>),
}

/// As the server does at login: a database the client names must exist and be open to
/// it. Asked of the server (COM_INIT_DB on a pool connection, which keeps it selected:
/// the relay selects each client's database on the connection it leases anyway); the
/// pool's own database needs no asking. `None`: selected.
async fn check_database(pool: &MysqlPool, db: &str) -> Option<Refused> {
    let mut lease = match pool.pool.checkout().await {
        Ok(lease) => lease,
        Err(e) => return Some(Refused::Checkout(e)),
    };
    match lease.init_db(db).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(Refused::Server(e)),
        Err(e) => {
            lease.discard();
            Some(Refused::Server(packets::ErrInfo {
                code: code::UNKNOWN_ERROR,
                sqlstate: "HY000".to_owned(),
                message: format!(
                    "maitred: pool \"{}\" lost its server connection while selecting the database: {e}",
                    pool.name
                ),
            }))
        }
    }
}
