//! The queue between an element's streaming thread and its worker: items in order with the
//! audio each holds, back-pressure for non-live input, flush generations, drain tickets and
//! the sink's unlock. No GStreamer in it: the element hands it its items and its flow error
//! type, and the tests drive it with plain values.
//!
//! The protocol, which the worker and the streaming thread share:
//! - `push` queues an item; non-live input waits while `limit` of audio is queued, unless the
//!   queue is unlocked (a sink pausing or about to flush must let go of its streaming thread).
//! - `flush_start` drops what is queued (but what survives a flush: caps, sticky events),
//!   starts a new generation (results of older work are stale) and refuses pushes until
//!   `flush_stop`, which queues a `Reset` for the worker.
//! - `drain` queues a ticket and waits until the worker marks it done, or a flush, a stop or
//!   an error makes it pointless.
//! - `fail` ends the stream with an error every later push returns; `stop` ends the worker.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

/// What the queue needs to know of an item.
pub trait Queued {
    /// Nanoseconds of audio it holds, at `bytes_per_second` if it must be worked out from its
    /// size.
    fn audio_ns(&self, bytes_per_second: u64) -> u64;
    /// It sets the pace of the items after it (caps): whether they are live and their bytes
    /// per second.
    fn pace(&self) -> Option<Pace>;
    /// It stays queued through a flush (caps, sticky events: upstream does not send them
    /// again).
    fn survives_flush(&self) -> bool;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pace {
    pub live: bool,
    pub bytes_per_second: u64,
}

/// What the worker takes from the queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<T> {
    Item(T),
    /// End of stream: finish what is pending, then `drained(ticket)`.
    Drain(u64),
    /// After a flush: forget pending audio.
    Reset,
}

/// How the worker should treat the item it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    /// Its results are stale once `generation` moved on (`is_current`).
    pub generation: u64,
    /// No more than `caught_up` of audio waits behind it: time for a partial decode.
    pub caught_up: bool,
    pub live: bool,
}

/// Why a push or a drain was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused<E> {
    /// Flushing or stopping: not an error of the stream.
    Flushing,
    /// The stream failed (a failed load, a failed decode or downstream push) with this.
    Failed(E),
}

/// The limits a queue works to, in nanoseconds of audio.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Non-live input: pushes wait while this much is queued.
    pub max_queued_ns: u64,
    /// An item with no more than this behind it is `caught_up`.
    pub caught_up_ns: u64,
}

struct State<T, E> {
    items: VecDeque<(Next<T>, u64)>,
    queued_ns: u64,
    pace: Pace,
    flushing: bool,
    stopping: bool,
    unlocked: bool,
    generation: u64,
    drains_queued: u64,
    drained: u64,
    failed: Option<E>,
}

pub struct WorkQueue<T, E> {
    state: Mutex<State<T, E>>,
    changed: Condvar,
    limits: Limits,
}

