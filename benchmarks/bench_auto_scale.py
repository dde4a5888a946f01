"""``cluster(k1="auto", eps="auto")`` against ``cluster(k1=20, eps=0.6)`` on issue 23's hard generator, one process.

    python benchmarks/bench_auto_scale.py 50000              # both calls
    python benchmarks/bench_auto_scale.py 200000 fixed auto  # the table of docs/real_data_clustering.md, "At scale"

Prints one JSON line per call: seconds, peak resident memory sampled during the call
(``peak_GB``; ``peak_above_start_GB`` above the loaded features), ARI (noise rows as
singletons), what ``"auto"`` chose and the ``k1`` record's ``max_distance`` and ``searches``.
"""
import sys, time, threading, warnings, json, numpy as np
import xmrank

def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096

class Peak:
    def __enter__(self):
        self.peak, self.run = rss(), True
        def loop():
            while self.run:
                self.peak = max(self.peak, rss()); time.sleep(0.05)
        self.t = threading.Thread(target=loop, daemon=True); self.t.start(); self.t0 = time.perf_counter(); return self
    def __exit__(self, *a):
        self.sec = time.perf_counter() - self.t0; self.run = False; self.t.join()

N = int(sys.argv[1]); which = sys.argv[2:] or ["fixed", "auto"]
rng = np.random.default_rng(0)
n_ids = N // 10
C = rng.standard_normal((n_ids, 128)); off = rng.standard_normal((2, 128)) * 0.8
ids = rng.integers(0, n_ids, N); mods = rng.random(N) < 0.35
X = C[ids] + off[mods.astype(int)] + rng.standard_normal((N, 128)) * 0.9
X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
del C
from xmrank.clustering.select import _ari_singletons
base = rss()
for w in which:
    kw = dict(k1=20, eps=0.6) if w == "fixed" else dict(k1="auto", k2="auto", eps="auto")
    try:
        with warnings.catch_warnings(), Peak() as p:
            warnings.simplefilter("ignore")
            lab, info = xmrank.cluster(X, modalities=mods, return_info=True, **kw)
        ch = info.get("chosen", {}).get("k1", {}).get("measurement") or {}
        print(json.dumps({"N": N, "run": w, "seconds": round(p.sec, 1), "peak_GB": round(p.peak / 2**30, 2),
                          "peak_above_start_GB": round((p.peak - base) / 2**30, 2), "ari": round(_ari_singletons(ids, lab), 4),
                          "method": info["method"], "k1": info["k1"], "eps": info["eps"],
                          "max_distance": ch.get("max_distance"), "searches": ch.get("searches"),
                          "candidates": [(c["k1"], c["eps"], c["score"]) for c in ch.get("candidates", [])]}), flush=True)
    except Exception as e:
        print(json.dumps({"N": N, "run": w, "seconds": round(p.sec, 1), "peak_GB": round(p.peak / 2**30, 2), "error": str(e)[:400]}), flush=True)
