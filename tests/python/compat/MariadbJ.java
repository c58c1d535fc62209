// MariaDB Connector/J (Debian libmariadb-java): the compatibility matrix's MySQL checks.
// Server-side prepared statements (useServerPrepStmts), Statement.cancel() (a KILL QUERY
// from a connection of its own), LOAD DATA LOCAL INFILE (allowLocalInfile).
import java.io.*;
import java.net.URI;
import java.nio.file.*;
import java.sql.*;
import java.util.*;
import java.util.concurrent.*;

public class MariadbJ {
    interface Check { String run() throws Exception; }

    /** The check ran, and the answer differs from what the client was told. */
    static class Differs extends Exception { Differs(String m) { super(m); } }

    static String TAG = System.getenv().getOrDefault("TAG", "compat");
    static String T = "compat_" + TAG;
    static String JDBC;
    static String LARGE_SQL = "WITH d AS (SELECT 0 n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 "
        + "UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 "
        + "UNION ALL SELECT 9) SELECT a.n + 10 * b.n + 100 * c.n + 1000 * e.n + 10000 * f.n AS n, "
        + "REPEAT('x', 20) FROM d a, d b, d c, d e, d f WHERE f.n < 5";

    static String esc(String s) { return s.replace("\\", "\\\\").replace("\"", "\\\""); }

    static boolean run(String name, Check c) {
        long t0 = System.nanoTime();
        boolean ok = true;
        String detail;
        try { detail = c.run(); } catch (Throwable e) { ok = false; detail = e.getClass().getSimpleName() + ": " + e.getMessage(); }
        detail = detail + " (" + (System.nanoTime() - t0) / 1000000 + " ms)";
        if (detail.length() > 400) detail = detail.substring(0, 400);
        System.out.println("{\"check\": \"" + name + "\", \"ok\": " + ok + ", \"detail\": \"" + esc(detail) + "\"}");
        System.out.flush();
        return ok;
    }

    // Daemon threads: a check that fails half-way never keeps the JVM alive.
    static ThreadFactory DAEMON = r -> { Thread t = new Thread(r); t.setDaemon(true); return t; };

    static void expect(boolean cond, String what) { if (!cond) throw new AssertionError(what); }

    static Connection open() throws SQLException { return DriverManager.getConnection(JDBC); }

