#!/usr/bin/python3
"""kubesu benchmarks against the test bed (issue 8). Run through bench/run.sh.

Every measured process is started by this script and reaped with wait4(2),
whose rusage covers the process and every descendant it reaped: CPU is
user+sys of the whole tree, peak memory the largest max RSS of any process in
it. Comparisons alternate their variants iteration by iteration, after a
warm-up that is not counted.

Sections (all by default, or pick with --only):
  start    kubesu from root, kubesu through sudo, the kubectl script, the curl floor
  concurrent  N concurrent kubesu runs for the same user (from root and through sudo)
  gc       kubesu gc on N expired leases vs kubectl delete sa -A -l ...
  idle     the supervising kubesu parent while the command sleeps: RSS, wakeups
  trips    sequential round trips, seen by a recording TLS proxy in front of the API server
"""

import argparse
import base64
import datetime
import http.client
import json
import os
import platform
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BED = os.environ.get("KUBESU_TESTBED_DIR", "/var/tmp/kubesu-testbed")
PKI = os.path.join(BED, "pki")
ADMIN_KUBECONFIG = os.path.join(BED, "admin.kubeconfig")
SERVER = os.environ.get("KUBESU_TESTBED_SERVER", "https://127.0.0.1:16443")
KUBESU = "/usr/sbin/kubesu"
# Root runs use a private copy of the build installed at start: the bed is
# shared, and other sessions' test suites install their own /usr/sbin/kubesu.
# Runs through sudo must use /usr/sbin/kubesu (sudoers names it): each such
# sample checks the file is still the one installed, and is dropped if not.
PRIVATE_DIR = "/run/kubesu-bench"
PRIVATE_KUBESU = os.path.join(PRIVATE_DIR, "kubesu")
INSTALLED = {}


def installed_identity():
    st = os.stat(KUBESU)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def still_ours():
    return installed_identity() == INSTALLED.get("id")


def sha256(path):
    return subprocess.run(["sha256sum", path], capture_output=True, text=True, check=True).stdout.split()[0]


def take_private_copy(build):
    """The build under test, copied for root runs; /usr/sbin/kubesu made
    (again) the same build if someone replaced it since run.sh installed it."""
    os.makedirs(PRIVATE_DIR, mode=0o700, exist_ok=True)
    os.chmod(PRIVATE_DIR, 0o700)
    shutil.copy2(build, PRIVATE_KUBESU + ".new")
    os.replace(PRIVATE_KUBESU + ".new", PRIVATE_KUBESU)
    want = sha256(PRIVATE_KUBESU)
    if sha256(KUBESU) != want:
        log(f"{KUBESU} is not {build}: installing it again")
        subprocess.run(["bash", os.path.join(REPO, "tests/testbed/install-kubesu.sh"), PRIVATE_KUBESU], check=True)
    INSTALLED["id"] = installed_identity()
    if sha256(KUBESU) != want:
        raise RuntimeError(f"{KUBESU} keeps changing (another session installing?); rerun later")
    return want
CALLER = "kubesu-svc"
USER = "alice"
NAMESPACE = "kubesu-alice"  # examples/config.toml: template kubesu-{user}
CLUSTER_ROLE = "kubesu-spark"
GC_NAMESPACE = "kubesu-bench-gc"
BENCH_LABEL = "kubesu.io/bench"
# /usr/local/bin: the test bed's kubectl, where a manual install puts it.
CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


# --- the API, for setup and cleanup (never timed) --------------------------


class Api:
    """A keep-alive HTTPS client with the admin's client certificate."""

    def __init__(self, cert="admin"):
        self.ctx = ssl.create_default_context(cafile=os.path.join(PKI, "ca.crt"))
        self.ctx.load_cert_chain(os.path.join(PKI, cert + ".crt"), os.path.join(PKI, cert + ".key"))
        u = SERVER.removeprefix("https://")
        self.host, self.port = u.split(":")[0], int(u.split(":")[1])
        self.conn = None

    def request(self, method, path, body=None, ok=(200, 201, 202, 404, 409)):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)
                data = json.dumps(body).encode() if body is not None else None
                headers = {"Content-Type": "application/json", "Accept": "application/json"}
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                payload = r.read()
                if r.status not in ok:
                    raise RuntimeError(f"{method} {path}: {r.status} {payload[:300]!r}")
                return r.status, (json.loads(payload) if payload else None)
            except (http.client.HTTPException, OSError):
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError


