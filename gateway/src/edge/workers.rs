//! Connection workers: one thread per core (`WORKER_THREADS`), each a single-threaded tokio
//! runtime that serves the connections handed to it whole — nginx's worker shape.
//!
//! Why: on tokio's work-stealing pool a request's task and hyper's upstream connection task
//! often sit on different workers, and every hand-over between them is a futex wake plus a
//! context switch (measured on 2 cores: 0.74 `futex` calls and 0.51 switches per request,
//! nginx 0 and 0.28; README "The cost of one hop"). Here a connection, its requests, the
//! upstream connections they use (each worker has its own pool: [`crate::state::Shared::http`])
//! and everything they spawn stay on one thread. The trade-off is nginx's too: a CPU-heavy
//! request holds up the other connections of its worker; the accept loop spreads connections
//! by the fewest open ones.

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The connection worker running this thread: `Some(0..n)`, `None` off the workers (the
/// caller's runtime, tests through `oneshot`, blocking-pool threads).
pub(crate) fn current() -> Option<usize> {
    WORKER.with(|w| w.get().checked_sub(1))
}

/// The running workers; dropping them stops their threads (each ends its runtime within
/// `grace`).
pub(crate) struct Workers {
    workers: Vec<Worker>,
    grace: Duration,
}

struct Worker {
    handle: Handle,
    open: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
}

/// Counts one open connection on its worker until dropped.
pub(crate) struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Workers {
    /// Starts `n` worker threads (n ≥ 1). Each runtime is built here, so a failure (no
    /// threads left, no epoll) is a start-up error, not a later hang.
    pub(crate) fn start(n: usize, grace: Duration) -> io::Result<Workers> {
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(format!("gateway-worker-{i}-blocking"))
                .build()?;
            let handle = rt.handle().clone();
            let (stop, stop_rx) = oneshot::channel::<()>();
            let (done_tx, done) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("gateway-worker-{i}"))
                .spawn(move || {
                    WORKER.with(|w| w.set(i + 1));
                    // Until told to stop, or until `Workers` is dropped (the sender with it).
                    rt.block_on(async {
                        let _ = stop_rx.await;
                    });
                    // Tasks still here (idle pooled upstream connections) are dropped; a
                    // blocking store write in progress gets `grace` to finish.
                    rt.shutdown_timeout(grace);
                    let _ = done_tx.send(());
                })?;
            workers.push(Worker {
                handle,
                open: Arc::new(AtomicUsize::new(0)),
                stop: Some(stop),
                done: Some(done),
            });
        }
        Ok(Workers { workers, grace })
    }

    /// The worker with the fewest open connections, and its count for this one.
    pub(crate) fn pick(&self) -> Option<(&Handle, Open)> {
        let w = self
            .workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))?;
        w.open.fetch_add(1, Ordering::Relaxed);
        Some((&w.handle, Open(w.open.clone())))
    }

    /// Stops every worker and waits (at most `grace` plus a second) until each has ended its
    /// runtime; call it once the connections are drained.
    pub(crate) async fn stop(mut self) {
        let mut done = Vec::with_capacity(self.workers.len());
        for w in &mut self.workers {
            if let Some(s) = w.stop.take() {
                let _ = s.send(());
            }
            done.extend(w.done.take());
        }
        let bound = self.grace + Duration::from_secs(1);
        let all = async {
            for d in done {
                let _ = d.await;
            }
        };
        if tokio::time::timeout(bound, all).await.is_err() {
            tracing::warn!("connection workers did not stop within SHUTDOWN_GRACE_SECS + 1 s");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_run_on_their_worker_and_the_least_loaded_is_picked() {
        let w = Workers::start(2, Duration::from_secs(1)).expect("start");
        assert_eq!(current(), None, "the test's own thread is no worker");
        let (h0, open0) = w.pick().expect("a worker");
        let on0 = h0.spawn(async { current() }).await.expect("join");
        // The first is busy with one connection: the next pick is the other worker.
        let (h1, open1) = w.pick().expect("a worker");
        let on1 = h1.spawn(async { current() }).await.expect("join");
        assert!(on0.is_some() && on1.is_some());
        assert_ne!(on0, on1);
        drop(open0);
        // Worker 0 is free again, worker 1 still holds one: 0 is picked.
        let (h, _open) = w.pick().expect("a worker");
        assert_eq!(h.spawn(async { current() }).await.expect("join"), on0);
        drop(open1);
        w.stop().await;
    }

    #[tokio::test]
    async fn stop_ends_every_worker_and_their_tasks() {
        let w = Workers::start(2, Duration::from_secs(1)).expect("start");
        let (h, _open) = w.pick().expect("a worker");
        let (tx, rx) = oneshot::channel::<()>();
        // A task that never ends by itself: stopping the worker must drop it.
        h.spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        w.stop().await;
        assert!(
            rx.await.is_err(),
            "the pending task was dropped with its runtime"
        );
    }
}
