//! Hot reload: watch every policy file and everything it extends, recompile
//! on change, swap the live program atomically.
//!
//! The parent directories are watched (not the files), and events are
//! filtered by path, so editors that save by writing a new file and renaming
//! it over the old one keep being noticed. Events are debounced (300 ms).
//! Calls in flight keep the program they loaded; new calls get the new one.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};

use super::policy::{load, Loaded};

/// Quiet time after the last change before recompiling.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Starts watching; reloads happen on a background thread for the life of the process.
pub fn spawn(inputs: Vec<PathBuf>, store: Arc<ArcSwap<Loaded>>) -> Result<(), String> {
    let (tx, rx) = mpsc::channel::<notify::Result<Event>>();
    let watcher = notify::recommended_watcher(move |ev| {
        let _ = tx.send(ev);
    })
    .map_err(|e| format!("[kvlar] cannot watch the policy files: {e}"))?;
    let mut state = State {
        watcher,
        files: HashSet::new(),
        dirs: HashSet::new(),
    };
    let initial = store.load().files.clone();
    state.watch(&inputs, &initial)?;
    log!(
        "[kvlar] watching {} policy file(s) for changes",
        state.files.len()
    );
    thread::Builder::new()
        .name("kvlar-reload".into())
        .spawn(move || state.run(&inputs, &store, &rx))
        .map_err(|e| format!("[kvlar] cannot start the reload thread: {e}"))?;
    Ok(())
}

struct State<W> {
    watcher: W,
    /// The files whose changes matter (absolute, directories canonical).
    files: HashSet<PathBuf>,
    /// The directories being watched.
    dirs: HashSet<PathBuf>,
}

impl<W: Watcher> State<W> {
    /// Adds the inputs and the files read when compiling them to the watch set.
    fn watch(&mut self, inputs: &[PathBuf], read: &[PathBuf]) -> Result<(), String> {
        let mut files = HashSet::new();
        for p in inputs.iter().chain(read) {
            if let Some(p) = with_canonical_parent(p) {
                files.insert(p);
            }
            if let Ok(p) = p.canonicalize() {
                files.insert(p);
            }
        }
        for f in &files {
            let Some(dir) = f.parent() else { continue };
            if !self.dirs.contains(dir) {
                self.watcher
                    .watch(dir, RecursiveMode::NonRecursive)
                    .map_err(|e| format!("[kvlar] cannot watch {}: {e}", dir.display()))?;
                self.dirs.insert(dir.to_path_buf());
            }
        }
        self.files.extend(files);
        Ok(())
    }

    fn relevant(&self, ev: &notify::Result<Event>) -> bool {
        match ev {
            Ok(ev) => {
                let kind_matters = match ev.kind {
                    EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
                    EventKind::Access(_) => false,
                    _ => true,
                };
                kind_matters && ev.paths.iter().any(|p| self.files.contains(p))
            }
            Err(e) => {
                log!("[kvlar] policy watch error: {e}");
                false
            }
        }
    }

    fn run(
        mut self,
        inputs: &[PathBuf],
        store: &ArcSwap<Loaded>,
        rx: &mpsc::Receiver<notify::Result<Event>>,
    ) {
        while let Ok(ev) = rx.recv() {
            if !self.relevant(&ev) {
                continue;
            }
            log!("[kvlar] policy change detected, reloading...");
            let mut deadline = Instant::now() + DEBOUNCE;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(ev) => {
                        if self.relevant(&ev) {
                            deadline = Instant::now() + DEBOUNCE;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            match load(inputs) {
                Ok(loaded) => {
                    log!(
                        "[kvlar] ✓ reloaded {} policies ({} rules)",
                        loaded.policies,
                        loaded.rules
                    );
                    let files = loaded.files.clone();
                    store.store(Arc::new(loaded));
                    if let Err(e) = self.watch(inputs, &files) {
                        log!("{e}");
                    }
                }
                Err(diagnostic) => {
                    log!("[kvlar] ✗ reload failed, keeping previous policy:\n{diagnostic}");
                }
            }
        }
    }
}

/// `p` made absolute with its directory canonicalized (the file itself may be
/// missing, or be replaced later).
fn with_canonical_parent(p: &Path) -> Option<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(p)
    };
    let name = abs.file_name()?;
    let dir = abs.parent()?.canonicalize().ok()?;
    Some(dir.join(name))
}