def parallel(fn, items, threads=8):
    """Call fn(api, item) for every item on `threads` keep-alive connections."""
    items = list(items)
    errors = []

    def worker(chunk):
        api = Api()
        for item in chunk:
            try:
                fn(api, item)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

    ts = [threading.Thread(target=worker, args=(items[i::threads],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


# --- measuring one process tree ---------------------------------------------


class Sample:
    def __init__(self, wall, cpu, maxrss_kib, status, out, err):
        self.wall, self.cpu, self.maxrss_kib = wall, cpu, maxrss_kib
        self.status, self.out, self.err = status, out, err


def measure(argv, user=None, env=None, stdin=None):
    """Run argv to completion; wall time, CPU of the tree, peak RSS."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    kwargs = {}
    if user is not None:
        pw = pwd.getpwnam(user)
        kwargs = dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=os.getgrouplist(user, pw.pw_gid))
    # A process forked from Python starts with Python's resident set, which
    # ends up in its max RSS: GNU time, a small process, forks the measured
    # one and reports its max RSS (%M) alone. CPU comes from wait4 (time's
    # own share is a fraction of a millisecond, the same for every variant).
    rss = tempfile.NamedTemporaryFile(prefix="kubesu-bench-rss.")
    os.chmod(rss.name, 0o666)
    t0 = time.perf_counter()
    p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv],
                         stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=out,
                         stderr=err, env=env or CLEAN_ENV, cwd="/", **kwargs)
    if stdin:
        p.stdin.write(stdin)
        p.stdin.close()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    rss.seek(0)
    maxrss = int((rss.read().decode().split() or ["0"])[-1])
    return Sample(wall, ru.ru_utime + ru.ru_stime, maxrss, p.returncode, out.read().decode(errors="replace"),
                  err.read().decode(errors="replace"))


def pct(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summary(values):
    return {"median": statistics.median(values), "p10": pct(values, 0.1), "p90": pct(values, 0.9),
            "min": min(values), "max": max(values), "n": len(values)}


# --- the variants of the start comparison ------------------------------------


def kubesu_root_argv():
    return [PRIVATE_KUBESU, "run", "--json", "--user", USER, "--", "/usr/bin/true"]


def kubesu_sudo_argv(cmd="/usr/bin/true", *args):
    return ["sudo", "-n", KUBESU, "run", "--json", "--user", USER, "--", cmd, *args]


def curl_floor_argv(name):
    """One curl process, one TLS connection (--next reuses it): create SA,
    create RoleBinding, TokenRequest, delete RoleBinding, delete SA."""
    tls = ["--cacert", f"{PKI}/ca.crt", "--cert", f"{PKI}/admin.crt", "--key", f"{PKI}/admin.key",
           "-sS", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n",
           "-H", "Content-Type: application/json"]
    base = f"{SERVER}/api/v1/namespaces/{NAMESPACE}"
    rbac = f"{SERVER}/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/rolebindings"
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
    rb = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ROLE},
          "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]}
    tr = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}
    calls = [
        ["-X", "POST", "--data-binary", json.dumps(sa), f"{base}/serviceaccounts"],
        ["-X", "POST", "--data-binary", json.dumps(rb), rbac],
        ["-X", "POST", "--data-binary", json.dumps(tr), f"{base}/serviceaccounts/{name}/token"],
        ["-X", "DELETE", f"{rbac}/{name}"],
        ["-X", "DELETE", f"{base}/serviceaccounts/{name}"],
    ]
    argv = ["curl"]
    for i, c in enumerate(calls):
        if i:
            argv.append("--next")
        argv += tls + c
    return argv


def check_curl(s):
    lines = s.out.split()
    codes = lines[0::2]
    if codes != ["201", "201", "201", "200", "200"]:
        raise RuntimeError(f"curl floor: unexpected HTTP codes {codes}: {s.err}")
    return sum(int(n) for n in lines[1::2])  # new connections made


def kubesu_phases(s):
    for line in reversed(s.err.splitlines()):
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("event") == "end":
                return rec.get("phases_ms", {})
    return {}


def section_start(args, results):
    n, warm = args.iterations, args.warmup
    tag = secrets.token_hex(3)
    kubectl_script = os.path.join(HERE, "kubectl-run.sh")
    counter = {"i": 0}

    def next_name(prefix):
        counter["i"] += 1
        return f"bench-{prefix}-{tag}-{counter['i']}"

    variants = {
        "kubesu (root)": lambda: measure(kubesu_root_argv()),
        "kubesu (sudo -n, as kubesu-svc)": lambda: measure(kubesu_sudo_argv(), user=CALLER),
        "kubectl script": lambda: measure(["bash", kubectl_script, ADMIN_KUBECONFIG, SERVER, f"{PKI}/ca.crt",
                                           NAMESPACE, next_name("kc"), USER, CLUSTER_ROLE]),
        "curl floor (one TLS connection)": lambda: measure(curl_floor_argv(next_name("curl"))),
    }
    if args.skip_kubectl:
        del variants["kubectl script"]
    samples = {k: [] for k in variants}
    phases = {k: [] for k in variants}
    connects = []
    dropped = 0
    order = list(variants)
    log(f"start: {warm} warm-up + {n} iterations of {len(order)} variants, alternating")
    for it in range(warm + n):
        # Alternate the order too, so no variant always follows the same one.
        for name in (order if it % 2 == 0 else order[::-1]):
            ours = still_ours()
            s = variants[name]()
            if "sudo" in name and not (ours and still_ours()):
                dropped += 1
                continue
            if s.status != 0:
                raise RuntimeError(f"{name} failed with {s.status}: {s.err[-2000:]}")
            if name.startswith("curl"):
                c = check_curl(s)
                if it >= warm:
                    connects.append(c)
            if it >= warm:
                samples[name].append(s)
                phases[name].append(kubesu_phases(s))
        if (it + 1) % 5 == 0:
            log(f"start: {it + 1}/{warm + n}")
    out = {}
    for name, ss in samples.items():
        out[name] = {
            "wall_ms": summary([s.wall * 1000 for s in ss]),
            "cpu_ms": summary([s.cpu * 1000 for s in ss]),
            "maxrss_mib": summary([s.maxrss_kib / 1024 for s in ss]),
        }
        ph = [p for p in phases[name] if p]
        if ph:
            out[name]["phases_ms"] = {k: statistics.median([p.get(k, 0) for p in ph]) for k in ph[0]}
    out["curl floor (one TLS connection)"]["tcp_connections"] = sorted(set(connects))
    out["kubesu (sudo -n, as kubesu-svc)"]["dropped_foreign_binary"] = dropped
    if dropped:
        log(f"start: dropped {dropped} sudo samples: {KUBESU} was not the installed build")
    results["start"] = out


def section_nodelay(args, results):
    """What-if: kubesu with TCP_NODELAY forced on its sockets (LD_PRELOAD of
    bench/nodelay.c), against kubesu as built. Needs a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        log("nodelay: no C compiler, skipped")
        return
    tmp = tempfile.mkdtemp(prefix="kubesu-bench-")
    so = os.path.join(tmp, "nodelay.so")
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", so, os.path.join(HERE, "nodelay.c"), "-ldl"], check=True)
    variants = {"kubesu (root), as built": {},
                "kubesu (root), TCP_NODELAY forced": {"LD_PRELOAD": so}}
    samples = {k: [] for k in variants}
    phases = {k: [] for k in variants}
    log(f"nodelay: {args.warmup} warm-up + {args.iterations} iterations, alternating")
    for it in range(args.warmup + args.iterations):
        for name in (list(variants) if it % 2 == 0 else list(variants)[::-1]):
            s = measure(kubesu_root_argv(), env={**CLEAN_ENV, **variants[name]})
            if s.status != 0:
                raise RuntimeError(f"{name} failed with {s.status}: {s.err[-2000:]}")
            if it >= args.warmup:
                samples[name].append(s)
                phases[name].append(kubesu_phases(s))
    shutil.rmtree(tmp, ignore_errors=True)
    out = {}
    for name, ss in samples.items():
        out[name] = {"wall_ms": summary([x.wall * 1000 for x in ss]), "cpu_ms": summary([x.cpu * 1000 for x in ss]),
                     "maxrss_mib": summary([x.maxrss_kib / 1024 for x in ss]),
                     "prepare_ms": summary([p.get("prepare", 0) for p in phases[name]])}
    results["nodelay"] = out


# --- concurrency --------------------------------------------------------------


def section_concurrent(args, results):
    n = args.concurrency
    out = {}
    for mode in ("root", "sudo"):
        out[mode] = {"rounds": []}
    per_run = {"root": [], "sudo": []}
    log(f"concurrent: {args.concurrent_rounds} rounds of {n} concurrent runs, from root and through sudo")
    for r in range(args.concurrent_rounds):
        for mode in ("root", "sudo") if r % 2 == 0 else ("sudo", "root"):
            argv = kubesu_root_argv() if mode == "root" else kubesu_sudo_argv()
            kwargs = {}
            if mode == "sudo":
                pw = pwd.getpwnam(CALLER)
                kwargs = dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=os.getgrouplist(CALLER, pw.pw_gid))
            procs = {}
            errs = {}
            t0 = time.perf_counter()
            for _ in range(n):
                e = tempfile.TemporaryFile()
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=e,
                                     env=CLEAN_ENV, cwd="/", **kwargs)
                procs[p.pid] = (p, time.perf_counter())
                errs[p.pid] = e
            walls, cpu, rss, failed = [], 0.0, 0, []
            while procs:
                pid, status, ru = os.wait4(-1, 0)
                if pid not in procs:
                    continue
                p, started = procs.pop(pid)
                walls.append(time.perf_counter() - started)
                p.returncode = os.waitstatus_to_exitcode(status)
                cpu += ru.ru_utime + ru.ru_stime
                rss = max(rss, ru.ru_maxrss)
                if p.returncode != 0:
                    errs[pid].seek(0)
                    failed.append((p.returncode, errs[pid].read().decode(errors="replace")[-500:]))
            total = time.perf_counter() - t0
            if mode == "sudo" and not still_ours():
                log(f"concurrent: {KUBESU} is not the installed build; this sudo round is dropped")
                continue
            if failed:
                log(f"concurrent: {len(failed)} of {n} runs failed, e.g. {failed[0]}")
            out[mode]["rounds"].append({"total_ms": total * 1000, "p50_ms": pct(walls, 0.5) * 1000,
                                        "p99_ms": pct(walls, 0.99) * 1000, "max_ms": max(walls) * 1000,
                                        "failed": len(failed), "cpu_ms_total": cpu * 1000,
                                        "maxrss_mib": rss / 1024})
            per_run[mode] += walls
            time.sleep(1)
    for mode in out:
        rounds = out[mode]["rounds"]
        out[mode]["total_ms_median"] = statistics.median(r["total_ms"] for r in rounds)
        out[mode]["p50_ms_all"] = pct(per_run[mode], 0.5) * 1000
        out[mode]["p99_ms_all"] = pct(per_run[mode], 0.99) * 1000
        out[mode]["failed"] = sum(r["failed"] for r in rounds)
    out["concurrency"] = n
    results["concurrent"] = out


# --- gc ---------------------------------------------------------------------


def make_leases(count, tag, with_bindings):
    """`count` expired leases as kubesu writes them (ServiceAccount with
    kubesu's labels and an expiry in the past; a RoleBinding owned by it)."""
    expired = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"

    def one(api, i):
        run = "".join(secrets.choice(alphabet) for _ in range(16))
        name = f"kubesu-bench-{run}"
        labels = {"app.kubernetes.io/managed-by": "kubesu", "kubesu.io/run": run, "kubesu.io/user": "bench",
                  BENCH_LABEL: tag}
        sa = {"apiVersion": "v1", "kind": "ServiceAccount",
              "metadata": {"name": name, "labels": labels, "annotations": {
                  "kubesu.io/expires": expired, "kubesu.io/user": "bench", "kubesu.io/caller": "bench",
                  "kubesu.io/host": "bench-host", "kubesu.io/pid": "1", "kubesu.io/process-start": "1",
                  "kubesu.io/boot-id": "bench", "kubesu.io/command": "/usr/bin/true"}}}
        _, created = api.request("POST", f"/api/v1/namespaces/{GC_NAMESPACE}/serviceaccounts", sa, ok=(201,))
        if with_bindings:
            rb = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                  "metadata": {"name": name, "labels": labels, "ownerReferences": [{
                      "apiVersion": "v1", "kind": "ServiceAccount", "name": name,
                      "uid": created["metadata"]["uid"]}]},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                              "name": CLUSTER_ROLE},
                  "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": GC_NAMESPACE}]}
            api.request("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{GC_NAMESPACE}/rolebindings", rb,
                        ok=(201,))

    parallel(one, range(count))


