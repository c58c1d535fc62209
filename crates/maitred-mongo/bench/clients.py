"""usage: clients.py URL CLIENTS SECONDS [SERVER_URL_FOR_STATUS]
Each client is its own process with its own MongoClient (like serverless functions);
each loops find_one by _id + insert_one. Prints ops/s, errors, peak server connections."""
import multiprocessing as mp, sys, time, threading
import pymongo

def worker(url, n, secs, q):
    ops = errs = 0
    err_s = ""
    try:
        c = pymongo.MongoClient(url, serverSelectionTimeoutMS=10000)
        coll = c.app.bench
        end = time.monotonic() + secs
        while time.monotonic() < end:
            try:
                coll.find_one({"_id": n % 100})
                coll.insert_one({"w": n})
                ops += 2
            except Exception as e:
                errs += 1; err_s = f"{type(e).__name__}: {str(e)[:150]}"
                time.sleep(0.05)
        c.close()
    except Exception as e:
        errs += 1; err_s = f"{type(e).__name__}: {str(e)[:150]}"
    q.put((ops, errs, err_s))

def main():
    url, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    status_url = sys.argv[4] if len(sys.argv) > 4 else None
    setup = pymongo.MongoClient(url)
    setup.app.bench.drop()
    setup.app.bench.insert_many([{"_id": i} for i in range(100)])
    setup.close()
    peak = [0]; stop = threading.Event()
    def watch():
        if not status_url: return
        c = pymongo.MongoClient(status_url, directConnection=True)
        while not stop.is_set():
            try: peak[0] = max(peak[0], c.admin.command("serverStatus")["connections"]["current"])
            except Exception: pass
            time.sleep(0.1)
        c.close()
    w = threading.Thread(target=watch); w.start()
    q = mp.Queue()
    ps = [mp.Process(target=worker, args=(url, i, secs, q)) for i in range(n)]
    t0 = time.monotonic()
    for p in ps: p.start()
    res = [q.get() for _ in ps]
    for p in ps: p.join()
    el = time.monotonic() - t0
    stop.set(); w.join()
    ops = sum(r[0] for r in res); errs = sum(r[1] for r in res)
    clients_err = sum(1 for r in res if r[1])
    sample = next((r[2] for r in res if r[2]), "")
    print(f"clients={n} ops={ops} ops/s={ops/secs:.0f} errors={errs} clients_with_errors={clients_err} peak_server_conns={peak[0]} (includes the watcher's own) {sample}")

if __name__ == "__main__":
    main()
