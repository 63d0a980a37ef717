"""RQ 3 SimpleWorker next to ops_throughput: the same Redis, the same shape.

Run by crates/worker/benches/ops_throughput.rs; prints one JSON object.

  python rq_bench.py REDIS_URL COUNT PRODUCERS

burst: a SimpleWorker (one process, no fork per job, logging at WARNING like
the Rust worker's LOG_LEVEL=warn) is started, then PRODUCERS threads enqueue
COUNT no-op jobs; throughput is COUNT over first enqueue to last end, read
from the jobs' own timestamps. idle: 200 jobs one at a time, 10 ms apart,
enqueue-to-start latency of each. drain: COUNT jobs enqueued while no
worker runs, then one SimpleWorker started; COUNT over first start to last
end (the queue alone, without its producers).
"""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.job import Job

import noop_jobs

HERE = Path(__file__).resolve().parent
QUEUE = "odoo-saas-bench"

WORKER = f"""
import logging, sys
sys.path.insert(0, {str(HERE)!r})
from redis import Redis
from rq import Queue, SimpleWorker
redis = Redis.from_url(sys.argv[1])
worker = SimpleWorker([Queue({QUEUE!r}, connection=redis)], connection=redis)
worker.work(logging_level="WARNING")
"""


def clear(redis):
    keys = list(redis.scan_iter("rq:*", count=1000))
    for start in range(0, len(keys), 500):
        redis.delete(*keys[start : start + 500])


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(delta):
    return delta.total_seconds() * 1000


def wait_finished(queue, count, deadline):
    registry = queue.finished_job_registry
    while registry.count < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {registry.count} of {count} RQ jobs finished")
        time.sleep(0.02)


def start_worker(url, redis):
    worker = subprocess.Popen([sys.executable, "-c", WORKER, url])
    deadline = time.monotonic() + 30
    while not redis.smembers("rq:workers"):
        if time.monotonic() > deadline or worker.poll() is not None:
            worker.kill()
            raise SystemExit("the RQ worker did not register")
        time.sleep(0.05)
    return worker


def stop_worker(worker):
    # A warm shutdown waits for RQ's blocking dequeue to return, which can
    # outlast the wait; the job counts are taken already, so kill it then.
    worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def main():
    url, count, producers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    redis = Redis.from_url(url)
    clear(redis)
    queue = Queue(QUEUE, connection=redis)
    worker = start_worker(url, redis)
    try:

        ids = [[] for _ in range(producers)]

        def produce(n, share):
            own = Queue(QUEUE, connection=Redis.from_url(url))
            for _ in range(share):
                ids[n].append(own.enqueue(noop_jobs.noop).id)

        share = -(-count // producers)
        threads = [
            threading.Thread(target=produce, args=(n, min(share, count - n * share)))
            for n in range(producers)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        enqueue_rate = count / (time.monotonic() - started)
        wait_finished(queue, count, time.monotonic() + 600)
        jobs = []
        all_ids = [i for chunk in ids for i in chunk]
        for start in range(0, len(all_ids), 500):
            jobs.extend(Job.fetch_many(all_ids[start : start + 500], connection=redis))
        span = (max(j.ended_at for j in jobs) - min(j.enqueued_at for j in jobs)).total_seconds()
        burst = [ms(j.started_at - j.enqueued_at) for j in jobs]

        idle = []
        for _ in range(200):
            job = queue.enqueue(noop_jobs.noop)
            deadline = time.monotonic() + 30
            while True:
                job.refresh()
                if job.started_at is not None:
                    idle.append(ms(job.started_at - job.enqueued_at))
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("an idle RQ job never started")
                time.sleep(0.001)
            time.sleep(0.01)

        # drain: the queue filled while no worker runs, then drained by a
        # fresh SimpleWorker; COUNT over first start to last end.
        stop_worker(worker)
        clear(redis)
        queue = Queue(QUEUE, connection=redis)
        ids = [[] for _ in range(producers)]
        threads = [
            threading.Thread(target=produce, args=(n, min(share, count - n * share)))
            for n in range(producers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        worker = start_worker(url, redis)
        wait_finished(queue, count, time.monotonic() + 600)
        jobs = []
        all_ids = [i for chunk in ids for i in chunk]
        for start in range(0, len(all_ids), 500):
            jobs.extend(Job.fetch_many(all_ids[start : start + 500], connection=redis))
        drain_span = (max(j.ended_at for j in jobs) - min(j.started_at for j in jobs)).total_seconds()

        print(
            json.dumps(
                {
                    "throughput": count / span,
                    "enqueue_rate": enqueue_rate,
                    "burst_p50": percentile(burst, 50),
                    "burst_p99": percentile(burst, 99),
                    "idle_p50": percentile(idle, 50),
                    "idle_p99": percentile(idle, 99),
                    "drain": count / drain_span,
                }
            )
        )
    finally:
        stop_worker(worker)
        clear(redis)


if __name__ == "__main__":
    main()
