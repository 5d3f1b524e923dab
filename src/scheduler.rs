//! The inference scheduler: one thread budget per device, shared by every stream and model on
//! it. whisper.cpp's worker threads spin while they wait, so more inference threads than
//! cores does not share the CPU, it wastes it: two concurrent 2-thread decodes on 2 cores ran
//! many times slower than the same decodes one after another. Every decode therefore takes its
//! threads from its device's budget (the cores for the CPU). Two models on the same cores
//! compete for the same cores, so the budget is per device, not per model.
//!
//! Waiting decodes are served earliest deadline first: a live stream's final (due within its
//! latency) goes before a file's backlog (due much later), and files still age into their
//! turn. A waiting decode can be abandoned (a flush or a stop) without waiting for its turn.
//!
//! Threads are shared out, not only counted: a decode gets what it asks for when the device
//! has been quiet, and its fair share of the budget (at least one thread, at most what is
//! free) when other decodes ran or waited with it lately. Under contention one-thread decodes
//! side by side do more per second than two-thread decodes in turn (8 live streams on 2
//! cores: final latency p95 1.95 s with two-thread decodes in turn, 1.43 s with one-thread
//! decodes side by side), and an idle core never waits for the head of the queue to get two.
//!
//! The budget is what the process can really get, not the core count: the threads in flight
//! never exceed the cores the calling thread may use (affinity, cgroup quota), and one
//! decode's threads never exceed the cores other processes leave free (`crate::cpu`), since
//! ggml's threads spin at their barriers and a preempted thread stalls the others.

use crate::cpu::{CpuMonitor, CpuView};
use crate::model::Device;
use once_cell::sync::Lazy;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BUDGET_ENV: &str = "WHISPERSTT_THREAD_BUDGET";

/// Stops a stream's decodes: the running one within an encoder pass, a waiting one at once,
/// and every later one until resumed. Its owner (an element's worker) cancels on a flush or a
/// stop; the decoder only reads it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Decodes run again (after a flush).
    pub fn resume(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a stream's decodes run on: its device's thread budget and its cancel token.
#[derive(Clone)]
pub struct DecodeSlot {
    pub budget: Arc<ThreadBudget>,
    pub cancel: CancelToken,
}

impl DecodeSlot {
    /// The process-wide budget of `device` and a new token.
    pub fn for_device(device: Device) -> Self {
        DecodeSlot {
            budget: for_device(device),
            cancel: CancelToken::new(),
        }
    }
}

/// When a decode may take its threads. Partials ask only for threads nobody else wants, and
/// the test and the queueing are one step: when eight streams in step all asked "is the device
/// idle?" first and queued after, all eight saw it idle and queued partials ahead of their
/// finals (a final came 2.56 s after its speech).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Waits its turn, earliest deadline first.
    Queue(Instant),
    /// As `Queue`, but only where no other decode waits.
    UnlessQueued(Instant),
    /// Starts at once where nothing runs or waits, or not at all.
    IfIdle,
}

/// Why `ThreadBudget::acquire` gave no threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The decode's token was cancelled.
    Cancelled,
    /// Its admission did not allow it on the device as it is now.
    Busy,
}

/// How often a waiting decode looks at its abort flag.
const ABORT_POLL: Duration = Duration::from_millis(20);

/// How fast the memory of contention fades (see `State::contention`).
const CONTENTION_HALF_LIFE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Waiting {
    ticket: u64,
    deadline: Instant,
    threads: u32,
}

impl Waiting {
    fn key(&self) -> (Instant, u64) {
        (self.deadline, self.ticket)
    }
}

struct State {
    /// Threads held by running decodes.
    in_use: u32,
    capacity: u32,
    /// Decodes holding threads now.
    running: u32,
    /// Decodes running or waiting together lately: the most seen at once, halving every
    /// `CONTENTION_HALF_LIFE`, so a busy device keeps sharing between arrivals.
    contention: f64,
    contention_at: Instant,
    waiting: Vec<Waiting>,
    next_ticket: u64,
}

impl State {
    /// Notes `now_contending` decodes and returns how many contend lately (at least 1).
    fn contended(&mut self, now_contending: u32) -> u32 {
        let now = Instant::now();
        let halvings =
            (now - self.contention_at).as_secs_f64() / CONTENTION_HALF_LIFE.as_secs_f64();
        self.contention = (self.contention * 0.5f64.powf(halvings)).max(now_contending as f64);
        self.contention_at = now;
        (self.contention.round() as u32).max(1)
    }

    /// The waiting decode served next: the earliest deadline, then the earliest arrival.
    fn head(&self) -> Option<Waiting> {
        self.waiting.iter().min_by_key(|w| w.key()).copied()
    }
}

