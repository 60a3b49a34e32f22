pub mod am_sim;
pub mod demo;
pub mod generate;
pub mod inspect;
pub mod oct;
pub mod oct_backup;
pub mod oct_console;
pub mod oct_init;
pub mod oct_ps;
pub mod oct_queue;
pub mod oct_reload;
pub mod oct_trace;
pub mod ps;

/// Ctrl-C or SIGTERM (what service managers send): when the long-running commands stop.
pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
