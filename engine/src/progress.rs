//! Progress output: a live status line on an interactive terminal, plain lines otherwise.

use crate::units::format_duration;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A live status line redrawn in place (stderr is a terminal).
    Live,
    /// One line per node event.
    Lines,
    /// Nothing.
    Quiet,
}

impl Mode {
    /// Live on a terminal, lines otherwise.
    pub fn detect() -> Mode {
        if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
            Mode::Live
        } else {
            Mode::Lines
        }
    }
}

/// Counters shared between the scheduler and the renderer.
pub struct Progress {
    mode: Mode,
    start: Instant,
    total: usize,
    done: AtomicUsize,
    cached: AtomicUsize,
    failed: AtomicUsize,
    skipped: AtomicUsize,
    /// Running nodes with the file their progress notes go to.
    running: Mutex<Vec<(String, PathBuf)>>,
    drawn: AtomicBool,
    /// In line mode: when progress notes were last printed, and the last note of each node.
    noted: Mutex<(Instant, std::collections::HashMap<String, String>)>,
}

/// How often line mode prints the progress notes of running nodes.
const NOTE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The file a node's progress note goes to, beside its log (see
/// [`OpContext::progress`](crate::operator::OpContext::progress)).
pub fn note_path(log: &Path) -> PathBuf {
    log.with_extension("progress")
}

fn read_note(log: &Path) -> Option<String> {
    let s = std::fs::read_to_string(note_path(log)).ok()?;
    let s = s.lines().next()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

impl Progress {
    /// A tracker for `total` nodes.
    pub fn new(mode: Mode, total: usize) -> Arc<Self> {
        Arc::new(Progress {
            mode,
            start: Instant::now(),
            total,
            done: AtomicUsize::new(0),
            cached: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            skipped: AtomicUsize::new(0),
            running: Mutex::new(vec![]),
            drawn: AtomicBool::new(false),
            noted: Mutex::new((Instant::now(), Default::default())),
        })
    }

    fn line(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.mode == Mode::Live && self.drawn.swap(false, Ordering::Relaxed) {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, "[{:>7}] {text}", format_duration(self.start.elapsed()));
    }

    /// A node started (or retried); `log` is its log file, beside which it may leave
    /// progress notes.
    pub fn started(&self, node: &str, op: &str, attempt: u32, log: &Path) {
        // A note left by an earlier, killed session is stale.
        let _ = std::fs::remove_file(note_path(log));
        self.running
            .lock()
            .expect("lock")
            .push((node.to_string(), log.to_path_buf()));
        if self.mode == Mode::Lines {
            let retry = if attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            self.line(&format!("start   {node} ({op}){retry}"));
        }
    }

    fn stop(&self, node: &str) {
        let mut r = self.running.lock().expect("lock");
        if let Some(i) = r.iter().position(|(n, _)| n == node) {
            let (_, log) = r.swap_remove(i);
            let _ = std::fs::remove_file(note_path(&log));
        }
    }

    /// A node succeeded.
    pub fn succeeded(&self, node: &str, secs: f64) {
        self.stop(node);
        self.done.fetch_add(1, Ordering::Relaxed);
        if self.mode == Mode::Lines {
            self.line(&format!(
                "ok      {node} ({})",
                format_duration(std::time::Duration::from_secs_f64(secs.max(0.0)))
            ));
        }
    }

    /// A node's outputs came from the cache.
    pub fn cached(&self, node: &str) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.cached.fetch_add(1, Ordering::Relaxed);
        if self.mode == Mode::Lines {
            self.line(&format!("cached  {node}"));
        }
    }

    /// An attempt failed and will be retried.
    pub fn retrying(&self, node: &str, attempt: u32, error: &str, delay: std::time::Duration) {
        self.stop(node);
        if self.mode != Mode::Quiet {
            self.line(&format!(
                "retry   {node}: attempt {attempt} failed: {}; retrying in {}",
                first_line(error),
                format_duration(delay)
            ));
        }
    }

    /// A node failed for good.
    pub fn failed(&self, node: &str, error: &str) {
        self.stop(node);
        self.failed.fetch_add(1, Ordering::Relaxed);
        if self.mode != Mode::Quiet {
            self.line(&format!("FAILED  {node}: {}", first_line(error)));
        }
    }

    /// A node was skipped or cancelled.
    pub fn not_run(&self, node: &str, why: &str) {
        self.stop(node);
        self.skipped.fetch_add(1, Ordering::Relaxed);
        if self.mode == Mode::Lines {
            self.line(&format!("skip    {node}: {why}"));
        }
    }

    /// A message for the user.
    pub fn note(&self, text: &str) {
        if self.mode != Mode::Quiet {
            self.line(text);
        }
    }

    /// In line mode, prints the progress notes of running nodes that changed, at most every
    /// [`NOTE_EVERY`].
    fn print_notes(&self) {
        let mut noted = self.noted.lock().expect("lock");
        if noted.0.elapsed() < NOTE_EVERY {
            return;
        }
        noted.0 = Instant::now();
        let running = self.running.lock().expect("lock").clone();
        noted.1.retain(|n, _| running.iter().any(|(r, _)| r == n));
        for (node, log) in running {
            if let Some(note) = read_note(&log) {
                if noted.1.get(&node) != Some(&note) {
                    self.line(&format!("        {node}: {note}"));
                    noted.1.insert(node, note);
                }
            }
        }
    }

    /// Redraws the live status line (with the progress note of a running node, when one
    /// left one); in line mode, prints progress notes now and then.
    pub fn draw(&self) {
        if self.mode == Mode::Lines {
            self.print_notes();
        }
        if self.mode != Mode::Live {
            return;
        }
        let running = self.running.lock().expect("lock").clone();
        let mut names = running
            .iter()
            .take(3)
            .map(|(n, log)| match read_note(log) {
                Some(note) => format!("{n} ({note})"),
                None => n.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        if running.len() > 3 {
            names.push_str(&format!(", +{}", running.len() - 3));
        }
        let text = format!(
            "{} {}/{} done ({} cached) · {} running{} · {} failed · {} skipped",
            format_duration(self.start.elapsed()),
            self.done.load(Ordering::Relaxed),
            self.total,
            self.cached.load(Ordering::Relaxed),
            running.len(),
            if names.is_empty() {
                String::new()
            } else {
                format!(": {names}")
            },
            self.failed.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
        );
        let width = terminal_width();
        let text: String = text.chars().take(width.saturating_sub(1)).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{text}");
        let _ = err.flush();
        self.drawn.store(true, Ordering::Relaxed);
    }

    /// Clears the live line before the final summary.
    pub fn finish(&self) {
        if self.mode == Mode::Live && self.drawn.swap(false, Ordering::Relaxed) {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn terminal_width() -> usize {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 {
        ws.ws_col as usize
    } else {
        100
    }
}
