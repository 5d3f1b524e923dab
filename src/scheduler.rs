//! The process-wide inference budget. whisper.cpp's worker threads spin while they wait, so
//! more inference threads than cores does not share the CPU, it wastes it: two concurrent
//! 2-thread decodes on 2 cores ran many times slower than the same decodes one after another.
//! Every decode therefore takes its threads from one budget (the cores by default), first come
//! first served.

use once_cell::sync::Lazy;
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

pub const BUDGET_ENV: &str = "WHISPERSTT_THREAD_BUDGET";

struct State {
    free: u32,
    capacity: u32,
    /// Tickets of the waiting decodes, oldest first.
    queue: VecDeque<u64>,
    next_ticket: u64,
}

pub struct ThreadBudget {
    state: Mutex<State>,
    changed: Condvar,
}

/// Threads held by one decode; given back on drop.
pub struct Permit<'a> {
    budget: &'a ThreadBudget,
    threads: u32,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.budget.state.lock().unwrap().free += self.threads;
        self.budget.changed.notify_all();
    }
}

impl ThreadBudget {
    pub fn new(capacity: u32) -> Self {
        let capacity = capacity.max(1);
        ThreadBudget {
            state: Mutex::new(State {
                free: capacity,
                capacity,
                queue: VecDeque::new(),
                next_ticket: 0,
            }),
            changed: Condvar::new(),
        }
    }

    pub fn capacity(&self) -> u32 {
        self.state.lock().unwrap().capacity
    }

    /// Waits until `threads` (at most the whole budget) are free and it is this caller's turn.
    pub fn acquire(&self, threads: u32) -> Permit<'_> {
        let mut s = self.state.lock().unwrap();
        let threads = threads.clamp(1, s.capacity);
        let ticket = s.next_ticket;
        s.next_ticket += 1;
        s.queue.push_back(ticket);
        let mut s = self
            .changed
            .wait_while(s, |s| s.queue.front() != Some(&ticket) || s.free < threads)
            .unwrap();
        s.queue.pop_front();
        s.free -= threads;
        drop(s);
        // The next in line may fit in what is left.
        self.changed.notify_all();
        Permit {
            budget: self,
            threads,
        }
    }
}

/// The budget every stream in the process shares: `$WHISPERSTT_THREAD_BUDGET`, else the cores.
pub fn global() -> &'static ThreadBudget {
    static GLOBAL: Lazy<ThreadBudget> = Lazy::new(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let budget = std::env::var(BUDGET_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cores);
        ThreadBudget::new(budget)
    });
    &GLOBAL
}