pub struct ThreadBudget {
    state: Mutex<State>,
    changed: Condvar,
    /// The CPU's real availability; `None` for a fixed budget (a GPU, a test).
    cpu: Option<Arc<CpuMonitor>>,
}

/// Threads held by one decode; given back on drop.
pub struct Permit<'a> {
    budget: &'a ThreadBudget,
    threads: u32,
    /// Whether it waited for other decodes past its deadline.
    pub late: bool,
}

impl Permit<'_> {
    pub fn threads(&self) -> u32 {
        self.threads
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut s = self.budget.state.lock().unwrap();
        s.in_use -= self.threads;
        s.running -= 1;
        drop(s);
        self.budget.changed.notify_all();
    }
}

impl ThreadBudget {
    /// A fixed budget of `capacity` threads.
    pub fn new(capacity: u32) -> Self {
        Self::with_cpu(capacity, None)
    }

    /// At most `capacity` threads, and no more than `cpu` says the calling thread can get.
    pub fn with_cpu(capacity: u32, cpu: Option<Arc<CpuMonitor>>) -> Self {
        let capacity = capacity.max(1);
        ThreadBudget {
            cpu,
            state: Mutex::new(State {
                in_use: 0,
                capacity,
                running: 0,
                contention: 0.0,
                contention_at: Instant::now(),
                waiting: Vec::new(),
                next_ticket: 0,
            }),
            changed: Condvar::new(),
        }
    }

    pub fn capacity(&self) -> u32 {
        self.state.lock().unwrap().capacity
    }

    /// What the CPU offers a decode started now on the calling thread (`None`: fixed budget).
    pub fn cpu(&self) -> Option<CpuView> {
        self.cpu.as_ref().map(|c| c.view())
    }

    /// (threads in flight at most, threads one decode at most) for the calling thread now.
    fn limits(&self, capacity: u32) -> (u32, u32) {
        match self.cpu() {
            Some(view) => (capacity.min(view.usable), capacity.min(view.free_threads())),
            None => (capacity, capacity),
        }
    }

    /// Whether a decode could start now on all its threads: none runs, none waits.
    pub fn idle(&self) -> bool {
        let s = self.state.lock().unwrap();
        s.running == 0 && s.waiting.is_empty()
    }

    /// Decodes waiting for threads now.
    pub fn waiting(&self) -> usize {
        self.state.lock().unwrap().waiting.len()
    }

    /// Waits until this decode is the one due first and a thread is free, then takes up to
    /// `threads` of them: all when it is alone, its fair share when others run or wait, never
    /// more than the CPU has free. Refused at once where `admission` does not let it in, or
    /// when `cancel` is cancelled while it waits.
    pub fn acquire(
        &self,
        threads: u32,
        admission: Admission,
        cancel: &CancelToken,
    ) -> Result<Permit<'_>, Refusal> {
        let mut s = self.state.lock().unwrap();
        let deadline = match admission {
            Admission::Queue(deadline) => deadline,
            Admission::UnlessQueued(deadline) if s.waiting.is_empty() => deadline,
            Admission::IfIdle if s.waiting.is_empty() && s.running == 0 => Instant::now(),
            _ => return Err(Refusal::Busy),
        };
        let me = Waiting {
            ticket: s.next_ticket,
            deadline,
            threads: threads.clamp(1, s.capacity),
        };
        s.next_ticket += 1;
        s.waiting.push(me);
        let mut queued = false;
        let (in_flight, per_decode) = loop {
            if cancel.is_cancelled() {
                s.waiting.retain(|w| w.ticket != me.ticket);
                drop(s);
                // The next in line may be this one's successor.
                self.changed.notify_all();
                return Err(Refusal::Cancelled);
            }
            // Only the head may start, so only it reads the CPU's limits (a syscall).
            if s.head().map(|w| w.ticket) == Some(me.ticket) {
                let limits = self.limits(s.capacity);
                if s.in_use < limits.0 {
                    break limits;
                }
            }
            queued = true;
            s = self.changed.wait_timeout(s, ABORT_POLL).unwrap().0;
        };
        let now_contending = s.running + s.waiting.len() as u32;
        let contenders = s.contended(now_contending);
        s.waiting.retain(|w| w.ticket != me.ticket);
        let share = (in_flight / contenders).max(1);
        let threads = me
            .threads
            .min(share)
            .min(per_decode)
            .min(in_flight - s.in_use);
        s.in_use += threads;
        s.running += 1;
        drop(s);
        // The next in line may fit in what is left.
        self.changed.notify_all();
        Ok(Permit {
            budget: self,
            threads,
            late: queued && Instant::now() > deadline,
        })
    }
}

fn capacity_from_env() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    std::env::var(BUDGET_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &u32| n > 0)
        .unwrap_or(cores)
}

