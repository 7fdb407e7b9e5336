//! The thread of an [`super::EtcdStore`]: a single-threaded tokio runtime that runs every request
//! and every watch's forwarding task, inside the configured network namespace.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// How much longer than the request timeout a caller waits for the thread's answer (the
/// timeout runs on the thread; this only guards against a thread that stopped answering).
const ANSWER_SLACK: Duration = Duration::from_secs(1);

/// Why a request got no answer from etcd.
pub(super) enum Failure {
    /// etcd, or the connection to it, failed the request.
    Etcd(etcd_client::Error),
    /// No answer within the request timeout.
    Timeout,
    /// The store's thread is gone.
    Stopped,
}

/// The store's thread. Dropping it stops the runtime (dropping every task) and joins the thread.
#[derive(Debug)]
pub(super) struct Runtime {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Runtime {
    /// Starts the thread; it enters `netns` first, when given.
    pub(super) fn start(netns: Option<OwnedFd>) -> Result<Runtime, String> {
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("berth-etcd".to_owned())
            .spawn(move || {
                if let Some(fd) = netns {
                    if let Err(e) = setns(&fd, CloneFlags::CLONE_NEWNET) {
                        let _ = ready_tx.send(Err(format!(
                            "entering the network namespace of the connections: {e}"
                        )));
                        return;
                    }
                }
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("starting the client runtime: {e}")));
                        return;
                    }
                };
                let (stop_tx, stop_rx) = oneshot::channel::<()>();
                if ready_tx
                    .send(Ok((runtime.handle().clone(), stop_tx)))
                    .is_err()
                {
                    return;
                }
                // Until the store is dropped (its sender sends or is dropped).
                runtime.block_on(async {
                    let _ = stop_rx.await;
                });
                // Dropping the runtime drops every task: open watches end.
            })
            .map_err(|e| format!("starting the client thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok((handle, stop))) => Ok(Runtime {
                handle,
                stop: Some(stop),
                thread: Some(thread),
            }),
            Ok(Err(message)) => {
                let _ = thread.join();
                Err(message)
            }
            Err(_) => {
                let _ = thread.join();
                Err("the client thread stopped as it started".to_owned())
            }
        }
    }

    /// Runs `request` on the thread and waits for its result, at most `timeout`.
    pub(super) fn run<T, F>(&self, timeout: Duration, request: F) -> Result<T, Failure>
    where
        F: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let result = match tokio::time::timeout(timeout, request).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(Failure::Etcd(e)),
                Err(_) => Err(Failure::Timeout),
            };
            let _ = tx.send(result);
        });
        match rx.recv_timeout(timeout + ANSWER_SLACK) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Failure::Timeout),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Failure::Stopped),
        }
    }

    /// Runs a background task on the thread (until it ends or the store is dropped).
    pub(super) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        drop(self.handle.spawn(task));
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Never join from the thread itself (a task dropping the last store handle).
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}
