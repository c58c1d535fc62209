//! One client of the load generator, whatever the protocol: connect with the real driver
//! (tokio-postgres, mysql_async, mongodb), run one unit of a workload, disconnect, and name
//! what went wrong in a few words (the error's kind, never the URL or a password).

use std::time::Duration;

use mongodb::bson::{doc, Document};
use mysql_async::prelude::Queryable;
use rand::Rng;
use tokio_postgres::types::Type;

/// The table (or collection) the workloads read and write.
pub const TABLE: &str = "maitred_bench";

/// Rows seeded by `setup`; point selects pick an id in `1..=rows`.
pub const DEFAULT_ROWS: u32 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Postgres,
    Mysql,
    Mongodb,
}

impl Protocol {
    /// The protocol a URL names by its scheme.
    pub fn of_url(url: &str) -> Result<Protocol, String> {
        let scheme = url.split("://").next().unwrap_or_default();
        match scheme {
            "postgres" | "postgresql" => Ok(Protocol::Postgres),
            "mysql" | "mariadb" => Ok(Protocol::Mysql),
            "mongodb" => Ok(Protocol::Mongodb),
            _ => Err(format!(
                "unsupported URL scheme {scheme:?}: use postgres://, mysql:// or mongodb://"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Postgres => "postgres",
            Protocol::Mysql => "mysql",
            Protocol::Mongodb => "mongodb",
        }
    }

    /// The workload `steady` and `storm` run when none is given.
    pub fn default_workload(self) -> Workload {
        match self {
            Protocol::Postgres | Protocol::Mysql => Workload::PointSelect,
            Protocol::Mongodb => Workload::InsertFind,
        }
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// One row by primary key (MongoDB: one document by _id).
    PointSelect,
    /// BEGIN; SELECT by key; UPDATE by key; COMMIT (PostgreSQL and MySQL).
    ReadWrite,
    /// insert_one then find_one of the new document (MongoDB).
    InsertFind,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::PointSelect => "point-select",
            Workload::ReadWrite => "read-write",
            Workload::InsertFind => "insert-find",
        }
    }

    pub fn check(self, protocol: Protocol) -> Result<(), String> {
        match (self, protocol) {
            (Workload::ReadWrite, Protocol::Mongodb)
            | (Workload::InsertFind, Protocol::Postgres)
            | (Workload::InsertFind, Protocol::Mysql) => Err(format!(
                "workload {} is not defined for {}",
                self.name(),
                protocol.name()
            )),
            _ => Ok(()),
        }
    }
}

/// A short, secret-free name for an error, used to count errors by kind.
pub type ErrorKind = String;

/// A point select found nothing: the table has fewer rows than `--rows` says.
const NO_ROW: &str = "no row (fewer rows than --rows: run setup)";

/// One connected client.
pub enum Conn {
    Pg(tokio_postgres::Client),
    My(Box<mysql_async::Conn>),
    Mongo(mongodb::Client),
}

/// Connects and logs in (MongoDB: runs a ping, since the driver connects lazily).
pub async fn connect(url: &str, protocol: Protocol) -> Result<Conn, ErrorKind> {
    match protocol {
        Protocol::Postgres => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(|e| pg_kind(&e))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Conn::Pg(client))
        }
        Protocol::Mysql => {
            let opts = mysql_async::Opts::from_url(url).map_err(|_| "bad mysql URL".to_owned())?;
            // TCP both ways: by default mysql_async moves a loopback connection to the
            // server's Unix socket, which would make "straight" a different transport
            // (maitred hides the socket from its clients, see sql_effects/rewrite.rs).
            let opts = mysql_async::OptsBuilder::from_opts(opts).prefer_socket(false);
            let conn = mysql_async::Conn::new(opts)
                .await
                .map_err(|e| my_kind(&e))?;
            Ok(Conn::My(Box::new(conn)))
        }
        Protocol::Mongodb => {
            let mut opts = mongodb::options::ClientOptions::parse(url)
                .await
                .map_err(|e| mongo_kind(&e))?;
            // One application connection per client, as a serverless function has.
            opts.max_pool_size = Some(1);
            opts.min_pool_size = Some(0);
            opts.server_selection_timeout = Some(Duration::from_secs(10));
            opts.connect_timeout = Some(Duration::from_secs(10));
            opts.app_name = Some("maitred-bench".to_owned());
            let client = mongodb::Client::with_options(opts).map_err(|e| mongo_kind(&e))?;
            client
                .database("admin")
                .run_command(doc! { "ping": 1 })
                .await
                .map_err(|e| mongo_kind(&e))?;
            Ok(Conn::Mongo(client))
        }
    }
}

