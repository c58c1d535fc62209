//! Routing a client by its database and authenticating it: the pool's user list, or
//! auth_query; then its startup settings checked with the server.

use super::*;

pub(super) async fn login(
    stream: &mut Stream,
    buf: &mut BytesMut,
    router: &Router,
    startup: StartupParams,
    slot: &mut Option<maitred_pool::ClientSlot>,
) -> Result<Option<LoggedIn>, SessionError> {
    negotiate_version(stream, &startup).await?;
    let Some(user) = startup.user().map(str::to_owned) else {
        return reject(
            stream,
            sqlstate::INVALID_AUTHORIZATION,
            "no PostgreSQL user name specified in startup packet",
        )
        .await;
    };
    let database = startup.database().unwrap_or_default().to_owned();
    let (pool, create) = match router.find(&database) {
        Some(Route::Pool(pool)) => (pool, false),
        Some(Route::Create(pool)) => (pool, true),
        None => {
            return reject(
                stream,
                sqlstate::INVALID_CATALOG_NAME,
                &format!("database \"{database}\" does not exist"),
            )
            .await;
        }
    };
    tracing::Span::current().record("pool", pool.name.as_str());
    let Some(admitted) = admission::admit(&pool.client_count, &pool.name, &pool.limits) else {
        let mut o = BytesMut::new();
        crate::limits::too_many_clients(&mut o, &pool.name, pool.limits.max_clients);
        let _ = stream.write_all(&o).await;
        return Ok(None);
    };
    *slot = Some(admitted);
    pool.counters
        .clients_accepted
        .fetch_add(1, Ordering::Relaxed);
    let mut passthrough = None;
    let authenticated = match (&pool.auth_query, pool.credentials(&user)) {
        (Some(aq), None) => {
            match crate::auth_query::login::authenticate(stream, buf, pool.client_auth, aq, &user)
                .await
            {
                Ok(Ok(login)) => {
                    passthrough = Some(login);
                    Ok(())
                }
                Ok(Err(e)) => {
                    pool.counters.login_failures.fetch_add(1, Ordering::Relaxed);
                    // The reason (server address, server error text) is for the operator's
                    // log only; the client, not logged in, learns nothing about the upstream.
                    tracing::warn!(pool = %pool.name, user = %user, error = %e, "auth_query lookup failed");
                    let msg = crate::auth_query::lookup::failed_lookup_message(&user);
                    return reject(stream, sqlstate::CONNECTION_FAILURE, &msg).await;
                }
                Err(e) => Err(e),
            }
        }
        _ => authenticate(stream, buf, &pool, &user).await,
    };
    if let Err(e) = authenticated {
        pool.counters.login_failures.fetch_add(1, Ordering::Relaxed);
        if matches!(e, SessionError::Auth(_)) {
            tracing::info!(pool = %pool.name, user = %user, "client authentication failed");
            let msg = format!("password authentication failed for user \"{user}\"");
            return reject(stream, sqlstate::INVALID_PASSWORD, &msg).await;
        }
        return Err(e);
    }
    let mut guards = Guards::default();
    // A database of a `*` pool without a pool of its own: its pool, created on first use.
    let pool = match pool.databases.as_ref().filter(|_| create) {
        Some(databases) => match databases.enter(&database) {
            Ok((created, guard)) => {
                guards._database = Some(guard);
                created
            }
            Err(e) => {
                tracing::warn!(pool = %pool.name, error = %e, "no pool for a client's database");
                return reject(stream, sqlstate::TOO_MANY_CONNECTIONS, &e.to_string()).await;
            }
        },
        None => pool,
    };
    // An auth_query user is served by its own pool, logged in to the server as that user.
    let pool = match (passthrough, &pool.auth_query) {
        (Some(login), Some(aq)) => {
            let (user_pool, guard) = aq.users.enter(&user, login)?;
            guards._user = Some(guard);
            user_pool
        }
        _ => pool,
    };
    // Clients are shown the settings of a real server connection: open one if none was yet.
    if pool.pool.manager().server_params().is_none() {
        if let Err(e) = pool.pool.checkout().await {
            let mut o = BytesMut::new();
            match server_refusal(&e).filter(|_| create) {
                // A created pool's database: the server's own words ("database \"x\" does
                // not exist", 3D000; no CONNECT privilege, 42501), as straight to it.
                Some(f) => fatal(&mut o, &f.code, &f.message, None),
                None => checkout_error(&mut o, &e, Severity::Fatal),
            }
            let _ = stream.write_all(&o).await;
            return Ok(None);
        }
    }
    let mut o = BytesMut::new();
    out::authentication_ok(&mut o);
    write(stream, &o).await?;
    // As the server: logged in first, then the startup settings are applied (the `options`
    // switches first), and a bad one ends the login after AuthenticationOk.
    let requested = match startup_params::requested(&startup) {
        Ok(r) => r,
        Err(e) => {
            let code = match e {
                OptionsError::NoValue(_) => sqlstate::SYNTAX_ERROR,
                OptionsError::Unsupported(_) => sqlstate::FEATURE_NOT_SUPPORTED,
            };
            return reject(stream, code, &e.to_string()).await;
        }
    };
    let settings = match startup_params::resolve(&pool, &requested).await {
        Ok(Ok(settings)) => settings,
        Ok(Err(refusal)) => {
            tracing::debug!(pool = %pool.name, code = %refusal.code, "a startup setting was refused by the server");
            o.clear();
            refusal.write_fatal(&mut o);
            let _ = stream.write_all(&o).await;
            return Ok(None);
        }
        Err(ResolveError::Checkout(e)) => {
            o.clear();
            checkout_error(&mut o, &e, Severity::Fatal);
            let _ = stream.write_all(&o).await;
            return Ok(None);
        }
        Err(e) => {
            tracing::warn!(pool = %pool.name, error = %e, "could not check a client's startup settings");
            let msg = format!(
                "maitred: pool \"{}\" could not check the startup parameters with the server",
                pool.name
            );
            return reject(stream, sqlstate::CONNECTION_FAILURE, &msg).await;
        }
    };
    Ok(Some((pool, settings, user, guards)))
}

