// pgjdbc (Debian libpostgresql-jdbc-java): the compatibility matrix's PostgreSQL checks.
// Run: java -cp /usr/share/java/postgresql.jar PgJdbc.java  (URL and TAG in the environment)
import java.io.*;
import java.net.URI;
import java.sql.*;
import java.util.*;
import java.util.concurrent.*;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.copy.CopyManager;

public class PgJdbc {
    interface Check { String run() throws Exception; }

    /** The check ran, and the answer differs from what the client was told. */
    static class Differs extends Exception { Differs(String m) { super(m); } }

    static String TAG = System.getenv().getOrDefault("TAG", "compat");
    static String T = "compat_" + TAG;
    static String JDBC;
    static Properties PROPS = new Properties();

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

    static Connection open() throws SQLException { return DriverManager.getConnection(JDBC, PROPS); }

    static long one(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(sql)) { r.next(); return r.getLong(1); }
    }

    public static void main(String[] args) throws Exception {
        URI u = new URI(System.getenv("URL"));
        String[] ui = u.getUserInfo().split(":", 2);
        JDBC = "jdbc:postgresql://" + u.getHost() + ":" + u.getPort() + u.getPath();
        PROPS.setProperty("user", ui[0]);
        PROPS.setProperty("password", ui[1]);
        PROPS.setProperty("connectTimeout", "10");
        PROPS.setProperty("prepareThreshold", "1"); // named server-side statements from the first use
        Connection[] conn = new Connection[1];
        if (!run("connect", () -> {
            conn[0] = open();
            expect(one(conn[0], "SELECT 1") == 1, "SELECT 1");
            try (Statement s = conn[0].createStatement()) {
                s.execute("DROP TABLE IF EXISTS " + T);
                s.execute("CREATE TABLE " + T + " (id int PRIMARY KEY, v text)");
            }
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
                    try (PreparedStatement ps = pc.prepareStatement("SELECT pg_sleep(0.1), ?::int * 2")) {
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
            try (PreparedStatement ps = c.prepareStatement("SELECT ?::int + ?::int")) {
                for (int i = 0; i < 8; i++) {
                    ps.setInt(1, i); ps.setInt(2, 1);
                    try (ResultSet r = ps.executeQuery()) { r.next(); expect(r.getInt(1) == i + 1, "prepared"); }
                }
            }
            return "8 executions of a named server-side statement";
        });

        run("simple", () -> {
            try (Statement s = c.createStatement()) {
                expect(s.execute("SELECT 1; SELECT 2"), "first result");
                expect(s.getMoreResults(), "second result");
            }
            return "two statements in one execute";
        });

        run("transaction", () -> {
            c.setAutoCommit(false);
            try (Statement s = c.createStatement()) {
                s.execute("INSERT INTO " + T + " VALUES (1, 'a')");
                try { s.execute("SELECT 1/0"); throw new AssertionError("1/0 did not fail"); }
                catch (SQLException e) { expect("22012".equals(e.getSQLState()), "1/0 gave " + e.getSQLState()); }
            }
            c.rollback();
            c.setAutoCommit(true);
            long n = one(c, "SELECT count(*) FROM " + T);
            expect(n == 0, n + " rows after rollback");
            return "rolled back, usable";
        });

        run("notify", () -> {
            try (Connection l = open()) {
                try (Statement s = l.createStatement()) { s.execute("LISTEN ch_" + TAG); }
                try (Statement s = c.createStatement()) { s.execute("NOTIFY ch_" + TAG + ", 'hello'"); }
                PGConnection pl = l.unwrap(PGConnection.class);
                PGNotification[] ns = pl.getNotifications(5000);
                expect(ns != null && ns.length == 1 && ns[0].getParameter().equals("hello"), "no notification within 5s");
                // Its own notification carries the pid it was told (how applications skip their own).
                try (Statement s = l.createStatement()) { s.execute("NOTIFY ch_" + TAG + ", 'own'"); }
                PGNotification[] own = pl.getNotifications(5000);
                expect(own != null && own.length == 1 && own[0].getParameter().equals("own"), "no own notification within 5s");
                expect(own[0].getPID() == pl.getBackendPID(), "own notification from pid " + own[0].getPID() + ", told pid " + pl.getBackendPID());
            }
            return "one notification; its own with its pid";
        });

        run("cancel", () -> {
            try (Connection cc = open(); Statement s = cc.createStatement()) {
                long t0 = System.nanoTime();
                ScheduledExecutorService ex = Executors.newSingleThreadScheduledExecutor(DAEMON);
                ex.schedule(() -> { try { s.cancel(); } catch (SQLException e) { } }, 500, TimeUnit.MILLISECONDS);
                try { s.execute("SELECT pg_sleep(10)"); throw new AssertionError("pg_sleep(10) was not cancelled"); }
                catch (SQLException e) { expect("57014".equals(e.getSQLState()), "pg_sleep ended with " + e.getSQLState()); }
                ex.shutdown();
                double took = (System.nanoTime() - t0) / 1e9;
                expect(took < 5, "cancelled after " + took + "s");
                expect(one(cc, "SELECT 3") == 3, "usable after cancel");
                return String.format("cancelled after %.1fs", took);
            }
        });

        run("pid", () -> {
            int told = c.unwrap(PGConnection.class).getBackendPID();
            long server = one(c, "SELECT pg_backend_pid()");
            if (told != server) throw new Differs("client was told " + told + ", pg_backend_pid() = " + server);
            return "equal";
        });

        run("large", () -> {
            int n = 0;
            try (Statement s = c.createStatement();
                 ResultSet r = s.executeQuery("SELECT g, repeat('x', 20) FROM generate_series(1, 50000) g")) {
                while (r.next()) n++;
            }
            expect(n == 50000, n + " rows");
            return "50000 rows";
        });

        run("copy", () -> {
            CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
            StringBuilder sb = new StringBuilder();
            for (int i = 10; i < 1010; i++) sb.append(i).append('\t').append('v').append(i).append('\n');
            long in = cm.copyIn("COPY " + T + " (id, v) FROM STDIN", new StringReader(sb.toString()));
            StringWriter out = new StringWriter();
            cm.copyOut("COPY (SELECT * FROM " + T + " WHERE id >= 10) TO STDOUT", out);
            long lines = out.toString().chars().filter(ch -> ch == '\n').count();
            expect(in == 1000 && lines == 1000, "copied in " + in + ", out " + lines);
            return "1000 rows in and out";
        });

        try (Statement s = c.createStatement()) { s.execute("DROP TABLE IF EXISTS " + T); }
        c.close();
        System.exit(0);
    }
}