def count_objects(api, kind_path, selector):
    _, body = api.request("GET", f"{kind_path}?labelSelector={selector}")
    return len(body["items"])


def wait_bindings_gone(api, tag, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if count_objects(api, "/apis/rbac.authorization.k8s.io/v1/rolebindings", f"{BENCH_LABEL}%3D{tag}") == 0:
            return True
        time.sleep(1)
    return False


def section_gc(args, results):
    api = Api()
    for _ in range(180):  # a namespace left terminating by an earlier run
        code, ns = api.request("GET", f"/api/v1/namespaces/{GC_NAMESPACE}")
        if code == 404 or not ns["metadata"].get("deletionTimestamp"):
            break
        time.sleep(1)
    # A namespace as kubesu makes them: where kubesu's admission policies
    # are installed, its identity may clean up only in namespaces it owns.
    api.request("POST", "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GC_NAMESPACE, "labels": {
                    "app.kubernetes.io/managed-by": "kubesu",
                    "pod-security.kubernetes.io/enforce": "baseline"}}}, ok=(201, 409))
    rows = {"kubesu gc": [], "kubectl delete sa -A -l": []}
    log(f"gc: {args.gc_rounds} rounds of {args.gc_leases} expired leases each way (bindings: {not args.gc_no_bindings})")
    for r in range(args.gc_rounds):
        for name in (list(rows) if r % 2 == 0 else list(rows)[::-1]):
            tag = f"{'k' if name.startswith('kubesu') else 'c'}{r}-{secrets.token_hex(3)}"
            t0 = time.time()
            make_leases(args.gc_leases, tag, not args.gc_no_bindings)
            made = count_objects(api, "/api/v1/serviceaccounts", f"{BENCH_LABEL}%3D{tag}")
            log(f"gc: created {made} leases ({tag}) in {time.time() - t0:.1f}s, not timed")
            time.sleep(2)
            if name == "kubesu gc":
                s = measure([PRIVATE_KUBESU, "gc", "--json"])
                removed = None
                try:
                    rec = json.loads(s.out)
                    removed = sum(1 for a in rec["actions"] if a.get("what") == "lease" and a.get("removed"))
                except (ValueError, KeyError):
                    pass
            else:
                # Scoped to this round's leases (one more label): the bed is
                # shared, and live leases of other runs must survive.
                s = measure(["kubectl", "--kubeconfig", ADMIN_KUBECONFIG, "delete", "sa", "-A", "-l",
                             f"app.kubernetes.io/managed-by=kubesu,{BENCH_LABEL}={tag}"])
                removed = s.out.count("deleted")
            left = count_objects(api, "/api/v1/serviceaccounts", f"{BENCH_LABEL}%3D{tag}")
            if s.status != 0 or left:
                log(f"gc: {name} exited {s.status}, {left} leases left: {s.err[-500:]}")
            rows[name].append({"wall_ms": s.wall * 1000, "cpu_ms": s.cpu * 1000, "maxrss_mib": s.maxrss_kib / 1024,
                               "leases": made, "removed": removed, "left": left, "status": s.status})
            log(f"gc: {name}: {s.wall:.2f}s wall, {s.cpu:.2f}s CPU, removed {removed}, left {left}")
            # The garbage collector deletes the kubectl round's RoleBindings
            # after it; let it finish so it does not load the next round.
            if not wait_bindings_gone(api, tag):
                log("gc: RoleBindings still present after 120 s")
    out = {}
    for name, rs in rows.items():
        out[name] = {"wall_ms": summary([x["wall_ms"] for x in rs]), "cpu_ms": summary([x["cpu_ms"] for x in rs]),
                     "maxrss_mib": summary([x["maxrss_mib"] for x in rs]), "rounds": rs}
    out["leases"] = args.gc_leases
    out["with_bindings"] = not args.gc_no_bindings
    results["gc"] = out