impl Conn {
    /// One unit of `workload` against a table of `rows` rows.
    pub async fn work(&mut self, workload: Workload, rows: u32) -> Result<(), ErrorKind> {
        let id = rand::thread_rng().gen_range(1..=rows.max(1)) as i32;
        match self {
            Conn::Pg(c) => match pg_work(c, workload, id).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(NO_ROW.to_owned()),
                Err(e) => Err(pg_kind(&e)),
            },
            Conn::My(c) => my_work(c, workload, id).await,
            Conn::Mongo(c) => match mongo_work(c, workload, id).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(NO_ROW.to_owned()),
                Err(e) => Err(mongo_kind(&e)),
            },
        }
    }

    /// True when the connection cannot carry another unit (the caller reconnects).
    pub fn is_broken(&self, last_error: &str) -> bool {
        match self {
            Conn::Pg(c) => c.is_closed(),
            Conn::My(_) => last_error.starts_with("io") || last_error.starts_with("driver"),
            // The driver reconnects by itself.
            Conn::Mongo(_) => false,
        }
    }

    /// Says goodbye the way the driver does when an application closes it.
    pub async fn close(self) {
        match self {
            Conn::Pg(c) => drop(c),
            Conn::My(c) => {
                let _ = c.disconnect().await;
            }
            Conn::Mongo(c) => c.shutdown().await,
        }
    }
}

const PG_SELECT: &str = "SELECT v FROM maitred_bench WHERE id = $1";
const PG_UPDATE: &str = "UPDATE maitred_bench SET n = n + 1 WHERE id = $1";

/// Unnamed statements (`query_typed`: Parse/Bind/Execute/Sync in one round trip), so the
/// same workload runs through PgBouncer 1.18, which has no named statements in
/// transaction mode. `Ok(false)`: the row was not there.
async fn pg_work(
    c: &mut tokio_postgres::Client,
    workload: Workload,
    id: i32,
) -> Result<bool, tokio_postgres::Error> {
    match workload {
        Workload::PointSelect | Workload::InsertFind => {
            let rows = c.query_typed(PG_SELECT, &[(&id, Type::INT4)]).await?;
            Ok(rows.len() == 1)
        }
        Workload::ReadWrite => {
            let tx = c.transaction().await?;
            let rows = tx.query_typed(PG_SELECT, &[(&id, Type::INT4)]).await?;
            tx.query_typed(PG_UPDATE, &[(&id, Type::INT4)]).await?;
            tx.commit().await?;
            Ok(rows.len() == 1)
        }
    }
}

/// Text protocol with the integer inlined (what sysbench's `--db-ps-mode=disable` does).
async fn my_work(c: &mut mysql_async::Conn, workload: Workload, id: i32) -> Result<(), ErrorKind> {
    let select = format!("SELECT v FROM maitred_bench WHERE id = {id}");
    match workload {
        Workload::PointSelect | Workload::InsertFind => {
            let row: Option<String> = c.query_first(select).await.map_err(|e| my_kind(&e))?;
            if row.is_none() {
                return Err(NO_ROW.to_owned());
            }
        }
        Workload::ReadWrite => {
            let run = async {
                c.query_drop("START TRANSACTION").await?;
                let _: Option<String> = c.query_first(select).await?;
                c.query_drop(format!(
                    "UPDATE maitred_bench SET n = n + 1 WHERE id = {id}"
                ))
                .await?;
                c.query_drop("COMMIT").await
            };
            if let Err(e) = run.await {
                let _ = c.query_drop("ROLLBACK").await;
                return Err(my_kind(&e));
            }
        }
    }
    Ok(())
}