    static long one(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(sql)) { r.next(); return r.getLong(1); }
    }

    static void exec(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement()) { s.execute(sql); }
    }

    public static void main(String[] args) throws Exception {
        URI u = new URI(System.getenv("URL"));
        String[] ui = u.getUserInfo().split(":", 2);
        JDBC = "jdbc:mariadb://" + u.getHost() + ":" + u.getPort() + u.getPath() + "?user=" + ui[0]
            + "&password=" + ui[1] + "&connectTimeout=10000&useServerPrepStmts=true&allowLocalInfile=true";
        Connection[] conn = new Connection[1];
        if (!run("connect", () -> {
            conn[0] = open();
            expect(one(conn[0], "SELECT 1") == 1, "SELECT 1");
            exec(conn[0], "DROP TABLE IF EXISTS " + T);
            exec(conn[0], "CREATE TABLE " + T + " (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB");
            return "server " + conn[0].getMetaData().getDatabaseProductVersion();
        })) return;
        Connection c = conn[0];

        run("pool", () -> {
            ExecutorService ex = Executors.newFixedThreadPool(3, DAEMON);
            BlockingQueue<Connection> pool = new LinkedBlockingQueue<>();
            for (int i = 0; i < 3; i++) pool.add(open());
            List<Future<Long>> fs = new ArrayList<>();
            for (int k = 0; k < 9; k++) {
                final int kk = k;
                fs.add(ex.submit(() -> {
                    Connection pc = pool.take();
                    try (PreparedStatement ps = pc.prepareStatement("SELECT SLEEP(0.1), ? * 2")) {
                        ps.setInt(1, kk);
                        try (ResultSet r = ps.executeQuery()) { r.next(); return r.getLong(2); }
                    } finally { pool.add(pc); }
                }));
            }
            for (int k = 0; k < 9; k++) expect(fs.get(k).get(20, TimeUnit.SECONDS) == k * 2, "pool result " + k);
            ex.shutdown();
            for (Connection pc : pool) pc.close();
            return "9 tasks over 3 connections";
        });

        run("prepared", () -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT ? + ?")) {
                for (int i = 0; i < 8; i++) {
                    ps.setInt(1, i); ps.setInt(2, 1);
                    try (ResultSet r = ps.executeQuery()) { r.next(); expect(r.getInt(1) == i + 1, "prepared"); }
                }
            }
            return "8 executions of a server-side prepared statement";
        });

        run("simple", () -> {
            expect(one(c, "SELECT 7") == 7, "plain");
            return "COM_QUERY";
        });

        run("transaction", () -> {
            c.setAutoCommit(false);
            exec(c, "INSERT INTO " + T + " VALUES (1, 'a')");
            try { exec(c, "INSERT INTO " + T + " VALUES (1, 'dup')"); throw new AssertionError("duplicate key did not fail"); }
            catch (SQLException e) { expect(e.getErrorCode() == 1062, "duplicate key gave " + e.getErrorCode()); }
            c.rollback();
            c.setAutoCommit(true);
            long n = one(c, "SELECT COUNT(*) FROM " + T);
            expect(n == 0, n + " rows after rollback");
            return "rolled back, usable";
        });

        run("cancel", () -> {
            try (Connection cc = open(); Statement s = cc.createStatement()) {
                long t0 = System.nanoTime();
                ScheduledExecutorService ex = Executors.newSingleThreadScheduledExecutor(DAEMON);
                ex.schedule(() -> { try { s.cancel(); } catch (SQLException e) { } }, 500, TimeUnit.MILLISECONDS);
                try (ResultSet r = s.executeQuery("SELECT SLEEP(10)")) {
                    r.next();
                    expect(r.getInt(1) == 1, "SLEEP returned " + r.getInt(1));
                } catch (SQLException e) {
                    expect(e.getErrorCode() == 1317, "SLEEP ended with " + e.getErrorCode() + " " + e.getMessage());
                }
                ex.shutdown();
                double took = (System.nanoTime() - t0) / 1e9;
                expect(took < 5, "interrupted after " + took + "s");
                expect(one(cc, "SELECT 3") == 3, "usable after cancel");
                return String.format("Statement.cancel() after %.1fs", took);
            }
        });

        run("thread_id", () -> {
            long told = c.unwrap(org.mariadb.jdbc.MariaDbConnection.class).getServerThreadId();
            long server = one(c, "SELECT CONNECTION_ID()");
            if (told != server) throw new Differs("handshake said " + told + ", CONNECTION_ID() = " + server);
            return "equal";
        });

        run("large", () -> {
            int n = 0;
            try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(LARGE_SQL)) { while (r.next()) n++; }
            expect(n == 50000, n + " rows");
            return "50000 rows";
        });

        run("load_data", () -> {
            Path f = Files.createTempFile("compat", ".tsv");
            StringBuilder sb = new StringBuilder();
            for (int i = 10; i < 1010; i++) sb.append(i).append('\t').append('v').append(i).append('\n');
            Files.writeString(f, sb.toString());
            try { exec(c, "LOAD DATA LOCAL INFILE '" + f + "' INTO TABLE " + T + " (id, v)"); }
            finally { Files.deleteIfExists(f); }
            long n = one(c, "SELECT COUNT(*) FROM " + T + " WHERE id >= 10");
            expect(n == 1000, n + " rows loaded");
            return "1000 rows";
        });

        exec(c, "DROP TABLE IF EXISTS " + T);
        c.close();
        System.exit(0);
    }
}