# --- the idle supervisor -----------------------------------------------------


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


def tree_counters(pid):
    """Context switches and CPU ticks summed over every thread of pid."""
    vol = invol = ticks = runs = 0
    threads = os.listdir(f"/proc/{pid}/task")
    for tid in threads:
        st = proc_status(f"{pid}/task/{tid}")
        vol += int(st["voluntary_ctxt_switches"])
        invol += int(st["nonvoluntary_ctxt_switches"])
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
            ticks += int(parts[11]) + int(parts[12])  # utime, stime
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            runs += int(f.read().split()[2])
    return {"voluntary": vol, "involuntary": invol, "ticks": ticks, "timeslices": runs, "threads": len(threads)}


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def section_idle(args, results):
    duration = args.idle_seconds
    pw = pwd.getpwnam(CALLER)
    argv = kubesu_sudo_argv("/usr/bin/sleep", str(duration + 600))
    log(f"idle: sudo -n kubesu run -- sleep, watching kubesu for {duration} s")
    err = tempfile.TemporaryFile()
    sudo = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=CLEAN_ENV,
                            cwd="/", user=pw.pw_uid, group=pw.pw_gid,
                            extra_groups=os.getgrouplist(CALLER, pw.pw_gid))
    kubesu = sleeper = None
    deadline = time.time() + 20
    while time.time() < deadline and sleeper is None:
        for c in children(sudo.pid):
            if os.readlink(f"/proc/{c}/exe") == KUBESU:
                kubesu = c
        if kubesu:
            for c in children(kubesu):
                try:
                    if os.readlink(f"/proc/{c}/exe").endswith("/sleep"):
                        sleeper = c
                except OSError:
                    pass
        time.sleep(0.01)
    if sleeper is None:
        sudo.kill()
        raise RuntimeError("idle: kubesu did not start sleep")
    time.sleep(1)  # past the handover
    before, st0 = tree_counters(kubesu), proc_status(kubesu)
    time.sleep(duration)
    after, st1 = tree_counters(kubesu), proc_status(kubesu)
    os.kill(sleeper, signal.SIGTERM)
    _, status, ru = os.wait4(sudo.pid, 0)
    sudo.returncode = os.waitstatus_to_exitcode(status)
    hz = os.sysconf("SC_CLK_TCK")
    delta = {k: after[k] - before[k] for k in ("voluntary", "involuntary", "ticks", "timeslices")}
    results["idle"] = {
        "foreign_binary": not still_ours(),
        "duration_s": duration,
        "vmrss_mib": int(st1["VmRSS"].split()[0]) / 1024,
        "vmhwm_mib": int(st1["VmHWM"].split()[0]) / 1024,
        "threads": after["threads"],
        "context_switches": delta["voluntary"] + delta["involuntary"],
        "voluntary": delta["voluntary"],
        "involuntary": delta["involuntary"],
        "timeslices": delta["timeslices"],
        "cpu_ms": delta["ticks"] * 1000 / hz,
        "tree_maxrss_mib": ru.ru_maxrss / 1024,
        "exit_status": sudo.returncode,
    }


