//! Waiting for SIGTERM or SIGINT in the foreground, as a daemon does: the signals are blocked
//! on the calling thread before the server's threads are started (they inherit the mask, so no
//! thread is interrupted by them), and the caller then waits for one with `sigwait`.

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

use super::error::{ServerError, ServerResult};

/// SIGTERM and SIGINT blocked on the calling thread (and on every thread it starts after),
/// to be waited for ([`TerminationSignals::wait`]). Dropping it unblocks them again.
#[derive(Debug)]
pub struct TerminationSignals {
    set: SigSet,
    previous: SigSet,
}

impl TerminationSignals {
    /// Blocks SIGTERM and SIGINT on the calling thread. Call it before
    /// [`super::PluginServer::start`], from the thread that will wait.
    pub fn block() -> ServerResult<TerminationSignals> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGTERM);
        set.add(Signal::SIGINT);
        let mut previous = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut previous)).map_err(
            |source| ServerError::Signals {
                operation: "blocking SIGTERM and SIGINT",
                source,
            },
        )?;
        Ok(TerminationSignals { set, previous })
    }

    /// Waits until SIGTERM or SIGINT arrives; returns which.
    pub fn wait(&self) -> ServerResult<Signal> {
        self.set.wait().map_err(|source| ServerError::Signals {
            operation: "waiting for SIGTERM or SIGINT",
            source,
        })
    }
}

impl Drop for TerminationSignals {
    fn drop(&mut self) {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.previous), None);
    }
}