impl<T: Queued, E: Copy> WorkQueue<T, E> {
    pub fn new(limits: Limits) -> Self {
        WorkQueue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                queued_ns: 0,
                pace: Pace::default(),
                flushing: false,
                stopping: false,
                unlocked: false,
                generation: 0,
                drains_queued: 0,
                drained: 0,
                failed: None,
            }),
            changed: Condvar::new(),
            limits,
        }
    }

    /// A worker that panicked may have held the lock: the queue's state is still whole.
    fn lock(&self) -> MutexGuard<'_, State<T, E>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State<T, E>>) -> MutexGuard<'a, State<T, E>> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// Why a push would be refused now, if it would.
    fn refusal(state: &State<T, E>) -> Option<Refused<E>> {
        match (state.flushing || state.stopping, state.failed) {
            (true, _) => Some(Refused::Flushing),
            (false, Some(e)) => Some(Refused::Failed(e)),
            (false, None) => None,
        }
    }

    /// Queues `item`, first waiting for room if the input is not live and the queue is not
    /// unlocked.
    pub fn push(&self, item: T) -> Result<(), Refused<E>> {
        let mut q = self.lock();
        loop {
            if let Some(refused) = Self::refusal(&q) {
                return Err(refused);
            }
            if q.pace.live || q.unlocked || q.queued_ns < self.limits.max_queued_ns {
                break;
            }
            q = self.wait(q);
        }
        if let Some(pace) = item.pace() {
            q.pace = pace;
        }
        let audio_ns = item.audio_ns(q.pace.bytes_per_second);
        Self::append(&mut q, Next::Item(item), audio_ns);
        self.changed.notify_all();
        Ok(())
    }

    fn append(q: &mut State<T, E>, next: Next<T>, audio_ns: u64) {
        q.queued_ns += audio_ns;
        q.items.push_back((next, audio_ns));
    }

    /// Queues end of stream and waits until the worker has handled everything before it.
    /// False if a flush, a stop or an error came first. While the queue is unlocked (a sink
    /// pausing), `paused` is called once per unlock without the lock: it returns whether to go
    /// on waiting (a sink waits for PLAYING in it).
    pub fn drain(&self, paused: impl Fn() -> bool) -> bool {
        let mut q = self.lock();
        if Self::refusal(&q).is_some() {
            return false;
        }
        q.drains_queued += 1;
        let (ticket, generation) = (q.drains_queued, q.generation);
        Self::append(&mut q, Next::Drain(ticket), 0);
        self.changed.notify_all();
        let mut answered_unlock = false;
        loop {
            if q.drained >= ticket {
                return true;
            }
            if q.generation != generation || Self::refusal(&q).is_some() {
                return false;
            }
            if q.unlocked && !answered_unlock {
                drop(q);
                if !paused() {
                    return false;
                }
                answered_unlock = true;
                q = self.lock();
                continue;
            }
            answered_unlock &= q.unlocked;
            q = self.wait(q);
        }
    }

    /// The worker handled drain `ticket` (whatever the outcome: an error is `fail`'s).
    pub fn drained(&self, ticket: u64) {
        self.lock().drained = ticket;
        self.changed.notify_all();
    }

    /// Drops what is queued, except what survives a flush, and makes older work stale.
    pub fn flush_start(&self) {
        let mut q = self.lock();
        q.flushing = true;
        q.generation += 1;
        q.items.retain(|(next, _)| match next {
            Next::Item(item) => item.survives_flush(),
            _ => false,
        });
        q.queued_ns = 0;
        self.changed.notify_all();
    }

    /// Pushes are taken again, and the worker forgets the pending audio first. A failure
    /// before the flush is forgotten too.
    pub fn flush_stop(&self) {
        let mut q = self.lock();
        q.flushing = false;
        q.failed = None;
        Self::append(&mut q, Next::Reset, 0);
        self.changed.notify_all();
    }

    /// A waiting push returns at once with its item queued; nothing queued is dropped (a
    /// pause must lose nothing).
    pub fn unlock(&self) {
        self.lock().unlocked = true;
        self.changed.notify_all();
    }

    /// Pushes wait for room again; a waiting drain will ask `paused` at the next unlock.
    pub fn unlock_stop(&self) {
        self.lock().unlocked = false;
        self.changed.notify_all();
    }

    /// The worker is to end: `next` returns `None`, pushes and drains are refused.
    pub fn stop(&self) {
        let mut q = self.lock();
        q.stopping = true;
        q.items.clear();
        self.changed.notify_all();
    }

    /// The stream failed: what is queued is dropped, every later push returns `error`, and a
    /// waiting drain returns.
    pub fn fail(&self, error: E) {
        let mut q = self.lock();
        q.failed = Some(error);
        q.items.clear();
        q.queued_ns = 0;
        self.changed.notify_all();
    }

    /// Handling an item failed with `error`: later pushes return it, unless a flush or a
    /// stop came meanwhile (then the failure is theirs, not the stream's). What is queued
    /// stays: the worker handles it as usual.
    pub fn fail_unless_flushing(&self, error: E) {
        let mut q = self.lock();
        if !q.flushing && !q.stopping {
            q.failed = Some(error);
        }
        self.changed.notify_all();
    }

    /// Waits for the next item; `None` once the worker is to stop.
    pub fn next(&self) -> Option<(Next<T>, Work)> {
        let mut q = self.lock();
        loop {
            if q.stopping {
                return None;
            }
            if let Some((next, audio_ns)) = q.items.pop_front() {
                q.queued_ns = q.queued_ns.saturating_sub(audio_ns);
                self.changed.notify_all();
                let work = Work {
                    generation: q.generation,
                    caught_up: q.queued_ns <= self.limits.caught_up_ns,
                    live: q.pace.live,
                };
                return Some((next, work));
            }
            q = self.wait(q);
        }
    }

    /// No flush has come since `work` was taken: its results may go out.
    pub fn is_current(&self, work: &Work) -> bool {
        self.lock().generation == work.generation
    }

    /// Audio queued and not yet taken by the worker: how far behind it is.
    pub fn queued_ns(&self) -> u64 {
        self.lock().queued_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    /// A test item: audio of some length, caps that set the pace, or a sticky event.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Item {
        Audio(u64),
        Caps(bool),
        Sticky,
        Event,
    }

    impl Queued for Item {
        fn audio_ns(&self, _bytes_per_second: u64) -> u64 {
            match self {
                Item::Audio(ns) => *ns,
                _ => 0,
            }
        }

        fn pace(&self) -> Option<Pace> {
            match self {
                Item::Caps(live) => Some(Pace {
                    live: *live,
                    bytes_per_second: 32_000,
                }),
                _ => None,
            }
        }

        fn survives_flush(&self) -> bool {
            matches!(self, Item::Caps(_) | Item::Sticky)
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Failure;

    type Queue = WorkQueue<Item, Failure>;

    fn queue() -> Arc<Queue> {
        Arc::new(WorkQueue::new(Limits {
            max_queued_ns: 100,
            caught_up_ns: 20,
        }))
    }

    /// Long enough for a thread that is not blocked to have finished its step.
    const SETTLE: Duration = Duration::from_millis(50);

    fn item(next: Option<(Next<Item>, Work)>) -> Next<Item> {
        next.expect("an item").0
    }

    /// Pushes `item` from another thread; returns whether it returned within `SETTLE`.
    fn push_elsewhere(
        q: &Arc<Queue>,
        item: Item,
    ) -> (thread::JoinHandle<Result<(), Refused<Failure>>>, bool) {
        let pusher = q.clone();
        let thread = thread::spawn(move || pusher.push(item));
        thread::sleep(SETTLE);
        let done = thread.is_finished();
        (thread, done)
    }

    #[test]
    fn items_come_out_in_order_with_how_much_waits_behind_them() {
        let q = queue();
        q.push(Item::Caps(true)).unwrap();
        q.push(Item::Audio(30)).unwrap();
        q.push(Item::Audio(10)).unwrap();
        assert_eq!(q.queued_ns(), 40);
        let (next, work) = q.next().unwrap();
        assert_eq!(next, Next::Item(Item::Caps(true)));
        assert!(!work.caught_up, "40 ns behind it, more than 20");
        assert!(work.live);
        let (_, work) = q.next().unwrap();
        assert!(work.caught_up, "10 ns behind it");
        assert_eq!(item(q.next()), Next::Item(Item::Audio(10)));
        assert_eq!(q.queued_ns(), 0);
    }

    #[test]
    fn non_live_pushes_wait_for_room_and_live_ones_never_do() {
        let q = queue();
        q.push(Item::Caps(false)).unwrap();
        q.push(Item::Audio(100)).unwrap();
        let (pusher, done) = push_elsewhere(&q, Item::Audio(5));
        assert!(!done, "100 ns queued: the push waits");
        assert_eq!(item(q.next()), Next::Item(Item::Caps(false)));
        assert_eq!(item(q.next()), Next::Item(Item::Audio(100)));
        assert_eq!(pusher.join().unwrap(), Ok(()));
        assert_eq!(q.queued_ns(), 5);

        let live = queue();
        live.push(Item::Caps(true)).unwrap();
        for _ in 0..10 {
            live.push(Item::Audio(100)).unwrap();
        }
        assert_eq!(live.queued_ns(), 1000);
    }

    #[test]
    fn an_unlock_lets_a_waiting_push_queue_its_item_and_loses_nothing() {
        let q = queue();
        q.push(Item::Audio(100)).unwrap();
        let (pusher, done) = push_elsewhere(&q, Item::Audio(7));
        assert!(!done);
        q.unlock();
        assert_eq!(pusher.join().unwrap(), Ok(()));
        assert_eq!(q.queued_ns(), 107, "both items queued");
        q.unlock_stop();
        let (_, done) = push_elsewhere(&q, Item::Audio(1));
        assert!(!done, "locked again: pushes wait for room");
        q.stop();
    }

    #[test]
    fn a_flush_keeps_caps_and_sticky_events_refuses_pushes_then_resets() {
        let q = queue();
        for i in [
            Item::Caps(false),
            Item::Audio(10),
            Item::Sticky,
            Item::Event,
        ] {
            q.push(i).unwrap();
        }
        let (_, before) = q.next().unwrap();
        q.flush_start();
        assert!(!q.is_current(&before), "work taken before a flush is stale");
        assert_eq!(q.push(Item::Audio(1)), Err(Refused::Flushing));
        assert_eq!(q.queued_ns(), 0);
        q.flush_stop();
        q.push(Item::Audio(3)).unwrap();
        let (next, after) = q.next().unwrap();
        assert_eq!(next, Next::Item(Item::Sticky));
        assert!(q.is_current(&after));
        assert_eq!(item(q.next()), Next::Reset);
        assert_eq!(item(q.next()), Next::Item(Item::Audio(3)));
    }

    #[test]
    fn a_flush_wakes_a_push_waiting_for_room() {
        let q = queue();
        q.push(Item::Audio(100)).unwrap();
        let (pusher, done) = push_elsewhere(&q, Item::Audio(1));
        assert!(!done);
        q.flush_start();
        assert_eq!(pusher.join().unwrap(), Err(Refused::Flushing));
    }

    /// A worker on another thread: handles each drain at once, counting them.
    fn worker(q: &Arc<Queue>) -> (thread::JoinHandle<()>, Arc<AtomicUsize>) {
        let (q, drains) = (q.clone(), Arc::new(AtomicUsize::new(0)));
        let counted = drains.clone();
        let thread = thread::spawn(move || {
            while let Some((next, _)) = q.next() {
                if let Next::Drain(ticket) = next {
                    counted.fetch_add(1, Ordering::SeqCst);
                    q.drained(ticket);
                }
            }
        });
        (thread, drains)
    }

    #[test]
    fn a_drain_returns_once_the_worker_handled_everything_before_it() {
        let q = queue();
        let (thread, drains) = worker(&q);
        q.push(Item::Audio(10)).unwrap();
        assert!(q.drain(|| true));
        assert!(q.drain(|| true), "a second end of stream drains too");
        assert_eq!(drains.load(Ordering::SeqCst), 2);
        q.stop();
        thread.join().unwrap();
    }

    /// Drains from another thread while no worker takes anything: returns its outcome.
    fn waiting_drain(q: &Arc<Queue>) -> thread::JoinHandle<bool> {
        let drainer = q.clone();
        let thread = thread::spawn(move || drainer.drain(|| true));
        thread::sleep(SETTLE);
        assert!(!thread.is_finished(), "the drain waits for the worker");
        thread
    }

    #[test]
    fn a_flush_a_stop_or_a_failure_ends_a_waiting_drain() {
        let q = queue();
        let drain = waiting_drain(&q);
        q.flush_start();
        assert!(!drain.join().unwrap());

        let q = queue();
        let drain = waiting_drain(&q);
        q.stop();
        assert!(!drain.join().unwrap());
        assert!(
            q.next().is_none(),
            "a stopped queue gives the worker nothing"
        );

        let q = queue();
        let drain = waiting_drain(&q);
        q.fail(Failure);
        assert!(!drain.join().unwrap());
        assert!(!q.drain(|| true), "nothing to drain after a failure");
    }

    #[test]
    fn a_paused_sink_is_asked_once_per_unlock_whether_to_go_on_waiting() {
        let q = queue();
        let asked = Arc::new(AtomicUsize::new(0));
        let (drainer, counter) = (q.clone(), asked.clone());
        let drain = thread::spawn(move || {
            drainer.drain(|| {
                counter.fetch_add(1, Ordering::SeqCst);
                true
            })
        });
        thread::sleep(SETTLE);
        q.unlock();
        thread::sleep(SETTLE);
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        q.unlock_stop();
        thread::sleep(SETTLE);
        q.unlock();
        thread::sleep(SETTLE);
        assert_eq!(
            asked.load(Ordering::SeqCst),
            2,
            "asked again after a new unlock"
        );
        let (thread, _) = worker(&q);
        assert!(drain.join().unwrap());
        q.stop();
        thread.join().unwrap();

        // A sink told to stop waiting (going to READY) gives the drain up.
        let q = queue();
        q.unlock();
        assert!(!q.drain(|| false));
    }

    #[test]
    fn a_failure_is_returned_to_every_push_until_a_flush() {
        let q = queue();
        q.push(Item::Audio(10)).unwrap();
        q.fail_unless_flushing(Failure);
        assert_eq!(q.push(Item::Audio(1)), Err(Refused::Failed(Failure)));
        assert_eq!(q.queued_ns(), 10, "what was queued is still handled");
        q.flush_start();
        // A decode the flush cancelled fails: that is the flush's doing, not the stream's.
        q.fail_unless_flushing(Failure);
        assert_eq!(q.push(Item::Audio(1)), Err(Refused::Flushing));
        q.flush_stop();
        assert_eq!(q.push(Item::Audio(1)), Ok(()), "a flush clears the failure");
    }

    #[test]
    fn a_stop_refuses_pushes_and_wakes_a_waiting_worker() {
        let q = queue();
        let taker = q.clone();
        let worker = thread::spawn(move || taker.next().is_none());
        thread::sleep(SETTLE);
        q.stop();
        assert!(worker.join().unwrap());
        assert_eq!(q.push(Item::Audio(1)), Err(Refused::Flushing));
    }
}