/// `Ok(false)`: the document was not there.
async fn mongo_work(
    c: &mongodb::Client,
    workload: Workload,
    id: i32,
) -> mongodb::error::Result<bool> {
    let coll = c.database("app").collection::<Document>(TABLE);
    match workload {
        Workload::PointSelect | Workload::ReadWrite => {
            if coll.find_one(doc! { "_id": id }).await?.is_none() {
                return Ok(false);
            }
        }
        Workload::InsertFind => {
            let inserted = coll
                .insert_one(doc! { "k": id, "v": "maitred-bench" })
                .await?;
            if coll
                .find_one(doc! { "_id": inserted.inserted_id })
                .await?
                .is_none()
            {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Creates and fills the workload table (`rows` rows) unless it is already there.
pub async fn setup(url: &str, rows: u32) -> Result<(), String> {
    let protocol = Protocol::of_url(url)?;
    let conn = connect(url, protocol)
        .await
        .map_err(|k| format!("connect: {k}"))?;
    match conn {
        Conn::Pg(c) => {
            let q = format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (id int PRIMARY KEY, v text NOT NULL, n bigint NOT NULL DEFAULT 0);
                 TRUNCATE {TABLE};
                 INSERT INTO {TABLE} (id, v) SELECT i, md5(i::text) FROM generate_series(1, {rows}) i;"
            );
            c.batch_execute(&q).await.map_err(|e| pg_kind(&e))?;
        }
        Conn::My(mut c) => {
            c.query_drop(format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (id INT PRIMARY KEY, v VARCHAR(64) NOT NULL, n BIGINT NOT NULL DEFAULT 0)"
            ))
            .await
            .map_err(|e| my_kind(&e))?;
            c.query_drop(format!("TRUNCATE {TABLE}"))
                .await
                .map_err(|e| my_kind(&e))?;
            for start in (1..=rows).step_by(1000) {
                let end = (start + 999).min(rows);
                let values: Vec<String> =
                    (start..=end).map(|i| format!("({i}, MD5({i}))")).collect();
                c.query_drop(format!(
                    "INSERT INTO {TABLE} (id, v) VALUES {}",
                    values.join(",")
                ))
                .await
                .map_err(|e| my_kind(&e))?;
            }
            let _ = c.disconnect().await;
        }
        Conn::Mongo(c) => {
            let coll = c.database("app").collection::<Document>(TABLE);
            coll.drop().await.map_err(|e| mongo_kind(&e))?;
            let docs: Vec<Document> = (1..=rows as i32)
                .map(|i| doc! { "_id": i, "v": format!("row {i}") })
                .collect();
            for chunk in docs.chunks(1000) {
                coll.insert_many(chunk.to_vec())
                    .await
                    .map_err(|e| mongo_kind(&e))?;
            }
            c.shutdown().await;
        }
    }
    Ok(())
}

fn pg_kind(e: &tokio_postgres::Error) -> ErrorKind {
    if let Some(db) = e.as_db_error() {
        return format!("postgres {}", db.code().code());
    }
    if e.is_closed() {
        return "closed".to_owned();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return format!("io {:?}", io.kind());
        }
        source = s.source();
    }
    // tokio-postgres's own messages ("error connecting to server", "timeout", ...): the
    // part before any detail.
    e.to_string()
        .split(':')
        .next()
        .unwrap_or("error")
        .to_owned()
}

fn my_kind(e: &mysql_async::Error) -> ErrorKind {
    match e {
        mysql_async::Error::Server(s) => format!("mysql {}", s.code),
        mysql_async::Error::Io(_) => "io".to_owned(),
        mysql_async::Error::Driver(_) => "driver".to_owned(),
        mysql_async::Error::Url(_) => "bad mysql URL".to_owned(),
        mysql_async::Error::Other(_) => "other".to_owned(),
    }
}

fn mongo_kind(e: &mongodb::error::Error) -> ErrorKind {
    use mongodb::error::ErrorKind as K;
    match e.kind.as_ref() {
        K::Command(c) => format!("mongodb {} {}", c.code, c.code_name),
        K::Write(mongodb::error::WriteFailure::WriteError(w)) => {
            format!("mongodb write {}", w.code)
        }
        K::Io(io) => format!("io {:?}", io.kind()),
        other => {
            // The variant's name only: its fields may carry addresses or messages.
            let debug = format!("{other:?}");
            let name: String = debug.chars().take_while(|c| c.is_alphanumeric()).collect();
            format!("mongodb {name}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_from_scheme() {
        assert_eq!(Protocol::of_url("postgres://a@h/d"), Ok(Protocol::Postgres));
        assert_eq!(
            Protocol::of_url("postgresql://a@h/d"),
            Ok(Protocol::Postgres)
        );
        assert_eq!(Protocol::of_url("mysql://a@h/d"), Ok(Protocol::Mysql));
        assert_eq!(Protocol::of_url("mongodb://h/d"), Ok(Protocol::Mongodb));
        assert!(Protocol::of_url("redis://h").is_err());
    }

    #[test]
    fn workloads_per_protocol() {
        assert!(Workload::ReadWrite.check(Protocol::Mongodb).is_err());
        assert!(Workload::InsertFind.check(Protocol::Postgres).is_err());
        assert!(Workload::ReadWrite.check(Protocol::Mysql).is_ok());
        assert!(Workload::PointSelect.check(Protocol::Mongodb).is_ok());
    }
}
