#!/usr/bin/env bash
# Records real clients talking to the dev servers and refreshes the seed corpora.
#
#   scripts/dev-servers.sh start /tmp/dev-x
#   fuzz/capture/run.sh /tmp/dev-x        # writes new seeds under fuzz/corpus/<target>/
#
# Each protocol gets a recording relay (capture.py record) in front of its real server;
# psql and pgbench, the mariadb client and mysql-connector (prepared statements), and
# pymongo run through it; capture.py split cuts the conversations into seeds.
set -euo pipefail
dev=${1:?usage: $0 DEV_SERVERS_DIR}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
corpus="$here/../corpus"
# shellcheck disable=SC1091
source "$dev/env.sh"
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
host_port() { python3 -c 'import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]); print(f"{p.hostname}:{p.port}")' "$1"; }
relay() { # NAME URL: starts a recording relay in front of URL's server, on port $port
    port="$(free_port)"
    python3 "$here/capture.py" record "$port" "$(host_port "$2")" "$work/$1" >/dev/null 2>&1 &
    pids+=($!)
    sleep 0.5
}

relay pg "$MAITRED_TEST_PG_URL"
pg_port=$port
pg_url="postgres://app:app_secret@127.0.0.1:$pg_port/app?sslmode=disable"
psql "$pg_url" -X -q -c "select 1" -c "create temp table t(a int, b text)" \
    -c "insert into t values (1, 'x'), (2, null)" -c "select * from t" \
    -c "begin" -c "set local work_mem = '8MB'" -c "select nosuchcolumn" -c "rollback" \
    -c "listen ch" -c "notify ch, 'hi'" -c "prepare s(int) as select \$1" -c "execute s(3)" >/dev/null 2>&1 || true
psql "$pg_url" -X -q -c "select 1 as a \\bind \\g" -c "copy (select generate_series(1,5)) to stdout" >/dev/null 2>&1 || true
pgbench "$pg_url" -i -s 1 -q >/dev/null 2>&1 || true
for mode in simple extended prepared; do
    pgbench "$pg_url" -M "$mode" -S -t 5 -c 1 >/dev/null 2>&1 || true
done

relay mysql "$MAITRED_TEST_MYSQL_URL"
my_port=$port
mariadb --skip-ssl -h 127.0.0.1 -P "$my_port" -u app -papp_secret app -e \
    "select 1; create temporary table t(a int primary key, b varchar(10)); insert into t values (1,'x'),(2,NULL); select * from t; select nosuchcolumn; set session sql_mode='ANSI'; show warnings; begin; commit" \
    >/dev/null 2>&1 || true
python3 - "$my_port" <<'PY' || true
import sys, mysql.connector
c = mysql.connector.connect(host="127.0.0.1", port=int(sys.argv[1]), user="app",
                            password="app_secret", database="app", ssl_disabled=True)
cur = c.cursor(prepared=True)
cur.execute("select ? + 1, ?", (41, "text"))
cur.fetchall()
cur.execute("select 1 from dual where 1 = ?", (2,))
cur.fetchall()
c.ping()
c.cmd_change_user(username="app", password="app_secret", database="app")
c.close()
PY

relay mongo "$MAITRED_TEST_MONGO_URL"
mongo_port=$port
for comp in "" zlib; do
python3 - "$mongo_port" "$comp" <<'PY' || true
import sys, pymongo
kw = {"compressors": sys.argv[2]} if sys.argv[2] else {}
c = pymongo.MongoClient(f"mongodb://app:app_secret@127.0.0.1:{sys.argv[1]}/app?authSource=admin",
                        directConnection=True, **kw)
db = c.app
db.fuzz_capture.drop()
db.fuzz_capture.insert_many([{"_id": i, "pad": "x" * 20} for i in range(30)])
list(db.fuzz_capture.find({"_id": {"$gt": 3}}, batch_size=5))
db.fuzz_capture.update_one({"_id": 1}, {"$set": {"pad": "y"}})
list(db.fuzz_capture.aggregate([{"$group": {"_id": None, "n": {"$sum": 1}}}]))
try:
    db.command("nosuchcommand")
except Exception:
    pass
db.fuzz_capture.drop()
c.close()
PY
done

sleep 0.5
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
python3 "$here/capture.py" split pg "$work/pg" "$corpus"
python3 "$here/capture.py" split mysql "$work/mysql" "$corpus"
python3 "$here/capture.py" split mongo "$work/mongo" "$corpus"
du -sh "$corpus"
