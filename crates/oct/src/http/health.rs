//! `GET /healthz`: 200 `ok` only when the ingress accept loop, every worker and every sender
//! thread are alive; 503 naming what is dead otherwise. Each service thread holds an
//! [`Alive`] guard for as long as it runs: dropping it (the thread returned or panicked) marks
//! the thread dead; the ingress is its tokio task, watched through an abort handle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

enum Probe {
    Thread(Arc<AtomicBool>),
    Task(tokio::task::AbortHandle),
}

impl Probe {
    fn alive(&self) -> bool {
        match self {
            Probe::Thread(flag) => flag.load(Ordering::Relaxed),
            Probe::Task(task) => !task.is_finished(),
        }
    }
}

/// What `/healthz` watches.
#[derive(Default)]
pub struct Threads {
    probes: Mutex<Vec<(String, Probe)>>,
}

impl std::fmt::Debug for Threads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Threads").finish_non_exhaustive()
    }
}

/// Held by a running service thread; dropped when it ends, however it ends.
#[derive(Debug)]
pub struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl Threads {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Probe)>> {
        self.probes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a thread by name; the thread keeps the guard until it ends.
    pub fn register(&self, name: &str) -> Alive {
        let flag = Arc::new(AtomicBool::new(true));
        self.lock().push((name.to_owned(), Probe::Thread(flag.clone())));
        Alive(flag)
    }

    /// Watches a tokio task (the ingress accept loop).
    pub fn watch_task(&self, name: &str, task: tokio::task::AbortHandle) {
        self.lock().push((name.to_owned(), Probe::Task(task)));
    }

    /// The names of what is dead; empty when all is well. `None` when nothing was registered
    /// yet (the service is starting): not healthy either.
    pub fn dead(&self) -> Option<Vec<String>> {
        let probes = self.lock();
        if probes.is_empty() {
            return None;
        }
        Some(
            probes
                .iter()
                .filter(|(_, p)| !p.alive())
                .map(|(n, _)| n.clone())
                .collect(),
        )
    }
}

/// The status and body of `/healthz`.
pub fn report(threads: &Threads) -> (u16, String) {
    match threads.dead() {
        None => (503, "starting\n".to_owned()),
        Some(dead) if dead.is_empty() => (200, "ok\n".to_owned()),
        Some(dead) => (503, format!("dead: {}\n", dead.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_ends_even_by_panic_turns_health_to_503_naming_it() {
        let threads = Arc::new(Threads::default());
        assert_eq!(report(&threads).0, 503, "nothing registered yet");
        let keep = threads.register("oct-worker-0");
        let guard = threads.register("oct-sender-0");
        assert_eq!(report(&threads), (200, "ok\n".to_owned()));
        let t = std::thread::spawn(move || {
            let _guard = guard;
            panic!("provoked");
        });
        assert!(t.join().is_err());
        assert_eq!(report(&threads), (503, "dead: oct-sender-0\n".to_owned()));
        drop(keep);
        assert_eq!(
            report(&threads),
            (503, "dead: oct-worker-0, oct-sender-0\n".to_owned())
        );
    }

    #[tokio::test]
    async fn a_finished_task_is_dead() {
        let threads = Threads::default();
        let task = tokio::spawn(async {});
        threads.watch_task("smtp-ingress", task.abort_handle());
        let _ = task.await;
        assert_eq!(report(&threads), (503, "dead: smtp-ingress\n".to_owned()));
    }
}