# --- round trips, through a recording proxy ----------------------------------


class RecordingProxy:
    """A TLS-terminating HTTP/1.1 proxy in front of the API server that logs
    when each request arrived and when its answer left, per connection. The
    upstream side presents kubesu's own client certificate."""

    def __init__(self):
        self.events = []
        self.lock = threading.Lock()
        self.sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.sctx.load_cert_chain(f"{PKI}/apiserver.crt", f"{PKI}/apiserver.key")
        self.sctx.set_alpn_protocols(["http/1.1"])
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            raw, _ = self.sock.accept()
            # Without this the proxy's own answers wait on Nagle's algorithm
            # and kubesu's delayed ACKs, and the timeline shows the proxy.
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.conns += 1
                cid = self.conns
            threading.Thread(target=self.serve, args=(raw, cid), daemon=True).start()

    def serve(self, raw, cid):
        t_accept = time.perf_counter()
        try:
            conn = self.sctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            return
        up = Api("kubesu")
        # The upstream connection is made now, so requests are timed alone.
        up.conn = http.client.HTTPSConnection(up.host, up.port, context=up.ctx, timeout=30)
        up.conn.connect()
        up.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = conn.makefile("rb")
        with self.lock:
            self.events.append(("connect", cid, t_accept, time.perf_counter()))
        while True:
            line = f.readline()
            if not line:
                break
            t0 = time.perf_counter()
            method, path, _ = line.decode().split(" ", 2)
            headers = {}
            while True:
                h = f.readline().decode()
                if h in ("\r\n", "\n", ""):
                    break
                k, _, v = h.partition(":")
                headers[k.strip().lower()] = v.strip()
            body = f.read(int(headers.get("content-length", 0))) if headers.get("content-length") else None
            if up.conn is None:
                up.conn = http.client.HTTPSConnection(up.host, up.port, context=up.ctx, timeout=30)
            fwd = {k: v for k, v in headers.items() if k in ("content-type", "accept", "user-agent")}
            up.conn.request(method, path, body=body, headers=fwd)
            r = up.conn.getresponse()
            payload = r.read()
            resp = (f"HTTP/1.1 {r.status} {r.reason}\r\nContent-Type: "
                    f"{r.getheader('Content-Type', 'application/json')}\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload
            conn.sendall(resp)
            with self.lock:
                self.events.append(("request", cid, t0, time.perf_counter(), method, path.split("?")[0], r.status))
        conn.close()


def waves(requests):
    """Group requests into sequential round trips: a request that arrived
    after an earlier one was answered starts a new wave."""
    out = []
    for ev in sorted(requests, key=lambda e: e[2]):
        if out and ev[2] < max(x[3] for x in out[-1]):
            out[-1].append(ev)
        else:
            out.append([ev])
    return out


def section_trips(args, results):
    proxy = RecordingProxy()
    tmp = os.path.join(PRIVATE_DIR, "trips")
    os.makedirs(tmp, mode=0o700, exist_ok=True)
    # kubesu's kubeconfig, pointed at the proxy; the config, pointed at it.
    with open("/etc/kubesu/kubeconfig") as f:
        kc = f.read()
    kc = kc.replace(SERVER, f"https://127.0.0.1:{proxy.port}")
    kc_path = os.path.join(tmp, "kubeconfig")
    with open(kc_path, "w") as f:
        f.write(kc)
    os.chmod(kc_path, 0o600)
    with open("/etc/kubesu/config.toml") as f:
        cfg = f.read()
    cfg = cfg.replace('kubeconfig = "/etc/kubesu/kubeconfig"', f'kubeconfig = "{kc_path}"')
    cfg = cfg.replace('# server = "https://kubernetes.example.com:6443"', f'server = "{SERVER}"')
    cfg_path = os.path.join(tmp, "config.toml")
    with open(cfg_path, "w") as f:
        f.write(cfg)
    os.chmod(cfg_path, 0o600)
    runs = []
    for _ in range(args.trip_runs):
        start = len(proxy.events)
        s = measure([PRIVATE_KUBESU, "run", "--config", cfg_path, "--json", "--user", USER, "--", "/usr/bin/true"])
        time.sleep(0.2)
        evs = proxy.events[start:]
        if s.status != 0:
            raise RuntimeError(f"trips: kubesu through the proxy failed: {s.err[-1000:]}")
        reqs = [e for e in evs if e[0] == "request"]
        conns = [e for e in evs if e[0] == "connect"]
        first_delete = min((e[2] for e in reqs if e[4] == "DELETE"), default=float("inf"))
        before = [e for e in reqs if e[2] < first_delete]
        after = [e for e in reqs if e[2] >= first_delete]
        t0 = min(e[2] for e in evs)
        timeline = []
        for e in sorted(evs, key=lambda e: e[2]):
            if e[0] == "connect":
                timeline.append(f"{(e[2] - t0) * 1000:6.1f}–{(e[3] - t0) * 1000:6.1f} ms  conn {e[1]}: TCP accept + TLS handshake")
            else:
                timeline.append(f"{(e[2] - t0) * 1000:6.1f}–{(e[3] - t0) * 1000:6.1f} ms  conn {e[1]}: {e[4]} {e[5]} → {e[6]}")
        runs.append({
            "timeline": timeline,
            "connections": len(conns),
            "before": [[f"{e[4]} {e[5]} (conn {e[1]})" for e in w] for w in waves(before)],
            "after": [[f"{e[4]} {e[5]} (conn {e[1]})" for e in w] for w in waves(after)],
            "phases_ms": kubesu_phases(s),
        })
    shutil.rmtree(tmp, ignore_errors=True)
    # The round-trip time of one warm call, for reading -v phase times.
    api = Api()
    api.request("GET", f"/api/v1/namespaces/{NAMESPACE}")
    rtts = []
    for _ in range(20):
        t0 = time.perf_counter()
        api.request("GET", f"/api/v1/namespaces/{NAMESPACE}")
        rtts.append((time.perf_counter() - t0) * 1000)
    results["trips"] = {"runs": runs, "warm_get_ms": statistics.median(rtts)}


# --- cleanup and report -------------------------------------------------------


def cleanup():
    api = Api()
    _, sas = api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts")
    left = [s["metadata"]["name"] for s in sas["items"] if s["metadata"]["name"].startswith("bench-")]
    _, rbs = api.request("GET", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/rolebindings")
    left_rb = [r["metadata"]["name"] for r in rbs["items"] if r["metadata"]["name"].startswith("bench-")]
    for n in left_rb:
        api.request("DELETE", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/rolebindings/{n}")
    for n in left:
        api.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{n}")
    api.request("DELETE", f"/api/v1/namespaces/{GC_NAMESPACE}")
    if left or left_rb:
        log(f"cleanup: removed {len(left)} leftover ServiceAccounts, {len(left_rb)} RoleBindings")


def fmt(s, unit=""):
    return f"{s['median']:.1f}{unit} ({s['p10']:.1f}–{s['p90']:.1f})"


def report(args, results):
    L = []
    st = results.get("start")
    if st:
        L.append(f"### 1–3. One run, start to finish ({args.iterations} iterations each, alternating; "
                 f"median (p10–p90))\n")
        L.append("| variant | wall ms | CPU ms (user+sys, tree) | peak RSS MiB (largest process) |")
        L.append("| --- | ---: | ---: | ---: |")
        for name, v in st.items():
            L.append(f"| {name} | {fmt(v['wall_ms'])} | {fmt(v['cpu_ms'])} | {fmt(v['maxrss_mib'])} |")
        floor = st["curl floor (one TLS connection)"]
        L.append("\n| ratio (medians) | wall | CPU |")
        L.append("| --- | ---: | ---: |")
        for name in ("kubesu (root)", "kubesu (sudo -n, as kubesu-svc)"):
            L.append(f"| {name} / curl floor | {st[name]['wall_ms']['median'] / floor['wall_ms']['median']:.2f}x "
                     f"| {st[name]['cpu_ms']['median'] / floor['cpu_ms']['median']:.2f}x |")
        if "kubectl script" in st:
            for name in ("kubesu (root)", "kubesu (sudo -n, as kubesu-svc)"):
                L.append(f"| kubectl script / {name} | "
                         f"{st['kubectl script']['wall_ms']['median'] / st[name]['wall_ms']['median']:.1f}x | "
                         f"{st['kubectl script']['cpu_ms']['median'] / st[name]['cpu_ms']['median']:.1f}x |")
        L.append(f"\ncurl floor TCP connections per run: {floor.get('tcp_connections')}")
        for name in ("kubesu (root)", "kubesu (sudo -n, as kubesu-svc)"):
            ph = st[name].get("phases_ms")
            if ph:
                L.append(f"\n{name}, median `--json` phases_ms: " + ", ".join(f"{k} {v:.1f}" for k, v in ph.items()))
    nd = results.get("nodelay")
    if nd:
        L.append(f"\n### What-if: TCP_NODELAY on kubesu's API connections ({args.iterations} iterations each, "
                 f"alternating; LD_PRELOAD of bench/nodelay.c)\n")
        L.append("| variant | wall ms | CPU ms | prepare phase ms |")
        L.append("| --- | ---: | ---: | ---: |")
        for name, v in nd.items():
            L.append(f"| {name} | {fmt(v['wall_ms'])} | {fmt(v['cpu_ms'])} | {fmt(v['prepare_ms'])} |")
        if st:
            floor = st["curl floor (one TLS connection)"]["wall_ms"]["median"]
            L.append(f"\nTCP_NODELAY forced / curl floor (medians, wall): "
                     f"{nd['kubesu (root), TCP_NODELAY forced']['wall_ms']['median'] / floor:.2f}x")
    cc = results.get("concurrent")
    if cc:
        L.append(f"\n### 4. {cc['concurrency']} concurrent `kubesu run --user {USER} -- /usr/bin/true`\n")
        L.append("| mode | rounds | total wall ms per round (median) | per-run p50 ms | per-run p99 ms | "
                 "CPU s per round | failed |")
        L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for mode in ("root", "sudo"):
            v = cc[mode]
            cpu = statistics.median(r["cpu_ms_total"] for r in v["rounds"]) / 1000
            L.append(f"| {mode} | {len(v['rounds'])} | {v['total_ms_median']:.0f} | {v['p50_ms_all']:.0f} | "
                     f"{v['p99_ms_all']:.0f} | {cpu:.2f} | {v['failed']} |")
    gc = results.get("gc")
    if gc:
        L.append(f"\n### 5. Removing {gc['leases']} expired leases (ServiceAccount"
                 f"{' + owned RoleBinding' if gc['with_bindings'] else ''} each)\n")
        L.append("| tool | rounds | wall s | CPU s | peak RSS MiB | removed / left per round |")
        L.append("| --- | ---: | ---: | ---: | ---: | --- |")
        for name in ("kubesu gc", "kubectl delete sa -A -l"):
            v = gc[name]
            L.append(f"| `{name}` | {len(v['rounds'])} | {v['wall_ms']['median'] / 1000:.2f} "
                     f"({v['wall_ms']['min'] / 1000:.2f}–{v['wall_ms']['max'] / 1000:.2f}) | "
                     f"{v['cpu_ms']['median'] / 1000:.2f} | {v['maxrss_mib']['median']:.1f} | "
                     + ", ".join(f"{r['removed']}/{r['left']}" for r in v["rounds"]) + " |")
        L.append(f"\nratio kubectl / kubesu gc (median wall): "
                 f"{gc['kubectl delete sa -A -l']['wall_ms']['median'] / gc['kubesu gc']['wall_ms']['median']:.1f}x")
    idle = results.get("idle")
    if idle:
        L.append(f"\n### 6. The supervising kubesu parent while `sleep` runs (through sudo, {idle['duration_s']} s)\n")
        L.append("| VmRSS MiB | VmHWM MiB | threads | context switches (vol+invol) | sched timeslices | CPU ms |")
        L.append("| ---: | ---: | ---: | ---: | ---: | ---: |")
        L.append(f"| {idle['vmrss_mib']:.1f} | {idle['vmhwm_mib']:.1f} | {idle['threads']} | "
                 f"{idle['context_switches']} ({idle['voluntary']}+{idle['involuntary']}) | {idle['timeslices']} | "
                 f"{idle['cpu_ms']:.0f} |")
    tr = results.get("trips")
    if tr:
        L.append("\n### Round trips, as a recording proxy in front of the API server saw them\n")
        L.append(f"Median warm round trip of one GET: {tr['warm_get_ms']:.2f} ms.\n")
        for i, r in enumerate(tr["runs"], 1):
            L.append(f"- run {i}: {r['connections']} TLS connection(s); before the command "
                     f"{len(r['before'])} sequential round trip(s): "
                     + " → ".join(" ‖ ".join(w) for w in r["before"])
                     + f"; after it {len(r['after'])}: " + " → ".join(" ‖ ".join(w) for w in r["after"]))
        if tr["runs"]:
            L.append("\nTimeline of the last run at the proxy (request arrived – answer sent):\n")
            L.append("```")
            L += tr["runs"][-1]["timeline"]
            L.append("```")
    for name, e in results.get("errors", {}).items():
        L.append(f"\n**{name} failed:** {e}")
    return "\n".join(L)


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_mib": mem, "kernel": platform.release(),
            "loadavg_start": os.getloadavg()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--iterations", type=int, default=int(os.environ.get("BENCH_ITERATIONS", 20)))
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--concurrent-rounds", type=int, default=3)
    ap.add_argument("--gc-leases", type=int, default=1000)
    ap.add_argument("--gc-rounds", type=int, default=2)
    ap.add_argument("--gc-no-bindings", action="store_true", help="leases without their RoleBinding")
    ap.add_argument("--idle-seconds", type=int, default=int(os.environ.get("BENCH_IDLE_SECONDS", 60)))
    ap.add_argument("--trip-runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="5 iterations, 10 s idle, 1 round, 200 leases")
    ap.add_argument("--skip-kubectl", action="store_true")
    ap.add_argument("--only", default="start,nodelay,concurrent,gc,idle,trips")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--binary", default=os.path.join(REPO, "target/release/kubesu"),
                    help="the kubesu build under test (run.sh installs it as /usr/sbin/kubesu)")
    if "--quick" in sys.argv[1:]:  # shorter defaults; explicit options still win
        ap.set_defaults(iterations=5, idle_seconds=10, concurrent_rounds=1, gc_rounds=1, gc_leases=200, trip_runs=1)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench.py: run as root")
    results = {"machine": machine(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "command": " ".join(sys.argv), "git": subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                                     text=True).stdout.strip()}
    sections = {"start": section_start, "nodelay": section_nodelay, "concurrent": section_concurrent, "gc": section_gc, "idle": section_idle,
                "trips": section_trips, "cleanup": lambda args, results: None}
    results["kubesu_sha256"] = take_private_copy(args.binary)
    errors = results["errors"] = {}
    for name in args.only.split(","):
        try:
            sections[name](args, results)
        except Exception as e:  # noqa: BLE001 - one broken section must not lose the others
            log(f"{name}: FAILED: {e!r}")
            errors[name] = repr(e)
    try:
        cleanup()
    except Exception as e:  # noqa: BLE001
        log(f"cleanup: FAILED: {e!r}; rerun `bench.py --only cleanup`")
        errors["cleanup"] = repr(e)
    shutil.rmtree(PRIVATE_DIR, ignore_errors=True)
    if not still_ours():
        log(f"WARNING: {KUBESU} was replaced during the benchmark (by someone else?): root runs used the "
            "private copy, sudo samples taken with another build were dropped")
        results["kubesu_replaced_during_run"] = True
    results["machine"]["loadavg_end"] = os.getloadavg()
    text = report(args, results)
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(args.out, f"{stamp}.json"), "w") as f:
        json.dump(results, f, indent=1)
    m = results["machine"]
    header = (f"Date: {results['date']}. Machine: {m['cpu']}, {m['cores']} cores, {m['mem_mib']} MiB, "
              f"Linux {m['kernel']}; load average {m['loadavg_start'][0]:.2f} at start, "
              f"{m['loadavg_end'][0]:.2f} at end. Command: `{results['command']}`.\n")
    with open(os.path.join(args.out, f"{stamp}.md"), "w") as f:
        f.write(header + "\n" + text + "\n")
    print(header)
    print(text)
    log(f"wrote {args.out}/{stamp}.md and .json")


if __name__ == "__main__":
    main()