/// The budget every stream on `device` shares: for the CPU `$WHISPERSTT_THREAD_BUDGET`, else
/// the cores, and never more than the CPU really offers; for a GPU the same number of
/// concurrent decodes.
pub fn for_device(device: Device) -> Arc<ThreadBudget> {
    static BUDGETS: Lazy<Mutex<HashMap<Device, Arc<ThreadBudget>>>> = Lazy::new(Mutex::default);
    let mut budgets = BUDGETS.lock().unwrap();
    let budget = budgets.entry(device).or_insert_with(|| {
        let cpu = (device == Device::Cpu).then(CpuMonitor::shared);
        Arc::new(ThreadBudget::with_cpu(capacity_from_env(), cpu))
    });
    budget.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn earliest_deadline_goes_first_and_waiting_can_be_abandoned() {
        let budget = Arc::new(ThreadBudget::new(1));
        let never = CancelToken::new();
        let now = Instant::now();
        let held = budget.acquire(1, Admission::Queue(now), &never).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let abandon = CancelToken::new();
        let spawn = |name: &'static str, due: Duration, abort: CancelToken| {
            let (budget, order) = (budget.clone(), order.clone());
            std::thread::spawn(move || {
                if let Ok(p) = budget.acquire(1, Admission::Queue(now + due), &abort) {
                    order.lock().unwrap().push(name);
                    drop(p);
                }
            })
        };
        let file = spawn("file", Duration::from_secs(30), CancelToken::new());
        std::thread::sleep(Duration::from_millis(50));
        let gone = spawn("abandoned", Duration::from_millis(1), abandon.clone());
        let live = spawn("live", Duration::from_secs(3), CancelToken::new());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(budget.waiting(), 3);
        abandon.cancel();
        gone.join().unwrap();
        assert_eq!(budget.waiting(), 2);
        drop(held);
        file.join().unwrap();
        live.join().unwrap();
        // The live decode came later but is due sooner.
        assert_eq!(*order.lock().unwrap(), ["live", "file"]);
    }

    #[test]
    fn partials_are_admitted_only_to_threads_nobody_else_wants() {
        let budget = Arc::new(ThreadBudget::new(2));
        let never = CancelToken::new();
        let now = Instant::now();
        let first = budget.acquire(1, Admission::IfIdle, &never).unwrap();
        assert_eq!(
            budget.acquire(1, Admission::IfIdle, &never).err(),
            Some(Refusal::Busy)
        );
        // Nothing waits: it may have the other thread.
        let second = budget
            .acquire(1, Admission::UnlessQueued(now), &never)
            .unwrap();
        let queued = {
            let budget = budget.clone();
            std::thread::spawn(move || {
                let p = budget.acquire(1, Admission::Queue(now), &CancelToken::new());
                p.map(|p| p.threads()).ok()
            })
        };
        while budget.waiting() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            budget
                .acquire(1, Admission::UnlessQueued(now), &never)
                .err(),
            Some(Refusal::Busy)
        );
        drop((first, second));
        assert_eq!(queued.join().unwrap(), Some(1));
        assert!(budget.acquire(1, Admission::IfIdle, &never).is_ok());
    }

    #[test]
    fn of_many_decodes_asking_at_once_one_finds_the_device_idle() {
        let budget = Arc::new(ThreadBudget::new(2));
        let asking = 8;
        let all_asked = Arc::new(std::sync::Barrier::new(asking));
        let admitted: usize = (0..asking)
            .map(|_| {
                let (budget, all_asked) = (budget.clone(), all_asked.clone());
                std::thread::spawn(move || {
                    let permit = budget.acquire(1, Admission::IfIdle, &CancelToken::new());
                    let admitted = permit.is_ok();
                    // Held until every one has asked.
                    all_asked.wait();
                    admitted
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap() as usize)
            .sum();
        assert_eq!(admitted, 1);
    }

    #[test]
    fn threads_are_shared_under_contention_and_whole_when_quiet() {
        let budget = ThreadBudget::new(2);
        let never = CancelToken::new();
        let now = Instant::now();
        let alone = budget.acquire(2, Admission::Queue(now), &never).unwrap();
        assert_eq!(alone.threads(), 2);
        drop(alone);
        let first = budget.acquire(1, Admission::Queue(now), &never).unwrap();
        // Does not wait for the first to finish: it takes the free core.
        let second = budget.acquire(2, Admission::Queue(now), &never).unwrap();
        assert_eq!((first.threads(), second.threads()), (1, 1));
        drop((first, second));
        // Just after contention a decode still shares; once it has faded, it gets both.
        assert_eq!(
            budget
                .acquire(2, Admission::Queue(now), &never)
                .unwrap()
                .threads(),
            1
        );
        std::thread::sleep(CONTENTION_HALF_LIFE * 3);
        assert_eq!(
            budget
                .acquire(2, Admission::Queue(now), &never)
                .unwrap()
                .threads(),
            2
        );
    }
}
