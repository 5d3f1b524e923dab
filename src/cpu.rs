//! The CPU a decode can really get, so the scheduler sizes decodes by it rather than by the
//! core count.
//!
//! A decode's threads meet at thousands of barriers, where ggml's CPU backend spins until the
//! slowest arrives. A decode on more threads than the free CPU therefore does not share the
//! CPU, it wastes it: whenever another process runs on one of its cores, every barrier waits
//! for the thread that was preempted. On 2 cores, 11 corpus clips took 11.7 s on two threads
//! and 6.9 s on one beside a normal-priority busy loop, and 9.6 s against 5.9 s beside a
//! nice 19 one: for a spinning barrier a niced neighbour is as much in the way. What a
//! decode can get is the smallest of:
//! - the cores its thread may run on (affinity: `taskset`, cpusets; read for the calling
//!   thread, whose affinity ggml's threads inherit),
//! - the process's cgroup CPU quota (`cpu.max`, v1 `cpu.cfs_quota_us`: a container limited to
//!   one CPU of sixteen),
//! - those cores less what other processes take of them now (at any nice value), from
//!   `/proc/stat` sampled four times a second (`CpuMonitor`).

use once_cell::sync::Lazy;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Set to `0` to size decodes by affinity and quota only, ignoring other processes' load.
pub const FOLLOW_LOAD_ENV: &str = "WHISPERSTT_FOLLOW_LOAD";
/// A nice value (1-19) for the threads that decode, below the rest of the process (e.g. a
/// media server's video path).
pub const NICE_ENV: &str = "WHISPERSTT_NICE";

/// How often the monitor reads `/proc/stat`.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Time constant of the smoothed load: a busy process that starts is seen within about a
/// second, a burst of a few milliseconds is not.
const SMOOTHING: Duration = Duration::from_millis(500);
/// A decode gets one more thread only when at least this share of a core is free for it
/// (rounding half up): a core half taken by another process already makes a second thread
/// spin more than it computes.
const ROUND_UP_FROM: f64 = 0.5;

/// What a decode started now on the calling thread can get.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuView {
    /// Cores the calling thread may use: its affinity, capped by the cgroup quota.
    pub usable: u32,
    /// Cores (fractional) that other processes take of those now, smoothed.
    pub others: f64,
}

impl CpuView {
    /// Threads a decode should use: the free cores, rounded, at least one, at most `usable`.
    pub fn free_threads(&self) -> u32 {
        let free = self.usable as f64 - self.others;
        let threads = (free + (1.0 - ROUND_UP_FROM)).floor();
        (threads.max(1.0) as u32).min(self.usable.max(1))
    }
}

/// Cores the calling thread may run on, ids and count (`None` where it cannot be read).
fn affinity() -> Option<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect();
        (!cpus.is_empty()).then_some(cpus)
    }
}

/// The process's cgroup CPU quota in cores, the smallest along its cgroup path (v2
/// `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`); `None` without one.
pub fn cgroup_quota() -> Option<f64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut quota: Option<f64> = None;
    let mut take = |q: Option<f64>| {
        if let Some(q) = q.filter(|q| *q > 0.0) {
            quota = Some(quota.map_or(q, |have| have.min(q)));
        }
    };
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        if controllers.is_empty() {
            for dir in ancestors("/sys/fs/cgroup", path) {
                take(read_cpu_max(&dir.join("cpu.max")));
            }
        } else if controllers.split(',').any(|c| c == "cpu") {
            for mount in ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"] {
                for dir in ancestors(mount, path) {
                    take(read_cfs_quota(&dir));
                }
            }
        }
    }
    quota
}

/// `root/path` and each of its parents down to `root`.
fn ancestors(root: &str, path: &str) -> Vec<std::path::PathBuf> {
    let full = Path::new(root).join(path.trim_start_matches('/'));
    full.ancestors()
        .take_while(|p| p.starts_with(root))
        .map(Path::to_path_buf)
        .collect()
}

/// v2 `cpu.max`: "max 100000" (no limit) or "QUOTA PERIOD".
fn read_cpu_max(file: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut fields = text.split_whitespace();
    let quota: f64 = fields.next()?.parse().ok()?;
    let period: f64 = fields.next()?.parse().ok()?;
    (period > 0.0).then(|| quota / period)
}