/// The server's ErrorResponse, when opening a server connection failed on one.
fn server_refusal(e: &CheckoutError<BackendError>) -> Option<&ServerErrorFields> {
    match e {
        CheckoutError::Connect {
            source: BackendError::Server(fields),
            ..
        } => Some(fields),
        _ => None,
    }
}

/// Runs the authentication exchange of `auth` for `user`, whose credentials are `creds`
/// (None: unknown user, who fails like a wrong password, after a SCRAM exchange with the
/// same salt at every attempt). Also used by the admin console.
pub(crate) async fn authenticate_user(
    stream: &mut Stream,
    buf: &mut BytesMut,
    auth: ClientAuth,
    user: &str,
    creds: Option<&Credentials>,
    has_users: bool,
) -> Result<(), SessionError> {
    let mut o = BytesMut::new();
    match auth {
        ClientAuth::Trust => {
            // With no user list, any user name may log in; with one, only those users.
            if creds.is_none() && has_users {
                return Err(AuthError::WrongPassword.into());
            }
            Ok(())
        }
        ClientAuth::Md5 => {
            let salt: [u8; 4] = rand::random();
            out::authentication_md5(&mut o, salt);
            write(stream, &o).await?;
            let msg = read_login_message(stream, buf).await?;
            let answer = client_msgs::password_text(&msg)?;
            match creds.and_then(|c| c.md5_hash.as_deref()) {
                Some(hash) if md5::verify(hash, salt, answer) => Ok(()),
                _ => Err(AuthError::WrongPassword.into()),
            }
        }
        ClientAuth::ScramSha256 => {
            out::authentication_sasl(&mut o, &[MECHANISM]);
            write(stream, &o).await?;
            let msg = read_login_message(stream, buf).await?;
            let initial = client_msgs::sasl_initial(&msg)?;
            if initial.mechanism != MECHANISM {
                return Err(AuthError::MalformedScram("unsupported mechanism").into());
            }
            // Unknown users (or users with only an md5 hash) go through the same exchange
            // with keys nobody has, and fail at the same step.
            let known = creds.and_then(|c| c.scram.clone());
            let keys = known.clone().unwrap_or_else(|| unknown_user_keys(user));
            let (server, first) = ScramServer::start(keys, initial.data)?;
            o.clear();
            out::authentication_sasl_continue(&mut o, first.as_bytes());
            write(stream, &o).await?;
            let msg = read_login_message(stream, buf).await?;
            let fin = server.finish(client_msgs::password_payload(&msg))?;
            if known.is_none() {
                return Err(AuthError::WrongPassword.into());
            }
            o.clear();
            out::authentication_sasl_final(&mut o, fin.as_bytes());
            write(stream, &o).await?;
            Ok(())
        }
    }
}

/// Reads one password/SASL message ('p') during login.
pub(crate) async fn read_login_message(
    stream: &mut Stream,
    buf: &mut BytesMut,
) -> Result<BytesMut, SessionError> {
    loop {
        if let Some((t, len)) = frame::peek_header(buf, MAX_LOGIN_MESSAGE)? {
            if t != tag::PASSWORD {
                return Err(CodecError::UnexpectedTag {
                    tag: t as char,
                    phase: "authentication",
                }
                .into());
            }
            if buf.len() >= len {
                return Ok(buf.split_to(len));
            }
        }
        if stream.read_buf(buf).await.map_err(SessionError::ClientIo)? == 0 {
            return Err(SessionError::ClientIo(
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
    }
}

pub(crate) async fn write(stream: &mut Stream, bytes: &[u8]) -> Result<(), SessionError> {
    stream
        .write_all(bytes)
        .await
        .map_err(SessionError::ClientIo)
}

pub(super) fn fatal(o: &mut BytesMut, code: &str, message: &str, hint: Option<&str>) {
    out::error_response(
        o,
        &ErrorFields {
            severity: Severity::Fatal,
            code,
            message,
            detail: None,
            hint,
        },
    );
}

/// Sends a FATAL error and ends the login.
async fn reject(
    stream: &mut Stream,
    code: &str,
    message: &str,
) -> Result<Option<LoggedIn>, SessionError> {
    let mut o = BytesMut::new();
    fatal(&mut o, code, message, None);
    let _ = stream.write_all(&o).await;
    Ok(None)
}

async fn authenticate(
    stream: &mut Stream,
    buf: &mut BytesMut,
    pool: &PgPool,
    user: &str,
) -> Result<(), SessionError> {
    let creds = pool.credentials(user);
    authenticate_user(
        stream,
        buf,
        pool.client_auth,
        user,
        creds.as_deref(),
        pool.has_users(),
    )
    .await
}