/// v1: `cpu.cfs_quota_us` is -1 without a limit.
fn read_cfs_quota(dir: &Path) -> Option<f64> {
    let read = |name: &str| -> Option<f64> {
        std::fs::read_to_string(dir.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let (quota, period) = (read("cpu.cfs_quota_us")?, read("cpu.cfs_period_us")?);
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// Why decode threads could not take the nice value `WHISPERSTT_NICE` asks for; they run at
/// the process's priority.
#[derive(Debug, thiserror::Error)]
pub enum NiceError {
    #[error(
        "{NICE_ENV}={0:?} is not a nice value from 0 to 19; decodes run at the process's priority"
    )]
    Invalid(String),
    #[error("{NICE_ENV}={0}: the system refused it ({1}); decodes run at the process's priority")]
    Refused(i32, std::io::Error),
}

/// Lowers the calling thread to `WHISPERSTT_NICE` (unset: unchanged); the threads it starts
/// (ggml's, per graph) inherit it.
pub fn lower_this_thread() -> Result<(), NiceError> {
    let Ok(value) = std::env::var(NICE_ENV) else {
        return Ok(());
    };
    let nice = value
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|n| (0..=19).contains(n))
        .ok_or(NiceError::Invalid(value))?;
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, nice) != 0 {
            return Err(NiceError::Refused(nice, std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// One reading of `/proc/stat` and of this process's CPU time.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    /// Per core id: ticks busy (user, nice, system, irq, softirq, steal).
    cores: Vec<u64>,
    /// This process's CPU time, every thread, live or ended.
    own: Duration,
}

fn read_sample() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut cores = Vec::new();
    for line in stat.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let Some(Ok(id)) = fields.next().map(str::parse::<usize>) else {
            continue; // the "cpu" total line
        };
        let t: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal ...
        let get = |i: usize| t.get(i).copied().unwrap_or(0);
        if cores.len() <= id {
            cores.resize(id + 1, 0);
        }
        cores[id] = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    }
    Some(Sample {
        at: Instant::now(),
        cores,
        own: process_cpu_time(),
    })
}

fn process_cpu_time() -> Duration {
    // SAFETY: clock_gettime fills the timespec it is given.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// Smoothed rates, in cores' worth of busy time: per core id, and this process's own.
#[derive(Debug, Default, Clone)]
struct Rates {
    cores: Vec<f64>,
    own: f64,
}

impl Rates {
    fn update(&mut self, before: &Sample, after: &Sample, hz: f64) {
        let seconds = (after.at - before.at).as_secs_f64();
        if seconds <= 0.0 {
            return;
        }
        let keep = (-seconds / SMOOTHING.as_secs_f64()).exp();
        let blend = |old: &mut f64, new: f64| *old = *old * keep + new * (1.0 - keep);
        self.cores.resize(after.cores.len(), 0.0);
        for (rate, (b, a)) in self
            .cores
            .iter_mut()
            .zip(before.cores.iter().zip(&after.cores))
        {
            blend(rate, a.saturating_sub(*b) as f64 / hz / seconds);
        }
        let own = after.own.saturating_sub(before.own).as_secs_f64() / seconds;
        blend(&mut self.own, own);
    }

    /// Cores other processes take of `cpus`: everything busy there less our own time.
    fn others(&self, cpus: &[usize]) -> f64 {
        let busy: f64 = cpus.iter().filter_map(|&c| self.cores.get(c)).sum();
        (busy - self.own).clamp(0.0, cpus.len() as f64)
    }
}

/// Watches the machine's load from a small thread of its own; one per process, since
/// `/proc/stat` is the machine's.
pub struct CpuMonitor {
    rates: Mutex<Rates>,
    quota: Mutex<Option<f64>>,
    follow_load: bool,
}

impl CpuMonitor {
    /// The process's monitor, its sampling thread started on first use.
    pub fn shared() -> Arc<CpuMonitor> {
        static MONITOR: Lazy<Arc<CpuMonitor>> = Lazy::new(|| {
            let follow_load = std::env::var(FOLLOW_LOAD_ENV).map_or(true, |v| v.trim() != "0");
            let monitor = Arc::new(CpuMonitor {
                rates: Mutex::default(),
                quota: Mutex::new(cgroup_quota()),
                follow_load,
            });
            let weak = Arc::downgrade(&monitor);
            let _ = std::thread::Builder::new()
                .name("whisperstt-cpu".into())
                .spawn(move || sample_forever(weak));
            monitor
        });
        MONITOR.clone()
    }

    /// What a decode started now on the calling thread can get.
    pub fn view(&self) -> CpuView {
        let cpus = affinity().unwrap_or_else(|| {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            (0..n).collect()
        });
        let quota = *self.quota.lock().unwrap();
        let usable = quota.map_or(cpus.len() as f64, |q| q.min(cpus.len() as f64));
        let others = if self.follow_load {
            self.rates.lock().unwrap().others(&cpus)
        } else {
            0.0
        };
        CpuView {
            usable: (usable.floor() as u32).max(1),
            others,
        }
    }
}

fn sample_forever(monitor: std::sync::Weak<CpuMonitor>) {
    let hz = ticks_per_second();
    let Some(mut last) = read_sample() else {
        return; // no /proc/stat: affinity and quota only
    };
    let mut quota_read = Instant::now();
    loop {
        std::thread::sleep(SAMPLE_EVERY);
        let Some(monitor) = monitor.upgrade() else {
            return;
        };
        let Some(now) = read_sample() else {
            return;
        };
        monitor.rates.lock().unwrap().update(&last, &now, hz);
        // Quotas change rarely (a container resized): re-read every few seconds.
        if quota_read.elapsed() >= Duration::from_secs(5) {
            *monitor.quota.lock().unwrap() = cgroup_quota();
            quota_read = Instant::now();
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_threads_round_the_free_cores() {
        let view = |usable, others| CpuView { usable, others }.free_threads();
        assert_eq!(view(2, 0.0), 2);
        assert_eq!(view(2, 0.4), 2);
        // A core half taken or more: one thread less.
        assert_eq!(view(2, 0.6), 1);
        assert_eq!(view(2, 1.0), 1);
        // Never none, never more than usable.
        assert_eq!(view(2, 2.0), 1);
        assert_eq!(view(1, 0.0), 1);
        assert_eq!(view(16, 0.0), 16);
        assert_eq!(view(16, 12.3), 4);
    }

    #[test]
    fn others_are_the_busy_time_less_our_own() {
        let rates = Rates {
            cores: vec![1.0, 0.75],
            own: 0.5,
        };
        // Core 0 busy with another process, core 1 half with us, a quarter with another.
        assert!((rates.others(&[0, 1]) - 1.25).abs() < 1e-9);
        // Only the cores we may run on count.
        assert!((rates.others(&[1]) - 0.25).abs() < 1e-9);
        assert_eq!(Rates::default().others(&[0, 1]), 0.0);
    }

    #[test]
    fn cpu_max_and_cfs_quota_read_as_cores() {
        let dir = tempfile::tempdir().unwrap();
        let max = dir.path().join("cpu.max");
        std::fs::write(&max, "150000 100000\n").unwrap();
        assert_eq!(read_cpu_max(&max), Some(1.5));
        std::fs::write(&max, "max 100000\n").unwrap();
        assert_eq!(read_cpu_max(&max), None);
        std::fs::write(dir.path().join("cpu.cfs_quota_us"), "-1\n").unwrap();
        std::fs::write(dir.path().join("cpu.cfs_period_us"), "100000\n").unwrap();
        assert_eq!(read_cfs_quota(dir.path()), None);
        std::fs::write(dir.path().join("cpu.cfs_quota_us"), "50000\n").unwrap();
        assert_eq!(read_cfs_quota(dir.path()), Some(0.5));
    }

    #[test]
    fn ancestors_stop_at_the_mount() {
        let dirs = ancestors("/sys/fs/cgroup", "/a/b");
        let dirs: Vec<_> = dirs.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            dirs,
            ["/sys/fs/cgroup/a/b", "/sys/fs/cgroup/a", "/sys/fs/cgroup"]
        );
    }

    #[test]
    fn the_calling_threads_affinity_is_what_a_decode_may_use() {
        let monitor = CpuMonitor::shared();
        std::thread::spawn(move || {
            // SAFETY: a cpu_set_t with core 0 only, for this thread.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(affinity().unwrap()[0], &mut set);
                assert_eq!(
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
                    0
                );
            }
            assert_eq!(monitor.view().usable, 1);
            assert_eq!(monitor.view().free_threads(), 1);
        })
        .join()
        .unwrap();
    }
}
